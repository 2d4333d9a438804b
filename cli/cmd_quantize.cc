// jetmoe quantize: a model (checkpoint directory or GGUF file) -> one GGUF file holding the
// config, the tokenizer and the weights in the requested type (docs/gguf.md).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "common.h"
#include "core/error.h"
#include "core/parallel.h"
#include "formats/gguf_export.h"
#include "formats/gguf_file_type.h"
#include "formats/model_files.h"
#include "model/weights.h"

namespace jetmoe::cli {

namespace {

struct QuantizeFlags {
  std::string model;
  std::string out;
  std::string type = "q8_0";
  std::string name;
  int threads = 1;
};

GgufFileType parse_file_type(const std::string& text) {
  if (const std::optional<GgufFileType> type = parse_gguf_file_type(text)) return *type;
  throw CLI::ValidationError("--type", "unknown type '" + text + "'");
}

// general.name by default: the directory's (or file's) name.
std::string default_name(const std::string& model) {
  std::filesystem::path path(model);
  if (path.filename().empty()) path = path.parent_path();  // "models/tiny/"
  return path.stem().string();
}

// 300 -> "300 B", 8192 -> "8.00 KiB", ...
std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = double(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) value /= 1024, ++unit;
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.2f %s", value, units[unit]);
  return text;
}

// Why a tensor is not stored in the file type's dtype.
std::string reason(const GgufExportTensor& t, GgufFileType requested) {
  if (t.to == requested.weights) return "";
  const TensorRole role = tensor_role(t.hf_name);
  switch (role) {
    case TensorRole::kNorm: return "norm";
    case TensorRole::kBias: return "bias";
    case TensorRole::kRouter: return "router";
    default: break;
  }
  if (t.shape.back() % dtype_block_elems(requested.weights) != 0)
    return "rows not a multiple of " + std::to_string(dtype_block_elems(requested.weights));
  if (role == TensorRole::kHead || role == TensorRole::kEmbedding) return "output head";
  return gguf_file_type_name(requested) + ": more bits in this layer";
}

void print_plan(const std::vector<GgufExportTensor>& plan, GgufFileType requested) {
  std::printf("%-34s %-18s %-5s %-5s %12s %12s  %s\n", "tensor", "shape", "from", "to", "before", "after", "why");
  uint64_t before = 0, after = 0;
  for (const GgufExportTensor& t : plan) {
    std::printf("%-34s %-18s %-5s %-5s %12s %12s  %s\n", t.gguf_name.c_str(), shape_str(t.shape).c_str(),
                std::string(dtype_name(t.from)).c_str(), std::string(dtype_name(t.to)).c_str(),
                human_bytes(t.bytes_before).c_str(), human_bytes(t.bytes_after).c_str(), reason(t, requested).c_str());
    before += t.bytes_before;
    after += t.bytes_after;
  }
  std::printf("total: %zu tensors, %s -> %s (%.1f%%)\n", plan.size(), human_bytes(before).c_str(), human_bytes(after).c_str(),
              before ? 100.0 * double(after) / double(before) : 100.0);
}

void run_quantize(const QuantizeFlags& flags) {
  const GgufFileType type = parse_file_type(flags.type);
  check_model_dir(flags.model);
  const ModelFiles model = open_model_files(flags.model);
  bind_weights(model.config, model.store);  // a complete, consistent JetMoE model, or an error naming the tensor

  std::vector<std::string> names;
  for (const ParamSpec& spec : param_specs(model.config)) names.push_back(spec.name);
  const std::vector<GgufExportTensor> plan = plan_gguf_export(model.config, model.store, names, type);
  GgufExportOptions options;
  options.type = type;
  options.name = flags.name.empty() ? default_name(flags.model) : flags.name;
  options.tokenizer = read_model_tokenizer_data(flags.model);

  print_plan(plan, type);
  ThreadPool pool(flags.threads);
  const uint64_t size = write_gguf_export(flags.out, model.config, model.store, plan, options, pool);
  std::printf("wrote %s (%s, %s)%s\n", flags.out.c_str(), gguf_file_type_name(type).c_str(), human_bytes(size).c_str(),
              options.tokenizer.hf_json.empty() && options.tokenizer.spm_model.empty() ? ", no tokenizer" : "");
}

}  // namespace

Command add_quantize_command(CLI::App& parent) {
  auto flags = std::make_shared<QuantizeFlags>();
  CLI::App* app = parent.add_subcommand(
      "quantize", "Write a model as one GGUF file (config, tokenizer and weights), converting the weights to --type");
  add_model_flag(*app, flags->model);
  app->add_option("-o,--out", flags->out, "Output .gguf file (replaced atomically)")->required()->type_name("FILE");
  app->add_option("--type", flags->type,
                  "File type, as llama.cpp names them (any case): q8_0, q4_0; q4_k_m / q5_k_m (k-quant mixes: "
                  "q6_k for the head and, in half of the layers, the K/V and expert down projections); "
                  "q4_k (= q4_k_s) / q5_k (= q5_k_s) / q6_k (every matrix in that k-quant); f16, bf16, f32. "
                  "Norms, biases and routers stay f32; q4_0, q4_k_s and q5_k_s files keep the output head in "
                  "q8_0, and the k-quant files store matrices whose rows are not a multiple of 256 in q8_0")
      ->capture_default_str()
      ->check([](const std::string& text) { return parse_gguf_file_type(text) ? "" : "unknown type '" + text + "'"; });
  app->add_option("--name", flags->name, "general.name of the file (default: the model's directory name)");
  add_threads_flag(*app, flags->threads);
  return {app, [flags] { run_quantize(*flags); }};
}

}  // namespace jetmoe::cli
