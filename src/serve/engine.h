// The engine: one thread that owns the model's compute, fed by a bounded queue of jobs, with
// N slots decoded together (continuous batching). Each step:
//   1. drop the jobs whose requesters went away, move waiting jobs into free slots;
//   2. evaluate every busy slot in one batched forward (Model::forward_batch): a chunk of its
//      prompt while it prefills (so a long prompt cannot stall the streams already running),
//      else its last sampled token; each sequence attends over its own KV cache;
//   3. sample one token per slot that finished its prompt or decoded, and stream it out.
// New requests join between steps. If the batched forward throws, the step is redone slot by
// slot, so only the request that cannot run fails.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "formats/tokenizer/tokenizer.h"
#include "model/model.h"
#include "serve/job.h"
#include "serve/metrics.h"
#include "serve/slot.h"

namespace jetmoe::serve {

// What the engine has done so far (for tests and diagnostics).
struct EngineStats {
  int64_t forwards = 0;        // batched forwards run (one per step with work)
  int64_t sequences = 0;       // sequences evaluated in them, summed
  int64_t largest_batch = 0;   // most sequences in one forward
  int64_t fallbacks = 0;       // steps whose batched forward threw and were redone slot by slot
};

struct EngineOptions {
  int parallel = 1;
  int64_t context_size = 0;  // per slot; <= 0 or beyond max_position_embeddings: the latter
  DType cache_type = DType::F32;  // of every slot's KV cache: F32 or F16
  int max_queue = 64;        // jobs waiting for a slot
  int prefill_chunk = 128;
};

class Engine {
 public:
  // The model, tokenizer, pool and metrics must outlive the engine.
  Engine(const Model& model, const Tokenizer& tokenizer, ThreadPool& pool, const EngineOptions& options,
         Metrics& metrics);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void start();
  // Ends every running and waiting job (status Failed, "the server is shutting down") and
  // joins the engine thread. Idempotent.
  void stop();

  // Queues a job. Throws ApiError 503 when the queue is full or the engine is stopping.
  void submit(std::shared_ptr<Job> job);

  int64_t context_size() const { return context_size_; }
  EngineStats stats() const;

 private:
  struct StepInput {
    Slot* slot;
    std::span<const int32_t> tokens;
  };

  void run();
  void admit();
  void step();
  // Evaluates every input on its slot's cache in one batched forward; calls each slot back
  // with the logits of its last position.
  void evaluate(const std::vector<StepInput>& batch);
  // One input alone (after a batched forward threw): a failure fails only this slot.
  void evaluate_alone(const StepInput& input);
  // Hands the slot its logits (it samples) and records the tokens and seconds in the metrics;
  // `forward_seconds` is this input's share of the forward.
  void finish(const StepInput& input, std::span<const float> logits, double forward_seconds);
  void end_everything(const std::string& message);
  void publish_gauges();

  const Model& model_;
  ThreadPool& pool_;
  Metrics& metrics_;
  const EngineOptions options_;
  const int64_t context_size_;
  std::vector<std::unique_ptr<Slot>> slots_;
  FloatTensor logits_;  // [B, V] of the last evaluation, row b for batch input b

  mutable std::mutex mutex_;
  EngineStats stats_;  // guarded by mutex_
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> waiting_;
  bool stopping_ = false;
  std::atomic<int64_t> running_{0};  // busy slots as of the last step, for the queue bound
  std::thread thread_;
};

}  // namespace jetmoe::serve
