#include "serve/engine.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "serve/api_error.h"

namespace jetmoe::serve {

namespace {

using Clock = std::chrono::steady_clock;

// How long an idle engine sleeps before it looks for cancelled waiting jobs again.
constexpr auto kIdlePoll = std::chrono::milliseconds(50);

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t clamp_context(const JetMoeConfig& config, int64_t requested) {
  if (requested <= 0) return config.max_position_embeddings;
  return std::min(requested, config.max_position_embeddings);
}

}  // namespace

Engine::Engine(const Model& model, const Tokenizer& tokenizer, ThreadPool& pool, const EngineOptions& options,
               Metrics& metrics)
    : model_(model),
      pool_(pool),
      metrics_(metrics),
      options_(options),
      context_size_(clamp_context(model.config(), options.context_size)) {
  JM_CHECK(options.parallel >= 1 && options.prefill_chunk >= 1 && options.max_queue >= 0);
  for (int i = 0; i < options.parallel; ++i)
    slots_.push_back(std::make_unique<Slot>(model, tokenizer, context_size_, options.cache_type, metrics));
  publish_gauges();
}

Engine::~Engine() { stop(); }

void Engine::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { run(); });
}

void Engine::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  end_everything("the server is shutting down");
}

void Engine::submit(std::shared_ptr<Job> job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw ApiError(503, "the server is shutting down");
    // Free slots take waiting jobs at the next step: only the excess over them is a queue.
    const int64_t free_slots = int64_t(slots_.size()) - running_.load();
    if (int64_t(waiting_.size()) >= int64_t(options_.max_queue) + free_slots) {
      metrics_.count_request("rejected");
      throw ApiError(503, str_cat("the server is busy: ", waiting_.size(), " requests are waiting; try again later"),
                     "", "queue_full");
    }
    waiting_.push_back(std::move(job));
  }
  wake_.notify_all();
}

void Engine::run() {
  while (true) {
    {
      std::unique_lock lock(mutex_);
      const bool idle = waiting_.empty() && std::none_of(slots_.begin(), slots_.end(),
                                                         [](const auto& s) { return s->busy(); });
      if (idle && !stopping_) wake_.wait_for(lock, kIdlePoll);
      if (stopping_) break;
    }
    admit();
    step();
    publish_gauges();
  }
}

void Engine::admit() {
  std::lock_guard lock(mutex_);
  std::erase_if(waiting_, [&](const std::shared_ptr<Job>& job) {
    if (!job->cancelled()) return false;
    JobOutcome outcome;
    outcome.status = JobStatus::Cancelled;
    job->end(std::move(outcome));
    metrics_.count_request("cancelled");
    return true;
  });
  while (!waiting_.empty()) {
    // The free slot whose cache holds the longest prefix of the prompt.
    Slot* best = nullptr;
    size_t best_reuse = 0;
    for (const auto& slot : slots_) {
      if (slot->busy()) continue;
      const size_t reuse = slot->reusable_prefix(waiting_.front()->spec().prompt);
      if (!best || reuse > best_reuse) {
        best = slot.get();
        best_reuse = reuse;
      }
    }
    if (!best) return;
    best->assign(std::move(waiting_.front()));
    waiting_.pop_front();
    running_.fetch_add(1);
  }
}

void Engine::step() {
  std::vector<StepInput> batch;
  for (const auto& slot : slots_) {
    if (!slot->busy()) continue;
    if (slot->job()->cancelled()) {
      slot->cancel(JobStatus::Cancelled);
      continue;
    }
    batch.push_back({slot.get(), slot->next_input(options_.prefill_chunk)});
  }
  if (!batch.empty()) evaluate(batch);
}

void Engine::evaluate(const std::vector<StepInput>& batch) {
  std::vector<SequenceChunk> chunks;
  int64_t rows = 0;
  for (const StepInput& input : batch) {
    chunks.push_back({input.tokens, &input.slot->cache()});
    rows += int64_t(input.tokens.size());
  }
  const Clock::time_point start = Clock::now();
  bool batched = true;
  try {
    model_.forward_batch(chunks, logits_, pool_);
  } catch (const std::exception&) {
    batched = false;  // no cache has changed: redo the step slot by slot
  }
  {
    std::lock_guard lock(mutex_);
    stats_.forwards += 1;
    stats_.sequences += int64_t(batch.size());
    stats_.largest_batch = std::max(stats_.largest_batch, int64_t(batch.size()));
    stats_.fallbacks += batched ? 0 : 1;
  }
  if (!batched) {
    for (const StepInput& input : batch) evaluate_alone(input);
    return;
  }
  const double seconds = seconds_since(start);
  const int64_t V = model_.config().vocab_size;
  for (size_t b = 0; b < batch.size(); ++b) {
    const std::span<const float> row(logits_.data() + int64_t(b) * V, size_t(V));
    // Each sequence is charged the share of the forward its rows took.
    finish(batch[b], row, seconds * double(batch[b].tokens.size()) / double(rows));
  }
}

void Engine::evaluate_alone(const StepInput& input) {
  const Clock::time_point start = Clock::now();
  try {
    model_.forward(input.tokens, input.slot->cache(), logits_, pool_, LogitsMode::Last);
  } catch (const std::exception& e) {
    input.slot->fail(str_cat("the model failed on this request: ", e.what()));
    return;
  }
  finish(input, std::span<const float>(logits_.values), seconds_since(start));
}

void Engine::finish(const StepInput& input, std::span<const float> logits, double forward_seconds) {
  const bool prefill = input.slot->prefilling();
  const int64_t evaluated = int64_t(input.tokens.size());
  const Clock::time_point start = Clock::now();
  const bool sampled = input.slot->consume(size_t(evaluated), logits);
  const double seconds = forward_seconds + seconds_since(start);
  if (prefill) {
    metrics_.add_prompt_tokens(evaluated, seconds);
    if (sampled) metrics_.add_generated_tokens(1, 0.0);
  } else if (sampled) {
    metrics_.add_generated_tokens(1, seconds);
  }
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Engine::end_everything(const std::string& message) {
  // Only called once the engine thread is gone, so the slots are ours.
  for (const auto& slot : slots_)
    if (slot->busy()) slot->cancel(JobStatus::Failed, message);
  std::lock_guard lock(mutex_);
  for (const auto& job : waiting_) {
    JobOutcome outcome;
    outcome.status = JobStatus::Failed;
    outcome.error = message;
    job->end(std::move(outcome));
  }
  waiting_.clear();
}

void Engine::publish_gauges() {
  EngineGauges g;
  g.slots = int64_t(slots_.size());
  for (const auto& slot : slots_) {
    g.requests_running += slot->busy() ? 1 : 0;
    g.kv_cache_used_tokens += slot->used_positions();
    g.kv_cache_capacity_tokens += slot->context_size();
    g.kv_cache_bytes += int64_t(slot->cache_bytes());
  }
  {
    std::lock_guard lock(mutex_);
    g.requests_waiting = int64_t(waiting_.size());
  }
  running_.store(g.requests_running);
  metrics_.set_engine_gauges(g);
}

}  // namespace jetmoe::serve
