// Reading request bodies: JSON parsing with a nesting limit, and typed field access whose
// errors name the field and what was wrong ("'max_tokens' must be an integer, got a string").
// Every failure is an ApiError 400.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace jetmoe::serve {

// More levels of nested objects and arrays are refused before they are built (no request
// needs more than a few).
inline constexpr int kMaxJsonDepth = 64;

// Parses a request body that must be one JSON object.
nlohmann::json parse_request_body(const std::string& body);

// "a string", "an integer", ... for messages.
std::string json_kind(const nlohmann::json& value);

// Optional fields: absent or null gives nullopt; a wrong type or a value outside [min, max]
// is a 400 naming `key`.
std::optional<bool> optional_bool(const nlohmann::json& object, const char* key);
std::optional<int64_t> optional_int(const nlohmann::json& object, const char* key, int64_t min, int64_t max);
std::optional<double> optional_number(const nlohmann::json& object, const char* key, double min, double max);
std::optional<std::string> optional_string(const nlohmann::json& object, const char* key);
// A seed: any integer that fits 64 bits (negative ones wrap, as in two's complement).
std::optional<uint64_t> optional_seed(const nlohmann::json& object, const char* key);

}  // namespace jetmoe::serve
