// jetmoe init: a randomly initialized checkpoint from a config.json.
#include <iostream>

#include "common.h"
#include "core/dtype.h"
#include "model/weights.h"
#include "runtime/random_checkpoint.h"

namespace jetmoe::cli {

namespace {

struct InitFlags {
  std::string config;
  std::string out_dir;
  uint64_t seed = 0;
  std::string dtype = "bf16";
  std::string tokenizer;
  size_t shard_size = size_t(4) << 30;  // only one shard is held in memory while writing
  bool force = false;
};

void run_init(const InitFlags& flags) {
  const JetMoeConfig config = load_config(flags.config);
  RandomCheckpointOptions options;
  options.seed = flags.seed;
  if (!parse_dtype(flags.dtype, &options.dtype)) throw CLI::ValidationError("--dtype", "unknown dtype " + flags.dtype);
  options.max_shard_bytes = flags.shard_size;
  options.tokenizer = flags.tokenizer;
  options.overwrite = flags.force;
  write_random_checkpoint(config, flags.out_dir, options);
  std::cerr << "wrote " << flags.out_dir << ": " << count_params(config).total << " parameters in "
            << dtype_name(options.dtype) << ", seed " << flags.seed << "\n";
}

}  // namespace

Command add_init_command(CLI::App& parent) {
  auto flags = std::make_shared<InitFlags>();
  CLI::App* app = parent.add_subcommand(
      "init", "Write a randomly initialized checkpoint (HF layout) for a config.json");
  app->add_option("--config", flags->config, "config.json describing the model")->required()->type_name("FILE");
  app->add_option("-o,--out", flags->out_dir, "Output directory")->required()->type_name("DIR");
  app->add_option("-s,--seed", flags->seed, "Random seed; the same seed gives the same weights")->capture_default_str();
  app->add_option("--dtype", flags->dtype, "Stored dtype (also written as torch_dtype)")
      ->capture_default_str()
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  app->add_option("--tokenizer", flags->tokenizer, "Tokenizer file (or directory) to copy into the checkpoint")
      ->type_name("PATH");
  app->add_option("--shard-size", flags->shard_size, "Split the weights into shards of at most BYTES (only one shard is in memory at a "
                  "time); 0 = one file")
      ->capture_default_str()
      ->type_name("BYTES");
  app->add_flag("--force", flags->force, "Write into a non-empty output directory");
  return {app, [flags] { run_init(*flags); }};
}

}  // namespace jetmoe::cli
