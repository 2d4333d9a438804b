#include "runtime/model_info.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/model_files.h"
#include "model/kv_cache.h"

namespace jetmoe {

ModelInfo inspect_model(const std::string& dir) {
  ModelInfo info;
  info.dir = dir;
  const ModelFiles files = open_model_files(dir);  // a directory or a GGUF file
  const TensorStore& store = files.store;
  info.config = files.config;
  info.params = count_params(info.config);
  for (const std::string& name : store.names()) {
    const TensorView& view = store.get(name);
    const std::string dtype(dtype_name(view.dtype));
    info.weight_bytes_by_dtype[dtype] += view.nbytes();
    info.tensors_by_dtype[dtype] += 1;
  }
  size_t weight_bytes = 0;
  for (const auto& [dtype, bytes] : info.weight_bytes_by_dtype) weight_bytes += bytes;
  info.bits_per_weight = info.params.total > 0 ? 8.0 * double(weight_bytes) / double(info.params.total) : 0.0;
  info.file_type = files.file_type;
  info.kv_cache_bytes_per_token = kv_cache_bytes_per_position(info.config, DType::F32);
  info.kv_cache_bytes_per_token_f16 = kv_cache_bytes_per_position(info.config, DType::F16);
  return info;
}

namespace {

// 8522237952 -> "8.52 B"
std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2f B", double(n) / 1e9);
  else if (n >= 1'000'000) std::snprintf(buf, sizeof buf, "%.2f M", double(n) / 1e6);
  else if (n >= 1'000) std::snprintf(buf, sizeof buf, "%.2f K", double(n) / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld", (long long)n);
  return buf;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

}  // namespace

std::string format_model_info(const ModelInfo& info) {
  const JetMoeConfig& c = info.config;
  std::string out;
  auto line = [&](const std::string& key, const std::string& value) {
    out += key;
    out.append(key.size() < 28 ? 28 - key.size() : 1, ' ');
    out += value + "\n";
  };
  auto num = [](auto v) { return std::to_string(v); };
  line("checkpoint", info.dir);
  line("vocab_size", num(c.vocab_size));
  line("hidden_size", num(c.hidden_size));
  line("num_layers", num(c.num_layers));
  line("experts (MoA and MoE)", num(c.num_experts) + ", top-" + num(c.top_k));
  line("kv heads x head_dim", num(c.num_kv_heads) + " x " + num(c.head_dim) + " (" +
                                  num(c.num_attention_heads()) + " query heads)");
  line("intermediate_size", num(c.intermediate_size) + " per expert");
  line("max_position_embeddings", num(c.max_position_embeddings));
  line("rope_theta", str_cat(c.rope_theta));
  line("rms_norm_eps", str_cat(c.rms_norm_eps));
  line("tie_word_embeddings", c.tie_word_embeddings ? "true" : "false");
  line("bos / eos token id", num(c.bos_token_id) + " / " + num(c.eos_token_id));
  line("torch_dtype", std::string(dtype_name(c.torch_dtype)));
  line("parameters", num(info.params.total) + " (" + human_count(info.params.total) + ")");
  line("active per token", num(info.params.active) + " (" + human_count(info.params.active) + ")");
  line("active, non-embedding", num(info.params.active_non_embedding) + " (" +
                                     human_count(info.params.active_non_embedding) + ")");
  if (!info.file_type.empty()) line("file type", info.file_type);
  char bits[32];
  std::snprintf(bits, sizeof bits, "%.2f", info.bits_per_weight);
  line("bits per weight", bits);
  for (const auto& [dtype, bytes] : info.weight_bytes_by_dtype)
    line("weights " + dtype, num(bytes) + " bytes (" + human_bytes(double(bytes)) + ", " +
                                 num(info.tensors_by_dtype.at(dtype)) + " tensors)");
  line("KV cache per token", num(info.kv_cache_bytes_per_token) + " bytes (" +
                                 human_bytes(double(info.kv_cache_bytes_per_token)) + ", float32), " +
                                 num(info.kv_cache_bytes_per_token_f16) + " bytes (" +
                                 human_bytes(double(info.kv_cache_bytes_per_token_f16)) + ", float16)");
  const double positions = double(c.max_position_embeddings);
  line("KV cache, full context", human_bytes(double(info.kv_cache_bytes_per_token) * positions) + " (float32), " +
                                     human_bytes(double(info.kv_cache_bytes_per_token_f16) * positions) +
                                     " (float16)");
  return out;
}

std::string model_info_json(const ModelInfo& info) {
  nlohmann::json weights = nlohmann::json::object();
  for (const auto& [dtype, bytes] : info.weight_bytes_by_dtype)
    weights[dtype] = {{"bytes", bytes}, {"tensors", info.tensors_by_dtype.at(dtype)}};
  const nlohmann::json out = {
      {"checkpoint", info.dir},
      {"config", nlohmann::json::parse(config_to_json(info.config))},
      {"parameters", {{"total", info.params.total},
                      {"active", info.params.active},
                      {"active_non_embedding", info.params.active_non_embedding}}},
      {"weight_bytes", weights},
      {"bits_per_weight", info.bits_per_weight},
      {"file_type", info.file_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(info.file_type)},
      {"kv_cache_bytes_per_token", info.kv_cache_bytes_per_token},
      {"kv_cache_bytes_per_token_f16", info.kv_cache_bytes_per_token_f16},
  };
  return out.dump(2) + "\n";
}

}  // namespace jetmoe
