#include "train/run_checkpoint.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "formats/atomic_file.h"
#include "formats/safetensors.h"

namespace jetmoe {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kStateFile = "trainer_state.json";

void write_text(const fs::path& path, const std::string& text) {
  AtomicFileWriter out(path.string());
  out.write(text.data(), text.size());
  out.commit();
}

// step-N -> N; -1 for anything else.
int64_t step_of(const fs::path& dir) {
  const std::string name = dir.filename().string();
  if (name.rfind("step-", 0) != 0 || name.size() == 5) return -1;
  int64_t n = 0;
  for (char ch : name.substr(5)) {
    if (ch < '0' || ch > '9') return -1;
    n = n * 10 + (ch - '0');
  }
  return n;
}

// Test hook: with JETMOE_TEST_KILL_DURING_SAVE=<step> in the environment, the process kills itself
// (SIGKILL: no handlers, no unwinding, like a power cut or the OOM killer) while saving that step,
// after the weights are written and before the checkpoint is committed. tests/e2e/train_cli_test.cc
// uses it to check that a crash mid-save leaves the previous checkpoint loadable and resumable.
void test_hook_kill_during_save(int64_t step) {
  const char* value = std::getenv("JETMOE_TEST_KILL_DURING_SAVE");
  if (value != nullptr && std::to_string(step) == value) std::raise(SIGKILL);
}

void sync_directory(const fs::path& dir) {
  // Makes the rename durable; best effort (some filesystems refuse fsync on directories).
  if (FILE* f = std::fopen(dir.c_str(), "r")) {
    fsync(fileno(f));
    std::fclose(f);
  }
}

// ".step-N.partial-<pid>" -> pid; 0 for anything else.
pid_t partial_writer_pid(const fs::path& entry) {
  const std::string name = entry.filename().string();
  const size_t dash = name.rfind('-');
  if (name.rfind(".step-", 0) != 0 || !name.substr(0, dash).ends_with(".partial")) return 0;
  const std::string digits = name.substr(dash + 1);
  if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  return pid_t(std::stol(digits));
}

// Removes the partial checkpoints of saves killed midway (their writer process no longer exists).
// (A ".old" directory is never removed here: a crash between the two renames of a same-step
// re-save leaves the only copy of that checkpoint in it.)
void remove_abandoned_partials(const fs::path& run) {
  std::error_code ec;
  std::vector<fs::path> abandoned;
  for (const auto& entry : fs::directory_iterator(run, ec)) {
    const pid_t pid = partial_writer_pid(entry.path());
    if (pid > 0 && pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH) abandoned.push_back(entry.path());
  }
  for (const fs::path& p : abandoned) fs::remove_all(p, ec);
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, const CheckpointContents& c, int64_t keep_last) {
  const fs::path run(run_dir);
  fs::create_directories(run);
  const std::string name = "step-" + std::to_string(c.state.step);
  const fs::path partial = run / ("." + name + ".partial-" + std::to_string(getpid()));
  const fs::path final_dir = run / name;
  fs::remove_all(partial);
  fs::create_directories(partial);

  JetMoeConfig config = *c.model_config;
  config.torch_dtype = DType::F32;  // the master weights are written as they are
  write_text(partial / "config.json", config_to_json(config));
  write_safetensors((partial / "model.safetensors").string(), c.weights, {{"format", "pt"}});
  test_hook_kill_during_save(c.state.step);
  write_safetensors((partial / "optimizer.safetensors").string(), c.optimizer_state);
  json state = {{"step", c.state.step},
                {"tokens_seen", c.state.tokens_seen},
                {"seed", c.state.seed},
                {"data", {{"sequences_served", c.state.data.sequences_served}, {"cursor", c.state.data.cursor}}}};
  write_text(partial / "train_config.json", c.train_config_json);
  write_text(partial / kStateFile, state.dump(2));  // last: its presence marks a complete checkpoint
  sync_directory(partial);

  // A checkpoint of the same step from an earlier attempt is replaced only once the new one is whole.
  if (fs::exists(final_dir)) {
    const fs::path old = run / ("." + name + ".old-" + std::to_string(getpid()));
    fs::rename(final_dir, old);
    fs::rename(partial, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(partial, final_dir);
  }
  sync_directory(run);

  remove_abandoned_partials(run);
  const std::vector<std::string> all = list_checkpoints(run_dir);
  for (size_t i = 0; i + size_t(keep_last) < all.size(); ++i) fs::remove_all(all[i]);
  return final_dir.string();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run_dir, ec)) {
    const int64_t step = step_of(entry.path());
    if (step >= 0 && entry.is_directory() && fs::exists(entry.path() / kStateFile))
      found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> dirs;
  for (auto& [step, dir] : found) dirs.push_back(dir);
  return dirs;
}

std::string resolve_checkpoint_dir(const std::string& dir) {
  if (!fs::is_directory(dir)) fail("--resume ", dir, ": no such directory");
  if (fs::exists(fs::path(dir) / kStateFile)) return dir;
  const std::vector<std::string> all = list_checkpoints(dir);
  if (all.empty()) fail("--resume ", dir, ": neither a checkpoint (no ", kStateFile, ") nor a run with step-N checkpoints");
  return all.back();
}

TrainerState read_trainer_state(const std::string& checkpoint_dir) {
  const std::string path = (fs::path(checkpoint_dir) / kStateFile).string();
  std::ifstream in(path);
  if (!in) fail(path, ": cannot read");
  try {
    const json j = json::parse(in);
    TrainerState s;
    s.step = j.at("step").get<int64_t>();
    s.tokens_seen = j.at("tokens_seen").get<int64_t>();
    s.seed = j.at("seed").get<uint64_t>();
    s.data.sequences_served = j.at("data").at("sequences_served").get<uint64_t>();
    s.data.cursor = j.at("data").at("cursor").get<std::vector<uint64_t>>();
    return s;
  } catch (const json::exception& e) {
    fail(path, ": malformed trainer state: ", e.what());
  }
}

}  // namespace jetmoe
