// Helpers shared by the JetMoE GGUF tests: a random checkpoint, its export to GGUF, the bytes a
// conversion should give, and a model run against a float32 copy of its decoded weights.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "format_test_util.h"
#include "formats/gguf_export.h"
#include "formats/model_files.h"
#include "model/model.h"
#include "model/weights.h"
#include "runtime/random_checkpoint.h"

namespace jetmoe::testing {

// The HF names of every parameter of `config`, in param_specs() order (the export's file order).
inline std::vector<std::string> param_names(const JetMoeConfig& config) {
  std::vector<std::string> names;
  for (const ParamSpec& spec : param_specs(config)) names.push_back(spec.name);
  return names;
}

// Writes the random checkpoint directory `dir`/`name` of `config`, stored as config.torch_dtype.
inline std::string write_checkpoint(const TempDir& dir, const std::string& name, const JetMoeConfig& config,
                                    uint64_t seed) {
  RandomCheckpointOptions options;
  options.seed = seed;
  options.dtype = config.torch_dtype;
  write_random_checkpoint(config, dir.file(name), options);
  return dir.file(name);
}

// Exports the model at `model_dir` (with its tokenizer, if it has one) to `path` as a GGUF file
// of type `type` whose general.name is `name`, converting on `threads` threads; returns `path`.
inline std::string export_gguf(const std::string& model_dir, GgufFileType type, const std::string& path,
                               const std::string& name, int threads = 2) {
  const ModelFiles model = open_model_files(model_dir);
  ThreadPool pool(threads);
  GgufExportOptions options;
  options.type = type;
  options.name = name;
  options.tokenizer = read_model_tokenizer_data(model_dir);
  const auto plan = plan_gguf_export(model.config, model.store, param_names(model.config), type);
  write_gguf_export(path, model.config, model.store, plan, options, pool);
  return path;
}

// The expected bytes of `src` converted to `to`, over the whole tensor at once (the export
// converts row by row on several threads; quantized blocks never straddle rows, so they agree).
inline std::vector<unsigned char> expected_bytes(const TensorView& src, DType to) {
  std::vector<float> values(size_t(src.numel()));
  to_f32(src.dtype, src.data, values.data(), values.size());
  std::vector<unsigned char> out(dtype_bytes(to, src.numel()));
  from_f32(to, values.data(), out.data(), values.size());
  return out;
}

// The logits of every position of `ids`, run through the model of `files` on 2 threads.
inline FloatTensor run_logits(ModelFiles files, const std::vector<int32_t>& ids) {
  const Model model(files.config, std::move(files.store));
  ThreadPool pool(2);
  KvCache cache = model.make_cache(int64_t(ids.size()));
  FloatTensor logits;
  model.forward(ids, cache, logits, pool, LogitsMode::All);
  return logits;
}

// A float32 copy of every tensor of a store, holding exactly the values its blocks decode to:
// the reference a quantized file's model is compared with. The stores it hands out read these
// copies in place, so it must outlive them.
class DequantizedWeights {
 public:
  explicit DequantizedWeights(const TensorStore& store) {
    const std::vector<std::string> names = store.names();
    values_.reserve(names.size());  // the views below point into these vectors
    for (const std::string& name : names) {
      const TensorView& view = store.get(name);
      values_.emplace_back(size_t(view.numel()));
      to_f32(view.dtype, view.data, values_.back().data(), values_.back().size());
      tensors_.push_back({name, TensorView{DType::F32, view.shape, values_.back().data()}});
    }
  }
  DequantizedWeights(const DequantizedWeights&) = delete;
  DequantizedWeights& operator=(const DequantizedWeights&) = delete;

  // A model of `config` on the float32 copies.
  ModelFiles model_files(const JetMoeConfig& config) const {
    return ModelFiles{"dequantized", false, config, TensorStore::from_views(tensors_, "dequantized"), ""};
  }

 private:
  std::vector<std::vector<float>> values_;
  std::vector<NamedTensor> tensors_;
};

// How far `got` is from `expected`: the largest absolute difference, and the RMS of `expected`
// that the tests scale their bound by.
struct LogitsGap {
  double max_diff = 0;
  double rms = 0;
};

inline LogitsGap logits_gap(const FloatTensor& got, const FloatTensor& expected) {
  double sum_sq = 0, max_diff = 0;
  for (size_t k = 0; k < got.values.size(); ++k) {
    sum_sq += double(expected.values[k]) * expected.values[k];
    max_diff = std::max(max_diff, std::fabs(double(got.values[k]) - expected.values[k]));
  }
  return {max_diff, std::sqrt(sum_sq / double(got.values.size()))};
}

}  // namespace jetmoe::testing
