#include "serve/token_logprobs.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

#include "formats/tokenizer/tokenizer.h"

namespace jetmoe::serve {

SampledToken token_logprobs(std::span<const float> logits, int32_t chosen, int top_n) {
  // log softmax in double: lse = max + log(sum exp(x - max)).
  double max = -INFINITY;
  for (const float x : logits) max = std::max(max, double(x));
  double sum = 0;
  for (const float x : logits) sum += std::exp(double(x) - max);
  const double lse = max + std::log(sum);

  SampledToken token{chosen, float(double(logits[size_t(chosen)]) - lse), {}};
  const size_t n = std::min(logits.size(), size_t(std::max(top_n, 0)));
  if (n == 0) return token;
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + ptrdiff_t(n), ids.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  });
  for (size_t i = 0; i < n; ++i) token.top.push_back({ids[i], float(double(logits[size_t(ids[i])]) - lse)});
  return token;
}

std::string token_text(const Tokenizer& tokenizer, int32_t id) {
  const std::string_view piece = tokenizer.piece(id);
  // Byte-fallback pieces are spelled <0x0A>.
  if (piece.size() == 6 && piece.substr(0, 3) == "<0x" && piece.back() == '>') {
    const std::string hex(piece.substr(3, 2));
    if (std::isxdigit(static_cast<unsigned char>(hex[0])) && std::isxdigit(static_cast<unsigned char>(hex[1])))
      return std::string(1, char(std::stoi(hex, nullptr, 16)));
  }
  static constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 '▁'
  std::string text;
  for (size_t i = 0; i < piece.size();) {
    if (piece.substr(i, kSpaceMark.size()) == kSpaceMark) {
      text += ' ';
      i += kSpaceMark.size();
    } else {
      text += piece[i++];
    }
  }
  return text;
}

}  // namespace jetmoe::serve
