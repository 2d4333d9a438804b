// A checkpoint directory in the HF layout: config.json plus model.safetensors, or shards
// listed by model.safetensors.index.json. Gives named tensor views across all files.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"

namespace jetmoe {

class TensorStore {
 public:
  // Opens `dir`/model.safetensors or the shards named by `dir`/model.safetensors.index.json.
  // Checks that every shard the index names exists, that each tensor is where the index says
  // and that no tensor name appears twice.
  static TensorStore open_dir(const std::string& dir);
  // A single safetensors file.
  static TensorStore open_file(const std::string& path);
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
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> file_of_;
};

// Writes tensors as `dir`/model.safetensors, or, when max_shard_bytes > 0 and the total is
// larger, as model-0000i-of-0000n.safetensors shards plus model.safetensors.index.json.
void write_checkpoint_tensors(const std::string& dir, const std::vector<NamedTensor>& tensors,
                              size_t max_shard_bytes = 0);

}  // namespace jetmoe
