#include "train/data_token_stream.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace jetmoe {

TokenStream::TokenStream(const std::string& dir) : dir_(dir), manifest_(read_shard_manifest(dir)) {
  for (const ShardFileEntry& entry : manifest_.shards) {
    const std::string path = (std::filesystem::path(dir) / entry.file).string();
    if (!std::filesystem::exists(path)) fail(path, ": missing shard listed in ", dir, "/", kManifestName);
    TokenShard& shard = shards_.emplace_back(path);
    if (shard.size() != entry.tokens) {
      fail(path, ": holds ", shard.size(), " tokens but ", kManifestName, " says ", entry.tokens);
    }
    if (shard.vocab_size() != manifest_.vocab_size) {
      fail(path, ": vocabulary size ", shard.vocab_size(), " differs from the manifest's ", manifest_.vocab_size);
    }
    starts_.push_back(size_);
    size_ += shard.size();
  }
  if (size_ == 0) fail(dir, ": the shard directory holds no tokens");
}

void TokenStream::append(int64_t begin, int64_t count, std::vector<int32_t>& out) const {
  JM_CHECK(begin >= 0 && count >= 0 && begin + count <= size_, dir_);
  // The last shard starting at or before `begin`.
  size_t shard = size_t(std::upper_bound(starts_.begin(), starts_.end(), begin) - starts_.begin()) - 1;
  while (count > 0) {
    const int64_t offset = begin - starts_[shard];
    const int64_t take = std::min(count, shards_[shard].size() - offset);
    shards_[shard].append(offset, take, out);
    begin += take;
    count -= take;
    ++shard;
  }
}

}  // namespace jetmoe
