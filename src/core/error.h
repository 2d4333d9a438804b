// Errors: every recoverable failure (bad file, bad flag, bad request) is a jetmoe::Error whose
// message names the thing at fault. Invariant checks (JM_CHECK) throw too: a library never exits.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace jetmoe {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates any streamable values: str_cat("tensor '", name, "' has ", n, " dims").
template <typename... Parts>
std::string str_cat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

template <typename... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw Error(str_cat(std::forward<Parts>(parts)...));
}

}  // namespace jetmoe

// Internal invariant; a failure is a bug in jetmoe.cpp, reported with its location.
#define JM_CHECK(cond, ...)                                                                  \
  do {                                                                                       \
    if (!(cond))                                                                             \
      ::jetmoe::fail(__FILE__, ":", __LINE__, ": check failed: " #cond " ", ##__VA_ARGS__); \
  } while (0)
