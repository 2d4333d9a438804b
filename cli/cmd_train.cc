// jetmoe train: pretrain a JetMoE from a training config (src/train/train_config.h documents it).
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "common.h"
#include "train/data_mixture.h"
#include "train/run_checkpoint.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace jetmoe::cli {

namespace {

struct TrainFlags {
  std::string config;
  std::vector<std::string> overrides;
  std::string resume;
  std::optional<int64_t> steps;
  std::optional<std::string> out_dir;
  std::optional<int> threads;
};

void run_train(const TrainFlags& flags) {
  std::vector<std::string> overrides = flags.overrides;
  if (flags.steps) overrides.push_back("steps=" + std::to_string(*flags.steps));
  if (flags.out_dir) overrides.push_back("output_dir=" + std::filesystem::absolute(*flags.out_dir).string());
  if (flags.threads) overrides.push_back("threads=" + std::to_string(*flags.threads));

  std::string checkpoint;
  std::string config_path = flags.config;
  if (!flags.resume.empty()) {
    checkpoint = resolve_checkpoint_dir(flags.resume);
    if (config_path.empty()) config_path = (std::filesystem::path(checkpoint) / "train_config.json").string();
  }
  if (config_path.empty()) throw CLI::ValidationError("--config", "give --config FILE (or --resume DIR)");
  const TrainConfig config = load_train_config(config_path, overrides);
  auto data = open_training_data(config.phases, config.seq_len, config.seed, config.validation_fraction);
  Trainer trainer(config, std::move(data), std::cerr);
  if (!checkpoint.empty()) trainer.resume(checkpoint);
  const TrainSummary summary = trainer.run();
  std::cerr << "done: " << summary.steps << " steps, loss " << summary.last_loss << ", eval loss "
            << summary.last_eval_loss << ", " << int64_t(summary.tokens_per_second) << " tokens/s";
  if (summary.mfu > 0) std::cerr << " (mfu " << std::setprecision(2) << 100.0 * summary.mfu << "%)";
  std::cerr << "; model in " << summary.last_checkpoint << "\n";
  std::cout << summary.last_checkpoint << "\n";
}

}  // namespace

Command add_train_command(CLI::App& parent) {
  auto flags = std::make_shared<TrainFlags>();
  CLI::App* app = parent.add_subcommand("train", "Pretrain a JetMoE model from a training config (JSON)");
  app->add_option("-c,--config", flags->config, "Training config (see src/train/train_config.h)")->type_name("FILE");
  app->add_option("--set", flags->overrides, "Override a config field, e.g. --set optimizer.lr=1e-3 (repeatable)")
      ->type_name("KEY=VALUE");
  app->add_option("--resume", flags->resume,
                  "Continue from a checkpoint (DIR/step-N) or a run directory's newest one; without --config "
                  "the checkpoint's saved config is used")
      ->type_name("DIR");
  app->add_option("--steps", flags->steps, "Total updates (overrides 'steps')");
  app->add_option("-o,--out", flags->out_dir, "Run directory (overrides 'output_dir')")->type_name("DIR");
  app->add_option("--threads", flags->threads, "Threads (overrides 'threads')");
  return {app, [flags] { run_train(*flags); }};
}

}  // namespace jetmoe::cli
