// One source's shard directory read as a single token stream: its shards, memory-mapped and
// validated, concatenated in manifest order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/data_manifest.h"
#include "train/data_shard.h"

namespace jetmoe {

class TokenStream {
 public:
  // Throws jetmoe::Error naming the directory or shard: missing manifest, missing or invalid
  // shard, a shard whose token count or vocabulary differs from the manifest, no tokens at all.
  explicit TokenStream(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const ShardManifest& manifest() const { return manifest_; }
  int64_t size() const { return size_; }
  int64_t vocab_size() const { return manifest_.vocab_size; }
  // Appends tokens [begin, begin + count) to `out`, crossing shard boundaries as needed.
  void append(int64_t begin, int64_t count, std::vector<int32_t>& out) const;

 private:
  std::string dir_;
  ShardManifest manifest_;
  std::vector<TokenShard> shards_;
  std::vector<int64_t> starts_;  // stream offset of each shard's first token
  int64_t size_ = 0;
};

}  // namespace jetmoe
