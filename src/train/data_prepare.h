// `jetmoe prepare`: tokenize input files into a shard directory (see data_shard.h and
// data_manifest.h). Every document is followed by the tokenizer's EOS id, so documents are
// separated by EOS in the token stream. No BOS is added.
//
// Resumable: inputs are tokenized in groups; after each group its shards are written atomically and
// then the manifest, which lists the finished inputs. Run again with the same --out and the
// finished inputs are skipped (new inputs are appended), so a killed run loses at most one group.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "train/data_documents.h"
#include "train/data_manifest.h"

namespace jetmoe {

class ThreadPool;

struct PrepareOptions {
  std::string tokenizer;            // tokenizer.json, tokenizer.model, or a directory with one
  std::vector<std::string> inputs;  // files, or directories (every regular file below, sorted)
  std::string out_dir;
  DocumentOptions documents;
  int64_t shard_tokens = int64_t(1) << 26;  // at most this many tokens per shard
  int64_t group_bytes = int64_t(16) << 20;  // input bytes tokenized between manifest updates
};

struct PrepareProgress {
  int64_t bytes_done = 0, bytes_total = 0;  // of the inputs this run tokenizes
  int64_t inputs_done = 0, inputs_total = 0;
  int64_t tokens = 0;                       // written by this run
  double seconds = 0;
};

struct PrepareResult {
  int64_t inputs_prepared = 0, inputs_skipped = 0;
  int64_t documents = 0, tokens = 0;  // written by this run
  double seconds = 0;
  ShardManifest manifest;             // the whole directory after the run
};

// Throws jetmoe::Error naming the file at fault: a missing input, an empty one (no documents),
// invalid JSONL, a tokenizer without EOS or other than the one the directory was prepared with,
// an input whose size changed since it was prepared. `progress` runs on the calling thread.
PrepareResult prepare_token_shards(const PrepareOptions& options, ThreadPool& pool,
                                   const std::function<void(const PrepareProgress&)>& progress = {});

}  // namespace jetmoe
