#include "serve/json_fields.h"

#include <cmath>

#include "core/error.h"
#include "serve/api_error.h"

namespace jetmoe::serve {

using nlohmann::json;

namespace {

// Thrown from the parser callback to stop at the first level beyond kMaxJsonDepth.
struct TooDeep {};

const json* find_present(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void wrong_type(const char* key, const char* wanted, const json& got) {
  bad_request(str_cat("'", key, "' must be ", wanted, ", got ", json_kind(got)), key);
}

}  // namespace

json parse_request_body(const std::string& body) {
  if (body.empty()) bad_request("the request body is empty; send a JSON object");
  json parsed;
  try {
    // `depth` counts the containers around the one that starts: 0 for the outermost.
    parsed = json::parse(body, [](int depth, json::parse_event_t event, json&) {
      const bool opens = event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
      if (opens && depth >= kMaxJsonDepth) throw TooDeep{};
      return true;
    });
  } catch (const TooDeep&) {
    bad_request(str_cat("the request body nests JSON deeper than ", kMaxJsonDepth, " levels"));
  } catch (const json::exception& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix; keep the position and reason.
    std::string reason = e.what();
    if (reason.rfind("[json.exception.", 0) == 0 && reason.find("] ") != std::string::npos)
      reason.erase(0, reason.find("] ") + 2);
    bad_request(str_cat("the request body is not valid JSON: ", reason));
  }
  if (!parsed.is_object()) bad_request(str_cat("the request body must be a JSON object, got ", json_kind(parsed)));
  return parsed;
}

std::string json_kind(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number with a fraction or exponent";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "an unsupported value";
  }
}

std::optional<bool> optional_bool(const json& object, const char* key) {
  const json* v = find_present(object, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(key, "a boolean", *v);
  return v->get<bool>();
}

std::optional<int64_t> optional_int(const json& object, const char* key, int64_t min, int64_t max) {
  const json* v = find_present(object, key);
  if (!v) return std::nullopt;
  int64_t value = 0;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > uint64_t(max)) bad_request(str_cat("'", key, "' must be at most ", max, ", got ", u), key);
    value = int64_t(u);
  } else if (v->is_number_integer()) {
    value = v->get<int64_t>();
  } else if (v->is_number_float() && std::isfinite(v->get<double>()) && v->get<double>() == std::floor(v->get<double>()) &&
             std::fabs(v->get<double>()) < 9.0e15) {
    value = int64_t(v->get<double>());  // 16.0 is an integer to most JSON writers
  } else {
    wrong_type(key, "an integer", *v);
  }
  if (value < min || value > max)
    bad_request(str_cat("'", key, "' must be in [", min, ", ", max, "], got ", value), key);
  return value;
}

std::optional<double> optional_number(const json& object, const char* key, double min, double max) {
  const json* v = find_present(object, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(key, "a number", *v);
  const double value = v->get<double>();
  // Written as !(in range) so that NaN and the infinities huge literals parse to are refused.
  if (!(value >= min && value <= max))
    bad_request(str_cat("'", key, "' must be in [", min, ", ", max, "], got ", v->dump()), key);
  return value;
}

std::optional<std::string> optional_string(const json& object, const char* key) {
  const json* v = find_present(object, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(key, "a string", *v);
  return v->get<std::string>();
}

std::optional<uint64_t> optional_seed(const json& object, const char* key) {
  const json* v = find_present(object, key);
  if (!v) return std::nullopt;
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  if (v->is_number_integer()) return uint64_t(v->get<int64_t>());
  wrong_type(key, "an integer", *v);
}

}  // namespace jetmoe::serve
