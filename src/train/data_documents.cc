#include "train/data_documents.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/error.h"
#include "core/mapped_file.h"

namespace jetmoe {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

std::string_view trim_end(std::string_view s) {
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool is_blank(std::string_view line) { return trim_end(line).empty(); }

// Calls fn(line, line_number) for each line (without its '\n'), numbered from 1.
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  size_t start = 0;
  for (int64_t number = 1; start < text.size(); ++number) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    fn(text.substr(start, end - start), number);
    start = end + 1;
  }
}

void text_documents(std::string_view text, bool split_blank_lines, std::vector<std::string>& out) {
  if (!split_blank_lines) {
    if (!is_blank(text)) out.emplace_back(trim_end(text));
    return;
  }
  std::string current;
  for_each_line(text, [&](std::string_view line, int64_t) {
    if (is_blank(line)) {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
      return;
    }
    if (!current.empty()) current += '\n';
    current += trim_end(line);
  });
  if (!current.empty()) out.push_back(std::move(current));
}

void jsonl_documents(std::string_view text, const std::string& path, const std::string& field,
                     std::vector<std::string>& out) {
  for_each_line(text, [&](std::string_view line, int64_t number) {
    if (is_blank(line)) return;
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(path, ":", number, ": invalid JSON: ", e.what());
    }
    if (!value.is_object()) fail(path, ":", number, ": expected a JSON object, got ", value.type_name());
    const auto it = value.find(field);
    if (it == value.end()) fail(path, ":", number, ": no field '", field, "' (choose another with --jsonl-field)");
    if (!it->is_string()) fail(path, ":", number, ": field '", field, "' is a ", it->type_name(), ", not a string");
    std::string document = it->get<std::string>();
    if (!document.empty()) out.push_back(std::move(document));
  });
}

}  // namespace

InputFormat parse_input_format(const std::string& name) {
  if (name == "auto") return InputFormat::kAuto;
  if (name == "text") return InputFormat::kText;
  if (name == "jsonl") return InputFormat::kJsonl;
  fail("input format '", name, "' is not one of auto, text, jsonl");
}

std::vector<std::string> read_documents(const std::string& path, const DocumentOptions& options) {
  InputFormat format = options.format;
  if (format == InputFormat::kAuto) {
    const std::string ext = std::filesystem::path(path).extension().string();
    format = ext == ".jsonl" || ext == ".ndjson" ? InputFormat::kJsonl : InputFormat::kText;
  }
  const MappedFile file(path);
  const std::string_view text(reinterpret_cast<const char*>(file.data()), file.size());
  std::vector<std::string> documents;
  if (format == InputFormat::kJsonl) {
    jsonl_documents(text, path, options.jsonl_field, documents);
  } else {
    text_documents(text, options.split_blank_lines, documents);
  }
  return documents;
}

}  // namespace jetmoe
