// JSON read from files a user hands us (config.json, safetensors headers, shard indexes).
// Internal to the formats room: errors name the file and the parse position, and a key that
// appears twice in one object is refused (nlohmann would silently keep the last one).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace jetmoe {

// Parses `text`; `source` names the file and `what` the part of it ("header", "index") in
// error messages.
nlohmann::json parse_json_strict(const std::string& text, const std::string& source,
                                 const std::string& what);

// "an integer", "a string", ... for messages like "'hidden_size' must be an integer, got a string".
std::string json_type_phrase(const nlohmann::json& value);

}  // namespace jetmoe
