// Input files -> documents for `jetmoe prepare`.
//   text:  by default the whole file is one document; with split_blank_lines, documents are
//          separated by one or more blank (whitespace-only) lines. Trailing whitespace is dropped.
//   jsonl: one JSON object per line; the document is the string in `jsonl_field`. Blank lines are
//          skipped, and so are documents whose text is empty.
#pragma once

#include <string>
#include <vector>

namespace jetmoe {

enum class InputFormat { kAuto, kText, kJsonl };

struct DocumentOptions {
  InputFormat format = InputFormat::kAuto;  // kAuto: .jsonl / .ndjson are JSONL, anything else text
  std::string jsonl_field = "text";
  bool split_blank_lines = false;
};

// Parses "auto", "text" or "jsonl"; throws jetmoe::Error otherwise.
InputFormat parse_input_format(const std::string& name);

// The documents of one file. Throws jetmoe::Error naming the file (and the line for JSONL):
// unreadable file, invalid JSON, a line that is not an object, a missing or non-string field.
std::vector<std::string> read_documents(const std::string& path, const DocumentOptions& options);

}  // namespace jetmoe
