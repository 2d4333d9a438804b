// jetmoe generate: continue a prompt, streaming the text (or printing the ids) as it comes.
#include <cstdio>
#include <iostream>
#include <optional>

#include "common.h"
#include "core/error.h"
#include "core/parallel.h"
#include "formats/model_files.h"
#include "model/model.h"
#include "runtime/generator.h"
#include "runtime/id_list.h"
#include "runtime/model_session.h"
#include "runtime/tokenizer_text_decoder.h"

namespace jetmoe::cli {

namespace {

struct GenerateFlags {
  std::string model_dir;
  std::string prompt;
  std::string prompt_file;
  std::string prompt_ids;
  int64_t max_new_tokens = 128;
  SamplingFlags sampling;
  bool output_ids = false;
  std::vector<std::string> stop;
  int threads = 1;
  bool bf16_prefill = false;
  int64_t ctx_size = 0;
  DType cache_type = DType::F32;
  bool no_bos = false;
  bool ignore_eos = false;
  bool no_display_prompt = false;
};

void print_timings(const GenerationResult& r, DType cache_type) {
  std::fprintf(stderr,
               "prompt: %lld tokens (%lld reused) in %.1f ms, %.1f tokens/s | generated: %lld tokens in "
               "%.1f ms, %.1f tokens/s | finish: %s | KV cache %s\n",
               (long long)r.prompt_tokens, (long long)r.reused_prompt_tokens, r.prompt_seconds * 1e3,
               r.prompt_tokens_per_second(), (long long)r.generated_tokens(), r.generation_seconds * 1e3,
               r.generation_tokens_per_second(), finish_reason_name(r.finish_reason),
               kv_cache_type_name(cache_type));
}

void run_generate(GenerateFlags flags) {
  if (int(!flags.prompt.empty()) + int(!flags.prompt_file.empty()) + int(!flags.prompt_ids.empty()) != 1)
    throw CLI::ValidationError("generate",
                               "give the prompt one way: as text (-p), as a text file (-f) or as ids (--prompt-ids)");
  const SamplingParams params = flags.sampling.resolve();
  if (!flags.prompt_file.empty()) {
    flags.prompt = read_input_file(flags.prompt_file);
    if (flags.prompt.empty()) fail(flags.prompt_file, ": the prompt file is empty");
  }
  check_model_dir(flags.model_dir);

  std::optional<Tokenizer> tokenizer;
  if (has_tokenizer(flags.model_dir)) tokenizer = load_model_tokenizer(flags.model_dir);
  std::vector<int32_t> prompt;
  if (!flags.prompt.empty()) {
    if (!tokenizer)
      fail(flags.model_dir, ": no tokenizer.json or tokenizer.model, so a text prompt cannot be tokenized; "
           "give the prompt as token ids with --prompt-ids 1,2,3");
    prompt = tokenizer->encode(flags.prompt, /*add_bos=*/!flags.no_bos);
    if (prompt.empty()) fail("the prompt tokenizes to nothing (an empty text with --no-bos)");
  } else {
    prompt = parse_id_list(flags.prompt_ids);
  }
  if (!flags.stop.empty() && !tokenizer)
    fail(flags.model_dir, ": --stop needs a tokenizer (tokenizer.json or tokenizer.model) to see text");

  const std::unique_ptr<Model> model = Model::load(flags.model_dir);
  model->set_matmul_options(matmul_options(flags.bf16_prefill));
  check_ids_in_vocab(prompt, model->config().vocab_size);
  // By default the cache holds just what this run needs.
  int64_t context = flags.ctx_size;
  if (context <= 0 && flags.max_new_tokens >= 0) context = int64_t(prompt.size()) + flags.max_new_tokens;

  ThreadPool pool(flags.threads);
  ModelSession session(*model, pool, context, flags.cache_type);
  Sampler sampler(params);
  GenerationOptions options;
  options.max_new_tokens = flags.max_new_tokens;
  options.stop_at_eos = !flags.ignore_eos;
  options.eos_id = int32_t(model->config().eos_token_id);
  options.stop_strings = flags.stop;

  const bool stream_text = tokenizer && !flags.output_ids;
  if (!tokenizer && !flags.output_ids)
    std::cerr << "note: " << flags.model_dir << " has no tokenizer; printing token ids\n";
  std::optional<TokenizerTextDecoder> decoder;
  if (tokenizer) decoder.emplace(*tokenizer);
  GenerationCallbacks callbacks;
  if (stream_text) {
    callbacks.on_text = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
    // Echo the prompt through the same decoder, so the continuation's first word keeps the
    // space it has in decode(prompt + generated).
    if (!flags.no_display_prompt) {
      std::string shown;
      for (const int32_t id : prompt) shown += decoder->push(id);
      callbacks.on_text(shown);
    }
  }
  const GenerationResult result =
      generate(session, sampler, prompt, options, decoder ? &*decoder : nullptr, callbacks);
  if (stream_text) std::fputs("\n", stdout);
  else std::printf("%s\n", format_id_list(result.tokens).c_str());
  std::fflush(stdout);
  print_timings(result, session.cache_type());
}

}  // namespace

Command add_generate_command(CLI::App& parent) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* app = parent.add_subcommand("generate", "Continue a prompt: stream generated text to stdout");
  add_model_flag(*app, flags->model_dir);
  CLI::Option* text = app->add_option("-p,--prompt", flags->prompt, "Prompt text (tokenized with BOS first)");
  CLI::Option* ids = app->add_option("--prompt-ids", flags->prompt_ids, "Prompt as token ids, e.g. 1,306,4658 (used as given)")
                         ->check(id_list_validator());
  CLI::Option* file =
      app->add_option("-f,--file", flags->prompt_file, "Prompt text from a file, read as it is (tokenized with BOS first)")
          ->type_name("PATH");
  text->excludes(ids);
  file->excludes(text)->excludes(ids);
  app->add_option("-n,--max-tokens", flags->max_new_tokens, "Tokens to generate at most; -1 = until the context is full")
      ->capture_default_str();
  add_sampling_flags(*app, flags->sampling);
  app->add_flag("--output-ids", flags->output_ids, "Print the generated ids as one JSON array instead of text");
  app->add_option("--stop", flags->stop, "Stop when this text appears (repeatable); it is not printed")
      ->type_name("TEXT")
      ->allow_extra_args(false);
  add_threads_flag(*app, flags->threads);
  add_bf16_prefill_flag(*app, flags->bf16_prefill);
  app->add_option("-c,--ctx-size", flags->ctx_size,
                  "KV cache size in tokens (default: prompt + max tokens, at most max_position_embeddings)");
  add_cache_type_flag(*app, flags->cache_type);
  app->add_flag("--no-bos", flags->no_bos, "Do not put BOS before the prompt text");
  app->add_flag("--ignore-eos", flags->ignore_eos, "Keep generating after the end-of-sequence token");
  app->add_flag("--no-display-prompt", flags->no_display_prompt, "Print only the generated text, not the prompt first");
  return {app, [flags] { run_generate(*flags); }};
}

}  // namespace jetmoe::cli
