#include "train/data_manifest.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "train/data_shard.h"

namespace jetmoe {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "jetmoe-token-shards";

// A field of `object` with the expected JSON type, or an error naming file and field.
const json& field(const json& object, const char* name, json::value_t type, const std::string& where) {
  const auto it = object.find(name);
  if (it == object.end()) fail(where, ": missing field '", name, "'");
  const bool ok = it->type() == type || (type == json::value_t::number_integer && it->is_number_unsigned());
  if (!ok) fail(where, ": field '", name, "' has the wrong type (", it->type_name(), ")");
  return *it;
}

int64_t count_field(const json& object, const char* name, const std::string& where) {
  const int64_t value = field(object, name, json::value_t::number_integer, where).get<int64_t>();
  if (value < 0) fail(where, ": field '", name, "' is negative");
  return value;
}

std::string string_field(const json& object, const char* name, const std::string& where) {
  return field(object, name, json::value_t::string, where).get<std::string>();
}

}  // namespace

int64_t ShardManifest::total_tokens() const {
  int64_t total = 0;
  for (const ShardFileEntry& shard : shards) total += shard.tokens;
  return total;
}

int64_t ShardManifest::total_documents() const {
  int64_t total = 0;
  for (const PreparedInput& input : inputs) total += input.documents;
  return total;
}

ShardManifest read_shard_manifest(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kManifestName).string();
  if (!std::filesystem::is_directory(dir)) fail(dir, ": no such shard directory (run `jetmoe prepare --out ", dir, "`)");
  if (!std::filesystem::exists(path)) fail(path, ": missing; ", dir, " is not a directory written by `jetmoe prepare`");
  json root;
  {
    const MappedFile file(path);
    try {
      root = json::parse(file.data(), file.data() + file.size());
    } catch (const json::exception& e) {
      fail(path, ": invalid JSON: ", e.what());
    }
  }
  if (!root.is_object()) fail(path, ": the top level is not a JSON object");
  if (string_field(root, "format", path) != kFormat) fail(path, ": field 'format' is not '", kFormat, "'");
  if (const int64_t version = count_field(root, "version", path); version != 1) fail(path, ": version ", version, " is not supported");

  ShardManifest manifest;
  const json& tokenizer = field(root, "tokenizer", json::value_t::object, path);
  manifest.tokenizer_file = string_field(tokenizer, "file", path + " tokenizer");
  manifest.tokenizer_hash = string_field(tokenizer, "fnv1a64", path + " tokenizer");
  manifest.vocab_size = count_field(root, "vocab_size", path);
  if (manifest.vocab_size < 1 || manifest.vocab_size > INT32_MAX) fail(path, ": vocab_size ", manifest.vocab_size, " is out of range");
  const int64_t eos = field(root, "eos_id", json::value_t::number_integer, path).get<int64_t>();
  if (eos < -1 || eos >= manifest.vocab_size) fail(path, ": eos_id ", eos, " is outside the vocabulary");
  manifest.eos_id = int32_t(eos);

  const json& shards = field(root, "shards", json::value_t::array, path);
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string where = str_cat(path, " shards[", i, "]");
    if (!shards[i].is_object()) fail(where, ": not an object");
    ShardFileEntry& entry = manifest.shards.emplace_back();
    entry.file = string_field(shards[i], "file", where);
    entry.tokens = count_field(shards[i], "tokens", where);
    if (entry.file.empty() || entry.file.find('/') != std::string::npos) fail(where, ": 'file' must be a plain file name");
  }
  const json& inputs = field(root, "inputs", json::value_t::array, path);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string where = str_cat(path, " inputs[", i, "]");
    if (!inputs[i].is_object()) fail(where, ": not an object");
    PreparedInput& input = manifest.inputs.emplace_back();
    input.path = string_field(inputs[i], "path", where);
    input.bytes = count_field(inputs[i], "bytes", where);
    input.documents = count_field(inputs[i], "documents", where);
    input.tokens = count_field(inputs[i], "tokens", where);
  }
  return manifest;
}

void write_shard_manifest(const std::string& dir, const ShardManifest& manifest) {
  json shards = json::array();
  for (const ShardFileEntry& shard : manifest.shards) shards.push_back({{"file", shard.file}, {"tokens", shard.tokens}});
  json inputs = json::array();
  for (const PreparedInput& input : manifest.inputs) {
    inputs.push_back({{"path", input.path}, {"bytes", input.bytes}, {"documents", input.documents}, {"tokens", input.tokens}});
  }
  const json root = {
      {"format", kFormat},
      {"version", 1},
      {"tokenizer", {{"file", manifest.tokenizer_file}, {"fnv1a64", manifest.tokenizer_hash}}},
      {"vocab_size", manifest.vocab_size},
      {"eos_id", manifest.eos_id},
      {"dtype", shard_token_bytes(manifest.vocab_size) == 2 ? "uint16" : "uint32"},
      {"documents", manifest.total_documents()},
      {"tokens", manifest.total_tokens()},
      {"shards", shards},
      {"inputs", inputs},
  };
  const std::string path = (std::filesystem::path(dir) / kManifestName).string();
  const std::string temp = path + ".tmp";
  {
    std::ofstream file(temp, std::ios::trunc);
    if (!file) fail(temp, ": cannot create the file");
    file << root.dump(1) << "\n";
    file.flush();
    if (!file) fail(temp, ": write failed (disk full?)");
  }
  std::error_code error;
  std::filesystem::rename(temp, path, error);
  if (error) fail(path, ": cannot rename ", temp, " into place: ", error.message());
}

std::string fnv1a64_file_hex(const std::string& path) {
  const MappedFile file(path);
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < file.size(); ++i) {
    hash ^= file.data()[i];
    hash *= 0x100000001b3ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

}  // namespace jetmoe
