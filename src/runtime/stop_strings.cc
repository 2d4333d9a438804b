#include "runtime/stop_strings.h"

#include <algorithm>

#include "core/error.h"

namespace jetmoe {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings)
    : stops_(std::move(stop_strings)) {
  for (const std::string& s : stops_)
    if (s.empty()) fail("stop strings must not be empty");
}

std::string StopStringMatcher::push(std::string_view piece) {
  if (stopped_) return {};
  pending_ += piece;

  // The earliest occurrence wins, so text before it is exactly what a reader would see.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) {
    const size_t at = pending_.find(s);
    if (at < first) {
      first = at;
      matched_ = s;
    }
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string released = pending_.substr(0, first);
    pending_.clear();
    return released;
  }

  const size_t hold = longest_partial_match();
  std::string released = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return released;
}

std::string StopStringMatcher::finish() {
  std::string rest;
  rest.swap(pending_);
  return stopped_ ? std::string() : rest;
}

size_t StopStringMatcher::longest_partial_match() const {
  size_t best = 0;
  for (const std::string& s : stops_) {
    // Proper prefixes only: a full occurrence was already handled by push().
    for (size_t len = std::min(s.size() - 1, pending_.size()); len > best; --len) {
      if (std::string_view(pending_).substr(pending_.size() - len) == std::string_view(s).substr(0, len)) {
        best = len;
        break;
      }
    }
  }
  return best;
}

}  // namespace jetmoe
