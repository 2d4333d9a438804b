#include "formats/model_files.h"

#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/text_file.h"
#include "formats/gguf.h"
#include "formats/json_strict.h"

namespace jetmoe {

namespace fs = std::filesystem;

namespace {

bool is_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// The chat template of a model directory: chat_template.jinja, else the "chat_template" string of
// tokenizer_config.json (transformers' two places for it); "" when there is none.
std::string read_directory_chat_template(const fs::path& dir) {
  if (is_file(dir / "chat_template.jinja")) return read_text_file((dir / "chat_template.jinja").string());
  const fs::path config = dir / "tokenizer_config.json";
  if (!is_file(config)) return "";
  const nlohmann::json root = parse_json_strict(read_text_file(config.string()), config.string(), "tokenizer config");
  if (!root.is_object()) return "";
  const auto it = root.find("chat_template");
  return it != root.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

ModelFiles open_model_files(const std::string& path) {
  std::error_code ec;
  ModelFiles files;
  files.path = path;
  if (fs::is_directory(path, ec)) {
    files.config = load_config((fs::path(path) / "config.json").string());
    files.store = TensorStore::open_dir(path);
    return files;
  }
  if (!fs::exists(path, ec)) fail(path, ": model path does not exist (expected a model directory or a .gguf file)");
  auto gguf = std::make_shared<const GgufFile>(path);
  files.is_gguf = true;
  files.config = config_from_gguf(*gguf);
  files.file_type = gguf_file_type_label(*gguf);
  files.store = TensorStore::from_gguf(std::move(gguf));
  return files;
}

bool model_has_tokenizer(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return is_file(fs::path(path) / "tokenizer.json") || is_file(fs::path(path) / "tokenizer.model");
  if (!looks_like_gguf(path)) return false;
  const GgufFile file(path);
  return file.find(kGgufHfTokenizerKey) != nullptr || file.find(kGgufSpmTokenizerKey) != nullptr;
}

Tokenizer load_model_tokenizer(const std::string& path) {
  if (!looks_like_gguf(path)) return Tokenizer::load(path);
  const GgufTokenizerData data = tokenizer_data_from_gguf(GgufFile(path));
  if (!data.hf_json.empty()) return Tokenizer::from_bytes(data.hf_json, str_cat(path, " (", kGgufHfTokenizerKey, ")"));
  if (!data.spm_model.empty()) {
    return Tokenizer::from_bytes(data.spm_model, str_cat(path, " (", kGgufSpmTokenizerKey, ")"));
  }
  fail(path, ": the GGUF file carries no tokenizer (neither ", kGgufHfTokenizerKey, " nor ", kGgufSpmTokenizerKey, ")");
}

GgufTokenizerData read_model_tokenizer_data(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return tokenizer_data_from_gguf(GgufFile(path));
  const fs::path dir(path);
  GgufTokenizerData data;
  // The file Tokenizer::load(dir) would use.
  if (is_file(dir / "tokenizer.json")) data.hf_json = read_text_file((dir / "tokenizer.json").string());
  else if (is_file(dir / "tokenizer.model")) data.spm_model = read_text_file((dir / "tokenizer.model").string());
  data.chat_template = read_directory_chat_template(dir);
  return data;
}

}  // namespace jetmoe
