// Token shards: the binary files `jetmoe prepare` writes and training reads (memory-mapped).
//
// Layout (little-endian), 32-byte header then the ids:
//   bytes 0..7    magic "JMTOKENS"
//   bytes 8..11   uint32 format version (1)
//   bytes 12..15  uint32 bytes per token id: 2 (uint16, vocabularies up to 65536) or 4 (uint32)
//   bytes 16..23  uint64 number of tokens
//   bytes 24..27  uint32 vocabulary size (every id is below it)
//   bytes 28..31  zero
//   bytes 32..    the ids
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace jetmoe {

class MappedFile;

inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 32;

// 2 when every id of a vocabulary of this size fits in a uint16, else 4.
int shard_token_bytes(int64_t vocab_size);

// Writes a shard atomically (a temporary file renamed over `path`), so a killed run never leaves
// a half-written shard under the final name. Throws jetmoe::Error naming the path on failure.
void write_token_shard(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size);

// A shard opened for reading: header and size checked, every id checked against the vocabulary.
class TokenShard {
 public:
  // Throws jetmoe::Error naming the path: wrong magic or version, truncated, an id >= vocab size.
  explicit TokenShard(const std::string& path);
  ~TokenShard();
  TokenShard(TokenShard&&) noexcept;
  TokenShard& operator=(TokenShard&&) noexcept;

  const std::string& path() const { return path_; }
  int64_t size() const { return num_tokens_; }
  int64_t vocab_size() const { return vocab_size_; }
  int token_bytes() const { return token_bytes_; }
  int32_t at(int64_t index) const;
  // Appends ids [begin, begin + count) to `out`.
  void append(int64_t begin, int64_t count, std::vector<int32_t>& out) const;

 private:
  std::string path_;
  std::unique_ptr<MappedFile> file_;
  const unsigned char* ids_ = nullptr;
  int64_t num_tokens_ = 0;
  int64_t vocab_size_ = 0;
  int token_bytes_ = 2;
};

}  // namespace jetmoe
