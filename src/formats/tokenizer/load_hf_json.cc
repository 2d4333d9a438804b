// tokenizer.json (Hugging Face tokenizers): a BPE model with its vocab and ranked merges, added
// tokens, and the normalizer / pre-tokenizer / post-processor / decoder used by the Llama and
// Mistral conversions. Anything else is refused with a message rather than silently mis-encoded.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/tokenizer/tokenizer_model.h"

namespace jetmoe::tokenizer_detail {
namespace {

using nlohmann::json;

class JsonLoader {
 public:
  explicit JsonLoader(TokenizerModel& model) : model_(model) {}

  void load(const json& root) {
    if (!root.is_object()) fail(model_.source, ": the top level is not a JSON object");
    const json* model = find(root, "model");
    if (model == nullptr || !model->is_object()) fail(model_.source, ": no 'model' object");
    read_model(*model);
    read_added_tokens(root);
    read_normalizer(root.contains("normalizer") ? root["normalizer"] : json(nullptr));
    read_pre_tokenizer(root.contains("pre_tokenizer") ? root["pre_tokenizer"] : json(nullptr));
    read_post_processor(root.contains("post_processor") ? root["post_processor"] : json(nullptr));
    read_decoder(root.contains("decoder") ? root["decoder"] : json(nullptr));

    model_.bos_id = !model_.bos_ids.empty() ? model_.bos_ids.front() : model_.find("<s>").value_or(-1);
    model_.eos_id = model_.find("</s>").value_or(-1);
    model_.parse_special_by_default = true;  // as Hugging Face's encode() does
    model_.special_text_ends_start = true;
    finish_model(model_, metaspace_to_space_, drop_leading_space_, std::nullopt);
  }

 private:
  static const json* find(const json& object, const char* key) {
    const auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
  }

  [[noreturn]] void bad(std::string_view where, std::string_view problem) const {
    fail(model_.source, ": ", where, ": ", problem);
  }

  std::string text(const json& object, const char* key, std::string_view where) const {
    const json* value = find(object, key);
    if (value == nullptr || !value->is_string()) bad(where, str_cat("'", key, "' must be a string"));
    return value->get<std::string>();
  }

  bool flag(const json& object, const char* key, bool fallback, std::string_view where) const {
    const json* value = find(object, key);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) bad(where, str_cat("'", key, "' must be true or false"));
    return value->get<bool>();
  }

  std::string type_of(const json& object, std::string_view where) const {
    if (!object.is_object()) bad(where, "must be an object");
    return text(object, "type", where);
  }

  int32_t id_of(const std::string& piece, std::string_view where) const {
    const auto id = model_.find(piece);
    if (!id) bad(where, str_cat("'", piece, "' is not in the vocabulary"));
    return *id;
  }

  void read_model(const json& model) {
    if (const json* type = find(model, "type"); type != nullptr && *type != "BPE") {
      bad("model", str_cat("type ", type->dump(), " is not supported (only BPE)"));
    }
    const json* vocab = find(model, "vocab");
    if (vocab == nullptr || !vocab->is_object()) bad("model", "no 'vocab' object");
    const auto size = vocab->size();
    if (size == 0) bad("model", "the vocabulary is empty");
    model_.pieces.assign(size, std::string());
    std::vector<bool> seen(size, false);
    for (const auto& [piece, id_value] : vocab->items()) {
      if (!id_value.is_number_integer() || id_value.get<int64_t>() < 0 || id_value.get<int64_t>() >= int64_t(size)) {
        bad("model.vocab", str_cat("'", piece, "' has id ", id_value.dump(), "; ids must be 0..", size - 1));
      }
      const auto id = id_value.get<int32_t>();
      if (seen[id]) bad("model.vocab", str_cat("id ", id, " is given to both '", model_.pieces[id], "' and '", piece, "'"));
      seen[id] = true;
      model_.pieces[id] = piece;
      model_.ids.emplace(piece, id);
    }
    model_.kinds.assign(size, PieceKind::kNormal);

    if (const json* dropout = find(model, "dropout"); dropout != nullptr && dropout->get<double>() > 0) {
      bad("model", "BPE dropout is not supported");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (const json* affix = find(model, key); affix != nullptr && *affix != "") {
        bad("model", str_cat("'", key, "' is not supported"));
      }
    }
    model_.byte_fallback = flag(model, "byte_fallback", false, "model");
    model_.fuse_unk = flag(model, "fuse_unk", false, "model");
    model_.ignore_merges = flag(model, "ignore_merges", false, "model");
    if (find(model, "unk_token") != nullptr) {
      model_.unk_id = id_of(text(model, "unk_token", "model"), "model.unk_token");
      model_.kinds[model_.unk_id] = PieceKind::kUnknown;
    }
    read_merges(model);
  }

  void read_merges(const json& model) {
    const json* merges = find(model, "merges");
    if (merges == nullptr || !merges->is_array()) bad("model", "no 'merges' array");
    model_.merge_order = MergeOrder::kByRank;
    model_.merges.reserve(merges->size());
    int32_t rank = 0;
    for (const json& merge : *merges) {
      const std::string where = str_cat("model.merges[", rank, "]");
      std::string left, right;
      if (merge.is_string()) {  // "left right"
        const std::string& both = merge.get_ref<const std::string&>();
        const size_t space = both.find(' ');
        if (space == std::string::npos) bad(where, str_cat("'", both, "' is not two pieces separated by a space"));
        left = both.substr(0, space);
        right = both.substr(space + 1);
      } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
        left = merge[0].get<std::string>();
        right = merge[1].get<std::string>();
      } else {
        bad(where, "must be a string \"left right\" or a pair [\"left\", \"right\"]");
      }
      const int32_t left_id = id_of(left, where);
      const int32_t right_id = id_of(right, where);
      const int32_t result = id_of(left + right, where);
      // A pair listed twice keeps its last rank, as Hugging Face's loader does.
      model_.merges.insert_or_assign((uint64_t{static_cast<uint32_t>(left_id)} << 32) | static_cast<uint32_t>(right_id),
                                     MergeRule{rank, result});
      ++rank;
    }
  }

  void read_added_tokens(const json& root) {
    const json* added = find(root, "added_tokens");
    if (added == nullptr) return;
    if (!added->is_array()) bad("added_tokens", "must be an array");
    for (size_t i = 0; i < added->size(); ++i) {
      const json& entry = (*added)[i];
      const std::string where = str_cat("added_tokens[", i, "]");
      if (!entry.is_object()) bad(where, "must be an object");
      AddedToken token;
      token.content = text(entry, "content", where);
      if (token.content.empty()) bad(where, "'content' is empty");
      const json* id = find(entry, "id");
      if (id == nullptr || !id->is_number_integer() || id->get<int64_t>() < 0 ||
          id->get<int64_t>() > int64_t(model_.pieces.size() + added->size())) {
        bad(where, "'id' must be an integer within the vocabulary (or just past it)");
      }
      token.id = id->get<int32_t>();
      token.special = flag(entry, "special", false, where);
      token.lstrip = flag(entry, "lstrip", false, where);
      token.rstrip = flag(entry, "rstrip", false, where);
      if (flag(entry, "single_word", false, where)) bad(where, "'single_word' tokens are not supported");
      if (static_cast<size_t>(token.id) >= model_.pieces.size()) {
        model_.pieces.resize(token.id + 1);
        model_.kinds.resize(token.id + 1, PieceKind::kNormal);
      }
      model_.pieces[token.id] = token.content;
      model_.ids.insert_or_assign(token.content, token.id);
      if (token.special) {
        model_.kinds[token.id] = PieceKind::kControl;
      } else if (model_.kinds[token.id] == PieceKind::kNormal) {
        model_.kinds[token.id] = PieceKind::kUserDefined;
      }
      model_.added_tokens.push_back(std::move(token));
    }
    for (size_t id = 0; id < model_.pieces.size(); ++id) {
      if (model_.pieces[id].empty()) bad("added_tokens", str_cat("id ", id, " has neither a vocabulary piece nor an added token"));
    }
  }

  void read_normalizer(const json& normalizer) {
    if (normalizer.is_null()) return;
    const std::string type = type_of(normalizer, "normalizer");
    if (type == "Sequence") {
      const json* steps = find(normalizer, "normalizers");
      if (steps == nullptr || !steps->is_array()) bad("normalizer", "a Sequence needs a 'normalizers' array");
      for (const json& step : *steps) read_normalizer(step);
    } else if (type == "Prepend") {
      model_.normalizer.push_back({NormalizerStep::Kind::kPrepend, "", text(normalizer, "prepend", "normalizer")});
    } else if (type == "Replace") {
      model_.normalizer.push_back({NormalizerStep::Kind::kReplace, string_pattern(normalizer, "normalizer"),
                                   text(normalizer, "content", "normalizer")});
    } else {
      bad("normalizer", str_cat("type '", type, "' is not supported (only Prepend, Replace and Sequence)"));
    }
  }

  std::string string_pattern(const json& replace, std::string_view where) const {
    const json* pattern = find(replace, "pattern");
    if (pattern == nullptr || !pattern->is_object() || find(*pattern, "String") == nullptr) {
      bad(where, "Replace needs a literal {\"String\": ...} pattern (regular expressions are not supported)");
    }
    const std::string from = text(*pattern, "String", where);
    if (from.empty()) bad(where, "Replace pattern is empty");
    return from;
  }

  static MetaspaceSplit::Prepend prepend_scheme(const json& metaspace) {
    if (const auto it = metaspace.find("prepend_scheme"); it != metaspace.end() && it->is_string()) {
      if (*it == "first") return MetaspaceSplit::Prepend::kFirst;
      if (*it == "never") return MetaspaceSplit::Prepend::kNever;
      return MetaspaceSplit::Prepend::kAlways;
    }
    // Older files: add_prefix_space (default true).
    const auto it = metaspace.find("add_prefix_space");
    const bool add = it == metaspace.end() || !it->is_boolean() || it->get<bool>();
    return add ? MetaspaceSplit::Prepend::kAlways : MetaspaceSplit::Prepend::kNever;
  }

  void read_pre_tokenizer(const json& pre_tokenizer) {
    if (pre_tokenizer.is_null()) return;
    const std::string type = type_of(pre_tokenizer, "pre_tokenizer");
    if (type == "Sequence") {
      const json* steps = find(pre_tokenizer, "pretokenizers");
      if (steps == nullptr || !steps->is_array()) bad("pre_tokenizer", "a Sequence needs a 'pretokenizers' array");
      for (const json& step : *steps) read_pre_tokenizer(step);
      return;
    }
    if (type != "Metaspace") bad("pre_tokenizer", str_cat("type '", type, "' is not supported (only Metaspace)"));
    if (model_.metaspace) bad("pre_tokenizer", "more than one Metaspace");
    MetaspaceSplit metaspace;
    metaspace.replacement = text(pre_tokenizer, "replacement", "pre_tokenizer");
    if (metaspace.replacement.empty()) bad("pre_tokenizer", "Metaspace replacement is empty");
    metaspace.prepend = prepend_scheme(pre_tokenizer);
    metaspace.split = flag(pre_tokenizer, "split", true, "pre_tokenizer");
    model_.metaspace = metaspace;
  }

  void read_post_processor(const json& processor) {
    if (processor.is_null()) return;
    const std::string type = type_of(processor, "post_processor");
    if (type == "Sequence") {
      const json* steps = find(processor, "processors");
      if (steps == nullptr || !steps->is_array()) bad("post_processor", "a Sequence needs a 'processors' array");
      for (const json& step : *steps) read_post_processor(step);
    } else if (type == "TemplateProcessing") {
      read_template(processor);
    } else if (type != "ByteLevel") {  // ByteLevel only adjusts offsets
      bad("post_processor", str_cat("type '", type, "' is not supported (only TemplateProcessing)"));
    }
  }

  // "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}, ...]
  void read_template(const json& processor) {
    const json* single = find(processor, "single");
    if (single == nullptr || !single->is_array()) bad("post_processor", "TemplateProcessing needs a 'single' array");
    const json* special_tokens = find(processor, "special_tokens");
    bool after_text = false;
    for (const json& item : *single) {
      if (!item.is_object()) bad("post_processor.single", "items must be objects");
      if (item.contains("Sequence")) {
        after_text = true;
        continue;
      }
      const json* special = find(item, "SpecialToken");
      if (special == nullptr) bad("post_processor.single", "items must be SpecialToken or Sequence");
      const std::string name = text(*special, "id", "post_processor.single");
      std::vector<int32_t> ids;
      if (special_tokens != nullptr && special_tokens->contains(name)) {
        const json& listed = (*special_tokens)[name];
        if (!listed.contains("ids") || !listed["ids"].is_array()) bad("post_processor.special_tokens", name + " has no ids");
        for (const json& id : listed["ids"]) {
          if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= int64_t(model_.pieces.size())) {
            bad("post_processor.special_tokens", str_cat(name, " has id ", id.dump(), " outside the vocabulary"));
          }
          ids.push_back(id.get<int32_t>());
        }
      } else {
        ids.push_back(id_of(name, "post_processor.single"));
      }
      auto& target = after_text ? model_.eos_ids : model_.bos_ids;
      target.insert(target.end(), ids.begin(), ids.end());
    }
  }

  void read_decoder(const json& decoder) {
    if (decoder.is_null()) return;
    const std::string type = type_of(decoder, "decoder");
    if (type == "Sequence") {
      const json* steps = find(decoder, "decoders");
      if (steps == nullptr || !steps->is_array()) bad("decoder", "a Sequence needs a 'decoders' array");
      for (const json& step : *steps) read_decoder(step);
    } else if (type == "Replace") {
      const std::string from = string_pattern(decoder, "decoder");
      if (from != kMetaspace || text(decoder, "content", "decoder") != " ") {
        bad("decoder", "only the Replace of '\xE2\x96\x81' by ' ' is supported");
      }
      metaspace_to_space_ = true;
    } else if (type == "ByteFallback") {
      for (size_t id = 0; id < model_.pieces.size(); ++id) {
        if (model_.kinds[id] == PieceKind::kNormal && parse_byte_piece(model_.pieces[id])) model_.kinds[id] = PieceKind::kByte;
      }
    } else if (type == "Strip") {
      const json* start = find(decoder, "start");
      const json* stop = find(decoder, "stop");
      if (text(decoder, "content", "decoder") != " " || start == nullptr || *start != 1 || (stop != nullptr && *stop != 0)) {
        bad("decoder", "only Strip of one leading ' ' (start 1, stop 0) is supported");
      }
      drop_leading_space_ = true;
    } else if (type == "Metaspace") {
      if (text(decoder, "replacement", "decoder") != kMetaspace) bad("decoder", "Metaspace replacement must be '\xE2\x96\x81'");
      metaspace_to_space_ = true;
      drop_leading_space_ = prepend_scheme(decoder) != MetaspaceSplit::Prepend::kNever;
    } else if (type != "Fuse") {
      bad("decoder", str_cat("type '", type, "' is not supported"));
    }
  }

  TokenizerModel& model_;
  bool metaspace_to_space_ = false;
  bool drop_leading_space_ = false;
};

}  // namespace

TokenizerModel parse_hf_json(std::string_view bytes, const std::string& source) {
  TokenizerModel model;
  model.source = source;
  json root;
  try {
    root = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    fail(source, ": not valid JSON (", e.what(), ")");
  }
  try {
    JsonLoader(model).load(root);
  } catch (const json::exception& e) {
    fail(source, ": unexpected value (", e.what(), ")");
  }
  return model;
}

}  // namespace jetmoe::tokenizer_detail
