#include "train/data_prepare.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "core/error.h"
#include "core/parallel.h"
#include "formats/tokenizer/tokenizer.h"
#include "train/data_shard.h"

namespace jetmoe {
namespace {

namespace fs = std::filesystem;

// The file Tokenizer::load reads for `path`, so the manifest can record a hash of it.
std::string tokenizer_file(const std::string& path) {
  if (!fs::is_directory(path)) return path;
  for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
    if (fs::exists(fs::path(path) / name)) return (fs::path(path) / name).string();
  }
  fail(path, ": no tokenizer.json or tokenizer.model in this directory");
}

// Inputs as absolute paths, directories expanded (sorted), duplicates dropped, order kept.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  if (inputs.empty()) fail("no input files given (--input FILE...)");
  std::vector<std::string> files;
  std::set<std::string> seen;
  const auto add = [&](const fs::path& file) {
    std::string absolute = fs::weakly_canonical(fs::absolute(file)).string();
    if (seen.insert(absolute).second) files.push_back(std::move(absolute));
  };
  for (const std::string& input : inputs) {
    if (fs::is_directory(input)) {
      std::vector<fs::path> below;
      for (const auto& entry : fs::recursive_directory_iterator(input)) {
        if (entry.is_regular_file() && entry.path().filename().string()[0] != '.') below.push_back(entry.path());
      }
      if (below.empty()) fail(input, ": the directory holds no input files");
      std::sort(below.begin(), below.end());
      for (const fs::path& file : below) add(file);
    } else if (fs::is_regular_file(input)) {
      add(input);
    } else {
      fail(input, ": no such input file");
    }
  }
  return files;
}

std::string shard_name(size_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "shard-%05zu.bin", index);
  return name;
}

// Shards and temporaries that the manifest does not list are leftovers of a killed run.
void remove_unlisted_files(const std::string& dir, const ShardManifest& manifest) {
  std::set<std::string> listed;
  for (const ShardFileEntry& shard : manifest.shards) listed.insert(shard.file);
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const bool ours = name.starts_with("shard-") || name.ends_with(".tmp");
    if (ours && entry.is_regular_file() && !listed.count(name)) fs::remove(entry.path());
  }
}

struct InputFile {
  std::string path;
  int64_t bytes = 0;
};

// Tokenizes documents on all threads, pulling them one at a time (documents vary in size).
// Calls `on_caller(done_bytes)` now and then from the calling thread.
std::vector<std::vector<int32_t>> tokenize_all(const Tokenizer& tokenizer, const std::vector<std::string>& docs,
                                               ThreadPool& pool, const std::function<void(int64_t)>& on_caller) {
  std::vector<std::vector<int32_t>> ids(docs.size());
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done_bytes{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  pool.parallel_for(pool.num_threads(), [&](int64_t begin, int64_t) {
    const bool is_caller = begin == 0;  // ThreadPool runs the first range on the calling thread
    try {
      for (size_t i = next++; i < docs.size(); i = next++) {
        ids[i] = tokenizer.encode(docs[i], /*add_bos=*/false);
        done_bytes += int64_t(docs[i].size());
        if (is_caller && on_caller) on_caller(done_bytes.load());
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next = docs.size();
    }
  });
  if (error) std::rethrow_exception(error);
  return ids;
}

}  // namespace

PrepareResult prepare_token_shards(const PrepareOptions& options, ThreadPool& pool,
                                   const std::function<void(const PrepareProgress&)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  if (options.shard_tokens < 1) fail("--shard-tokens must be at least 1 (got ", options.shard_tokens, ")");
  if (options.out_dir.empty()) fail("no output directory given (--out DIR)");

  const std::string tok_file = tokenizer_file(options.tokenizer);
  const Tokenizer tokenizer = Tokenizer::load(options.tokenizer);
  if (tokenizer.eos_id() < 0) fail(tok_file, ": the tokenizer has no EOS token to separate documents");
  const std::vector<std::string> files = expand_inputs(options.inputs);

  PrepareResult result;
  ShardManifest& manifest = result.manifest;
  fs::create_directories(options.out_dir);
  if (fs::exists(fs::path(options.out_dir) / kManifestName)) {
    manifest = read_shard_manifest(options.out_dir);
  } else {
    manifest.tokenizer_file = fs::weakly_canonical(fs::absolute(tok_file)).string();
    manifest.tokenizer_hash = fnv1a64_file_hex(tok_file);
    manifest.vocab_size = tokenizer.vocab_size();
    manifest.eos_id = tokenizer.eos_id();
  }
  if (manifest.tokenizer_hash != fnv1a64_file_hex(tok_file) || manifest.vocab_size != tokenizer.vocab_size()) {
    fail(options.out_dir, ": prepared with another tokenizer (", manifest.tokenizer_file,
         "); use a new --out directory for ", tok_file);
  }
  remove_unlisted_files(options.out_dir, manifest);

  // Skip finished inputs; refuse ones that changed since.
  std::map<std::string, const PreparedInput*> finished;
  for (const PreparedInput& input : manifest.inputs) finished[input.path] = &input;
  std::vector<InputFile> todo;
  PrepareProgress status;
  for (const std::string& path : files) {
    const int64_t bytes = int64_t(fs::file_size(path));
    if (const auto it = finished.find(path); it != finished.end()) {
      if (it->second->bytes != bytes) {
        fail(path, ": changed since it was prepared into ", options.out_dir, " (", it->second->bytes, " bytes then, ",
             bytes, " now); use a new --out directory");
      }
      ++result.inputs_skipped;
      continue;
    }
    todo.push_back({path, bytes});
    status.bytes_total += bytes;
  }
  status.inputs_total = int64_t(todo.size());
  const auto report = [&] {
    status.seconds = elapsed();
    if (progress) progress(status);
  };
  report();

  for (size_t group_begin = 0; group_begin < todo.size();) {
    // A group: consecutive inputs up to group_bytes (at least one).
    size_t group_end = group_begin;
    int64_t group_bytes = 0;
    while (group_end < todo.size() && (group_end == group_begin || group_bytes + todo[group_end].bytes <= options.group_bytes)) {
      group_bytes += todo[group_end++].bytes;
    }
    std::vector<std::string> docs;
    std::vector<size_t> docs_end;  // per input of the group: one past its last document
    for (size_t i = group_begin; i < group_end; ++i) {
      std::vector<std::string> file_docs = read_documents(todo[i].path, options.documents);
      if (file_docs.empty()) fail(todo[i].path, ": empty input (no documents)");
      std::move(file_docs.begin(), file_docs.end(), std::back_inserter(docs));
      docs_end.push_back(docs.size());
    }

    const int64_t bytes_before = status.bytes_done;
    const auto ids = tokenize_all(tokenizer, docs, pool, [&](int64_t done) {
      status.bytes_done = bytes_before + std::min(done, group_bytes);
      if (elapsed() - status.seconds > 0.2) report();
    });

    // The group's stream: each document followed by EOS, cut into shards.
    std::vector<int32_t> stream;
    size_t doc = 0;
    std::vector<PreparedInput> prepared;
    for (size_t i = group_begin; i < group_end; ++i) {
      PreparedInput& input = prepared.emplace_back();
      input.path = todo[i].path;
      input.bytes = todo[i].bytes;
      const size_t stream_before = stream.size();
      for (; doc < docs_end[i - group_begin]; ++doc) {
        stream.insert(stream.end(), ids[doc].begin(), ids[doc].end());
        stream.push_back(tokenizer.eos_id());
        ++input.documents;
      }
      input.tokens = int64_t(stream.size() - stream_before);
      result.documents += input.documents;
    }
    for (size_t begin = 0; begin < stream.size(); begin += size_t(options.shard_tokens)) {
      const size_t count = std::min(stream.size() - begin, size_t(options.shard_tokens));
      const std::string name = shard_name(manifest.shards.size());
      write_token_shard((fs::path(options.out_dir) / name).string(), std::span(stream).subspan(begin, count),
                        manifest.vocab_size);
      manifest.shards.push_back({name, int64_t(count)});
    }
    manifest.inputs.insert(manifest.inputs.end(), prepared.begin(), prepared.end());
    write_shard_manifest(options.out_dir, manifest);

    result.inputs_prepared += int64_t(group_end - group_begin);
    result.tokens += int64_t(stream.size());
    status.inputs_done = result.inputs_prepared;
    status.bytes_done = bytes_before + group_bytes;
    status.tokens = result.tokens;
    report();
    group_begin = group_end;
  }
  if (todo.empty() && manifest.inputs.empty()) fail("no input files given (--input FILE...)");
  if (!fs::exists(fs::path(options.out_dir) / kManifestName)) write_shard_manifest(options.out_dir, manifest);
  result.seconds = elapsed();
  return result;
}

}  // namespace jetmoe
