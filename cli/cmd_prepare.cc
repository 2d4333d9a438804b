// jetmoe prepare: tokenize text or JSONL files into a shard directory for `jetmoe train`.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "common.h"
#include "core/parallel.h"
#include "train/data_prepare.h"

namespace jetmoe::cli {
namespace {

// "[#######.........]  42%  12/30 files  1.2M tokens  350k tokens/s" on one line of stderr.
void draw_progress(const PrepareProgress& p) {
  const double fraction = p.bytes_total > 0 ? double(p.bytes_done) / double(p.bytes_total) : 1.0;
  constexpr int kWidth = 30;
  const int filled = int(fraction * kWidth);
  const double rate = p.seconds > 0 ? double(p.tokens) / p.seconds : 0;
  std::fprintf(stderr, "\rprepare [%s%s] %3d%%  %lld/%lld files  %.2fM tokens  %.0fk tokens/s ",
               std::string(size_t(filled), '#').c_str(), std::string(size_t(kWidth - filled), '.').c_str(),
               int(fraction * 100), static_cast<long long>(p.inputs_done), static_cast<long long>(p.inputs_total),
               double(p.tokens) / 1e6, rate / 1e3);
  std::fflush(stderr);
}

}  // namespace

Command add_prepare_command(CLI::App& parent) {
  struct Flags {
    PrepareOptions options;
    std::string format = "auto";
    int threads = 1;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* app = parent.add_subcommand(
      "prepare",
      "Tokenize text or JSONL files into binary token shards for training (EOS after every document). "
      "A text file is one document unless --split-blank-lines; a JSONL line is one document. "
      "Resumable: run it again with the same --out and finished inputs are skipped");
  app->add_option("--tokenizer", flags->options.tokenizer, "tokenizer.json, tokenizer.model, or a directory holding one")
      ->required()
      ->type_name("PATH");
  app->add_option("--input", flags->options.inputs, "Input files, or directories (every file below them, sorted)")
      ->required()
      ->type_name("FILE...");
  app->add_option("--out", flags->options.out_dir, "Shard directory to write (manifest.json + shard-*.bin)")
      ->required()
      ->type_name("DIR");
  app->add_option("--format", flags->format, "auto (.jsonl/.ndjson are JSONL), text or jsonl")
      ->check(CLI::IsMember({"auto", "text", "jsonl"}))
      ->capture_default_str();
  app->add_option("--jsonl-field", flags->options.documents.jsonl_field, "The JSONL field holding a document's text")
      ->capture_default_str();
  app->add_flag("--split-blank-lines", flags->options.documents.split_blank_lines,
                "In text files, blank lines separate documents (default: one document per file)");
  app->add_option("--shard-tokens", flags->options.shard_tokens, "At most this many tokens per shard")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_threads_flag(*app, flags->threads);
  return {app, [flags] {
            flags->options.documents.format = parse_input_format(flags->format);
            ThreadPool pool(flags->threads);
            const bool draw = ::isatty(STDERR_FILENO) != 0;
            const PrepareResult result = prepare_token_shards(flags->options, pool, [draw](const PrepareProgress& p) {
              if (draw) draw_progress(p);
            });
            if (draw) std::fputc('\n', stderr);
            const double rate = result.seconds > 0 ? double(result.tokens) / result.seconds : 0;
            std::fprintf(stderr, "prepare: %lld inputs tokenized (%lld already done), %lld documents, %lld tokens in %.2f s (%.0f tokens/s)\n",
                         static_cast<long long>(result.inputs_prepared), static_cast<long long>(result.inputs_skipped),
                         static_cast<long long>(result.documents), static_cast<long long>(result.tokens), result.seconds, rate);
            std::cout << flags->options.out_dir << ": " << result.manifest.shards.size() << " shards, "
                      << result.manifest.total_documents() << " documents, " << result.manifest.total_tokens()
                      << " tokens\n";
          }};
}

}  // namespace jetmoe::cli
