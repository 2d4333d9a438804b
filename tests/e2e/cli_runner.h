// Runs the built `jetmoe` binary as a black box: arguments in; exit code, stdout and stderr out.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace jetmoe::e2e {

struct CliResult {
  int exit_code = -1;  // -1: did not exit normally (a crash is a test failure)
  int signal = 0;      // the signal that ended the process, 0 when it exited
  std::string out, err;
};

inline std::string read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs JETMOE_BINARY with `args`, feeding `input` on stdin, in this process's environment plus
// `extra_env` ("NAME=value" entries, which take precedence).
inline CliResult run_cli(const std::vector<std::string>& args, const std::string& input = "",
                         const std::vector<std::string>& extra_env = {}) {
  static int counter = 0;
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("jetmoe_cli_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
  std::filesystem::create_directories(dir);
  const std::string in_path = (dir / "stdin").string(), out_path = (dir / "stdout").string(),
                    err_path = (dir / "stderr").string();
  std::ofstream(in_path, std::ios::binary) << input;

  std::vector<std::string> argv_strings = {JETMOE_BINARY};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_strings = extra_env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e, name = entry.substr(0, entry.find('=') + 1);
    bool overridden = false;
    for (const std::string& x : extra_env) overridden = overridden || x.rfind(name, 0) == 0;
    if (!overridden) env_strings.push_back(entry);
  }
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  CliResult result;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()) == 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  } else {
    result.err = "could not start " + argv_strings[0];
  }
  posix_spawn_file_actions_destroy(&actions);
  result.out = read_whole_file(out_path);
  result.err += read_whole_file(err_path);
  std::filesystem::remove_all(dir);
  return result;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A character-level tokenizer.json: a..z are ids 4..29, '▁' 3, </s> 2, <s> 1, <unk> 0; no
// merges, so ids are easy to write by hand.
inline std::string char_level_tokenizer_json() {
  std::string vocab = R"("<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3)";
  for (char c = 'a'; c <= 'z'; ++c) vocab += std::string(", \"") + c + "\": " + std::to_string(4 + (c - 'a'));
  return R"({"added_tokens": [{"id": 0, "content": "<unk>", "special": true},
        {"id": 1, "content": "<s>", "special": true}, {"id": 2, "content": "</s>", "special": true}],
      "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
      "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": false, "vocab": {)" +
         vocab + "}, \"merges\": []}}";
}

}  // namespace jetmoe::e2e
