// Errors as OpenAI reports them: an HTTP status and {"error": {message, type, param, code}}.
// Request handlers throw ApiError; the server turns it into the response.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace jetmoe::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = "", std::string code = "");

  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  // "invalid_request_error", "authentication_error", ... from the status.
  const char* type() const;
  nlohmann::json to_json() const;

 private:
  int status_;
  std::string param_;
  std::string code_;
};

// 400 invalid_request_error, naming the offending field.
[[noreturn]] void bad_request(const std::string& message, const std::string& param = "");

// The OpenAI error type of a status.
const char* error_type_for_status(int status);

// {"error": {...}} for a status and message (for errors raised outside handlers).
nlohmann::json error_json(int status, const std::string& message, const std::string& code = "");

// JSON text that never throws: invalid UTF-8 becomes U+FFFD.
std::string dump_json(const nlohmann::json& value);

}  // namespace jetmoe::serve
