#include "formats/npy.h"

#include <bit>
#include <cctype>
#include <cstring>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/atomic_file.h"

namespace jetmoe {

static_assert(std::endian::native == std::endian::little, "npy '<' data is little-endian");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
constexpr size_t kAlign = 64;            // numpy pads the header so the data starts aligned
constexpr size_t kGrowthDigits = 21;     // numpy leaves room to grow the first dimension in place

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

// Parses the header, a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& path) : text_(text), path_(path) {}

  NpyHeader parse() {
    NpyHeader header;
    std::set<std::string> seen;
    expect('{');
    while (!peek_is('}')) {
      const std::string key = string_literal();
      if (!seen.insert(key).second) bad("the key '", key, "' appears twice");
      expect(':');
      if (key == "descr") {
        header.descr = string_literal();
      } else if (key == "fortran_order") {
        header.fortran_order = boolean_literal();
      } else if (key == "shape") {
        header.shape = tuple_literal();
      } else {
        bad("unexpected key '", key, "'");
      }
      if (!peek_is(',')) break;
      expect(',');
    }
    expect('}');
    skip_space();
    if (pos_ != text_.size()) bad("unexpected text after the dict");
    for (const char* key : {"descr", "fortran_order", "shape"}) {
      if (!seen.count(key)) bad("missing the key '", key, "'");
    }
    return header;
  }

 private:
  template <typename... Parts>
  [[noreturn]] void bad(Parts&&... parts) const {
    fail(path_, ": malformed .npy header: ", std::forward<Parts>(parts)...);
  }

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool peek_is(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  void expect(char c) {
    if (!peek_is(c)) bad("expected '", c, "' at offset ", pos_);
    ++pos_;
  }

  std::string string_literal() {
    skip_space();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) bad("expected a string at offset ", pos_);
    const char quote = text_[pos_++];
    const size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) bad("unterminated string");
    std::string value(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return value;
  }

  bool boolean_literal() {
    skip_space();
    for (auto [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
      if (text_.substr(pos_, std::strlen(word)) == word) {
        pos_ += std::strlen(word);
        return value;
      }
    }
    bad("fortran_order must be True or False");
  }

  Shape tuple_literal() {
    Shape shape;
    expect('(');
    while (!peek_is(')')) {
      shape.push_back(dimension());
      if (!peek_is(',')) break;
      expect(',');
    }
    expect(')');
    return shape;
  }

  int64_t dimension() {
    skip_space();
    const size_t start = pos_;
    uint64_t value = 0;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
      const uint64_t digit = uint64_t(text_[pos_++] - '0');
      if (value > (uint64_t(std::numeric_limits<int64_t>::max()) - digit) / 10) bad("a dimension is too large");
      value = value * 10 + digit;
    }
    if (pos_ == start) bad("shape must be a tuple of non-negative integers");
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2 long suffix
    return int64_t(value);
  }

  std::string_view text_;
  const std::string& path_;
  size_t pos_ = 0;
};

// Element reader for one of the accepted descrs.
struct ElementType {
  size_t size;
  double (*to_double)(const unsigned char*);
};

template <typename T>
double load_as_double(const unsigned char* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return double(value);
}

ElementType element_type(const std::string& descr, const std::string& path) {
  if (descr == "<f4") return {4, load_as_double<float>};
  if (descr == "<f8") return {8, load_as_double<double>};
  if (descr == "<i8") return {8, load_as_double<int64_t>};
  if (descr == "<i4") return {4, load_as_double<int32_t>};
  fail(path, ": .npy dtype '", descr, "' is not supported (little-endian '<f4', '<f8', '<i8' or '<i4')");
}

std::string shape_tuple(const Shape& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace

void write_npy_f32(const std::string& path, const float* data, const Shape& shape) {
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) fail(path, ": cannot write shape ", shape_str(shape), " (negative dimension)");
    if (__builtin_mul_overflow(numel, uint64_t(d), &numel) || numel > (uint64_t(1) << 60)) {
      fail(path, ": shape ", shape_str(shape), " is too large");
    }
  }
  if (numel > 0 && data == nullptr) fail(path, ": no data to write");

  // The layout np.save uses for format 1.0, so numpy reads it and files compare byte for byte.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  if (!shape.empty()) {
    const size_t digits = std::to_string(shape[0]).size();
    if (digits < kGrowthDigits) header.append(kGrowthDigits - digits, ' ');
  }
  const size_t prefix = kMagicSize + 2 + 2;  // magic, version, uint16 header length
  const size_t pad = kAlign - (prefix + header.size() + 1) % kAlign;
  header.append(pad, ' ');
  header += '\n';
  if (header.size() > 0xffff) fail(path, ": shape ", shape_str(shape), " makes the header too long for .npy 1.0");

  const unsigned char version[2] = {1, 0};
  const uint16_t header_size = uint16_t(header.size());
  AtomicFileWriter out(path);
  out.write(kMagic, kMagicSize);
  out.write(version, 2);
  out.write(&header_size, 2);
  out.write(header.data(), header.size());
  if (numel > 0) out.write(data, numel * sizeof(float));
  out.commit();
}

NpyArray read_npy(const std::string& path) {
  const MappedFile file(path);
  const unsigned char* bytes = file.data();
  const size_t size = file.size();
  if (size < kMagicSize + 4 || std::memcmp(bytes, kMagic, kMagicSize) != 0) {
    fail(path, ": not a .npy file (missing the \\x93NUMPY magic)");
  }
  const unsigned major = bytes[6];
  size_t header_size;
  size_t header_start;
  if (major == 1) {
    uint16_t n;
    std::memcpy(&n, bytes + 8, 2);
    header_size = n;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) fail(path, ": .npy file is truncated inside its header length");
    uint32_t n;
    std::memcpy(&n, bytes + 8, 4);
    header_size = n;
    header_start = 12;
  } else {
    fail(path, ": .npy format version ", major, ".", unsigned(bytes[7]), " is not supported (1.0 to 3.0)");
  }
  if (header_size > size - header_start) {
    fail(path, ": .npy header of ", header_size, " bytes runs past the end of the file (", size, " bytes)");
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes) + header_start, header_size);
  const NpyHeader header = HeaderParser(text, path).parse();
  if (header.fortran_order) fail(path, ": Fortran-ordered .npy arrays are not supported (save with C order)");
  const ElementType type = element_type(header.descr, path);

  uint64_t needed = type.size;
  for (int64_t d : header.shape) {
    if (__builtin_mul_overflow(needed, uint64_t(d), &needed)) fail(path, ": shape ", shape_str(header.shape), " is too large");
  }
  const size_t data_start = header_start + header_size;
  const uint64_t available = size - data_start;
  if (available < needed) {
    fail(path, ": .npy data is truncated: shape ", shape_str(header.shape), " of '", header.descr, "' needs ",
         needed, " bytes, the file has ", available);
  }
  if (available > needed) fail(path, ": .npy file has ", available - needed, " unexpected bytes after the data");

  NpyArray array;
  array.shape = header.shape;
  const size_t count = size_t(needed / type.size);
  array.values.resize(count);
  for (size_t i = 0; i < count; ++i) array.values[i] = type.to_double(bytes + data_start + i * type.size);
  if (header.descr == "<i8") {
    // Promised exact: integers beyond 2^53 would be rounded by the conversion to double.
    constexpr int64_t kExactLimit = int64_t(1) << 53;
    for (size_t i = 0; i < count; ++i) {
      int64_t value;
      std::memcpy(&value, bytes + data_start + i * 8, 8);
      if (value > kExactLimit || value < -kExactLimit) {
        fail(path, ": int64 element ", i, " (", value, ") cannot be represented exactly as a double");
      }
    }
  }
  return array;
}

}  // namespace jetmoe
