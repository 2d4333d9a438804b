// The training loop on a tiny model with an in-memory data source: loss goes down, resume
// reproduces an uninterrupted run bit for bit (fp32 and bf16 compute), bf16 compute tracks fp32
// and still saves fp32 masters, checkpoints load as models, a diverging run stops with a clear
// message and keeps its last checkpoint, MFU is logged against the measured peak, and the config
// is validated field by field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "model/model.h"
#include "train/mfu.h"
#include "train/run_checkpoint.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace jetmoe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Sequence i is a short repeating pattern chosen by i, so it is learnable; the position is i.
class FakeData : public TrainingData {
 public:
  FakeData(int64_t seq_len, int32_t vocab) : seq_len_(seq_len), vocab_(vocab) {
    for (int v = 0; v < 2; ++v) validation_.push_back(make(1000 + v));
  }
  void next_sequence(int64_t, int64_t, std::vector<int32_t>& tokens) override { tokens = make(served_++); }
  const std::vector<std::vector<int32_t>>& validation_sequences() const override { return validation_; }
  DataPosition position() const override { return {served_, {served_ * 3}}; }
  void restore(const DataPosition& p) override {
    served_ = p.sequences_served;
    EXPECT_EQ(p.cursor, std::vector<uint64_t>{served_ * 3});
  }
  std::string describe_last() const override { return "fake"; }

 private:
  std::vector<int32_t> make(uint64_t i) const {
    std::vector<int32_t> t(size_t(seq_len_ + 1));
    const int32_t period = int32_t(2 + i % 3);
    for (size_t j = 0; j < t.size(); ++j) t[j] = 3 + int32_t((j % size_t(period)) * 5 + i % 2) % (vocab_ - 3);
    return t;
  }
  int64_t seq_len_;
  int32_t vocab_;
  uint64_t served_ = 0;
  std::vector<std::vector<int32_t>> validation_;
};

JetMoeConfig tiny_model() {
  JetMoeConfig c;
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.num_layers = 2;
  c.num_experts = 4;
  c.top_k = 2;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  c.intermediate_size = 16;
  c.max_position_embeddings = 16;
  c.initializer_range = 0.02;
  c.torch_dtype = DType::F32;
  return c;
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("jetmoe_train_" + name + "_" + std::to_string(getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

json base_config(const fs::path& out) {
  return {{"model", json::parse(config_to_json(tiny_model()))},
          {"data", {{"phases", {{{"name", "p1"}, {"sources", {{{"name", "fake"}, {"path", "unused"}}}}}}}}},
          {"seq_len", 8},
          {"batch_size", 2},
          {"grad_accum", 2},
          {"steps", 6},
          {"optimizer", {{"lr", 1e-2}, {"weight_decay", 0.01}}},
          {"schedule", {{"kind", "wsd"}, {"warmup_steps", 2}, {"decay_steps", 2}}},
          {"checkpoint", {{"interval", 3}, {"keep_last", 5}}},
          {"output_dir", out.string()},
          {"threads", 2},
          {"seed", 5}};
}

TrainConfig parse(const json& j, const std::vector<std::string>& overrides = {}) {
  return parse_train_config(j.dump(), "test config", "/", overrides);
}

std::unique_ptr<TrainingData> fake_data(const TrainConfig& c) {
  return std::make_unique<FakeData>(c.seq_len, int32_t(c.model.vocab_size));
}

std::vector<json> read_metrics(const fs::path& run, bool eval_lines) {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<json> lines;
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line);
    if (j.contains("eval_loss") == eval_lines) lines.push_back(j);
  }
  return lines;
}

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Trainer, ResumeReproducesAnUninterruptedRunExactly) {
  TempDir straight_dir("straight"), resumed_dir("resumed");
  std::ostringstream log;
  const TrainConfig straight_config = parse(base_config(straight_dir.path));
  Trainer straight(straight_config, fake_data(straight_config), log);
  const TrainSummary summary = straight.run();
  EXPECT_EQ(summary.steps, 6);

  // Stop after 3 (a second run limited to 3 steps), then continue from its checkpoint.
  // The schedule must be the 6-step one, so only the stop point differs.
  TrainConfig half = parse(base_config(resumed_dir.path));
  half.steps = 3;
  Trainer a(half, fake_data(half), log);
  a.run();
  const TrainConfig full = parse(base_config(resumed_dir.path));
  Trainer b(full, fake_data(full), log);
  b.resume((resumed_dir.path / "step-3").string());
  b.run();

  const std::vector<json> want = read_metrics(straight_dir.path, false), got = read_metrics(resumed_dir.path, false);
  ASSERT_EQ(want.size(), 6u);
  ASSERT_EQ(got.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    for (const char* key : {"step", "tokens", "loss", "ce", "load_balance", "z_loss", "lr", "grad_norm"})
      EXPECT_EQ(want[i][key], got[i][key]) << key << " at step " << i + 1;  // bit for bit
    EXPECT_EQ(want[i]["expert_fraction"], got[i]["expert_fraction"]);
  }
  EXPECT_EQ(file_bytes(straight_dir.path / "step-6" / "model.safetensors"),
            file_bytes(resumed_dir.path / "step-6" / "model.safetensors"));
  EXPECT_EQ(file_bytes(straight_dir.path / "step-6" / "optimizer.safetensors"),
            file_bytes(resumed_dir.path / "step-6" / "optimizer.safetensors"));
  EXPECT_TRUE(fs::exists(straight_dir.path / "plot.html"));
}

// A run of `steps` updates; returns its step lines.
std::vector<json> run_steps(const json& j, const fs::path& dir) {
  const TrainConfig config = parse(j);
  std::ostringstream log;
  Trainer trainer(config, fake_data(config), log);
  trainer.run();
  return read_metrics(dir, false);
}

TEST(Trainer, Bf16ComputeTracksF32AndResumesExactly) {
  TempDir f32_dir("f32"), bf16_dir("bf16"), resumed_dir("bf16_resumed");
  json j = base_config(f32_dir.path);
  j["steps"] = 12;
  j["schedule"] = {{"kind", "wsd"}, {"warmup_steps", 2}, {"decay_steps", 3}};
  j["checkpoint"] = {{"interval", 6}, {"keep_last", 5}};
  j["report_mfu"] = false;
  const std::vector<json> f32 = run_steps(j, f32_dir.path);
  j["compute_dtype"] = "bf16";
  j["output_dir"] = bf16_dir.path.string();
  const std::vector<json> bf16 = run_steps(j, bf16_dir.path);
  ASSERT_EQ(f32.size(), 12u);
  ASSERT_EQ(bf16.size(), 12u);

  // bf16 weights and activations (relative rounding 2^-9) move the loss by far less than a
  // percent on the first steps; later steps are allowed to drift apart more.
  bool any_difference = false;
  for (size_t i = 0; i < 12; ++i) {
    const double a = f32[i]["loss"].get<double>(), b = bf16[i]["loss"].get<double>();
    EXPECT_NEAR(b, a, (i < 4 ? 0.01 : 0.05) * a) << "step " << i + 1;
    any_difference = any_difference || a != b;
  }
  EXPECT_TRUE(any_difference) << "bf16 compute gave exactly the fp32 losses: is it running at all?";
  EXPECT_LT(bf16.back()["ce"].get<double>(), 0.8 * bf16.front()["ce"].get<double>());

  // Resume from step 6 of a bf16 run: the copy is rebuilt from the masters, so bit for bit.
  TrainConfig half = parse(j, {"output_dir=" + resumed_dir.path.string()});
  half.steps = 6;
  std::ostringstream log;
  Trainer(half, fake_data(half), log).run();
  const TrainConfig full = parse(j, {"output_dir=" + resumed_dir.path.string()});
  Trainer resumed(full, fake_data(full), log);
  resumed.resume((resumed_dir.path / "step-6").string());
  resumed.run();
  const std::vector<json> got = read_metrics(resumed_dir.path, false);
  ASSERT_EQ(got.size(), 12u);
  for (size_t i = 0; i < 12; ++i)
    for (const char* key : {"loss", "ce", "load_balance", "z_loss", "grad_norm"})
      EXPECT_EQ(bf16[i][key], got[i][key]) << key << " at step " << i + 1;
  EXPECT_EQ(file_bytes(bf16_dir.path / "step-12" / "model.safetensors"),
            file_bytes(resumed_dir.path / "step-12" / "model.safetensors"));

  // The checkpoint holds the fp32 masters (the trainer's model()), not their bf16 rounding.
  const TensorStore saved = TensorStore::open_file((resumed_dir.path / "step-12" / "model.safetensors").string());
  int64_t not_bf16_representable = 0;
  for (const ParamSpec& spec : param_specs(full.model)) {
    const TensorView& v = saved.get(spec.name);
    ASSERT_EQ(v.dtype, DType::F32) << spec.name;
    const auto* values = static_cast<const float*>(v.data);
    for (int64_t i = 0; i < v.numel(); ++i) {
      uint32_t bits = 0;
      std::memcpy(&bits, &values[i], 4);
      not_bf16_representable += (bits & 0xffffu) != 0;
    }
  }
  EXPECT_GT(not_bf16_representable, 100);
  const TensorView& master_embed = resumed.model().weights().embed;
  const TensorView& saved_embed = saved.get("model.embed_tokens.weight");
  ASSERT_EQ(master_embed.dtype, DType::F32);
  EXPECT_EQ(std::memcmp(master_embed.data, saved_embed.data, saved_embed.nbytes()), 0);
}

TEST(Trainer, MfuIsLoggedAgainstTheMeasuredPeak) {
  TempDir dir("mfu");
  json j = base_config(dir.path);
  j["steps"] = 4;
  j["checkpoint"] = {{"interval", 0}};
  const TrainConfig config = parse(j);
  std::ostringstream log;
  Trainer trainer(config, fake_data(config), log);
  const TrainSummary summary = trainer.run();
  std::smatch m;
  const std::string text = log.str();
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(peak, ([0-9.]+) GFLOP/s)"))) << text;
  const double logged_peak = std::stod(m[1]) * 1e9;
  EXPECT_NE(text.find("| mfu "), std::string::npos) << text;
  EXPECT_GT(summary.mfu, 0.0);
  EXPECT_LT(summary.mfu, 1.0);

  // mfu = flops/token x tokens/s / peak on every line, with one peak for the run.
  const double flops = training_flops_per_token(config.model, config.seq_len).per_token();
  for (const json& line : read_metrics(dir.path, false)) {
    const double mfu = line["mfu"].get<double>(), rate = line["tokens_per_s"].get<double>();
    EXPECT_GT(mfu, 0.0);
    EXPECT_LT(mfu, 1.0);
    EXPECT_NEAR(flops * rate / mfu, logged_peak, 0.06e9);  // the log rounds to 0.1 GFLOP/s
  }

  // Off: no measurement, no mfu.
  TempDir off_dir("mfu_off");
  j["output_dir"] = off_dir.path.string();
  j["report_mfu"] = false;
  const TrainConfig off = parse(j);
  std::ostringstream off_log;
  Trainer(off, fake_data(off), off_log).run();
  EXPECT_EQ(off_log.str().find("| mfu"), std::string::npos) << off_log.str();
  EXPECT_EQ(off_log.str().find("peak"), std::string::npos) << off_log.str();
  for (const json& line : read_metrics(off_dir.path, false)) EXPECT_FALSE(line.contains("mfu"));
}

// The FLOPs count, derived independently from the parameter list: 2-D matrices are used whole
// by every token, [E, ...] expert stacks k/E of the time, the embedding lookup is no product and
// the (tied) head is one of V x d.
TEST(TrainingFlops, CountsTheMatricesATokenPassesThrough) {
  for (const bool tied : {true, false}) {
    JetMoeConfig c = tiny_model();
    c.tie_word_embeddings = tied;
    int64_t expected = tied ? c.vocab_size * c.hidden_size : 0;
    for (const ParamSpec& spec : param_specs(c)) {
      if (spec.shape.size() < 2 || spec.name.find("embed_tokens") != std::string::npos) continue;
      const int64_t n = shape_numel(spec.shape);
      expected += spec.shape.size() == 3 ? n / c.num_experts * c.top_k : n;
    }
    EXPECT_EQ(active_matmul_params(c), expected) << "tied " << tied;
    const TrainingFlops f = training_flops_per_token(c, 8);
    EXPECT_DOUBLE_EQ(f.matmul, 6.0 * double(expected));
    // 2 layers x 2 slots x 2 heads x 4 dims: a QK and an AV multiply-add per key, 4 keys on
    // average at seq_len 8, x 2 FLOPs x 3 (forward + backward) = 2*2*2*4 * 2*4 * 2*3 = 1536.
    EXPECT_DOUBLE_EQ(f.attention, 1536.0);
  }
}

TEST(Trainer, LossFallsAndCheckpointsLoadAsModels) {
  TempDir dir("falls");
  json j = base_config(dir.path);
  j["steps"] = 30;
  j["eval"] = {{"interval", 10}};
  j["checkpoint"] = {{"interval", 10}, {"keep_last", 2}};
  const TrainConfig config = parse(j);
  std::ostringstream log;
  Trainer trainer(config, fake_data(config), log);
  const double eval_before = trainer.evaluate();
  const TrainSummary summary = trainer.run();
  EXPECT_LT(summary.last_eval_loss, eval_before * 0.7) << log.str();
  EXPECT_NE(log.str().find("tok/s"), std::string::npos);
  EXPECT_NE(log.str().find("ETA"), std::string::npos);

  const std::vector<std::string> kept = list_checkpoints(dir.path.string());
  ASSERT_EQ(kept.size(), 2u);  // step-10 pruned
  EXPECT_EQ(fs::path(kept.back()).filename(), "step-30");
  const auto model = Model::load(kept.back());
  EXPECT_EQ(model->config().hidden_size, 16);

  const std::vector<json> evals = read_metrics(dir.path, true);
  ASSERT_EQ(evals.size(), 3u);
  EXPECT_NEAR(evals.back()["eval_ppl"].get<double>(), std::exp(evals.back()["eval_loss"].get<double>()), 1e-9);
  const std::vector<json> steps = read_metrics(dir.path, false);
  ASSERT_EQ(steps.back()["expert_fraction"].size(), 4u);  // 2 layers x (attention, MLP)
  double sum = 0;
  for (const json& f : steps.back()["expert_fraction"][0]) sum += f.get<double>();
  EXPECT_NEAR(sum, 1.0, 1e-9);
}

TEST(Trainer, DivergenceStopsAndKeepsTheLastGoodCheckpoint) {
  TempDir dir("nan");
  json j = base_config(dir.path);
  j["steps"] = 10;
  j["optimizer"] = {{"lr", 1e30}, {"grad_clip", 0.0}};
  j["schedule"] = {{"kind", "constant"}, {"warmup_steps", 0}};
  j["checkpoint"] = {{"interval", 1}, {"keep_last", 3}};
  const TrainConfig config = parse(j);
  std::ostringstream log;
  Trainer trainer(config, fake_data(config), log);
  try {
    trainer.run();
    FAIL() << "expected the run to stop";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("not finite"), std::string::npos) << what;
    EXPECT_NE(what.find("last good checkpoint"), std::string::npos) << what;
  }
  const std::vector<std::string> kept = list_checkpoints(dir.path.string());
  ASSERT_FALSE(kept.empty());
  EXPECT_NO_THROW(Model::load(kept.back()));
  EXPECT_EQ(read_trainer_state(kept.back()).step, trainer.step());
}

TEST(Trainer, AStaleHalfWrittenCheckpointIsIgnored) {
  TempDir dir("partial");
  fs::create_directories(dir.path / "step-9");  // a crash before trainer_state.json was written
  fs::create_directories(dir.path / ".step-12.partial-1");
  EXPECT_TRUE(list_checkpoints(dir.path.string()).empty());
  EXPECT_THROW(resolve_checkpoint_dir(dir.path.string()), Error);
}

void expect_config_error(const json& j, const std::string& needle, const std::vector<std::string>& overrides = {}) {
  try {
    parse(j, overrides);
    ADD_FAILURE() << "expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TrainConfig, ErrorsNameTheField) {
  const json good = base_config("/tmp/x");
  EXPECT_NO_THROW(parse(good));
  json j = good;
  j["optimizer"]["beta2"] = "high";
  expect_config_error(j, "optimizer.beta2");
  j = good;
  j["optimizer"]["learning_rate"] = 1e-3;  // a typo
  expect_config_error(j, "unknown field 'optimizer.learning_rate'");
  j = good;
  j["seq_len"] = 64;  // model max_position_embeddings is 16
  expect_config_error(j, "max_position_embeddings");
  j = good;
  j.erase("steps");
  expect_config_error(j, "steps");
  j = good;
  j["data"]["phases"][0]["sources"][0]["weight"] = 0.0;
  expect_config_error(j, "sum to a positive number");
  expect_config_error(good, "schedule.kind", {"schedule.kind=linear"});
  expect_config_error(good, "compute_dtype", {"compute_dtype=f16"});
  expect_config_error(good, "report_mfu", {"report_mfu=yes"});
  expect_config_error(good, "decay_steps", {"schedule.decay_steps=100"});
  EXPECT_THROW(parse_train_config("{not json", "bad.json", "/", {}), Error);
}

TEST(TrainConfig, OverridesAndDerivedFields) {
  json j = base_config("/tmp/x");
  j.erase("steps");
  j["token_budget"] = 1000;  // 32 tokens per update -> 32 updates (rounded up)
  j["schedule"] = {{"kind", "wsd"}, {"warmup_fraction", 0.25}};
  j["data"]["phases"][0]["token_share"] = 3.0;
  j["data"]["phases"].push_back({{"name", "p2"}, {"token_share", 1.0}, {"sources", {{{"path", "b"}}}}});
  const TrainConfig c = parse(j, {"optimizer.lr=0.003", "data.phases.1.sources.0.weight=2", "threads=1"});
  EXPECT_EQ(c.tokens_per_step(), 32);
  EXPECT_EQ(c.steps, 32);
  EXPECT_EQ(c.schedule.warmup_steps, 8);
  EXPECT_EQ(c.schedule.decay_steps, 8);  // default: the last phase's share (1/4)
  EXPECT_DOUBLE_EQ(c.schedule.peak_lr, 0.003);
  EXPECT_DOUBLE_EQ(c.phases[1].sources[0].weight, 2.0);
  EXPECT_EQ(c.phases[1].sources[0].path, "/b");
  EXPECT_EQ(c.threads, 1);
  expect_config_error(j, "past the end", {"data.phases.5.token_share=1"});
}

}  // namespace
}  // namespace jetmoe
