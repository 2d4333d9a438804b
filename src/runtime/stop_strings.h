// Text-level stop strings for streamed generation. Text arrives in pieces whose boundaries
// need not line up with a stop string, so the matcher holds back any tail that could still
// grow into one and releases it once it cannot. Released text never contains a stop string.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace jetmoe {

class StopStringMatcher {
 public:
  // Empty stop strings are refused (jetmoe::Error): they would match before any text.
  explicit StopStringMatcher(std::vector<std::string> stop_strings);

  // Adds `piece` and returns the text that is now safe to emit. After a stop string is
  // found, returns the text before it and stopped() becomes true; later pushes return "".
  std::string push(std::string_view piece);
  // End of generation without a stop: releases whatever was held back.
  std::string finish();

  bool stopped() const { return stopped_; }
  // The stop string that matched (empty until stopped()).
  const std::string& matched() const { return matched_; }
  // Bytes currently held back.
  size_t held() const { return pending_.size(); }

 private:
  // Length of the longest suffix of pending_ that is a proper prefix of some stop string.
  size_t longest_partial_match() const;

  std::vector<std::string> stops_;
  std::string pending_;
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace jetmoe
