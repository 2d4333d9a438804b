// The byte ranges tensors claim in a file's data section. A hostile header can point two tensors
// at the same bytes; both the safetensors and the GGUF reader refuse that with this check.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace jetmoe {

struct ByteExtent {
  uint64_t begin;
  uint64_t end;
  std::string name;  // as it may appear in an error message (already made printable)
};

// Throws an Error naming `file` and both tensors if any two non-empty extents overlap.
void check_no_overlap(std::vector<ByteExtent> extents, const std::string& file);

}  // namespace jetmoe
