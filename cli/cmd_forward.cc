// jetmoe forward: one forward pass over given ids; logits to .npy, loss and argmax as JSON.
#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common.h"
#include "core/parallel.h"
#include "formats/npy.h"
#include "model/loss.h"
#include "model/model.h"
#include "runtime/id_list.h"

namespace jetmoe::cli {

namespace {

struct ForwardFlags {
  std::string model_dir;
  std::string ids;
  std::string logits_out;
  int threads = 1;
};

void run_forward(const ForwardFlags& flags) {
  const std::vector<int32_t> ids = parse_id_list(flags.ids);
  check_model_dir(flags.model_dir);
  const std::unique_ptr<Model> model = Model::load(flags.model_dir);
  check_ids_in_vocab(ids, model->config().vocab_size);

  ThreadPool pool(flags.threads);
  KvCache cache = model->make_cache(int64_t(ids.size()));
  FloatTensor logits;
  model->forward(ids, cache, logits, pool, LogitsMode::All);
  if (!flags.logits_out.empty()) write_npy_f32(flags.logits_out, logits.data(), logits.shape);

  const int64_t T = int64_t(ids.size()), V = model->config().vocab_size;
  const float* last = logits.data() + (T - 1) * V;
  const int64_t argmax = std::max_element(last, last + V) - last;  // first maximum: lowest id
  nlohmann::json out = {{"n_tokens", T}, {"argmax", argmax}, {"loss", nullptr}};
  if (T > 1) {
    const std::vector<int64_t> targets(ids.begin(), ids.end());
    int64_t count = 0;
    const double nll = next_token_nll_sum(logits, targets, &count);
    out["loss"] = nll / double(count);
  }
  if (!flags.logits_out.empty()) out["logits_out"] = flags.logits_out;
  std::cout << out.dump() << "\n";
}

}  // namespace

Command add_forward_command(CLI::App& parent) {
  auto flags = std::make_shared<ForwardFlags>();
  CLI::App* app = parent.add_subcommand(
      "forward", "Run one forward pass over token ids; print the mean next-token loss and the last argmax as JSON");
  add_model_flag(*app, flags->model_dir);
  app->add_option("--ids", flags->ids, "Comma-separated token ids, e.g. 1,306,4658")
      ->required()
      ->check(id_list_validator());
  app->add_option("--logits-out", flags->logits_out, "Write the logits [T, vocab] as float32 .npy to FILE")
      ->type_name("FILE");
  add_threads_flag(*app, flags->threads);
  return {app, [flags] { run_forward(*flags); }};
}

}  // namespace jetmoe::cli
