#include "formats/byte_extents.h"

#include <algorithm>

#include "core/error.h"

namespace jetmoe {

// Sorted by start, any overlap shows up between neighbours.
void check_no_overlap(std::vector<ByteExtent> extents, const std::string& file) {
  std::erase_if(extents, [](const ByteExtent& e) { return e.begin == e.end; });  // no bytes, no overlap
  std::sort(extents.begin(), extents.end(), [](const ByteExtent& a, const ByteExtent& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < extents.size(); ++i) {
    const ByteExtent& before = extents[i - 1];
    const ByteExtent& after = extents[i];
    if (after.begin < before.end) {
      fail(file, ": tensors '", before.name, "' (bytes ", before.begin, "..", before.end, ") and '", after.name,
           "' (bytes ", after.begin, "..", after.end, ") overlap in the data section");
    }
  }
}

}  // namespace jetmoe
