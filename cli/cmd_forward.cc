// jetmoe forward: one forward pass over given ids; logits to .npy, loss and argmax as JSON.
// With --grads-out it is a training step without the update: the loss terms of spec §2.3 and
// the gradient of every parameter under its HF name, for comparison with any reference.
#include <algorithm>
#include <charconv>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common.h"
#include "core/error.h"
#include "core/parallel.h"
#include "formats/npy.h"
#include "formats/safetensors.h"
#include "model/backward.h"
#include "model/loss.h"
#include "model/model.h"
#include "runtime/id_list.h"

namespace jetmoe::cli {

namespace {

struct ForwardFlags {
  std::string model_dir;
  std::string ids;
  std::string labels;  // empty: the ids themselves
  std::string logits_out;
  std::string grads_out;
  LossOptions loss;
  int threads = 1;
};

// Comma-separated integers; negative values (e.g. -100) mark ignored labels.
std::vector<int64_t> parse_label_list(const std::string& text) {
  std::vector<int64_t> labels;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    std::string entry = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    entry.erase(0, entry.find_first_not_of(" \t"));
    entry.erase(entry.find_last_not_of(" \t") + 1);
    int64_t value = 0;
    const auto [end, ec] = std::from_chars(entry.data(), entry.data() + entry.size(), value);
    if (entry.empty() || ec != std::errc() || end != entry.data() + entry.size())
      throw CLI::ValidationError("--labels", "'" + entry + "' (entry " + std::to_string(labels.size() + 1) +
                                                 ") is not an integer label");
    labels.push_back(value);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return labels;
}

void run_forward(const ForwardFlags& flags) {
  const std::vector<int32_t> ids = parse_id_list(flags.ids);
  const std::vector<int64_t> labels =
      flags.labels.empty() ? std::vector<int64_t>(ids.begin(), ids.end()) : parse_label_list(flags.labels);
  if (labels.size() != ids.size())
    throw CLI::ValidationError("--labels", "has " + std::to_string(labels.size()) + " entries but --ids has " +
                                               std::to_string(ids.size()) + "; give one label per id");
  check_model_dir(flags.model_dir);
  const std::unique_ptr<Model> model = Model::load(flags.model_dir);
  check_ids_in_vocab(ids, model->config().vocab_size);
  const int64_t T = int64_t(ids.size()), V = model->config().vocab_size;
  for (size_t t = 1; t < labels.size(); ++t)
    if (labels[t] >= V)
      fail("--labels: label ", labels[t], " at position ", t, " is outside the vocabulary [0, ", V, ")");

  const bool want_grads = !flags.grads_out.empty();
  ThreadPool pool(flags.threads);
  KvCache cache = model->make_cache(T);
  FloatTensor logits;
  ForwardTape tape;
  model->forward(ids, cache, logits, pool, LogitsMode::All, nullptr, want_grads ? &tape : nullptr);
  if (!flags.logits_out.empty()) write_npy_f32(flags.logits_out, logits.data(), logits.shape);

  const float* last = logits.data() + (T - 1) * V;
  const int64_t argmax = std::max_element(last, last + V) - last;  // first maximum: lowest id
  nlohmann::json out = {{"n_tokens", T}, {"argmax", argmax}, {"loss", nullptr}};
  int64_t count = 0;
  const double nll = next_token_nll_sum(logits, labels, &count);
  if (count > 0) out["loss"] = nll / double(count);
  if (want_grads) {
    Gradients grads(model->config());
    const std::span<const int64_t> label_span(labels);
    const LossTerms terms = backward(model->config(), model->weights(), std::span(&tape, 1), std::span(&logits, 1),
                                     std::span(&label_span, 1), flags.loss, grads, pool);
    write_safetensors(flags.grads_out, grads.named());
    out["loss_terms"] = {{"ce", terms.ce},
                         {"scored_tokens", terms.scored_tokens},
                         {"load_balance", terms.load_balance},
                         {"z_loss", terms.z_loss},
                         {"aux_coef", flags.loss.aux_coef},
                         {"z_coef", flags.loss.z_coef},
                         {"total", terms.total}};
    out["grads_out"] = flags.grads_out;
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
  app->add_option("--labels", flags->labels,
                  "Comma-separated labels, one per id (default: the ids): the logits at position t are scored "
                  "against label t+1; a negative label (e.g. -100) is ignored")
      ->type_name("L,L,...");
  CLI::Option* grads = app->add_option("--grads-out", flags->grads_out,
                                       "Write the gradient of the training loss CE + aux_coef * sum L_b + z_coef * "
                                       "sum L_z (spec 2.3) w.r.t. every parameter, as F32 safetensors under the HF "
                                       "names, to FILE; the JSON then lists every loss term")
                           ->type_name("FILE");
  app->add_option("--aux-coef", flags->loss.aux_coef, "Load-balancing loss coefficient (with --grads-out)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->needs(grads);
  app->add_option("--z-coef", flags->loss.z_coef, "Router z-loss coefficient (with --grads-out)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->needs(grads);
  add_threads_flag(*app, flags->threads);
  return {app, [flags] { run_forward(*flags); }};
}

}  // namespace jetmoe::cli
