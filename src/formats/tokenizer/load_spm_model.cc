// tokenizer.model: SentencePiece's ModelProto (sentencepiece_model.proto). Field numbers used:
//   ModelProto     1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece  1 piece (string), 2 score (float), 3 type (enum, NORMAL=1 .. BYTE=6)
//   TrainerSpec    3 model_type (UNIGRAM=1, BPE=2, WORD=3, CHAR=4; default UNIGRAM),
//                  24 treat_whitespace_as_suffix, 35 byte_fallback, 40/41/42 unk/bos/eos id
//                  (defaults 0/1/2; -1 = none), 44 unk_surface (default " ⁇ ")
//   NormalizerSpec 1 name, 2 precompiled_charsmap, 3 add_dummy_prefix, 4 remove_extra_whitespaces,
//                  5 escape_whitespaces (all three default true)
#include <bit>
#include <cmath>

#include "core/error.h"
#include "formats/tokenizer/protobuf_reader.h"
#include "formats/tokenizer/tokenizer_model.h"

namespace jetmoe::tokenizer_detail {
namespace {

struct TrainerSpec {
  uint64_t model_type = 1;
  bool treat_whitespace_as_suffix = false;
  bool byte_fallback = false;
  int64_t unk_id = 0, bos_id = 1, eos_id = 2;
  std::string unk_surface = " \xE2\x81\x87 ";
};

struct NormalizerSpec {
  std::string name;
  size_t charsmap_bytes = 0;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// int32 fields are sign-extended to 64 bits on the wire.
int64_t as_int32(const ProtoField& field) { return static_cast<int32_t>(static_cast<uint32_t>(field.varint)); }

void read_piece(ProtoReader reader, TokenizerModel& model) {
  const auto index = model.pieces.size();
  std::string piece;
  float score = 0;
  uint64_t type = 1;
  bool has_piece = false;
  while (!reader.at_end()) {
    const ProtoField field = reader.next();
    switch (field.number) {
      case 1:
        reader.expect(field, WireType::kLengthDelimited, "SentencePiece.piece");
        piece = std::string(field.bytes);
        has_piece = true;
        break;
      case 2:
        reader.expect(field, WireType::kFixed32, "SentencePiece.score");
        score = std::bit_cast<float>(static_cast<uint32_t>(field.fixed));
        break;
      case 3:
        reader.expect(field, WireType::kVarint, "SentencePiece.type");
        type = field.varint;
        break;
      default:
        break;  // extensions
    }
  }
  if (!has_piece || piece.empty()) fail(model.source, ": piece ", index, " has no text");
  if (type < 1 || type > 6) fail(model.source, ": piece ", index, " ('", piece, "') has unknown type ", type);
  if (std::isnan(score)) fail(model.source, ": piece ", index, " ('", piece, "') has a NaN score");
  if (!model.ids.emplace(piece, static_cast<int32_t>(index)).second) {
    fail(model.source, ": piece '", piece, "' appears twice (ids ", model.ids.at(piece), " and ", index, ")");
  }
  model.pieces.push_back(std::move(piece));
  model.scores.push_back(score);
  model.kinds.push_back(static_cast<PieceKind>(type));
}

TrainerSpec read_trainer_spec(ProtoReader reader) {
  TrainerSpec spec;
  while (!reader.at_end()) {
    const ProtoField field = reader.next();
    const auto varint = [&](std::string_view what) {
      reader.expect(field, WireType::kVarint, what);
      return field.varint;
    };
    switch (field.number) {
      case 3: spec.model_type = varint("TrainerSpec.model_type"); break;
      case 24: spec.treat_whitespace_as_suffix = varint("TrainerSpec.treat_whitespace_as_suffix") != 0; break;
      case 35: spec.byte_fallback = varint("TrainerSpec.byte_fallback") != 0; break;
      case 40: varint("TrainerSpec.unk_id"); spec.unk_id = as_int32(field); break;
      case 41: varint("TrainerSpec.bos_id"); spec.bos_id = as_int32(field); break;
      case 42: varint("TrainerSpec.eos_id"); spec.eos_id = as_int32(field); break;
      case 44:
        reader.expect(field, WireType::kLengthDelimited, "TrainerSpec.unk_surface");
        spec.unk_surface = std::string(field.bytes);
        break;
      default: break;
    }
  }
  return spec;
}

NormalizerSpec read_normalizer_spec(ProtoReader reader) {
  NormalizerSpec spec;
  while (!reader.at_end()) {
    const ProtoField field = reader.next();
    const auto flag = [&](std::string_view what) {
      reader.expect(field, WireType::kVarint, what);
      return field.varint != 0;
    };
    switch (field.number) {
      case 1:
        reader.expect(field, WireType::kLengthDelimited, "NormalizerSpec.name");
        spec.name = std::string(field.bytes);
        break;
      case 2:
        reader.expect(field, WireType::kLengthDelimited, "NormalizerSpec.precompiled_charsmap");
        spec.charsmap_bytes = field.bytes.size();
        break;
      case 3: spec.add_dummy_prefix = flag("NormalizerSpec.add_dummy_prefix"); break;
      case 4: spec.remove_extra_whitespaces = flag("NormalizerSpec.remove_extra_whitespaces"); break;
      case 5: spec.escape_whitespaces = flag("NormalizerSpec.escape_whitespaces"); break;
      default: break;
    }
  }
  return spec;
}

int32_t checked_special_id(const TokenizerModel& model, int64_t id, std::string_view what) {
  if (id == -1) return -1;
  if (id < 0 || id >= model.vocab_size()) {
    fail(model.source, ": TrainerSpec.", what, " is ", id, " but the model has ", model.vocab_size(), " pieces");
  }
  return static_cast<int32_t>(id);
}

}  // namespace

TokenizerModel parse_spm_model(std::string_view bytes, const std::string& path) {
  TokenizerModel model;
  model.source = path;

  TrainerSpec trainer;
  NormalizerSpec normalizer;
  ProtoReader reader(bytes, model.source);
  while (!reader.at_end()) {
    const ProtoField field = reader.next();
    switch (field.number) {
      case 1:
        reader.expect(field, WireType::kLengthDelimited, "ModelProto.pieces");
        read_piece(reader.nested(field), model);
        break;
      case 2:
        reader.expect(field, WireType::kLengthDelimited, "ModelProto.trainer_spec");
        trainer = read_trainer_spec(reader.nested(field));
        break;
      case 3:
        reader.expect(field, WireType::kLengthDelimited, "ModelProto.normalizer_spec");
        normalizer = read_normalizer_spec(reader.nested(field));
        break;
      default:
        break;  // self-test data, denormalizer, extensions
    }
  }

  if (model.pieces.empty()) fail(path, ": no pieces (not a SentencePiece model?)");
  switch (trainer.model_type) {
    case 2: break;
    case 1: fail(path, ": a UNIGRAM SentencePiece model; only BPE models are supported");
    case 3: fail(path, ": a WORD SentencePiece model; only BPE models are supported");
    case 4: fail(path, ": a CHAR SentencePiece model; only BPE models are supported");
    default: fail(path, ": unknown SentencePiece model_type ", trainer.model_type);
  }
  if (trainer.treat_whitespace_as_suffix) fail(path, ": treat_whitespace_as_suffix is not supported");
  if (normalizer.charsmap_bytes > 0) {
    fail(path, ": normalizer '", normalizer.name, "' uses a precompiled character map (", normalizer.charsmap_bytes,
         " bytes); only the 'identity' normalization is supported");
  }

  for (size_t id = 0; id < model.pieces.size(); ++id) {
    if (model.kinds[id] == PieceKind::kUnknown) {
      if (model.unk_id >= 0) fail(path, ": two unknown pieces (ids ", model.unk_id, " and ", id, ")");
      model.unk_id = static_cast<int32_t>(id);
    }
    if (model.kinds[id] == PieceKind::kUserDefined) model.frozen_symbols.push_back(model.pieces[id]);
  }
  if (model.unk_id < 0) fail(path, ": no piece of type UNKNOWN");
  if (trainer.unk_id != model.unk_id) {
    fail(path, ": TrainerSpec.unk_id is ", trainer.unk_id, " but the UNKNOWN piece has id ", model.unk_id);
  }
  model.bos_id = checked_special_id(model, trainer.bos_id, "bos_id");
  model.eos_id = checked_special_id(model, trainer.eos_id, "eos_id");
  if (model.bos_id >= 0) model.bos_ids = {model.bos_id};

  model.merge_order = MergeOrder::kByScore;
  model.byte_fallback = trainer.byte_fallback;
  model.fuse_unk = true;  // SentencePiece merges runs of unknown pieces into one
  model.parse_special_by_default = false;
  // Control and unknown pieces can be written in text only when the caller asks for it.
  for (size_t id = 0; id < model.pieces.size(); ++id) {
    if (model.kinds[id] == PieceKind::kControl || model.kinds[id] == PieceKind::kUnknown) {
      model.added_tokens.push_back({model.pieces[id], static_cast<int32_t>(id), true, false, false});
    }
  }

  const std::string space = normalizer.escape_whitespaces ? std::string(kMetaspace) : " ";
  using Step = NormalizerStep::Kind;
  if (normalizer.remove_extra_whitespaces) model.normalizer.push_back({Step::kCollapseSpaces, "", ""});
  if (normalizer.add_dummy_prefix) model.normalizer.push_back({Step::kPrepend, "", space});
  if (normalizer.escape_whitespaces) model.normalizer.push_back({Step::kReplace, " ", space});
  // SentencePiece trims trailing space symbols after escaping: a '▁' written at the end of the
  // text goes too, and so does the dummy prefix of a text that is only spaces and '▁'.
  if (normalizer.remove_extra_whitespaces) model.normalizer.push_back({Step::kStripTrailing, space, ""});
  // ... and when decoding, it drops every leading space, not just the dummy prefix.
  model.drop_all_leading_spaces = normalizer.remove_extra_whitespaces;

  finish_model(model, normalizer.escape_whitespaces,
               normalizer.add_dummy_prefix || normalizer.remove_extra_whitespaces, trainer.unk_surface);
  return model;
}

}  // namespace jetmoe::tokenizer_detail
