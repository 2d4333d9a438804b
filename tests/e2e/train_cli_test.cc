// `jetmoe train` end to end: shards from `jetmoe prepare`, a two-phase mixture, a short run that
// writes metrics, a plot and an HF-layout checkpoint; resuming continues to the same losses; a
// run killed in the middle of a save keeps its previous checkpoint loadable and resumable to the
// losses of an uninterrupted run; `jetmoe forward` reads a checkpoint back with exactly the
// trainer's logits; bad configs exit 1 naming the field.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_runner.h"
#include "core/parallel.h"
#include "formats/npy.h"
#include "train/data_mixture.h"
#include "train/run_checkpoint.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace jetmoe::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class TrainCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("jetmoe_train_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write("tokenizer.json", char_level_tokenizer_json());
    std::string news, fiction;
    for (int i = 0; i < 60; ++i) news += "the market rose today and the bank said so\n";
    for (int i = 0; i < 60; ++i) fiction += "once upon a time a fox ran home\n";
    write("raw/news.txt", news);
    write("raw/fiction.txt", fiction);
    for (const char* name : {"news", "fiction"}) {
      const CliResult r = run_cli({"prepare", "--tokenizer", path("tokenizer.json"), "--input",
                                   path(std::string("raw/") + name + ".txt"), "--out", path(std::string("shards/") + name),
                                   "--split-blank-lines"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    json model = {{"model_type", "jetmoe"}, {"vocab_size", 32}, {"hidden_size", 16}, {"num_hidden_layers", 2},
                  {"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"num_key_value_heads", 2},
                  {"kv_channels", 4}, {"intermediate_size", 16}, {"max_position_embeddings", 32},
                  {"torch_dtype", "float32"}};
    config_ = {{"model", model},
               {"data", {{"phases", {{{"name", "phase1"}, {"token_share", 0.75},
                                      {"sources", {{{"name", "news"}, {"path", "shards/news"}, {"weight", 3}},
                                                   {{"name", "fiction"}, {"path", "shards/fiction"}, {"weight", 1}}}}},
                                     {{"name", "phase2"}, {"token_share", 0.25},
                                      {"sources", {{{"name", "fiction"}, {"path", "shards/fiction"}}}}}}},
                         {"validation_fraction", 0.1}}},
               {"seq_len", 16}, {"batch_size", 2}, {"steps", 8},
               {"optimizer", {{"lr", 1e-2}}},
               {"eval", {{"interval", 4}, {"max_sequences", 4}}},
               {"checkpoint", {{"interval", 4}, {"keep_last", 2}}},
               {"output_dir", "run"}, {"threads", 2}, {"seed", 1}};
    write("train.json", config_.dump(2));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return (dir_ / name).string();
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<json> step_lines(const std::string& run) const {
    std::vector<json> lines;
    std::ifstream in(dir_ / run / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line);
      if (j.contains("loss")) lines.push_back(j);
    }
    return lines;
  }

  fs::path dir_;
  json config_;
};

TEST_F(TrainCliTest, TrainsResumesAndWritesALoadableCheckpoint) {
  const CliResult r = run_cli({"train", "--config", path("train.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "step 8/8")) << r.err;
  EXPECT_TRUE(contains(r.err, "tok/s")) << r.err;
  EXPECT_TRUE(contains(r.err, "eval at step 8")) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "run" / "plot.html"));
  EXPECT_TRUE(fs::exists(dir_ / "run" / "step-4"));  // keep_last 2: step-4 and step-8
  const CliResult forward = run_cli({"info", "-m", path("run/step-8")});
  EXPECT_EQ(forward.exit_code, 0) << forward.err;

  // Resume the step-4 checkpoint into another run directory: steps 5..8 must match exactly.
  const CliResult resumed = run_cli({"train", "--resume", path("run/step-4"), "--out", path("run2")});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const std::vector<json> a = step_lines("run"), b = step_lines("run2");
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(a[i + 4]["loss"], b[i]["loss"]) << "step " << i + 5;
    EXPECT_EQ(a[i + 4]["grad_norm"], b[i]["grad_norm"]) << "step " << i + 5;
    EXPECT_EQ(a[i + 4]["data"], b[i]["data"]) << "step " << i + 5;
  }
}

TEST_F(TrainCliTest, AKilledSaveLeavesThePreviousCheckpointLoadable) {
  const CliResult straight = run_cli({"train", "--config", path("train.json"), "--out", path("straight")});
  ASSERT_EQ(straight.exit_code, 0) << straight.err;

  // Checkpoints at steps 4 and 8: the process kills itself (SIGKILL) while writing step-8, after
  // its weights are on disk and before the commit (run_checkpoint.cc's test hook).
  const CliResult killed = run_cli({"train", "--config", path("train.json")}, "", {"JETMOE_TEST_KILL_DURING_SAVE=8"});
  EXPECT_EQ(killed.signal, SIGKILL) << "exit code " << killed.exit_code << "\n" << killed.err;
  EXPECT_TRUE(contains(killed.err, "saved " + path("run/step-4"))) << killed.err;
  EXPECT_FALSE(contains(killed.err, "saved " + path("run/step-8"))) << killed.err;
  std::vector<fs::path> partials;
  for (const auto& entry : fs::directory_iterator(dir_ / "run"))
    if (entry.path().filename().string().rfind(".step-8.partial-", 0) == 0) partials.push_back(entry.path());
  ASSERT_EQ(partials.size(), 1u) << "the save of step 8 should have been cut off midway";
  EXPECT_TRUE(fs::exists(partials[0] / "model.safetensors"));
  EXPECT_FALSE(fs::exists(partials[0] / "trainer_state.json"));
  EXPECT_EQ(list_checkpoints(path("run")), std::vector<std::string>{path("run/step-4")});

  // The previous checkpoint loads as a model...
  const CliResult info = run_cli({"info", "-m", path("run/step-4")});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  const CliResult generated =
      run_cli({"generate", "-m", path("run/step-4"), "--prompt-ids", "1,4,11", "-n", "5", "--temp", "0", "--output-ids"});
  ASSERT_EQ(generated.exit_code, 0) << generated.err;
  EXPECT_EQ(json::parse(generated.out).size(), 5u) << generated.out;

  // ...and resuming the run directory continues from it to the uninterrupted run's losses.
  const CliResult resumed = run_cli({"train", "--resume", path("run")});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_TRUE(contains(resumed.err, "resumed from " + path("run/step-4") + " at step 4")) << resumed.err;
  const std::vector<json> want = step_lines("straight"), got = step_lines("run");
  ASSERT_EQ(want.size(), 8u);
  ASSERT_EQ(got.size(), 8u);  // the killed run's lines after step 4 were replaced
  for (size_t i = 0; i < 8; ++i)
    for (const char* key : {"step", "loss", "grad_norm", "lr", "data"})
      EXPECT_EQ(want[i][key], got[i][key]) << key << " at step " << i + 1;
  EXPECT_EQ(read_whole_file(dir_ / "straight" / "step-8" / "model.safetensors"),
            read_whole_file(dir_ / "run" / "step-8" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(partials[0])) << "the abandoned partial save should be cleaned up";
}

// The trainer's in-memory model (its fp32 masters) and `jetmoe forward` over the checkpoint it
// saved give bit-identical logits: checkpoints are fp32, so nothing is rounded on the way. With
// bf16 compute the checkpoint still holds the masters, so the same holds.
TEST_F(TrainCliTest, JetmoeForwardReadsACheckpointWithTheTrainersExactLogits) {
  for (const std::string compute : {"f32", "bf16"}) {
    SCOPED_TRACE("compute_dtype " + compute);
    const std::string run = path("run-" + compute);
    const TrainConfig config =
        load_train_config(path("train.json"), {"steps=4", "compute_dtype=" + compute, "output_dir=" + run});
    std::ostringstream log;
    Trainer trainer(config, open_training_data(config.phases, config.seq_len, config.seed, config.validation_fraction),
                    log);
    const TrainSummary summary = trainer.run();
    ASSERT_EQ(summary.last_checkpoint, run + "/step-4");

    const std::vector<int32_t> ids = {1, 23, 11, 8, 3, 16, 4, 21, 10, 3, 6, 22, 15, 2, 19, 29};
    ThreadPool pool(config.threads);
    KvCache cache = trainer.model().make_cache(int64_t(ids.size()));
    FloatTensor logits;
    trainer.model().forward(ids, cache, logits, pool);

    std::string id_list;
    for (int32_t id : ids) id_list += (id_list.empty() ? "" : ",") + std::to_string(id);
    const std::string npy = path("logits-" + compute + ".npy");
    const CliResult r = run_cli({"forward", "-m", summary.last_checkpoint, "--ids", id_list, "--logits-out", npy,
                                 "--threads", std::to_string(config.threads)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const NpyArray read = read_npy(npy);
    ASSERT_EQ(read.shape, logits.shape);
    int64_t differing = 0;
    for (size_t i = 0; i < logits.values.size(); ++i) differing += float(read.values[i]) != logits.values[i];
    EXPECT_EQ(differing, 0) << "of " << logits.values.size() << " logits";
  }
}

TEST_F(TrainCliTest, BadConfigsExitOneNamingTheField) {
  CliResult r = run_cli({"train", "--config", path("train.json"), "--set", "optimizer.beta1=fast"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "optimizer.beta1")) << r.err;
  r = run_cli({"train", "--config", path("train.json"), "--set", "seq_len=100"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "max_position_embeddings")) << r.err;
  r = run_cli({"train", "--config", path("train.json"), "--set", "compute_dtype=fp8"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "compute_dtype")) << r.err;
  r = run_cli({"train", "--config", path("missing.json")});
  EXPECT_EQ(r.exit_code, 1);
}

}  // namespace
}  // namespace jetmoe::e2e
