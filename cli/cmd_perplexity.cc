// jetmoe perplexity: how well a model predicts a text file (runtime/perplexity.h has the windows).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common.h"
#include "core/error.h"
#include "core/parallel.h"
#include "formats/model_files.h"
#include "model/model.h"
#include "runtime/perplexity.h"

namespace jetmoe::cli {

namespace {

struct PerplexityFlags {
  std::string model_dir;
  std::string text_file;
  int64_t context = 0;
  int64_t stride = 0;
  DType cache_type = DType::F32;
  int threads = 1;
  bool bf16_prefill = false;
  bool no_bos = false;
  bool json = false;
};

void print_result(const PerplexityResult& r, bool json) {
  if (json) {
    const nlohmann::json out = {{"perplexity", r.perplexity},
                                {"mean_nll", r.mean_nll},
                                {"nll_sum", r.nll_sum},
                                {"tokens", r.tokens},
                                {"tokens_scored", r.tokens_scored},
                                {"tokens_evaluated", r.tokens_evaluated},
                                {"windows", r.windows},
                                {"context", r.context},
                                {"stride", r.stride},
                                {"cache_type", kv_cache_type_name(r.cache_type)},
                                {"seconds", r.seconds},
                                {"tokens_per_second", r.tokens_per_second()}};
    std::cout << out.dump() << "\n";
    return;
  }
  std::printf("perplexity %.4f | mean NLL %.6f nats/token | %lld tokens scored of %lld, %lld window(s) of %lld "
              "(stride %lld) | %s KV cache | %.1f tokens/s\n",
              r.perplexity, r.mean_nll, (long long)r.tokens_scored, (long long)r.tokens, (long long)r.windows,
              (long long)r.context, (long long)r.stride, kv_cache_type_name(r.cache_type),
              r.tokens_per_second());
}

void run_perplexity(const PerplexityFlags& flags) {
  check_model_dir(flags.model_dir);
  const std::string text = read_input_file(flags.text_file);
  if (text.empty()) fail(flags.text_file, ": the text file is empty; there is nothing to score");
  if (!has_tokenizer(flags.model_dir))
    fail(flags.model_dir, ": the model has no tokenizer (tokenizer.json or tokenizer.model), so the text cannot be tokenized");
  const Tokenizer tokenizer = load_model_tokenizer(flags.model_dir);
  const std::vector<int32_t> tokens = tokenizer.encode(text, /*add_bos=*/!flags.no_bos);
  if (tokens.size() < 2)
    fail(flags.text_file, ": the text is ", tokens.size(), " token(s); perplexity needs at least 2");

  ModelFiles files = open_model_files(flags.model_dir);  // a directory or a GGUF file
  const std::unique_ptr<Model> model = std::make_unique<Model>(files.config, std::move(files.store));
  model->set_matmul_options(matmul_options(flags.bf16_prefill));
  const int64_t max_context = model->config().max_position_embeddings;
  if (flags.context > max_context)
    fail("--ctx ", flags.context, " exceeds the model's max_position_embeddings (", max_context, ")");
  PerplexityOptions options{flags.context, flags.stride, flags.cache_type};
  const int64_t context = flags.context > 0 ? flags.context : std::min<int64_t>(512, max_context);
  if (flags.stride > context) fail("--stride ", flags.stride, " exceeds the window length --ctx ", context);

  std::fprintf(stderr, "perplexity: %zu tokens from %s\n", tokens.size(), flags.text_file.c_str());
  ThreadPool pool(flags.threads);
  const PerplexityResult result =
      compute_perplexity(*model, tokens, options, pool, [](const PerplexityProgress& p) {
        std::fprintf(stderr, "[%lld/%lld] %lld tokens scored, running perplexity %.4f, %.1f s\n",
                     (long long)p.window, (long long)p.windows, (long long)p.tokens_scored,
                     std::exp(p.nll_sum / double(std::max<int64_t>(1, p.tokens_scored))), p.seconds);
      });
  print_result(result, flags.json);
}

}  // namespace

Command add_perplexity_command(CLI::App& parent) {
  auto flags = std::make_shared<PerplexityFlags>();
  CLI::App* app = parent.add_subcommand(
      "perplexity", "Score a text file: mean negative log-likelihood per token and perplexity = exp(mean NLL)");
  add_model_flag(*app, flags->model_dir);
  app->add_option("-f,--file", flags->text_file, "Text file to score (tokenized whole, BOS first)")
      ->required()
      ->type_name("FILE");
  app->add_option("-c,--ctx", flags->context,
                  "Tokens per window (one forward each); default min(512, max_position_embeddings)")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 30));
  app->add_option("--stride", flags->stride,
                  "Tokens between window starts (default: --ctx, no overlap); below --ctx, each window after "
                  "the first scores only its last tokens that no earlier window scored (the Hugging Face recipe)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  add_cache_type_flag(*app, flags->cache_type);
  add_threads_flag(*app, flags->threads);
  add_bf16_prefill_flag(*app, flags->bf16_prefill);
  app->add_flag("--no-bos", flags->no_bos, "Do not put BOS before the text");
  app->add_flag("--json", flags->json, "Print the result as one JSON line");
  return {app, [flags] { run_perplexity(*flags); }};
}

}  // namespace jetmoe::cli
