// jetmoe info: what a checkpoint is (config, parameter counts, bytes, KV cache cost).
#include <iostream>

#include "common.h"
#include "runtime/model_info.h"

namespace jetmoe::cli {

Command add_info_command(CLI::App& parent) {
  struct Flags {
    std::string model_dir;
    bool json = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* app = parent.add_subcommand(
      "info", "Describe a checkpoint: config, total and active parameters, weight bytes, KV cache per token");
  add_model_flag(*app, flags->model_dir);
  app->add_flag("--json", flags->json, "Print one JSON object instead of text");
  return {app, [flags] {
            check_model_dir(flags->model_dir);
            const ModelInfo info = inspect_model(flags->model_dir);
            std::cout << (flags->json ? model_info_json(info) : format_model_info(info));
          }};
}

}  // namespace jetmoe::cli
