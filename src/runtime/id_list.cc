#include "runtime/id_list.h"

#include <charconv>

#include "core/error.h"

namespace jetmoe {

static std::string_view trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

std::vector<int32_t> parse_id_list(std::string_view text) {
  std::string_view body = trim(text);
  if (body.size() >= 2 && body.front() == '[' && body.back() == ']') body = trim(body.substr(1, body.size() - 2));
  if (body.empty()) fail("empty token id list");
  std::vector<int32_t> ids;
  size_t start = 0;
  while (true) {
    const size_t comma = body.find(',', start);
    const std::string_view entry = trim(body.substr(start, comma == std::string_view::npos ? body.npos : comma - start));
    int32_t id = 0;
    const auto [end, ec] = std::from_chars(entry.data(), entry.data() + entry.size(), id);
    if (entry.empty() || ec != std::errc() || end != entry.data() + entry.size() || id < 0)
      fail("'", entry, "' (entry ", ids.size() + 1, " of the id list) is not a token id: expected a number >= 0");
    ids.push_back(id);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return ids;
}

std::string format_id_list(std::span<const int32_t> ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  return out + "]";
}

void check_ids_in_vocab(std::span<const int32_t> ids, int64_t vocab_size) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab_size)
      fail("token id ", ids[i], " at position ", i, " is outside the vocabulary [0, ", vocab_size, ")");
}

}  // namespace jetmoe
