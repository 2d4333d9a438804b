// Minimal reader of the protobuf wire format (enough for SentencePiece's ModelProto): walks the
// fields of one message. Every varint, length and fixed-size value is bounds-checked; malformed
// input throws jetmoe::Error naming the file and byte offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace jetmoe::tokenizer_detail {

enum class WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

struct ProtoField {
  uint32_t number = 0;
  WireType wire_type = WireType::kVarint;
  uint64_t varint = 0;     // kVarint
  uint64_t fixed = 0;      // kFixed64 / kFixed32 (little-endian value)
  std::string_view bytes;  // kLengthDelimited: the payload
  size_t offset = 0;       // of the field's key in the file
};

class ProtoReader {
 public:
  // `message` lies at `offset` in the file `source` (both only for messages).
  ProtoReader(std::string_view message, const std::string& source, size_t offset = 0);

  bool at_end() const { return pos_ >= message_.size(); }
  ProtoField next();  // the next field; throws on malformed input

  // For a field of a known number: checks its wire type, naming `what` ("SentencePiece.score").
  void expect(const ProtoField& field, WireType type, std::string_view what) const;
  ProtoReader nested(const ProtoField& field) const;  // reader over a length-delimited payload

 private:
  uint64_t read_varint();
  uint64_t read_fixed(size_t bytes);
  [[noreturn]] void fail_at(size_t pos, std::string_view problem) const;

  std::string_view message_;
  const std::string& source_;
  size_t offset_;
  size_t pos_ = 0;
};

}  // namespace jetmoe::tokenizer_detail
