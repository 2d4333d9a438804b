// Pieces shared by the subcommands: the command table entry, flags that several commands
// take (model directory, threads, sampling), and strict parsing of id lists.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/ops.h"
#include "runtime/sampler.h"

namespace jetmoe::cli {

// A subcommand registers its flags on the parent app and returns the function that runs it
// once the flags are parsed. Runners report failure by throwing: jetmoe::Error -> exit 1,
// CLI::ParseError (a bad flag value found late) -> exit 2.
struct Command {
  CLI::App* app;
  std::function<void()> run;
};

Command add_generate_command(CLI::App& parent);
Command add_chat_command(CLI::App& parent);
Command add_forward_command(CLI::App& parent);
Command add_tokenize_command(CLI::App& parent);
Command add_detokenize_command(CLI::App& parent);
Command add_info_command(CLI::App& parent);
Command add_init_command(CLI::App& parent);
Command add_serve_command(CLI::App& parent);
Command add_bench_command(CLI::App& parent);
Command add_prepare_command(CLI::App& parent);
Command add_train_command(CLI::App& parent);
Command add_quantize_command(CLI::App& parent);
Command add_perplexity_command(CLI::App& parent);

// -m/--model PATH (required): a checkpoint directory in the HF layout or a .gguf file. A missing
// model is reported when loading (exit 1).
void add_model_flag(CLI::App& app, std::string& path);
// Throws jetmoe::Error if `path` is neither an existing directory nor a file (a clearer message
// than the missing config.json inside it would give). A file is checked as GGUF when it is opened.
void check_model_dir(const std::string& path);
// The bytes of a text file named on the command line (perplexity's text, generate's prompt), as
// they are. Throws jetmoe::Error naming the path if it is missing, a directory or unreadable.
std::string read_input_file(const std::string& path);
// --threads N, defaulting to the number of hardware threads.
void add_threads_flag(CLI::App& app, int& threads);
// --bf16-prefill: prompt products with BF16 weights, and prompt attention, on bf16 dot products
// (ops::Activations::BF16).
void add_bf16_prefill_flag(CLI::App& app, bool& enabled);
// The matmul options that flag selects.
ops::MatmulOptions matmul_options(bool bf16_prefill);

// -ctk/--cache-type TYPE: the KV cache's element type, f32 (the default: exact) or f16 (half the
// memory, and half the bytes decoding reads per cached position). Another value is a usage error
// (exit 2) naming the flag and the accepted values.
CLI::Option* add_cache_type_flag(CLI::App& app, DType& type);
// The same flag taking a comma-separated list (bench: one set of runs per type).
CLI::Option* add_cache_types_flag(CLI::App& app, std::vector<DType>& types);
// CLI11 takes one-letter short flags only, and would read llama.cpp's "-ctk f16" as "-c tk";
// argv with "-ctk" spelled "--cache-type" where the command (argv[1]) has that flag.
std::vector<std::string> spell_out_cache_type_alias(const CLI::App& app, int argc, char** argv);

// Sampling flags; the seed is optional (random when absent, and then printed).
struct SamplingFlags {
  SamplingParams params;
  std::optional<uint64_t> seed;
  // The params with the seed resolved; prints a drawn seed to stderr so a run can be repeated.
  SamplingParams resolve() const;
};
void add_sampling_flags(CLI::App& app, SamplingFlags& flags);

// A CLI11 validator for comma-separated token ids (parse_id_list): "1,2,x" fails naming "x",
// so a bad list is a usage error (exit 2).
CLI::Validator id_list_validator();

// Whether a model ships a tokenizer: tokenizer.json or tokenizer.model in a directory, or one
// embedded in a GGUF file (model_has_tokenizer).
bool has_tokenizer(const std::string& model);

}  // namespace jetmoe::cli
