// Named tensor views of a checkpoint: a directory in the HF layout (config.json plus
// model.safetensors, or shards listed by model.safetensors.index.json) or a JetMoE GGUF file.
// Tensors always go by their HF names.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"

namespace jetmoe {

class GgufFile;

class TensorStore {
 public:
  // Opens `dir`/model.safetensors or the shards named by `dir`/model.safetensors.index.json.
  // Checks that every shard the index names exists, that each tensor is where the index says
  // and that no tensor name appears twice.
  static TensorStore open_dir(const std::string& dir);
  // A single safetensors file.
  static TensorStore open_file(const std::string& path);
  // A JetMoE GGUF file (docs/gguf.md): its tensors, zero-copy from the map, under their HF names.
  // Throws naming the file and tensor for a name that is not a JetMoE parameter.
  static TensorStore open_gguf(const std::string& path);
  // The same, for a file already open (e.g. one whose metadata gave the config); the store keeps it alive.
  static TensorStore from_gguf(std::shared_ptr<const GgufFile> file);
  // Views of memory the caller owns and keeps alive (e.g. a trainer's fp32 master weights, which
  // the model then reads in place). `source` names them in error messages.
  static TensorStore from_views(const std::vector<NamedTensor>& tensors, const std::string& source);

  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws an Error naming the tensor (and where it was looked for) if absent.
  const TensorView& get(const std::string& name) const;
  std::vector<std::string> names() const;
  // Which file holds the tensor (for error messages).
  const std::string& file_of(const std::string& name) const;
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::shared_ptr<const GgufFile> gguf_;  // the map the views of a GGUF store point into
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> file_of_;
};

// Writes tensors as `dir`/model.safetensors, or, when max_shard_bytes > 0 and the total is
// larger, as model-0000i-of-0000n.safetensors shards plus model.safetensors.index.json.
void write_checkpoint_tensors(const std::string& dir, const std::vector<NamedTensor>& tensors,
                              size_t max_shard_bytes = 0);

// What a tensor will be, before its bytes exist.
struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  size_t nbytes() const { return dtype_bytes(dtype, shape_numel(shape)); }
};

// Returns the tensors specs[begin, end) in that order; their views must stay valid until the
// producer is called again (or the write returns).
using ShardProducer = std::function<std::vector<NamedTensor>(size_t begin, size_t end)>;

// write_checkpoint_tensors for models too large to hold in memory twice: the layout is planned
// from `specs`, then each shard's tensors are asked of `produce`, once, in order, and written
// before the next shard's are asked for (one call for an unsharded checkpoint).
void write_checkpoint_streamed(const std::string& dir, const std::vector<TensorSpec>& specs, size_t max_shard_bytes,
                               const ShardProducer& produce);

}  // namespace jetmoe
