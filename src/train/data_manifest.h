// manifest.json of a shard directory: which tokenizer made it, the shards in stream order, and
// the inputs already tokenized (so an interrupted `jetmoe prepare` skips them when run again).
//
//   {"format": "jetmoe-token-shards", "version": 1,
//    "tokenizer": {"file": "...", "fnv1a64": "16 hex digits"}, "vocab_size": 32000, "eos_id": 2,
//    "dtype": "uint16", "documents": 500, "tokens": 1234567,
//    "shards": [{"file": "shard-00000.bin", "tokens": 1234567}],
//    "inputs": [{"path": "/abs/news/ca01.txt", "bytes": 12345, "documents": 1, "tokens": 2500}]}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace jetmoe {

struct ShardFileEntry {
  std::string file;  // relative to the shard directory
  int64_t tokens = 0;
};

struct PreparedInput {
  std::string path;  // absolute
  int64_t bytes = 0;  // size when tokenized; a different size on resume means the input changed
  int64_t documents = 0;
  int64_t tokens = 0;
};

struct ShardManifest {
  std::string tokenizer_file;
  std::string tokenizer_hash;  // FNV-1a 64 of the tokenizer file's bytes, 16 hex digits
  int64_t vocab_size = 0;
  int32_t eos_id = -1;
  std::vector<ShardFileEntry> shards;
  std::vector<PreparedInput> inputs;

  int64_t total_tokens() const;
  int64_t total_documents() const;
};

inline constexpr const char* kManifestName = "manifest.json";

// Throws jetmoe::Error naming the file and the field at fault.
ShardManifest read_shard_manifest(const std::string& dir);
// Atomic (temporary file, then rename).
void write_shard_manifest(const std::string& dir, const ShardManifest& manifest);

// FNV-1a 64 of a file's bytes as 16 hex digits; throws naming the path when unreadable.
std::string fnv1a64_file_hex(const std::string& path);

}  // namespace jetmoe
