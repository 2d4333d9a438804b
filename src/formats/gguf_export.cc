#include "formats/gguf_export.h"

#include "core/error.h"
#include "formats/gguf.h"

namespace jetmoe {

std::vector<GgufExportTensor> plan_gguf_export(const JetMoeConfig& config, const TensorStore& store,
                                               const std::vector<std::string>& hf_names, GgufFileType type) {
  std::vector<GgufExportTensor> plan;
  for (const std::string& hf_name : hf_names) {
    const std::optional<std::string> gguf_name = gguf_tensor_name(hf_name);
    if (!gguf_name) fail(store.source(), ": tensor '", hf_name, "' is not a JetMoE parameter GGUF can name");
    const TensorView& view = store.get(hf_name);
    const int64_t row_length = view.shape.empty() ? 1 : view.shape.back();
    const DType to = gguf_storage_dtype(tensor_place(hf_name, config.num_layers), type, row_length, view.dtype,
                                        config.tie_word_embeddings);
    plan.push_back({hf_name, *gguf_name, view.shape, view.dtype, to, view.nbytes(), dtype_bytes(to, view.numel())});
  }
  return plan;
}

void convert_tensor(const TensorView& src, DType to, unsigned char* out, ThreadPool& pool) {
  const int64_t numel = src.numel();
  if (numel == 0) return;
  const int64_t cols = src.shape.back();
  JM_CHECK(cols % dtype_block_elems(src.dtype) == 0 && cols % dtype_block_elems(to) == 0, "rows of ", cols,
           " values between ", dtype_name(src.dtype), " and ", dtype_name(to));
  const size_t src_row_bytes = dtype_bytes(src.dtype, cols), dst_row_bytes = dtype_bytes(to, cols);
  const auto* in = static_cast<const unsigned char*>(src.data);
  pool.parallel_for(numel / cols, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      to_f32(src.dtype, in + size_t(r) * src_row_bytes, row.data(), size_t(cols));
      from_f32(to, row.data(), out + size_t(r) * dst_row_bytes, size_t(cols));
    }
  });
}

uint64_t write_gguf_export(const std::string& path, const JetMoeConfig& config, const TensorStore& store,
                           const std::vector<GgufExportTensor>& plan, const GgufExportOptions& options,
                           ThreadPool& pool) {
  GgufWriter writer;
  add_jetmoe_metadata(writer, config, options.name, options.type);
  add_tokenizer_metadata(writer, options.tokenizer);
  for (const GgufExportTensor& t : plan) {
    const TensorView& view = store.get(t.hf_name);
    if (view.dtype == t.to) {
      writer.add_tensor(t.gguf_name, view);  // copied byte for byte
    } else {
      writer.add_tensor(t.gguf_name, t.to, view.shape,
                        [&view, &pool, to = t.to](unsigned char* out) { convert_tensor(view, to, out, pool); });
    }
  }
  return writer.write(path);
}

}  // namespace jetmoe
