#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "model/backward.h"
#include "model/loss.h"
#include "runtime/random_checkpoint.h"
#include "train/mfu.h"
#include "train/plot.h"
#include "train/run_checkpoint.h"
#include "train/schedule.h"

namespace jetmoe {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

const char* kMetricsFile = "metrics.jsonl";

std::string format_duration(double seconds) {
  const int64_t s = int64_t(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

void append_line(const fs::path& path, const json& line) {
  std::ofstream out(path, std::ios::app);
  if (!out) fail(path.string(), ": cannot append metrics");
  out << line.dump() << "\n";
}

// A resumed run rewrites history from its checkpoint on: lines after that step are dropped.
void truncate_metrics(const fs::path& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return;
  std::ostringstream kept;
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("step") && j["step"].get<int64_t>() <= last_step) kept << line << "\n";
  }
  in.close();
  std::ofstream(path, std::ios::trunc) << kept.str();
}

}  // namespace

struct Trainer::StepResult {
  LossTerms terms;  // averaged over the micro-batches
  double grad_norm = 0.0;
  double lr = 0.0;
  int64_t tokens = 0;
};

Trainer::Trainer(TrainConfig config, std::unique_ptr<TrainingData> data, std::ostream& progress)
    : config_(std::move(config)),
      data_(std::move(data)),
      progress_(progress),
      pool_(config_.threads),
      specs_(param_specs(config_.model)),
      master_(random_parameter_values(config_.model, config_.seed)),
      grads_(config_.model),
      adamw_(optimized_params(specs_, config_.optimizer.decay_norms_and_biases), config_.optimizer) {
  JM_CHECK(data_ != nullptr);
  model_ = std::make_unique<Model>(config_.model, TensorStore::from_views(weight_views(), "master weights"));
  if (config_.compute_dtype == DType::BF16) {
    std::vector<NamedTensor> views;
    for (size_t i = 0; i < specs_.size(); ++i) {
      compute_bf16_.emplace_back(master_[i].size());
      views.push_back({specs_[i].name, TensorView{DType::BF16, specs_[i].shape, compute_bf16_[i].data()}});
    }
    refresh_compute_weights();
    compute_model_ = std::make_unique<Model>(config_.model, TensorStore::from_views(views, "bf16 compute weights"));
    compute_model_->set_matmul_options({.activations = ops::Activations::BF16});
  } else if (config_.compute_dtype != DType::F32) {
    fail("compute_dtype ", dtype_name(config_.compute_dtype), " is not supported (f32 or bf16)");
  }
  flops_per_token_ = training_flops_per_token(config_.model, config_.seq_len).per_token();
}

Trainer::~Trainer() = default;

void Trainer::refresh_compute_weights() {
  for (size_t i = 0; i < compute_bf16_.size(); ++i)  // round to nearest even
    from_f32(DType::BF16, master_[i].data(), compute_bf16_[i].data(), master_[i].size());
}

// Logs the FLOPs arithmetic and the peak that mfu is a fraction of.
void Trainer::report_peak() {
  if (!config_.report_mfu || peak_flops_ > 0) return;
  const ComputePeak peak = measure_compute_peak(pool_);
  peak_flops_ = peak.flops_per_second;
  const TrainingFlops f = training_flops_per_token(config_.model, config_.seq_len);
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "model FLOPs per token %.4g (6 x %lld active matrix params + %.4g attention); mfu is a fraction of "
                "the measured %s peak, %.1f GFLOP/s on %d threads",
                f.per_token(), (long long)active_matmul_params(config_.model), f.attention, peak.kind.c_str(),
                peak_flops_ * 1e-9, pool_.num_threads());
  progress_ << buf << "\n";
}

double Trainer::mfu(double tokens_per_s) const {
  return peak_flops_ > 0 ? flops_per_token_ * tokens_per_s / peak_flops_ : 0.0;
}

std::vector<NamedTensor> Trainer::weight_views() const {
  std::vector<NamedTensor> views;
  for (size_t i = 0; i < specs_.size(); ++i)
    views.push_back({specs_[i].name, TensorView{DType::F32, specs_[i].shape, master_[i].data()}});
  return views;
}

void Trainer::resume(const std::string& checkpoint_dir) {
  const TensorStore weights = TensorStore::open_dir(checkpoint_dir);
  for (size_t i = 0; i < specs_.size(); ++i) {
    const TensorView& v = weights.get(specs_[i].name);
    if (v.dtype != DType::F32 || v.shape != specs_[i].shape)
      fail(checkpoint_dir, ": tensor '", specs_[i].name, "' is ", dtype_name(v.dtype), " ", shape_str(v.shape),
           ", expected F32 ", shape_str(specs_[i].shape), " (is this checkpoint from the same model config?)");
    const float* src = static_cast<const float*>(v.data);
    std::copy(src, src + master_[i].size(), master_[i].begin());  // in place: the model keeps its views
  }
  const TrainerState state = read_trainer_state(checkpoint_dir);
  adamw_.load_state(TensorStore::open_file((fs::path(checkpoint_dir) / "optimizer.safetensors").string()), state.step);
  refresh_compute_weights();
  data_->restore(state.data);
  step_ = state.step;
  tokens_seen_ = state.tokens_seen;
  last_checkpoint_ = checkpoint_dir;
  truncate_metrics(fs::path(config_.output_dir) / kMetricsFile, step_);
  progress_ << "resumed from " << checkpoint_dir << " at step " << step_ << "\n";
}

Trainer::StepResult Trainer::train_step() {
  Gradients& grads = grads_;
  grads.zero(pool_);
  StepResult r;
  const int64_t T = config_.seq_len, B = config_.batch_size;
  std::vector<std::vector<int32_t>> windows(static_cast<size_t>(B));
  std::vector<std::vector<int64_t>> labels(static_cast<size_t>(B));
  for (int64_t micro = 0; micro < config_.grad_accum; ++micro) {
    std::vector<TrainingSequence> batch;
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int32_t>& w = windows[size_t(b)];
      data_->next_sequence(tokens_seen_, config_.token_budget(), w);
      if (int64_t(w.size()) != T + 1)
        fail("training data returned ", w.size(), " ids for a sequence, expected seq_len + 1 = ", T + 1);
      labels[size_t(b)].assign(w.begin(), w.end());  // T + 1: the window's last token is a target too
      batch.push_back({std::span<const int32_t>(w.data(), size_t(T)), labels[size_t(b)]});
      tokens_seen_ += T;
      r.tokens += T;
    }
    const LossTerms terms = forward_backward(compute_model(), batch, config_.loss, grads, pool_);
    r.terms.ce += terms.ce;
    r.terms.load_balance += terms.load_balance;
    r.terms.z_loss += terms.z_loss;
    r.terms.total += terms.total;
    r.terms.scored_tokens += terms.scored_tokens;
    if (r.terms.expert_fraction.empty()) r.terms.expert_fraction.assign(terms.expert_fraction.size(), {});
    for (size_t i = 0; i < terms.expert_fraction.size(); ++i) {
      auto& acc = r.terms.expert_fraction[i];
      acc.resize(terms.expert_fraction[i].size(), 0.0);
      for (size_t e = 0; e < acc.size(); ++e) acc[e] += terms.expert_fraction[i][e];
    }
  }
  const double inv = 1.0 / double(config_.grad_accum);
  r.terms.ce *= inv;
  r.terms.load_balance *= inv;
  r.terms.z_loss *= inv;
  r.terms.total *= inv;
  for (auto& router : r.terms.expert_fraction)
    for (double& f : router) f *= inv;

  // The update reads every gradient as (g / grad_accum) * clip factor, rounded after each product
  // exactly as scaling the buffers in two passes would, in one pass over memory that also
  // refreshes the bf16 compute copy.
  std::vector<std::span<const float>> grad_views;
  for (size_t i = 0; i < specs_.size(); ++i) grad_views.push_back(grads.tensor(i).values);
  AdamW::GradScales scales;
  if (config_.grad_accum > 1) scales.first = float(inv);
  if (!std::isfinite(r.terms.total))
    fail("step ", step_ + 1, ": the loss is ", r.terms.total, " (not finite); stopping without saving. ",
         last_checkpoint_.empty() ? std::string("No checkpoint was written yet.")
                                  : "The last good checkpoint is " + last_checkpoint_);
  r.grad_norm = grad_global_norm(grad_views, pool_, scales);
  if (!std::isfinite(r.grad_norm))
    fail("step ", step_ + 1, ": the gradient norm is ", r.grad_norm, " (not finite); stopping without saving. ",
         last_checkpoint_.empty() ? std::string("No checkpoint was written yet.")
                                  : "The last good checkpoint is " + last_checkpoint_);
  scales.second = grad_clip_factor(r.grad_norm, config_.grad_clip);

  r.lr = learning_rate(config_.schedule, step_);
  std::vector<std::span<float>> params(master_.begin(), master_.end());
  std::vector<std::span<uint16_t>> bf16_copies(compute_bf16_.begin(), compute_bf16_.end());
  adamw_.step(params, grad_views, r.lr, pool_, scales, bf16_copies);
  ++step_;
  return r;
}

double Trainer::evaluate() {
  const auto& sequences = data_->validation_sequences();
  const size_t n = config_.eval_max_sequences > 0 ? std::min(sequences.size(), size_t(config_.eval_max_sequences))
                                                  : sequences.size();
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  double nll = 0.0;
  int64_t count = 0;
  const int64_t T = config_.seq_len;
  std::vector<int64_t> labels;
  FloatTensor logits;
  for (size_t i = 0; i < n; ++i) {
    const std::vector<int32_t>& w = sequences[i];
    const int64_t len = std::min<int64_t>(T, int64_t(w.size()));
    KvCache cache = model_->make_cache(len);
    model_->forward(std::span<const int32_t>(w.data(), size_t(len)), cache, logits, pool_);
    labels.assign(w.begin(), w.begin() + std::min<int64_t>(len + 1, int64_t(w.size())));
    int64_t c = 0;
    nll += next_token_nll_sum(logits, labels, &c);
    count += c;
  }
  return count > 0 ? nll / double(count) : std::numeric_limits<double>::quiet_NaN();
}

std::string Trainer::save() {
  CheckpointContents contents{&config_.model, weight_views(), adamw_.state_tensors(),
                              TrainerState{step_, tokens_seen_, config_.seed, data_->position()},
                              config_.resolved_json};
  last_checkpoint_ = save_checkpoint(config_.output_dir, contents, config_.keep_last);
  return last_checkpoint_;
}

TrainSummary Trainer::run() {
  const fs::path out(config_.output_dir);
  fs::create_directories(out);
  const fs::path metrics = out / kMetricsFile;
  TrainSummary summary;
  summary.last_eval_loss = std::numeric_limits<double>::quiet_NaN();
  const int64_t first_step = step_;
  if (step_ < config_.steps) report_peak();
  double train_seconds = 0.0;
  int64_t train_tokens = 0;

  while (step_ < config_.steps) {
    const auto start = Clock::now();
    const StepResult r = train_step();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    train_seconds += seconds;
    train_tokens += r.tokens;
    const double tokens_per_s = double(r.tokens) / std::max(seconds, 1e-9);
    summary.last_loss = r.terms.total;

    json line = {{"step", step_},
                 {"tokens", tokens_seen_},
                 {"loss", r.terms.total},
                 {"ce", r.terms.ce},
                 {"load_balance", r.terms.load_balance},
                 {"z_loss", r.terms.z_loss},
                 {"lr", r.lr},
                 {"grad_norm", r.grad_norm},
                 {"tokens_per_s", tokens_per_s},
                 {"data", data_->describe_last()},
                 {"expert_fraction", r.terms.expert_fraction}};
    if (peak_flops_ > 0) line["mfu"] = mfu(tokens_per_s);
    append_line(metrics, line);

    if (step_ % config_.log_interval == 0 || step_ == config_.steps) {
      const double avg_step = train_seconds / double(step_ - first_step);
      const double average_tokens_per_s = double(train_tokens) / std::max(train_seconds, 1e-9);
      char mfu_text[32] = "";
      if (peak_flops_ > 0) std::snprintf(mfu_text, sizeof mfu_text, " | mfu %.1f%%", 100.0 * mfu(average_tokens_per_s));
      char buf[256];
      std::snprintf(buf, sizeof buf, "step %lld/%lld | loss %.4f (ce %.4f) | lr %.3e | grad %.3f | %.0f tok/s%s | ETA %s",
                    (long long)step_, (long long)config_.steps, r.terms.total, r.terms.ce, r.lr, r.grad_norm,
                    average_tokens_per_s, mfu_text, format_duration(avg_step * double(config_.steps - step_)).c_str());
      progress_ << buf << "\n" << std::flush;
    }

    const bool last = step_ == config_.steps;
    if ((config_.eval_interval > 0 && step_ % config_.eval_interval == 0) || last) {
      const double loss = evaluate();
      if (std::isfinite(loss)) {
        summary.last_eval_loss = loss;
        append_line(metrics, {{"step", step_}, {"eval_loss", loss}, {"eval_ppl", std::exp(loss)}});
        char buf[128];
        std::snprintf(buf, sizeof buf, "eval at step %lld: loss %.4f, perplexity %.2f", (long long)step_, loss,
                      std::exp(loss));
        progress_ << buf << "\n";
      }
    }
    if ((config_.checkpoint_interval > 0 && step_ % config_.checkpoint_interval == 0) || last) {
      progress_ << "saved " << save() << "\n";
      write_training_plot(metrics.string(), (out / "plot.html").string());
    }
  }
  summary.steps = step_;
  summary.tokens_per_second = train_tokens > 0 ? double(train_tokens) / std::max(train_seconds, 1e-9) : 0.0;
  summary.mfu = mfu(summary.tokens_per_second);
  summary.last_checkpoint = last_checkpoint_;
  return summary;
}

}  // namespace jetmoe
