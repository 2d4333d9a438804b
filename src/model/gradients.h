// Gradients of the loss with respect to every parameter: one fp32 buffer per ParamSpec, under its
// HF name, plus pointers laid out like ModelWeights for the backward pass to accumulate into.
#pragma once

#include <string>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "model/weights.h"

namespace jetmoe {

struct LayerGradients {  // shapes as in LayerWeights
  float* input_norm;
  float* attn_router;
  float* attn_q;
  float* attn_o;
  float* attn_bias;
  float* kv_proj;
  float* post_norm;
  float* mlp_router;
  float* mlp_in;
  float* mlp_out;
  float* mlp_bias;
};

class Gradients {
 public:
  // All zeros, one buffer per param_specs(config) entry.
  explicit Gradients(const JetMoeConfig& config);
  Gradients(Gradients&&) = default;  // buffers move with their storage, so the pointers stay valid
  Gradients(const Gradients&) = delete;
  Gradients& operator=(const Gradients&) = delete;

  void zero(ThreadPool& pool);  // all zeros again, the pages shared among the pool threads
  const std::vector<ParamSpec>& specs() const { return specs_; }
  // Buffer i holds the gradient of specs()[i].
  const FloatTensor& tensor(size_t i) const { return tensors_[i]; }
  FloatTensor& tensor(size_t i) { return tensors_[i]; }
  // Throws naming the parameter if the model has no such tensor.
  const FloatTensor& get(const std::string& name) const;
  // F32 views under the HF names, e.g. for write_safetensors.
  std::vector<NamedTensor> named() const;

  float* embed;       // [V, d]; also receives the head's gradient when tied
  float* lm_head;     // [V, d]; == embed when tie_word_embeddings
  float* final_norm;  // [d]
  std::vector<LayerGradients> layers;

 private:
  std::vector<ParamSpec> specs_;
  std::vector<FloatTensor> tensors_;
};

}  // namespace jetmoe
