// jetmoe chat: an interactive conversation on stdin/stdout in the JetMoE-chat format.
// One line is one user turn; /reset starts over, /exit (or end of input) quits.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "common.h"
#include "core/error.h"
#include "core/parallel.h"
#include "formats/model_files.h"
#include "model/model.h"
#include "runtime/chat_template.h"
#include "runtime/generator.h"
#include "runtime/model_session.h"
#include "runtime/tokenizer_text_decoder.h"

namespace jetmoe::cli {

namespace {

struct ChatFlags {
  std::string model_dir;
  std::string system;
  int64_t max_new_tokens = -1;
  SamplingFlags sampling;
  int threads = 1;
  bool bf16_prefill = false;
  int64_t ctx_size = 0;
  DType cache_type = DType::F32;
  bool verbose = false;
};

void run_chat(const ChatFlags& flags) {
  const SamplingParams params = flags.sampling.resolve();
  check_model_dir(flags.model_dir);
  if (!has_tokenizer(flags.model_dir))
    fail(flags.model_dir, ": chat needs a tokenizer (tokenizer.json or tokenizer.model) in the model directory");
  const Tokenizer tokenizer = load_model_tokenizer(flags.model_dir);
  const std::unique_ptr<Model> model = Model::load(flags.model_dir);
  model->set_matmul_options(matmul_options(flags.bf16_prefill));
  ThreadPool pool(flags.threads);
  // The session keeps the conversation's KV cache: each turn only evaluates what is new.
  ModelSession session(*model, pool, flags.ctx_size, flags.cache_type);
  if (flags.verbose)
    std::fprintf(stderr, "[KV cache: %lld positions, %s]\n", (long long)session.context_size(),
                 kv_cache_type_name(session.cache_type()));
  Sampler sampler(params);
  GenerationOptions options;
  options.max_new_tokens = flags.max_new_tokens;
  options.eos_id = int32_t(model->config().eos_token_id);
  // A model that spells the next tag instead of ending its turn with </s> is stopped there.
  options.stop_strings = {"<|user|>", "<|system|>"};

  std::vector<ChatMessage> history;
  auto reset = [&] {
    history.clear();
    if (!flags.system.empty()) history.push_back({"system", flags.system});
    session.reset();
  };
  reset();
  const bool interactive = isatty(STDIN_FILENO);
  if (interactive) std::cerr << "jetmoe chat: one line per message; /reset to start over, /exit to quit\n";

  std::string line;
  while (true) {
    if (interactive) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit") break;
    if (line == "/reset") {
      reset();
      std::cerr << "(conversation reset)\n";
      continue;
    }
    if (line.empty()) continue;

    history.push_back({"user", line});
    TokenizerTextDecoder decoder(tokenizer);
    GenerationCallbacks callbacks;
    callbacks.on_text = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
    GenerationResult reply;
    try {
      reply = generate(session, sampler, tokenize_chat(tokenizer, history, true), options, &decoder, callbacks);
    } catch (const Error& e) {
      // A turn that cannot run (too long for the context, a forged special token) is dropped;
      // the conversation before it stays usable.
      history.pop_back();
      std::cerr << "error: " << e.what() << "\n";
      continue;
    }
    std::fputs("\n", stdout);
    std::fflush(stdout);
    history.push_back({"assistant", reply.text});
    if (reply.finish_reason == FinishReason::Length)
      std::cerr << "(reply cut at the token limit or the end of the context; /reset to start over)\n";
    if (flags.verbose)
      std::fprintf(stderr, "[prompt %lld tokens (%lld reused), %.1f tokens/s; reply %lld tokens, %.1f tokens/s]\n",
                   (long long)reply.prompt_tokens, (long long)reply.reused_prompt_tokens,
                   reply.prompt_tokens_per_second(), (long long)reply.generated_tokens(),
                   reply.generation_tokens_per_second());
  }
}

}  // namespace

Command add_chat_command(CLI::App& parent) {
  auto flags = std::make_shared<ChatFlags>();
  CLI::App* app = parent.add_subcommand(
      "chat", "Chat on stdin/stdout with the JetMoE-chat template; /reset starts over, /exit or end of input quits");
  add_model_flag(*app, flags->model_dir);
  app->add_option("--system", flags->system, "System message that opens the conversation");
  app->add_option("-n,--max-tokens", flags->max_new_tokens, "Tokens per reply at most; -1 = until </s>")
      ->capture_default_str();
  add_sampling_flags(*app, flags->sampling);
  add_threads_flag(*app, flags->threads);
  add_bf16_prefill_flag(*app, flags->bf16_prefill);
  app->add_option("-c,--ctx-size", flags->ctx_size, "KV cache size in tokens (default: max_position_embeddings)");
  add_cache_type_flag(*app, flags->cache_type);
  app->add_flag("-v,--verbose", flags->verbose, "Print token counts and speed after each reply (stderr)");
  return {app, [flags] { run_chat(*flags); }};
}

}  // namespace jetmoe::cli
