// The JetMoE forward pass (spec §1): embeddings, N blocks of mixture-of-attention and
// mixture-of-MLP-experts, final RMSNorm and the (tied) head. fp32 compute; weights in
// F32, BF16 or F16 are read in place from the checkpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/parallel.h"
#include "core/tensor.h"
#include "formats/checkpoint.h"
#include "formats/hf_config.h"
#include "kernels/ops.h"
#include "model/kv_cache.h"
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

class Model {
 public:
  // Loads config.json and the safetensors weights of an HF-layout directory.
  static std::unique_ptr<Model> load(const std::string& dir);
  Model(JetMoeConfig config, TensorStore store);

  const JetMoeConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }

  // Runs `tokens` at positions cache.length() ... and appends their K/V to `cache`.
  // logits: [T, V] (All) or [1, V] (Last). Throws on ids outside the vocabulary or when the
  // cache (or max_position_embeddings) would overflow.
  // A training forward passes a tape: it records what backward() needs and requires an empty
  // cache (the whole sequence from position 0) and LogitsMode::All.
  void forward(std::span<const int32_t> tokens, KvCache& cache, FloatTensor& logits, ThreadPool& pool,
               LogitsMode mode = LogitsMode::All, ForwardObserver* observer = nullptr,
               ForwardTape* tape = nullptr) const;

  KvCache make_cache(int64_t capacity) const { return KvCache(config_, capacity); }

  // How the weight products of forward() treat activations (ops::Activations): fp32 by
  // default; BF16 runs prefill on bf16 dot products with HF's bf16 rounding.
  void set_matmul_options(const ops::MatmulOptions& options) { matmul_options_ = options; }
  const ops::MatmulOptions& matmul_options() const { return matmul_options_; }

 private:
  JetMoeConfig config_;
  TensorStore store_;
  ModelWeights weights_;
  ops::MatmulOptions matmul_options_;
};

}  // namespace jetmoe
