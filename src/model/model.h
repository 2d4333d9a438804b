// The JetMoE forward pass (spec §1): embeddings, N blocks of mixture-of-attention and
// mixture-of-MLP-experts, final RMSNorm and the (tied) head. fp32 compute; weights in
// F32, BF16 or F16 are read in place from the checkpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "formats/checkpoint.h"
#include "formats/hf_config.h"
#include "kernels/ops.h"
#include "model/kv_cache.h"
#include "model/mixture_of_attention.h"
#include "model/tape.h"
#include "model/weights.h"

namespace jetmoe {

// Receives named intermediates, e.g. ("attn_router_logits", layer, [T, E]); for diffing a
// layer against the reference. Layer is -1 for model-level tensors.
class ForwardObserver {
 public:
  virtual ~ForwardObserver() = default;
  virtual void observe(const char* name, int layer, const float* data, const Shape& shape) = 0;
};

enum class LogitsMode { All, Last };

// One sequence of a batched forward: tokens to run at positions cache->length() ... of its own
// KV cache, which receives their K/V.
struct SequenceChunk {
  std::span<const int32_t> tokens;
  KvCache* cache = nullptr;
};

class Model {
 public:
  // Loads an HF-layout directory (config.json + safetensors) or a JetMoE .gguf file.
  static std::unique_ptr<Model> load(const std::string& path);
  Model(JetMoeConfig config, TensorStore store);

  const JetMoeConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }

  // Runs `tokens` at positions cache.length() ... and appends their K/V to `cache`.
  // logits: [T, V] (All) or [1, V] (Last). Throws on ids outside the vocabulary or when the
  // cache (or max_position_embeddings) would overflow.
  // A training forward passes a tape: it records what backward() needs and requires an empty
  // cache (the whole sequence from position 0) and LogitsMode::All. A tape (and logits) kept
  // from a previous forward lends its buffers to this one, so training steps reuse their memory.
  void forward(std::span<const int32_t> tokens, KvCache& cache, FloatTensor& logits, ThreadPool& pool,
               LogitsMode mode = LogitsMode::All, ForwardObserver* observer = nullptr,
               ForwardTape* tape = nullptr) const;

  // Several sequences in one forward (continuous batching): the rows of every chunk are stacked
  // into one residual stream, so each weight product (routers, projections, the experts' grouped
  // products, the head) runs once for the whole batch; only the attention core runs per
  // sequence, on its own cache at its own positions. Chunks may mix prefill (many tokens) and
  // decoding (one). last_logits: [B, V], row b from the last token of chunk b. Each chunk is
  // checked as forward() checks its input, all before any compute: on a throw (the message
  // names the chunk) no cache has changed. Every row equals forward() of that chunk alone, up to
  // float rounding (the products' blocking depends on how many rows they get).
  void forward_batch(std::span<const SequenceChunk> chunks, FloatTensor& last_logits, ThreadPool& pool) const;

  KvCache make_cache(int64_t capacity, DType type = DType::F32) const { return KvCache(config_, capacity, type); }

  // How the weight products of forward() treat activations (ops::Activations): fp32 by
  // default; BF16 runs prefill on bf16 dot products with HF's bf16 rounding.
  void set_matmul_options(const ops::MatmulOptions& options) { matmul_options_ = options; }
  const ops::MatmulOptions& matmul_options() const { return matmul_options_; }

 private:
  JetMoeConfig config_;
  TensorStore store_;
  ModelWeights weights_;
  ops::MatmulOptions matmul_options_;

  // Throws unless `tokens` can run at the end of `cache`; messages start with `where`.
  void check_input(std::span<const int32_t> tokens, const KvCache& cache, const std::string& where) const;
  // The shared body of forward() and forward_batch(): embeds `tokens` (the segments' rows
  // stacked) and runs every block, writing K/V to the segments' caches without advancing them.
  // Returns the residual stream [T, d] that enters the final norm.
  std::vector<float> run_blocks(std::span<const int32_t> tokens, std::span<const AttentionSegment> segments,
                                ThreadPool& pool, ForwardObserver* observer, ForwardTape* tape) const;
  // Final norm of `rows` rows of x (contiguous) into `normed`, then the head into logits [rows, V].
  void head(const float* x, int64_t rows, std::vector<float>& normed, FloatTensor& logits, ThreadPool& pool) const;
};

}  // namespace jetmoe
