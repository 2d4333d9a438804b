// safetensors: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.
// The reader maps the file and hands out zero-copy views after validating everything a
// hostile file can lie about; every error names the file, the tensor and the problem.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace jetmoe {

class SafetensorsFile {
 public:
  // Throws jetmoe::Error on any malformed input.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MappedFile file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct NamedTensor {
  std::string name;
  TensorView view;  // the bytes are written as they are, in view.dtype
};

// Writes a safetensors file atomically (temporary file, then rename).
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace jetmoe
