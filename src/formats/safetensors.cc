#include "formats/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <set>

#include "core/error.h"
#include "formats/byte_extents.h"
#include "formats/atomic_file.h"
#include "formats/json_strict.h"

namespace jetmoe {

using nlohmann::json;

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

constexpr const char* kMetadataKey = "__metadata__";

// Only the dtypes jetmoe.cpp computes with; the format has many more.
bool parse_safetensors_dtype(const std::string& name, DType* out) {
  if (name == "F32") { *out = DType::F32; return true; }
  if (name == "BF16") { *out = DType::BF16; return true; }
  if (name == "F16") { *out = DType::F16; return true; }
  return false;
}


// Reads one header entry, {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}; every
// message names the file and the tensor.
class EntryReader {
 public:
  EntryReader(const std::string& file, const std::string& name) : file_(file), name_(name) {}

  DType dtype(const json& entry) const {
    const json& value = field(entry, "dtype");
    if (!value.is_string()) problem("dtype must be a string, got ", json_type_phrase(value));
    DType dtype;
    if (!parse_safetensors_dtype(value.get<std::string>(), &dtype)) {
      problem("has dtype '", value.get<std::string>(), "', which jetmoe.cpp does not read (F32, BF16 or F16)");
    }
    return dtype;
  }

  Shape shape(const json& entry) const {
    const json& value = field(entry, "shape");
    if (!value.is_array()) problem("shape must be an array of integers, got ", json_type_phrase(value));
    Shape shape;
    for (const json& dim : value) {
      const uint64_t d = non_negative_integer(dim, "shape");
      if (d > uint64_t(std::numeric_limits<int64_t>::max())) problem("shape ", value.dump(), " has a dimension too large");
      shape.push_back(int64_t(d));
    }
    return shape;
  }

  // Bytes the shape needs. The product of the non-zero dimensions must fit in 64 bits even
  // when another dimension is 0, so that no running product over the shape can overflow.
  uint64_t byte_size(const Shape& shape, DType dtype) const {
    uint64_t bytes = dtype_size(dtype);
    bool has_zero = false;
    for (int64_t d : shape) {
      if (d == 0) has_zero = true;
      else if (__builtin_mul_overflow(bytes, uint64_t(d), &bytes)) {
        problem("shape ", shape_str(shape), " has more bytes than fit in 64 bits");
      }
    }
    // TensorView counts elements in int64.
    if (bytes / dtype_size(dtype) > uint64_t(std::numeric_limits<int64_t>::max())) {
      problem("shape ", shape_str(shape), " has too many elements");
    }
    return has_zero ? 0 : bytes;
  }

  ByteExtent extent(const json& entry, uint64_t needed_bytes, const Shape& shape, DType dtype,
                uint64_t data_size) const {
    const json& value = field(entry, "data_offsets");
    if (!value.is_array() || value.size() != 2) {
      problem("data_offsets must be an array [begin, end], got ", value.is_array() ? value.dump() : json_type_phrase(value));
    }
    const uint64_t begin = non_negative_integer(value[0], "data_offsets");
    const uint64_t end = non_negative_integer(value[1], "data_offsets");
    if (begin > end) problem("has data_offsets [", begin, ", ", end, "]: the beginning is after the end");
    if (end > data_size) problem("ends at byte ", end, " but the data section has ", data_size, " bytes");
    if (end - begin != needed_bytes) {
      problem("has ", end - begin, " bytes (data_offsets [", begin, ", ", end, "]) but shape ", shape_str(shape),
              " of ", dtype_name(dtype), " needs ", needed_bytes);
    }
    return ByteExtent{begin, end, name_};
  }

 private:
  template <typename... Parts>
  [[noreturn]] void problem(Parts&&... parts) const {
    fail(file_, ": tensor '", name_, "' ", std::forward<Parts>(parts)...);
  }

  const json& field(const json& entry, const char* key) const {
    auto it = entry.find(key);
    if (it == entry.end()) problem("has no '", key, "' in the header");
    return *it;
  }

  uint64_t non_negative_integer(const json& value, const char* what) const {
    if (value.is_number_unsigned()) return value.get<uint64_t>();
    if (value.is_number_integer()) problem(what, " has a negative value ", value.get<int64_t>());
    problem(what, " must hold integers, got ", json_type_phrase(value));
  }

  const std::string& file_;
  const std::string& name_;
};

std::map<std::string, std::string> read_metadata(const json& value, const std::string& file) {
  if (!value.is_object()) fail(file, ": __metadata__ must be an object of strings, got ", json_type_phrase(value));
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      fail(file, ": __metadata__ entry '", key, "' must be a string, got ", json_type_phrase(item));
    }
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const uint64_t file_size = file_.size();
  if (file_size < 8) {
    fail(path, ": file has ", file_size, " bytes, too short for the 8-byte header length of a safetensors file");
  }
  uint64_t header_size;
  std::memcpy(&header_size, file_.data(), 8);
  if (header_size > kSafetensorsMaxHeaderBytes) {
    fail(path, ": header length ", header_size, " is over the ", kSafetensorsMaxHeaderBytes,
         "-byte limit (not a safetensors file, or corrupt)");
  }
  if (header_size > file_size - 8) {
    fail(path, ": header length ", header_size, " runs past the end of the file (", file_size, " bytes)");
  }
  const std::string text(reinterpret_cast<const char*>(file_.data()) + 8, header_size);
  const json header = parse_json_strict(text, path, "header");
  if (!header.is_object()) fail(path, ": header must be a JSON object, got ", json_type_phrase(header));

  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = file_size - data_start;
  std::vector<ByteExtent> extents;
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      metadata_ = read_metadata(entry, path);
      continue;
    }
    if (!entry.is_object()) fail(path, ": tensor '", name, "' must be described by an object, got ", json_type_phrase(entry));
    const EntryReader reader(path, name);
    TensorView view;
    view.dtype = reader.dtype(entry);
    view.shape = reader.shape(entry);
    const uint64_t bytes = reader.byte_size(view.shape, view.dtype);
    extents.push_back(reader.extent(entry, bytes, view.shape, view.dtype, data_size));
    const unsigned char* bytes_at = file_.data() + data_start + extents.back().begin;
    if ((data_start + extents.back().begin) % dtype_size(view.dtype) != 0) {
      aligned_copies_.emplace_back(new uint64_t[(bytes + 7) / 8]);
      std::memcpy(aligned_copies_.back().get(), bytes_at, bytes);
      bytes_at = reinterpret_cast<const unsigned char*>(aligned_copies_.back().get());
    }
    view.data = bytes_at;
    tensors_.emplace(name, std::move(view));
  }
  check_no_overlap(std::move(extents), path);
}

namespace {

void check_writable(const std::string& path, const std::vector<NamedTensor>& tensors) {
  std::set<std::string_view> seen;
  for (const NamedTensor& t : tensors) {
    if (t.name.empty()) fail(path, ": cannot write a tensor with an empty name");
    if (t.name == kMetadataKey) fail(path, ": '", kMetadataKey, "' is reserved and cannot name a tensor");
    if (!seen.insert(t.name).second) fail(path, ": tensor '", t.name, "' is given twice");
    for (int64_t d : t.view.shape) {
      if (d < 0) fail(path, ": tensor '", t.name, "' has a negative dimension in ", shape_str(t.view.shape));
    }
    if (t.view.data == nullptr && t.view.numel() != 0) fail(path, ": tensor '", t.name, "' has no data");
    if (dtype_is_quantized(t.view.dtype)) {
      fail(path, ": tensor '", t.name, "' is ", dtype_name(t.view.dtype),
           ", which safetensors cannot hold (write a GGUF file with `jetmoe quantize`)");
    }
  }
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  check_writable(path, tensors);
  // Wider elements first keeps every tensor aligned to its element size (offsets start at a
  // multiple of 8); ties by name make the layout independent of the caller's order.
  std::vector<const NamedTensor*> order;
  for (const NamedTensor& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const NamedTensor* a, const NamedTensor* b) {
    const size_t sa = dtype_size(a->view.dtype), sb = dtype_size(b->view.dtype);
    return sa != sb ? sa > sb : a->name < b->name;
  });

  json header = json::object();  // an ordered map: names come out sorted
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const NamedTensor* t : order) {
    const uint64_t bytes = t->view.nbytes();
    header[t->name] = {{"dtype", std::string(dtype_name(t->view.dtype))},
                       {"shape", t->view.shape},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // e.g. a name that is not valid UTF-8
    fail(path, ": cannot encode the header: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + header size stays a multiple of 8
  const uint64_t header_size = text.size();

  AtomicFileWriter out(path);
  out.write(&header_size, 8);
  out.write(text.data(), text.size());
  for (const NamedTensor* t : order) out.write(t->view.data, t->view.nbytes());
  out.commit();
}

}  // namespace jetmoe
