#include "serve/api_error.h"

namespace jetmoe::serve {

ApiError::ApiError(int status, std::string message, std::string param, std::string code)
    : std::runtime_error(std::move(message)), status_(status), param_(std::move(param)), code_(std::move(code)) {}

const char* ApiError::type() const { return error_type_for_status(status_); }

nlohmann::json ApiError::to_json() const {
  nlohmann::json error = error_json(status_, what(), code_);
  error["error"]["param"] = param_.empty() ? nlohmann::json(nullptr) : nlohmann::json(param_);
  return error;
}

void bad_request(const std::string& message, const std::string& param) { throw ApiError(400, message, param); }

const char* error_type_for_status(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 503: return "unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

nlohmann::json error_json(int status, const std::string& message, const std::string& code) {
  return {{"error",
           {{"message", message},
            {"type", error_type_for_status(status)},
            {"param", nullptr},
            {"code", code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code)}}}};
}

std::string dump_json(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace jetmoe::serve
