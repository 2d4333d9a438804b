#include "common.h"

#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/text_file.h"
#include "formats/model_files.h"
#include "model/kv_cache.h"
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

std::string read_input_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(path, ": text file does not exist");
  if (std::filesystem::is_directory(path, ec)) fail(path, ": is a directory, expected a text file");
  return read_text_file(path);
}

void add_threads_flag(CLI::App& app, int& threads) {
  threads = int(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("-t,--threads", threads, "Worker threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
}

void add_bf16_prefill_flag(CLI::App& app, bool& enabled) {
  app.add_flag("--bf16-prefill", enabled,
               "Run prompt products with BF16 weights, and prompt attention with any weights, on bf16 dot "
               "products: operands rounded to bf16 as in Hugging Face's bf16 inference, about twice the prompt "
               "speed on CPUs with AVX512_BF16 (default: exact fp32; generation is fp32 either way)");
}

ops::MatmulOptions matmul_options(bool bf16_prefill) {
  return {.activations = bf16_prefill ? ops::Activations::BF16 : ops::Activations::F32};
}

namespace {

constexpr const char* kCacheTypeHelp =
    "KV cache element type (also -ctk, as in llama.cpp): f32 (exact) or f16 (half the memory and the bytes "
    "decoding reads per cached position; K and V rounded to f16)";

CLI::Validator cache_type_validator() {
  return CLI::Validator(
      [](std::string& name) -> std::string {
        DType type;
        if (parse_kv_cache_type(name, &type)) return {};
        return "'" + name + "' is not a KV cache type; accepted: f32, f16";  // CLI11 puts the flag first
      },
      "f32|f16");
}

DType cache_type_of(const std::string& name) {
  DType type = DType::F32;
  JM_CHECK(parse_kv_cache_type(name, &type), "unvalidated cache type ", name);
  return type;
}

}  // namespace

CLI::Option* add_cache_type_flag(CLI::App& app, DType& type) {
  return app
      .add_option_function<std::string>(
          "--cache-type", [&type](const std::string& name) { type = cache_type_of(name); }, kCacheTypeHelp)
      ->check(cache_type_validator())
      ->type_name("TYPE")
      ->default_str(kv_cache_type_name(type));
}

CLI::Option* add_cache_types_flag(CLI::App& app, std::vector<DType>& types) {
  std::string defaults;
  for (const DType type : types) defaults += (defaults.empty() ? "" : ",") + std::string(kv_cache_type_name(type));
  return app
      .add_option_function<std::vector<std::string>>(
          "--cache-type",
          [&types](const std::vector<std::string>& names) {
            types.clear();
            for (const std::string& name : names) types.push_back(cache_type_of(name));
          },
          std::string(kCacheTypeHelp) + ", comma-separated")
      ->delimiter(',')
      ->check(cache_type_validator())
      ->type_name("TYPE")
      ->default_str(defaults);
}

std::vector<std::string> spell_out_cache_type_alias(const CLI::App& app, int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  if (argc < 2) return args;
  const CLI::App* command = nullptr;
  for (const CLI::App* sub : app.get_subcommands({}))
    if (sub->get_name() == args[1]) command = sub;
  if (command == nullptr || command->get_option_no_throw("--cache-type") == nullptr) return args;
  for (size_t i = 2; i < args.size() && args[i] != "--"; ++i) {
    if (args[i] == "-ctk") args[i] = "--cache-type";
    else if (args[i].rfind("-ctk=", 0) == 0) args[i] = "--cache-type=" + args[i].substr(5);
  }
  return args;
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
