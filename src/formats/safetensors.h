// safetensors: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.
// The reader maps the file and hands out zero-copy views after validating everything a
// hostile file can lie about; every error names the file, the tensor and the problem.
#pragma once

#include <cstdint>
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
  // Tensors whose bytes are not aligned to their element size in the map (legal in the format,
  // e.g. an unpadded header) are copied here so that every view can be read as typed memory.
  std::vector<std::unique_ptr<uint64_t[]>> aligned_copies_;
};

// Header lengths above this are refused as corrupt (the limit the reference implementation uses).
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

struct NamedTensor {
  std::string name;
  TensorView view;  // the bytes are written as they are, in view.dtype
};

// Writes a safetensors file atomically (temporary file, then rename). The header lists the
// names sorted; data is laid out by decreasing element size, then name, so every tensor is
// aligned to its element size; the header is padded with spaces to a multiple of 8 bytes.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace jetmoe
