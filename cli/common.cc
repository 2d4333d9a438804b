#include "common.h"

#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include "core/error.h"
#include "formats/model_files.h"
#include "runtime/id_list.h"

namespace jetmoe::cli {

void add_model_flag(CLI::App& app, std::string& path) {
  app.add_option("-m,--model", path,
                 "Model: a checkpoint directory in the Hugging Face layout (config.json + safetensors) or a .gguf file")
      ->required()
      ->type_name("PATH");
}

void check_model_dir(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(path, ": model does not exist (expected a model directory or a .gguf file)");
  if (!std::filesystem::is_directory(path, ec) && !std::filesystem::is_regular_file(path, ec))
    fail(path, ": not a model directory or a .gguf file");
}

void add_threads_flag(CLI::App& app, int& threads) {
  threads = int(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("-t,--threads", threads, "Worker threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
}

void add_bf16_prefill_flag(CLI::App& app, bool& enabled) {
  app.add_flag("--bf16-prefill", enabled,
               "Run prompt products with BF16 weights on bf16 dot products: activations rounded to bf16 as in "
               "Hugging Face's bf16 inference, about twice the prompt speed on CPUs with AVX512_BF16 (default: "
               "exact fp32; generation is fp32 either way)");
}

ops::MatmulOptions matmul_options(bool bf16_prefill) {
  return {.activations = bf16_prefill ? ops::Activations::BF16 : ops::Activations::F32};
}

void add_sampling_flags(CLI::App& app, SamplingFlags& flags) {
  SamplingParams& p = flags.params;
  app.add_option("--temp,--temperature", p.temperature, "Sampling temperature; 0 = greedy (argmax)")
      ->capture_default_str()->group("Sampling");
  app.add_option("--top-k", p.top_k, "Keep the K most likely tokens; <= 0 = off")->capture_default_str()->group("Sampling");
  app.add_option("--top-p", p.top_p, "Keep the smallest set of tokens with this probability mass; 1 = off")
      ->capture_default_str()->group("Sampling");
  app.add_option("--min-p", p.min_p, "Drop tokens less likely than this times the most likely one; 0 = off")
      ->capture_default_str()->group("Sampling");
  app.add_option("--repeat-penalty", p.repeat_penalty, "Penalty on recently seen tokens (CTRL style); 1 = off")
      ->capture_default_str()->group("Sampling");
  app.add_option("--repeat-last-n", p.repeat_last_n, "How many recent tokens the penalty looks at; 0 = off, -1 = all")
      ->capture_default_str()->group("Sampling");
  app.add_option("-s,--seed", flags.seed, "Random seed (default: drawn at random and printed)")->group("Sampling");
}

SamplingParams SamplingFlags::resolve() const {
  SamplingParams p = params;
  if (seed) {
    p.seed = *seed;
  } else {
    std::random_device device;
    p.seed = (uint64_t(device()) << 32) | device();
    if (p.temperature > 0) std::cerr << "seed: " << p.seed << "\n";
  }
  try {
    validate_sampling_params(p);
  } catch (const Error& e) {
    throw CLI::ValidationError(e.what());  // a bad flag value: usage error, exit 2
  }
  return p;
}


CLI::Validator id_list_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          parse_id_list(text);
        } catch (const Error& e) {
          return e.what();
        }
        return {};
      },
      "ID,ID,...");
}

bool has_tokenizer(const std::string& model) { return model_has_tokenizer(model); }

}  // namespace jetmoe::cli
