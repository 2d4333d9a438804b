#include "train/data_shard.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/mapped_file.h"

namespace jetmoe {
namespace {

constexpr char kMagic[8] = {'J', 'M', 'T', 'O', 'K', 'E', 'N', 'S'};

void put_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put_u64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
uint32_t get_u32(const unsigned char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(p[i]) << (8 * i);
  return v;
}
uint64_t get_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

}  // namespace

int shard_token_bytes(int64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

void write_token_shard(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size) {
  if (vocab_size <= 0 || vocab_size > int64_t(INT32_MAX)) fail(path, ": vocabulary size ", vocab_size, " is out of range");
  const int width = shard_token_bytes(vocab_size);
  std::vector<unsigned char> bytes(kShardHeaderBytes + tokens.size() * width);
  std::memcpy(bytes.data(), kMagic, 8);
  put_u32(&bytes[8], kShardVersion);
  put_u32(&bytes[12], uint32_t(width));
  put_u64(&bytes[16], tokens.size());
  put_u32(&bytes[24], uint32_t(vocab_size));
  unsigned char* out = bytes.data() + kShardHeaderBytes;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t id = tokens[i];
    if (id < 0 || id >= vocab_size) fail(path, ": token id ", id, " at position ", i, " is outside the vocabulary of ", vocab_size);
    for (int b = 0; b < width; ++b) out[i * width + b] = static_cast<unsigned char>(uint32_t(id) >> (8 * b));
  }

  const std::string temp = path + ".tmp";
  {
    std::ofstream file(temp, std::ios::binary | std::ios::trunc);
    if (!file) fail(temp, ": cannot create the file");
    file.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    file.flush();
    if (!file) fail(temp, ": write failed (disk full?)");
  }
  std::error_code error;
  std::filesystem::rename(temp, path, error);
  if (error) fail(path, ": cannot rename ", temp, " into place: ", error.message());
}

TokenShard::TokenShard(const std::string& path) : path_(path), file_(std::make_unique<MappedFile>(path)) {
  const unsigned char* data = file_->data();
  const size_t size = file_->size();
  if (size < kShardHeaderBytes) fail(path, ": truncated token shard (", size, " bytes, the header alone is ", kShardHeaderBytes, ")");
  if (std::memcmp(data, kMagic, 8) != 0) fail(path, ": not a jetmoe token shard (wrong magic)");
  if (const uint32_t version = get_u32(data + 8); version != kShardVersion) {
    fail(path, ": token shard version ", version, " is not supported (expected ", kShardVersion, ")");
  }
  const uint32_t width = get_u32(data + 12);
  if (width != 2 && width != 4) fail(path, ": token width ", width, " bytes is invalid (2 or 4)");
  token_bytes_ = int(width);
  const uint64_t count = get_u64(data + 16);
  vocab_size_ = get_u32(data + 24);
  if (vocab_size_ <= 0 || vocab_size_ > INT32_MAX) fail(path, ": vocabulary size ", vocab_size_, " is out of range");
  if (count > (size - kShardHeaderBytes) / width || kShardHeaderBytes + count * width != size) {
    fail(path, ": truncated or oversized token shard: the header says ", count, " tokens of ", width, " bytes (",
         kShardHeaderBytes + count * width, " bytes with the header) but the file has ", size, " bytes");
  }
  num_tokens_ = int64_t(count);
  ids_ = data + kShardHeaderBytes;
  for (int64_t i = 0; i < num_tokens_; ++i) {
    if (at(i) >= vocab_size_) fail(path, ": token ", i, " has id ", at(i), ", not below the vocabulary size ", vocab_size_);
  }
}

TokenShard::~TokenShard() = default;
TokenShard::TokenShard(TokenShard&&) noexcept = default;
TokenShard& TokenShard::operator=(TokenShard&&) noexcept = default;

int32_t TokenShard::at(int64_t index) const {
  const unsigned char* p = ids_ + index * token_bytes_;
  return token_bytes_ == 2 ? int32_t(uint32_t(p[0]) | uint32_t(p[1]) << 8) : int32_t(get_u32(p));
}

void TokenShard::append(int64_t begin, int64_t count, std::vector<int32_t>& out) const {
  JM_CHECK(begin >= 0 && count >= 0 && begin + count <= num_tokens_, path_);
  out.reserve(out.size() + size_t(count));
  for (int64_t i = begin; i < begin + count; ++i) out.push_back(at(i));
}

}  // namespace jetmoe
