#include "runtime/random_checkpoint.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "formats/atomic_file.h"
#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "model/weights.h"

namespace jetmoe {

namespace fs = std::filesystem;

namespace {

// Standard normal draws from a 64-bit Mersenne Twister via Box-Muller.
class NormalStream {
 public:
  explicit NormalStream(uint64_t seed) : rng_(seed) {}
  float next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    // u1 in (0, 1] so that log(u1) is finite; u2 in [0, 1).
    const double u1 = 1.0 - double(rng_() >> 11) * 0x1.0p-53;
    const double u2 = double(rng_() >> 11) * 0x1.0p-53;
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = 2.0 * M_PI * u2;
    spare_ = float(radius * std::sin(angle));
    has_spare_ = true;
    return float(radius * std::cos(angle));
  }

 private:
  std::mt19937_64 rng_;
  float spare_ = 0;
  bool has_spare_ = false;
};

void write_text_file(const std::string& path, const std::string& text) {
  AtomicFileWriter out(path);
  out.write(text.data(), text.size());
  out.commit();
}

void check_target_directory(const std::string& dir, bool overwrite) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  if (!fs::is_directory(dir, ec)) fail(dir, ": exists and is not a directory");
  if (!overwrite && !fs::is_empty(dir, ec))
    fail(dir, ": directory is not empty; refusing to overwrite it (use --force)");
}

// Copies a tokenizer into `dir` under the names loaders look for: a file becomes
// tokenizer.json (if it is JSON) or tokenizer.model; a directory gives its tokenizer files.
void copy_tokenizer(const std::string& source, const std::string& dir) {
  std::error_code ec;
  std::vector<std::pair<fs::path, std::string>> copies;  // from, to (file name)
  if (fs::is_directory(source, ec)) {
    for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
      if (fs::is_regular_file(fs::path(source) / name, ec)) copies.emplace_back(fs::path(source) / name, name);
    if (copies.empty()) fail(source, ": no tokenizer.json or tokenizer.model in this directory");
  } else if (fs::is_regular_file(source, ec)) {
    const bool json = fs::path(source).extension() == ".json";
    copies.emplace_back(source, json ? "tokenizer.json" : "tokenizer.model");
  } else {
    fail(source, ": tokenizer file does not exist");
  }
  for (const auto& [from, name] : copies) {
    fs::copy_file(from, fs::path(dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) fail(from.string(), ": cannot copy into ", dir, ": ", ec.message());
  }
}

}  // namespace

namespace {

// Draws one parameter's values, continuing `normal`'s stream.
std::vector<float> initial_values(const ParamSpec& spec, NormalStream& normal, float std_dev) {
  std::vector<float> v(size_t(shape_numel(spec.shape)));
  switch (spec.init) {
    case ParamSpec::Init::Normal:
      for (float& x : v) x = normal.next() * std_dev;
      break;
    case ParamSpec::Init::Zeros: break;
    case ParamSpec::Init::Ones: std::fill(v.begin(), v.end(), 1.0f); break;
  }
  return v;
}

}  // namespace

std::vector<std::vector<float>> random_parameter_values(const JetMoeConfig& config, uint64_t seed) {
  NormalStream normal(seed);
  std::vector<std::vector<float>> values;
  for (const ParamSpec& spec : param_specs(config))
    values.push_back(initial_values(spec, normal, float(config.initializer_range)));
  return values;
}

void write_random_checkpoint(const JetMoeConfig& input_config, const std::string& dir,
                             const RandomCheckpointOptions& options) {
  JetMoeConfig config = input_config;
  config.torch_dtype = options.dtype;
  validate_config(config, dir + "/config.json");
  check_target_directory(dir, options.overwrite);

  // Draws shard by shard, in param_specs() order (the same values as random_parameter_values),
  // so that only one shard's bytes are in memory at a time: an 8B model fits.
  const std::vector<ParamSpec> specs = param_specs(config);
  std::vector<TensorSpec> planned;
  for (const ParamSpec& spec : specs) planned.push_back({spec.name, options.dtype, spec.shape});
  NormalStream normal(options.seed);
  std::vector<std::vector<unsigned char>> shard_bytes;  // storage of the shard being written
  write_checkpoint_streamed(dir, planned, options.max_shard_bytes, [&](size_t begin, size_t end) {
    shard_bytes.assign(end - begin, {});
    std::vector<NamedTensor> tensors;
    for (size_t i = begin; i < end; ++i) {
      const std::vector<float> values = initial_values(specs[i], normal, float(config.initializer_range));
      std::vector<unsigned char>& bytes = shard_bytes[i - begin];
      bytes.resize(planned[i].nbytes());
      from_f32(options.dtype, values.data(), bytes.data(), values.size());
      tensors.push_back({specs[i].name, TensorView{options.dtype, specs[i].shape, bytes.data()}});
    }
    return tensors;
  });

  write_text_file((fs::path(dir) / "config.json").string(), config_to_json(config));
  const nlohmann::json generation = {
      {"_from_model_config", true},
      {"bos_token_id", config.bos_token_id},
      {"eos_token_id", config.eos_token_id},
      {"pad_token_id", config.eos_token_id},  // JetMoE pads with EOS (spec §4)
  };
  write_text_file((fs::path(dir) / "generation_config.json").string(), generation.dump(2) + "\n");
  if (!options.tokenizer.empty()) copy_tokenizer(options.tokenizer, dir);
}

}  // namespace jetmoe
