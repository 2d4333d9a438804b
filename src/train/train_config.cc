#include "train/train_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"

namespace jetmoe {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string type_phrase(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

// Reads the keys of one JSON object by name, remembering which were used so that leftovers
// (typos) can be reported. `path` is the object's dotted location, e.g. "optimizer".
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string path, std::string source)
      : object_(object), path_(std::move(path)), source_(std::move(source)) {
    if (!object_.is_object()) fail(source_, ": '", path_, "' must be an object, got ", type_phrase(object_));
  }

  bool has(const std::string& key) const { return object_.contains(key); }
  std::string field(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  const json& raw(const std::string& key) {
    used_.insert(key);
    if (!object_.contains(key)) fail(source_, ": missing field '", field(key), "'");
    return object_.at(key);
  }
  double number(const std::string& key, double fallback) {
    if (!has(key)) return fallback;
    const json& v = raw(key);
    if (!v.is_number()) bad(key, "a number", v);
    const double x = v.get<double>();
    if (!std::isfinite(x)) fail(source_, ": '", field(key), "' must be finite");
    return x;
  }
  int64_t integer(const std::string& key, int64_t fallback, int64_t min_value) {
    if (!has(key)) return fallback;
    const json& v = raw(key);
    int64_t x = 0;
    if (v.is_number_integer() || v.is_number_unsigned()) {
      x = v.get<int64_t>();
    } else if (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()) &&
               std::abs(v.get<double>()) < 9e15) {
      x = int64_t(v.get<double>());  // 1e6 written as a float is still a whole number
    } else {
      bad(key, "an integer", v);
    }
    if (x < min_value) fail(source_, ": '", field(key), "' must be at least ", min_value, ", got ", x);
    return x;
  }
  std::string string(const std::string& key, const std::string& fallback) {
    if (!has(key)) return fallback;
    const json& v = raw(key);
    if (!v.is_string()) bad(key, "a string", v);
    return v.get<std::string>();
  }
  bool boolean(const std::string& key, bool fallback) {
    if (!has(key)) return fallback;
    const json& v = raw(key);
    if (!v.is_boolean()) bad(key, "true or false", v);
    return v.get<bool>();
  }
  ObjectReader object(const std::string& key) {
    static const json kEmpty = json::object();
    return ObjectReader(has(key) ? raw(key) : kEmpty, field(key), source_);
  }
  // Throws naming the first key nobody asked for.
  void finish() const {
    for (const auto& [key, value] : object_.items())
      if (!used_.count(key)) fail(source_, ": unknown field '", field(key), "'");
  }

 private:
  [[noreturn]] void bad(const std::string& key, const char* expected, const json& v) const {
    fail(source_, ": '", field(key), "' must be ", expected, ", got ", type_phrase(v));
  }

  const json& object_;
  std::string path_, source_;
  std::set<std::string> used_;
};

std::string absolute_from(const std::string& base_dir, const std::string& path) {
  const fs::path p(path);
  return (p.is_absolute() ? p : fs::path(base_dir) / p).lexically_normal().string();
}

void apply_override(json& root, const std::string& assignment, const std::string& source) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) fail("override '", assignment, "': expected key=value");
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;  // a bare word: a string

  json* node = &root;
  std::stringstream parts(key);
  std::string part, walked;
  std::vector<std::string> path;
  while (std::getline(parts, part, '.')) path.push_back(part);
  for (size_t i = 0; i < path.size(); ++i) {
    const std::string& name = path[i];
    if (name.empty()) fail("override '", assignment, "': empty key component");
    walked += (walked.empty() ? "" : ".") + name;
    const bool last = i + 1 == path.size();
    if (node->is_array()) {
      size_t index = 0;
      try {
        index = std::stoul(name);
      } catch (const std::exception&) {
        fail("override '", assignment, "': '", walked, "' indexes an array, so it must be a number");
      }
      if (index >= node->size()) fail("override '", assignment, "': '", walked, "' is past the end of the array");
      node = &(*node)[index];
    } else {
      if (node->is_null()) *node = json::object();
      if (!node->is_object()) fail("override '", assignment, "': '", walked, "' is inside a non-object");
      node = &(*node)[name];
    }
    if (last) *node = value;
  }
  (void)source;
}

JetMoeConfig read_model(const json& model, const std::string& source, const std::string& base_dir, json& resolved) {
  if (model.is_string()) {
    const std::string path = absolute_from(base_dir, model.get<std::string>());
    resolved["model"] = path;
    return load_config(path);
  }
  if (model.is_object()) return parse_config_json(model.dump(), source + ": model");
  fail(source, ": 'model' must be a path to a config.json or an inline config object, got ", type_phrase(model));
}

std::vector<TrainingPhase> read_phases(ObjectReader& data, const std::string& source, const std::string& base_dir,
                                       json& resolved_phases) {
  const json& phases = data.raw("phases");
  if (!phases.is_array() || phases.empty())
    fail(source, ": 'data.phases' must be a non-empty array of phases");
  std::vector<TrainingPhase> out;
  for (size_t p = 0; p < phases.size(); ++p) {
    const std::string where = "data.phases." + std::to_string(p);
    ObjectReader phase(phases[p], where, source);
    TrainingPhase tp;
    tp.name = phase.string("name", "phase" + std::to_string(p + 1));
    tp.token_share = phase.number("token_share", 1.0);
    if (!(tp.token_share > 0)) fail(source, ": '", where, ".token_share' must be positive");
    const json& sources = phase.raw("sources");
    if (!sources.is_array() || sources.empty()) fail(source, ": '", where, ".sources' must be a non-empty array");
    double weight_sum = 0;
    for (size_t s = 0; s < sources.size(); ++s) {
      const std::string swhere = where + ".sources." + std::to_string(s);
      ObjectReader src(sources[s], swhere, source);
      MixtureSource ms;
      ms.path = absolute_from(base_dir, src.string("path", ""));
      if (src.string("path", "").empty()) fail(source, ": missing field '", swhere, ".path'");
      ms.name = src.string("name", fs::path(ms.path).filename().string());
      ms.weight = src.number("weight", 1.0);
      if (ms.weight < 0) fail(source, ": '", swhere, ".weight' must not be negative");
      weight_sum += ms.weight;
      src.finish();
      resolved_phases[p]["sources"][s]["path"] = ms.path;
      tp.sources.push_back(ms);
    }
    if (!(weight_sum > 0)) fail(source, ": the weights of '", where, ".sources' must sum to a positive number");
    phase.finish();
    out.push_back(tp);
  }
  return out;
}

}  // namespace

TrainConfig parse_train_config(const std::string& text, const std::string& source, const std::string& base_dir,
                               const std::vector<std::string>& overrides) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    fail(source, ": not valid JSON: ", e.what());
  }
  for (const std::string& o : overrides) apply_override(root, o, source);
  json resolved = root;

  TrainConfig c;
  ObjectReader top(root, "", source);
  c.model = read_model(top.raw("model"), source, base_dir, resolved);

  ObjectReader data = top.object("data");
  c.phases = read_phases(data, source, base_dir, resolved["data"]["phases"]);
  c.validation_fraction = data.number("validation_fraction", c.validation_fraction);
  if (!(c.validation_fraction >= 0 && c.validation_fraction < 1))
    fail(source, ": 'data.validation_fraction' must be in [0, 1)");
  data.finish();

  c.seq_len = top.integer("seq_len", c.seq_len, 2);
  if (c.seq_len > c.model.max_position_embeddings)
    fail(source, ": 'seq_len' is ", c.seq_len, " but the model's max_position_embeddings is ",
         c.model.max_position_embeddings);
  c.batch_size = top.integer("batch_size", c.batch_size, 1);
  c.grad_accum = top.integer("grad_accum", c.grad_accum, 1);
  if (top.has("steps") && top.has("token_budget")) fail(source, ": give 'steps' or 'token_budget', not both");
  if (top.has("steps")) {
    c.steps = top.integer("steps", 0, 1);
  } else if (top.has("token_budget")) {
    const int64_t budget = top.integer("token_budget", 0, 1);
    c.steps = (budget + c.tokens_per_step() - 1) / c.tokens_per_step();
  } else {
    fail(source, ": missing field 'steps' (or 'token_budget')");
  }

  ObjectReader opt = top.object("optimizer");
  c.schedule.peak_lr = opt.number("lr", c.schedule.peak_lr);
  c.optimizer.beta1 = opt.number("beta1", c.optimizer.beta1);
  c.optimizer.beta2 = opt.number("beta2", c.optimizer.beta2);
  c.optimizer.eps = opt.number("eps", c.optimizer.eps);
  c.optimizer.weight_decay = opt.number("weight_decay", c.optimizer.weight_decay);
  c.optimizer.decay_norms_and_biases = opt.boolean("decay_norms_and_biases", false);
  c.grad_clip = opt.number("grad_clip", c.grad_clip);
  if (c.grad_clip < 0) fail(source, ": 'optimizer.grad_clip' must be >= 0 (0 turns clipping off)");
  opt.finish();

  ObjectReader sched = top.object("schedule");
  ScheduleOptions& s = c.schedule;
  s.total_steps = c.steps;
  s.kind = parse_schedule_kind(sched.string("kind", "wsd"), source + ": 'schedule.kind'");
  const auto steps_or_fraction = [&](const std::string& name, double default_fraction) {
    const std::string steps_key = name + "_steps", fraction_key = name + "_fraction";
    if (sched.has(steps_key) && sched.has(fraction_key))
      fail(source, ": give 'schedule.", steps_key, "' or 'schedule.", fraction_key, "', not both");
    if (sched.has(steps_key)) return sched.integer(steps_key, 0, 0);
    const double f = sched.number(fraction_key, default_fraction);
    if (!(f >= 0 && f <= 1)) fail(source, ": 'schedule.", fraction_key, "' must be in [0, 1]");
    return int64_t(std::llround(f * double(c.steps)));
  };
  s.warmup_steps = steps_or_fraction("warmup", 0.01);
  // The paper decays over phase 2, so by default the decay covers the last phase's share.
  double share_sum = 0;
  for (const TrainingPhase& p : c.phases) share_sum += p.token_share;
  const double last_share = c.phases.size() > 1 ? c.phases.back().token_share / share_sum : 0.1;
  s.decay_steps = steps_or_fraction("decay", s.kind == ScheduleKind::Wsd ? last_share : 0.0);
  s.warmup_start_fraction = sched.number("warmup_start_fraction", s.warmup_start_fraction);
  s.decay_shape = parse_decay_shape(sched.string("decay_shape", "exponential"), source + ": 'schedule.decay_shape'");
  s.final_fraction = sched.number("final_fraction", s.final_fraction);
  sched.finish();
  try {
    validate_schedule(s);
  } catch (const Error& e) {
    fail(source, ": ", e.what());
  }

  ObjectReader loss = top.object("loss");
  c.loss.aux_coef = loss.number("aux_coef", c.model.aux_loss_coef);
  c.loss.z_coef = loss.number("z_coef", c.loss.z_coef);
  if (c.loss.aux_coef < 0 || c.loss.z_coef < 0) fail(source, ": 'loss' coefficients must be >= 0");
  loss.finish();

  ObjectReader eval = top.object("eval");
  c.eval_interval = eval.integer("interval", c.eval_interval, 0);
  c.eval_max_sequences = eval.integer("max_sequences", c.eval_max_sequences, 0);
  eval.finish();
  ObjectReader ckpt = top.object("checkpoint");
  c.checkpoint_interval = ckpt.integer("interval", c.checkpoint_interval, 0);
  c.keep_last = ckpt.integer("keep_last", c.keep_last, 1);
  ckpt.finish();

  c.log_interval = top.integer("log_interval", c.log_interval, 1);
  c.output_dir = absolute_from(base_dir, top.string("output_dir", c.output_dir));
  resolved["output_dir"] = c.output_dir;
  c.threads = int(top.integer("threads", c.threads, 1));
  c.seed = uint64_t(top.integer("seed", 0, 0));
  const std::string compute = top.string("compute_dtype", "f32");
  if (compute == "f32") c.compute_dtype = DType::F32;
  else if (compute == "bf16") c.compute_dtype = DType::BF16;
  else fail(source, ": 'compute_dtype' must be \"f32\" or \"bf16\", got \"", compute, "\"");
  c.report_mfu = top.boolean("report_mfu", c.report_mfu);
  top.finish();
  c.resolved_json = resolved.dump(2);
  return c;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot read the training config");
  std::ostringstream text;
  text << in.rdbuf();
  const std::string base = fs::absolute(fs::path(path)).parent_path().string();
  return parse_train_config(text.str(), path, base, overrides);
}

}  // namespace jetmoe
