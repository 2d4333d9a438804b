// The GGUF writer: the header (metadata, tensor infos) is built in memory, then the tensors are
// produced and written one at a time, each at an offset that is a multiple of the alignment.
#include <algorithm>
#include <bit>
#include <cstring>
#include <set>

#include "core/error.h"
#include "formats/atomic_file.h"
#include "formats/gguf.h"

namespace jetmoe {

namespace {

uint64_t align_up(uint64_t offset, uint64_t alignment) { return offset + (alignment - offset % alignment) % alignment; }

// Appends little-endian values to the header being built.
class HeaderBytes {
 public:
  template <typename T>
  void put(T value) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    out_.append(bytes, sizeof(T));
  }
  void put_string(std::string_view text) {
    put<uint64_t>(text.size());
    out_.append(text);
  }
  void put_value(const GgufValue& value) {
    switch (value.type) {
      case GgufType::kString: put_string(value.text); return;
      case GgufType::kArray: put_array(value); return;
      default: out_.append(reinterpret_cast<const char*>(&value.bits), gguf_type_size(value.type)); return;
    }
  }
  std::string& bytes() { return out_; }

 private:
  void put_array(const GgufValue& array) {
    put<uint32_t>(uint32_t(array.array_type));
    put<uint64_t>(array.array_size);
    if (array.array_type == GgufType::kString) {
      for (const std::string& s : array.strings) put_string(s);
    } else if (array.array_type == GgufType::kArray) {
      for (const GgufValue& inner : array.arrays) put_value(inner);
    } else {
      out_.append(array.packed);
    }
  }

  std::string out_;
};

// A value the writer can serialize as declared (a hand-built GgufValue could be inconsistent).
void check_value(const std::string& key, const GgufValue& value, int depth) {
  if (value.type > GgufType::kFloat64) fail("GGUF metadata '", key, "': invalid value type ", uint32_t(value.type));
  if (value.type != GgufType::kArray) return;
  if (depth >= kGgufMaxArrayDepth) fail("GGUF metadata '", key, "': arrays nested more than ", kGgufMaxArrayDepth, " deep");
  const GgufType element = value.array_type;
  if (element > GgufType::kFloat64) fail("GGUF metadata '", key, "': invalid array element type ", uint32_t(element));
  const uint64_t held = element == GgufType::kString ? value.strings.size()
                        : element == GgufType::kArray ? value.arrays.size()
                                                      : value.packed.size() / gguf_type_size(element);
  if (held != value.array_size || (gguf_type_size(element) > 0 && value.packed.size() % gguf_type_size(element) != 0)) {
    fail("GGUF metadata '", key, "': the array declares ", value.array_size, " elements but holds ", held);
  }
  for (const GgufValue& inner : value.arrays) check_value(key, inner, depth + 1);
}

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  if (alignment < 8 || alignment > kGgufMaxAlignment || !std::has_single_bit(alignment)) {
    fail("GGUF alignment ", alignment, " must be a power of two from 8 to ", kGgufMaxAlignment);
  }
}

void GgufWriter::set(std::string key, GgufValue value) {
  if (key.empty() || key.size() > kGgufMaxKeyBytes) fail("GGUF metadata key of ", key.size(), " bytes (1 to 65535 allowed)");
  for (const char c : key) {
    if (c < 0x20 || c > 0x7e) fail("GGUF metadata key '", key, "' is not printable ASCII");
  }
  for (const GgufKeyValue& kv : metadata_) {
    if (kv.key == key) fail("GGUF metadata '", key, "' is set twice");
  }
  check_value(key, value, 0);
  if (key == "general.alignment" && !(value.type == GgufType::kUint32 && value.bits == alignment_)) {
    fail("GGUF metadata 'general.alignment' must be the writer's alignment, uint32 ", alignment_);
  }
  metadata_.push_back({std::move(key), std::move(value)});
}

void GgufWriter::check_tensor(const std::string& name, DType dtype, const Shape& shape) const {
  if (name.empty() || name.size() > kGgufMaxTensorNameBytes) {
    fail("GGUF tensor name '", name, "' has ", name.size(), " bytes (1 to ", kGgufMaxTensorNameBytes, " allowed)");
  }
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) fail("GGUF tensor '", name, "' is added twice");
  }
  if (shape.empty() || shape.size() > kGgufMaxDims) {
    fail("GGUF tensor '", name, "' has ", shape.size(), " dimensions (1 to ", kGgufMaxDims, " allowed)");
  }
  for (const int64_t d : shape) {
    if (d < 0) fail("GGUF tensor '", name, "' has a negative dimension in ", shape_str(shape));
  }
  if (shape.back() % dtype_block_elems(dtype) != 0) {
    fail("GGUF tensor '", name, "': rows of ", shape.back(), " values cannot be stored as ", dtype_name(dtype),
         " (a multiple of ", dtype_block_elems(dtype), " is needed)");
  }
}

void GgufWriter::add_tensor(std::string name, DType dtype, Shape shape, FillBytes fill) {
  check_tensor(name, dtype, shape);
  const uint64_t bytes = dtype_bytes(dtype, shape_numel(shape));
  tensors_.push_back({std::move(name), dtype, std::move(shape), bytes, std::move(fill), nullptr});
}

void GgufWriter::add_tensor(std::string name, const TensorView& view) {
  check_tensor(name, view.dtype, view.shape);
  if (view.data == nullptr && view.numel() != 0) fail("GGUF tensor '", name, "' has no data");
  tensors_.push_back({std::move(name), view.dtype, view.shape, view.nbytes(), nullptr, view.data});
}

uint64_t GgufWriter::write(const std::string& path) const {
  if (std::none_of(metadata_.begin(), metadata_.end(), [](const GgufKeyValue& kv) { return kv.key == "general.alignment"; }) &&
      alignment_ != kGgufDefaultAlignment) {
    fail(path, ": a GGUF alignment other than ", kGgufDefaultAlignment, " must be written as general.alignment");
  }
  HeaderBytes header;
  header.bytes().append("GGUF", 4);
  header.put<uint32_t>(kGgufVersion);
  header.put<uint64_t>(tensors_.size());
  header.put<uint64_t>(metadata_.size());
  for (const GgufKeyValue& kv : metadata_) {
    header.put_string(kv.key);
    header.put<uint32_t>(uint32_t(kv.value.type));
    header.put_value(kv.value);
  }
  std::vector<uint64_t> offsets;
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    header.put_string(t.name);
    header.put<uint32_t>(uint32_t(t.shape.size()));
    for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) header.put<uint64_t>(uint64_t(*d));  // ne[0] first
    header.put<uint32_t>(ggml_type_of(t.dtype));
    header.put<uint64_t>(offset);
    offsets.push_back(offset);
    offset = align_up(offset + t.bytes, alignment_);
  }
  std::string& bytes = header.bytes();
  bytes.resize(align_up(bytes.size(), alignment_), '\0');

  AtomicFileWriter out(path);
  out.write(bytes.data(), bytes.size());
  uint64_t written = 0;
  const std::string padding(alignment_, '\0');
  std::vector<unsigned char> buffer;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const PendingTensor& t = tensors_[i];
    out.write(padding.data(), size_t(offsets[i] - written));
    if (t.bytes == 0) {
      // nothing to produce
    } else if (t.fill) {
      buffer.assign(size_t(t.bytes), 0);
      t.fill(buffer.data());
      out.write(buffer.data(), buffer.size());
    } else {
      out.write(t.data, size_t(t.bytes));
    }
    written = offsets[i] + t.bytes;
  }
  // ggml pads every tensor, the last one too, and some readers load the padded size.
  out.write(padding.data(), size_t(offset - written));
  written = offset;
  out.commit();
  return bytes.size() + written;
}

}  // namespace jetmoe
