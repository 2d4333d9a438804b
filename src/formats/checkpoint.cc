#include "formats/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/text_file.h"
#include "formats/atomic_file.h"
#include "formats/gguf.h"
#include "formats/gguf_jetmoe.h"
#include "formats/json_strict.h"

namespace jetmoe {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::string join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

bool exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// The index may only name files inside the checkpoint directory.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

// model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor name: shard file}}.
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  const json index = parse_json_strict(read_text_file(index_path), index_path, "index");
  if (!index.is_object()) fail(index_path, ": the index must be a JSON object, got ", json_type_phrase(index));
  if (auto it = index.find("metadata"); it != index.end() && !it->is_object() && !it->is_null()) {
    fail(index_path, ": 'metadata' must be an object, got ", json_type_phrase(*it));
  }
  auto map = index.find("weight_map");
  if (map == index.end()) fail(index_path, ": no 'weight_map' (tensor name -> shard file)");
  if (!map->is_object()) fail(index_path, ": 'weight_map' must be an object, got ", json_type_phrase(*map));
  if (map->empty()) fail(index_path, ": 'weight_map' lists no tensors");
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, shard] : map->items()) {
    if (!shard.is_string()) fail(index_path, ": shard of tensor '", name, "' must be a file name, got ", json_type_phrase(shard));
    const std::string file = shard.get<std::string>();
    if (!is_plain_file_name(file)) {
      fail(index_path, ": tensor '", name, "' is mapped to '", file,
           "', which is not a plain file name inside the checkpoint directory");
    }
    weight_map[name] = file;
  }
  return weight_map;
}

std::string shard_file_name(size_t i, size_t n) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return name;
}

// Greedy in the caller's order (as HF does): a new shard starts when the next tensor would
// push the current one past the limit. A tensor larger than the limit gets a shard of its own.
// Returns the [begin, end) index range of each shard.
std::vector<std::pair<size_t, size_t>> plan_shards(const std::vector<TensorSpec>& specs, size_t max_bytes) {
  std::vector<std::pair<size_t, size_t>> shards;
  size_t current_bytes = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const size_t bytes = specs[i].nbytes();
    if (shards.empty() || (shards.back().second > shards.back().first && current_bytes + bytes > max_bytes)) {
      shards.emplace_back(i, i);
      current_bytes = 0;
    }
    shards.back().second = i + 1;
    current_bytes += bytes;
  }
  return shards;
}

void remove_if_present(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) fail(path, ": cannot remove: ", ec.message());
}

}  // namespace

TensorStore TensorStore::open_file(const std::string& path) {
  TensorStore store;
  store.source_ = path;
  store.files_.push_back(std::make_unique<SafetensorsFile>(path));
  for (const auto& [name, view] : store.files_.back()->tensors()) {
    store.tensors_.emplace(name, view);
    store.file_of_.emplace(name, path);
  }
  return store;
}

TensorStore TensorStore::open_gguf(const std::string& path) { return from_gguf(std::make_shared<const GgufFile>(path)); }

TensorStore TensorStore::from_gguf(std::shared_ptr<const GgufFile> file) {
  TensorStore store;
  store.source_ = file->path();
  for (const GgufTensor& t : file->tensors()) {
    const std::optional<std::string> name = hf_tensor_name(t.name);
    if (!name) fail(file->path(), ": tensor '", t.name, "' is not a JetMoE tensor name (see docs/gguf.md)");
    // Messages about the tensor (e.g. a wrong shape) then name the GGUF tensor as well.
    store.file_of_.emplace(*name, str_cat(file->path(), ", GGUF tensor '", t.name, "'"));
    store.tensors_.emplace(*name, t.view);
  }
  store.gguf_ = std::move(file);
  return store;
}

TensorStore TensorStore::from_views(const std::vector<NamedTensor>& tensors, const std::string& source) {
  TensorStore store;
  store.source_ = source;
  for (const NamedTensor& t : tensors) {
    if (!store.tensors_.emplace(t.name, t.view).second) fail(source, ": tensor '", t.name, "' given twice");
    store.file_of_.emplace(t.name, source);
  }
  return store;
}

TensorStore TensorStore::open_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir, exists(dir) ? ": not a directory" : ": checkpoint directory does not exist");
  const std::string single = join(dir, kSingleFile);
  const std::string index_path = join(dir, kIndexFile);
  const bool has_single = exists(single);
  const bool has_index = exists(index_path);
  if (has_single && has_index) {
    fail(dir, ": has both ", kSingleFile, " and ", kIndexFile, "; keep one (the other is probably left over)");
  }
  if (!has_single && !has_index) {
    fail(dir, ": no ", kSingleFile, " or ", kIndexFile, " (not a Hugging Face safetensors checkpoint directory)");
  }
  if (has_single) {
    TensorStore store = open_file(single);
    store.source_ = dir;
    return store;
  }

  const std::map<std::string, std::string> weight_map = read_weight_map(index_path);
  TensorStore store;
  store.source_ = dir;
  std::map<std::string, const SafetensorsFile*> shards;  // file name -> opened shard
  for (const auto& [name, shard] : weight_map) {
    if (shards.count(shard)) continue;
    const std::string shard_path = join(dir, shard);
    if (!exists(shard_path)) fail(index_path, ": shard '", shard, "' (holding tensor '", name, "') does not exist in ", dir);
    store.files_.push_back(std::make_unique<SafetensorsFile>(shard_path));
    shards.emplace(shard, store.files_.back().get());
  }
  // Every tensor of the index is where the index says ...
  for (const auto& [name, shard] : weight_map) {
    const SafetensorsFile& file = *shards.at(shard);
    auto it = file.tensors().find(name);
    if (it == file.tensors().end()) fail(index_path, ": tensor '", name, "' is mapped to '", shard, "', which does not contain it");
    store.tensors_.emplace(name, it->second);
    store.file_of_.emplace(name, file.path());
  }
  // ... and no shard holds anything else: a tensor the index does not know, or a second copy.
  for (const auto& [shard, file] : shards) {
    for (const auto& [name, view] : file->tensors()) {
      auto it = weight_map.find(name);
      if (it == weight_map.end()) fail(file->path(), ": tensor '", name, "' is not listed in ", index_path);
      if (it->second != shard) fail(dir, ": tensor '", name, "' is stored in both '", it->second, "' and '", shard, "'");
    }
  }
  return store;
}

const TensorView& TensorStore::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(source_, ": no tensor named '", name, "'");
  return it->second;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& entry : tensors_) out.push_back(entry.first);
  return out;
}

const std::string& TensorStore::file_of(const std::string& name) const {
  auto it = file_of_.find(name);
  if (it == file_of_.end()) fail(source_, ": no tensor named '", name, "'");
  return it->second;
}

void write_checkpoint_tensors(const std::string& dir, const std::vector<NamedTensor>& tensors,
                              size_t max_shard_bytes) {
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const NamedTensor& t : tensors) specs.push_back({t.name, t.view.dtype, t.view.shape});
  write_checkpoint_streamed(dir, specs, max_shard_bytes, [&](size_t begin, size_t end) {
    return std::vector<NamedTensor>(tensors.begin() + std::ptrdiff_t(begin), tensors.begin() + std::ptrdiff_t(end));
  });
}

void write_checkpoint_streamed(const std::string& dir, const std::vector<TensorSpec>& specs, size_t max_shard_bytes,
                               const ShardProducer& produce) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create the checkpoint directory: ", ec.message());
  std::set<std::string> names;
  size_t total_bytes = 0;
  for (const TensorSpec& t : specs) {
    if (!names.insert(t.name).second) fail(dir, ": tensor '", t.name, "' is given twice");
    total_bytes += t.nbytes();
  }
  // transformers refuses safetensors files whose metadata does not declare a format.
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  auto produce_checked = [&](size_t begin, size_t end) {
    std::vector<NamedTensor> tensors = produce(begin, end);
    JM_CHECK(tensors.size() == end - begin, "a shard producer returned ", tensors.size(), " tensors for ", end - begin);
    for (size_t i = 0; i < tensors.size(); ++i) {
      const TensorSpec& spec = specs[begin + i];
      JM_CHECK(tensors[i].name == spec.name && tensors[i].view.dtype == spec.dtype && tensors[i].view.shape == spec.shape,
               "a shard producer returned '", tensors[i].name, "' where '", spec.name, "' was planned");
    }
    return tensors;
  };

  if (max_shard_bytes == 0 || total_bytes <= max_shard_bytes) {
    write_safetensors(join(dir, kSingleFile), produce_checked(0, specs.size()), metadata);
    remove_if_present(join(dir, kIndexFile));  // would make the directory ambiguous
    return;
  }
  const std::vector<std::pair<size_t, size_t>> shards = plan_shards(specs, max_shard_bytes);
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = shard_file_name(i, shards.size());
    write_safetensors(join(dir, file), produce_checked(shards[i].first, shards[i].second), metadata);
    for (size_t t = shards[i].first; t < shards[i].second; ++t) weight_map[specs[t].name] = file;
  }
  // The index goes last: once it exists, every shard it names is complete.
  const json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  const std::string text = index.dump(2) + "\n";
  AtomicFileWriter out(join(dir, kIndexFile));
  out.write(text.data(), text.size());
  out.commit();
  remove_if_present(join(dir, kSingleFile));
}

}  // namespace jetmoe
