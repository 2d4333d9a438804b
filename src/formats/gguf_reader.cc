// The GGUF reader: maps the file, parses the header with a bounds-checked cursor and validates
// every count, length, type, shape and offset before handing out views into the map.
#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include "core/error.h"
#include "formats/byte_extents.h"
#include "formats/gguf.h"

namespace jetmoe {

static_assert(std::endian::native == std::endian::little, "GGUF files are read as little-endian");

namespace {

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint64_t kHeaderBytes = 4 + 4 + 8 + 8;
// The fewest bytes one metadata entry (u64 key length, u32 type, a 1-byte value) and one tensor
// info (u64 name length, u32 n_dims, u32 type, u64 offset) can take; they bound the counts.
constexpr uint64_t kMinEntryBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;

// Names and keys as they may appear in a message: control and non-ASCII bytes escaped, long ones cut.
std::string printable(std::string_view text) {
  constexpr size_t kMaxShown = 80;
  std::string out;
  for (size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (text.size() > kMaxShown) out += str_cat("... (", text.size(), " bytes)");
  return out;
}

// Reads the header front to back. Every read is bounds-checked; a read past the end reports what
// was being read (the context: "metadata key 'x'", "tensor 'y'") and where.
class Cursor {
 public:
  Cursor(const unsigned char* data, uint64_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

  uint64_t position() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& path() const { return path_; }
  const std::string& context() const { return context_; }
  void set_context(std::string context) { context_ = std::move(context); }

  template <typename... Parts>
  [[noreturn]] void problem(Parts&&... parts) const {
    fail(path_, ": ", context_, ": ", std::forward<Parts>(parts)...);
  }

  template <typename T>
  T read() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  std::string_view read_bytes(uint64_t n) {
    need(n);
    const std::string_view bytes(reinterpret_cast<const char*>(data_ + pos_), size_t(n));
    pos_ += n;
    return bytes;
  }

  // A GGUF string: u64 length, then the bytes. `what` names it in the length-limit message.
  std::string_view read_string(uint64_t max_bytes, std::string_view what) {
    const uint64_t length = read<uint64_t>();
    if (length > max_bytes) problem(what, " length ", length, " is over the limit of ", max_bytes, " bytes");
    if (length > remaining()) {
      problem(what, " of ", length, " bytes at offset ", pos_, " runs past the end of the file (", size_, " bytes)");
    }
    return read_bytes(length);
  }

 private:
  void need(uint64_t n) const {
    if (n > remaining()) {
      problem("the file is truncated: ", n, " bytes needed at offset ", pos_, " but the file has ", size_);
    }
  }

  const unsigned char* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& path_;
  std::string context_ = "header";
};

GgufType read_value_type(Cursor& in, std::string_view what) {
  const uint32_t id = in.read<uint32_t>();
  if (id > uint32_t(GgufType::kFloat64)) in.problem("unknown ", what, " ", id, " (GGUF defines 0..12)");
  return GgufType(id);
}

// Metadata values, with a budget on the strings and arrays held over the whole file.
class ValueReader {
 public:
  explicit ValueReader(Cursor& in) : in_(in) {}

  GgufValue read(GgufType type, int depth) {
    GgufValue value;
    value.type = type;
    if (type == GgufType::kString) {
      value.text = in_.read_string(kGgufMaxStringBytes, "string");
    } else if (type == GgufType::kArray) {
      read_array(value, depth + 1);
    } else {
      const std::string_view bytes = in_.read_bytes(gguf_type_size(type));
      std::memcpy(&value.bits, bytes.data(), bytes.size());
      if (type == GgufType::kBool && value.bits > 1) in_.problem("bool value ", value.bits, " (must be 0 or 1)");
    }
    return value;
  }

 private:
  void read_array(GgufValue& array, int depth) {
    if (depth > kGgufMaxArrayDepth) in_.problem("arrays nested more than ", kGgufMaxArrayDepth, " deep");
    array.array_type = read_value_type(in_, "array element type");
    array.array_size = in_.read<uint64_t>();
    const uint64_t count = array.array_size;
    const GgufType element = array.array_type;
    const size_t element_size = gguf_type_size(element);
    // Each element takes at least this many bytes of the file, which bounds the count.
    const uint64_t min_element_bytes = element_size > 0 ? element_size : element == GgufType::kString ? 8 : 12;
    if (count > in_.remaining() / min_element_bytes) {
      in_.problem("array of ", count, " ", gguf_type_name(element), " values cannot fit in the ",
                  in_.remaining(), " bytes left in the file");
    }
    if (element_size > 0) {
      array.packed = in_.read_bytes(count * element_size);
      if (element == GgufType::kBool) {
        for (uint64_t i = 0; i < count; ++i) {
          const auto b = static_cast<unsigned char>(array.packed[i]);
          if (b > 1) in_.problem("element ", i, " of the bool array is ", int(b), " (must be 0 or 1)");
        }
      }
      return;
    }
    if (count > kGgufMaxArrayItems - items_) {
      in_.problem("array of ", count, " ", gguf_type_name(element), " values is over the limit of ", kGgufMaxArrayItems,
                  " strings and arrays in all the metadata");
    }
    items_ += count;
    if (element == GgufType::kString) {
      array.strings.reserve(size_t(count));
      for (uint64_t i = 0; i < count; ++i) array.strings.emplace_back(in_.read_string(kGgufMaxStringBytes, "string"));
    } else {
      array.arrays.reserve(size_t(count));
      for (uint64_t i = 0; i < count; ++i) array.arrays.push_back(read(GgufType::kArray, depth));
    }
  }

  Cursor& in_;
  uint64_t items_ = 0;
};

// Keys are ASCII per the spec; we refuse control characters too so that every message can show them.
void check_key(const Cursor& in, std::string_view key) {
  if (key.empty()) in.problem("empty key");
  for (const char c : key) {
    if (c < 0x20 || c > 0x7e) in.problem("key '", printable(key), "' is not printable ASCII");
  }
}

uint32_t read_alignment(const GgufValue& value, const std::string& path) {
  if (value.type != GgufType::kUint32) {
    fail(path, ": metadata 'general.alignment' must be a uint32, got ", value.type_phrase());
  }
  const uint32_t alignment = uint32_t(value.bits);
  if (alignment < 8 || alignment > kGgufMaxAlignment || !std::has_single_bit(alignment)) {
    fail(path, ": metadata 'general.alignment' is ", alignment, "; it must be a power of two from 8 to ",
         kGgufMaxAlignment);
  }
  return alignment;
}

// Reads one tensor info: name, dims, type and offset, all checked except the offset's extent
// (the data section is known only after the last info).
GgufTensor read_tensor_info(Cursor& in, uint64_t index, uint32_t alignment) {
  in.set_context(str_cat("tensor #", index));
  GgufTensor tensor;
  tensor.name = in.read_string(kGgufMaxTensorNameBytes, "name");
  if (tensor.name.empty()) in.problem("empty tensor name");
  in.set_context(str_cat("tensor '", printable(tensor.name), "'"));
  for (const char c : tensor.name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) in.problem("the name holds control characters");
  }

  const uint32_t n_dims = in.read<uint32_t>();
  if (n_dims == 0 || n_dims > kGgufMaxDims) in.problem("has ", n_dims, " dimensions (1 to ", kGgufMaxDims, " allowed)");
  std::vector<uint64_t> ne(n_dims);
  for (uint64_t& d : ne) d = in.read<uint64_t>();

  tensor.ggml_type = in.read<uint32_t>();
  DType dtype;
  if (!dtype_of_ggml_type(tensor.ggml_type, &dtype)) {
    in.problem("has ggml type ", tensor.ggml_type, " (", ggml_type_name(tensor.ggml_type),
               "), which jetmoe.cpp does not read (it reads F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K)");
  }
  tensor.offset = in.read<uint64_t>();

  // Elements and bytes must fit in int64 / uint64 even when a dimension is 0, so that no running
  // product over the shape can overflow later.
  for (const uint64_t d : ne) {
    if (d > uint64_t(std::numeric_limits<int64_t>::max())) in.problem("dimension ", d, " is too large");
  }
  const Shape shape(ne.rbegin(), ne.rend());  // ne[0] varies fastest: the last PyTorch dimension
  uint64_t elements = 1;
  for (const uint64_t d : ne) {
    if (d == 0) continue;
    if (__builtin_mul_overflow(elements, d, &elements) || elements > uint64_t(std::numeric_limits<int64_t>::max())) {
      in.problem("shape ", shape_str(shape), " has more elements than fit in 64 bits");
    }
  }
  const uint64_t block = uint64_t(dtype_block_elems(dtype));
  if (ne[0] % block != 0) {
    in.problem("rows of ", ne[0], " values are not a multiple of the ", dtype_name(dtype), " block (", block, ")");
  }
  if (elements / block > std::numeric_limits<uint64_t>::max() / dtype_block_bytes(dtype)) {
    in.problem("shape ", shape_str(shape), " has more bytes than fit in 64 bits");
  }
  if (tensor.offset % alignment != 0) {
    in.problem("offset ", tensor.offset, " is not a multiple of the alignment (", alignment, ")");
  }

  tensor.view.dtype = dtype;
  tensor.view.shape = shape;
  return tensor;
}

}  // namespace

GgufFile::GgufFile(const std::string& path) : file_(path) {
  Cursor in(file_.data(), file_.size(), path);
  if (file_.size() < 4 || std::memcmp(file_.data(), kMagic, 4) != 0) {
    const std::string_view start(reinterpret_cast<const char*>(file_.data()), std::min<size_t>(4, file_.size()));
    fail(path, ": not a GGUF file (it starts with '", printable(start), "', not 'GGUF')");
  }
  if (file_.size() < kHeaderBytes) {
    fail(path, ": the file is truncated: ", file_.size(), " bytes, less than the ", kHeaderBytes, "-byte GGUF header");
  }
  in.read<uint32_t>();
  const uint32_t version = in.read<uint32_t>();
  if (version != kGgufVersion) {
    fail(path, ": GGUF version ", version, " is not supported (only version ", kGgufVersion, ")");
  }
  const uint64_t tensor_count = in.read<uint64_t>();
  const uint64_t kv_count = in.read<uint64_t>();
  if (kv_count > kGgufMaxKeys || kv_count > in.remaining() / kMinEntryBytes) {
    fail(path, ": the header declares ", kv_count, " metadata entries, more than the file can hold");
  }
  if (tensor_count > kGgufMaxTensors || tensor_count > in.remaining() / kMinTensorInfoBytes) {
    fail(path, ": the header declares ", tensor_count, " tensors, more than the file can hold");
  }

  ValueReader values(in);
  metadata_.reserve(size_t(kv_count));
  for (uint64_t i = 0; i < kv_count; ++i) {
    in.set_context(str_cat("metadata entry #", i));
    std::string key(in.read_string(kGgufMaxKeyBytes, "key"));
    check_key(in, key);
    in.set_context(str_cat("metadata '", printable(key), "'"));
    if (key_index_.count(key)) in.problem("the key appears twice");
    const GgufType type = read_value_type(in, "value type");
    key_index_.emplace(key, metadata_.size());
    metadata_.push_back({std::move(key), values.read(type, 0)});
  }
  if (const GgufValue* value = find("general.alignment")) alignment_ = read_alignment(*value, path);

  tensors_.reserve(size_t(tensor_count));
  std::set<std::string_view> names;
  for (uint64_t i = 0; i < tensor_count; ++i) {
    tensors_.push_back(read_tensor_info(in, i, alignment_));
    if (!names.insert(tensors_.back().name).second) in.problem("the tensor name appears twice");
  }

  data_offset_ = in.position() + (alignment_ - in.position() % alignment_) % alignment_;
  const uint64_t data_size = data_offset_ <= file_.size() ? file_.size() - data_offset_ : 0;
  if (tensor_count > 0 && data_offset_ > file_.size()) {
    fail(path, ": the file is truncated: the data section starts at byte ", data_offset_, " but the file has ",
         file_.size());
  }
  std::vector<ByteExtent> extents;
  for (GgufTensor& t : tensors_) {
    const uint64_t bytes = t.view.nbytes();
    if (t.offset > data_size || bytes > data_size - t.offset) {
      fail(path, ": tensor '", printable(t.name), "' (", bytes, " bytes at offset ", t.offset,
           " of the data section) runs past the end of the file: the data section has ", data_size, " bytes");
    }
    t.view.data = file_.data() + data_offset_ + t.offset;
    extents.push_back({t.offset, t.offset + bytes, printable(t.name)});
  }
  check_no_overlap(std::move(extents), path);
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

bool looks_like_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, kMagic, 4) == 0;
}

}  // namespace jetmoe
