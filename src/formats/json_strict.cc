#include "formats/json_strict.h"

#include <set>
#include <vector>

#include "core/error.h"

namespace jetmoe {

using nlohmann::json;

namespace {

// Tracks the keys of every open object while nlohmann parses, so that a repeated key can be
// reported with the object it belongs to.
class DuplicateKeyFinder {
 public:
  void on_event(json::parse_event_t event, const json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_.push_back(Object{});
        break;
      case json::parse_event_t::object_end:
        if (!open_.empty()) open_.pop_back();
        break;
      case json::parse_event_t::key: {
        if (open_.empty()) break;
        const std::string key = parsed.get<std::string>();
        Object& top = open_.back();
        if (!top.keys.insert(key).second && duplicate_.empty()) {
          duplicate_ = key;
          duplicate_in_ = enclosing_path();
        }
        top.current_key = key;
        break;
      }
      default:
        break;
    }
  }

  bool found() const { return !duplicate_.empty(); }
  const std::string& key() const { return duplicate_; }
  // "top level" or "'a' > 'b'": the keys leading to the object holding the duplicate.
  const std::string& location() const { return duplicate_in_; }

 private:
  struct Object {
    std::set<std::string> keys;
    std::string current_key;
  };

  std::string enclosing_path() const {
    if (open_.size() <= 1) return "at the top level";
    std::string path = "inside ";
    for (size_t i = 0; i + 1 < open_.size(); ++i) {
      if (i > 0) path += " > ";
      path += "'" + open_[i].current_key + "'";
    }
    return path;
  }

  std::vector<Object> open_;
  std::string duplicate_;
  std::string duplicate_in_;
};

// nlohmann's messages start with "[json.exception.parse_error.101] "; keep the readable part.
std::string without_exception_tag(const char* what) {
  std::string text = what;
  if (!text.empty() && text[0] == '[') {
    const size_t end = text.find("] ");
    if (end != std::string::npos) text.erase(0, end + 2);
  }
  return text;
}

}  // namespace

json parse_json_strict(const std::string& text, const std::string& source, const std::string& what) {
  // nlohmann stops at a NUL byte as if the input ended there, which would hide whatever
  // follows; valid JSON never contains one.
  if (const size_t nul = text.find('\0'); nul != std::string::npos) {
    fail(source, ": ", what, " is not valid JSON: NUL byte at offset ", nul);
  }
  DuplicateKeyFinder finder;
  json result;
  try {
    result = json::parse(text, [&finder](int, json::parse_event_t event, json& parsed) {
      finder.on_event(event, parsed);
      return true;
    });
  } catch (const json::exception& e) {
    fail(source, ": ", what, " is not valid JSON: ", without_exception_tag(e.what()));
  }
  if (finder.found()) {
    fail(source, ": ", what, " has the key '", finder.key(), "' twice ", finder.location());
  }
  return result;
}

std::string json_type_phrase(const json& value) {
  auto shown = [&value] {
    std::string text = value.dump();
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    return text;
  };
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean (" + shown() + ")";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer (" + shown() + ")";
    case json::value_t::number_float: return "a floating-point number (" + shown() + ")";
    case json::value_t::string: return "a string (" + shown() + ")";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a binary value";
  }
}

}  // namespace jetmoe
