#include "formats/tokenizer/protobuf_reader.h"

#include "core/error.h"

namespace jetmoe::tokenizer_detail {

ProtoReader::ProtoReader(std::string_view message, const std::string& source, size_t offset)
    : message_(message), source_(source), offset_(offset) {}

void ProtoReader::fail_at(size_t pos, std::string_view problem) const {
  fail(source_, ": byte ", offset_ + pos, ": ", problem, " (not a valid SentencePiece model?)");
}

uint64_t ProtoReader::read_varint() {
  const size_t start = pos_;
  uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= message_.size()) fail_at(start, "truncated varint");
    const auto byte = static_cast<uint8_t>(message_[pos_++]);
    // The 10th byte may only carry the top bit of a 64-bit value.
    if (shift == 63 && byte > 1) fail_at(start, "varint overflows 64 bits");
    value |= uint64_t{byte & 0x7Fu} << shift;
    if ((byte & 0x80) == 0) return value;
  }
  fail_at(start, "varint longer than 10 bytes");  // unreachable: the 10th byte ends it or fails above
}

uint64_t ProtoReader::read_fixed(size_t bytes) {
  if (message_.size() - pos_ < bytes) {
    fail_at(pos_, str_cat("truncated ", bytes * 8, "-bit value (", message_.size() - pos_, " bytes left)"));
  }
  uint64_t value = 0;
  for (size_t i = 0; i < bytes; ++i) value |= uint64_t{static_cast<uint8_t>(message_[pos_ + i])} << (8 * i);
  pos_ += bytes;
  return value;
}

ProtoField ProtoReader::next() {
  ProtoField field;
  field.offset = offset_ + pos_;
  const size_t key_pos = pos_;
  const uint64_t key = read_varint();
  const uint64_t number = key >> 3;
  if (number == 0 || number > 0x1FFFFFFF) fail_at(key_pos, str_cat("invalid field number ", number));
  field.number = static_cast<uint32_t>(number);
  switch (key & 7) {
    case 0:
      field.wire_type = WireType::kVarint;
      field.varint = read_varint();
      break;
    case 1:
      field.wire_type = WireType::kFixed64;
      field.fixed = read_fixed(8);
      break;
    case 2: {
      field.wire_type = WireType::kLengthDelimited;
      const size_t length_pos = pos_;
      const uint64_t length = read_varint();
      if (length > message_.size() - pos_) {
        fail_at(length_pos, str_cat("field ", number, " claims ", length, " bytes but only ", message_.size() - pos_,
                                    " remain"));
      }
      field.bytes = message_.substr(pos_, static_cast<size_t>(length));
      pos_ += static_cast<size_t>(length);
      break;
    }
    case 5:
      field.wire_type = WireType::kFixed32;
      field.fixed = read_fixed(4);
      break;
    default:
      fail_at(key_pos, str_cat("field ", number, " has unsupported wire type ", key & 7));
  }
  return field;
}

void ProtoReader::expect(const ProtoField& field, WireType type, std::string_view what) const {
  if (field.wire_type != type) {
    fail(source_, ": byte ", field.offset, ": ", what, " (field ", field.number, ") has wire type ",
         static_cast<int>(field.wire_type), ", expected ", static_cast<int>(type));
  }
}

ProtoReader ProtoReader::nested(const ProtoField& field) const {
  const size_t payload_offset = static_cast<size_t>(field.bytes.data() - message_.data()) + offset_;
  return ProtoReader(field.bytes, source_, payload_offset);
}

}  // namespace jetmoe::tokenizer_detail
