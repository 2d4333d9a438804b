// Black-box helpers for the `jetmoe serve` tests: start the real binary on a free loopback
// port, talk to it with curl (or a raw socket where a test must misbehave on purpose), parse
// server-sent events. All traffic goes to 127.0.0.1; every wait has a deadline.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli_runner.h"

namespace jetmoe::e2e {

namespace server_detail {

using Clock = std::chrono::steady_clock;

inline std::filesystem::path fresh_dir(const std::string& stem) {
  static int counter = 0;
  const auto dir = std::filesystem::temp_directory_path() /
                   (stem + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// posix_spawn with stdout/stderr to files and extra environment variables.
inline pid_t spawn(const std::vector<std::string>& args, const std::string& out_path, const std::string& err_path,
                   const std::vector<std::string>& extra_env = {}) {
  std::vector<std::string> strings = args;
  std::vector<char*> argv;
  for (std::string& a : strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("could not start " + args[0]);
  return pid;
}

// Waits for `pid` until `timeout`; kills it after that. Returns the exit code, or -1 if it
// did not exit normally (killed, crashed).
inline int wait_exit(pid_t pid, std::chrono::milliseconds timeout, bool* timed_out = nullptr) {
  const auto deadline = Clock::now() + timeout;
  int status = 0;
  while (Clock::now() < deadline) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (done < 0) return -1;  // not our child (any more)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (timed_out) *timed_out = true;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

}  // namespace server_detail

struct HttpResult {
  int status = 0;  // 0: no HTTP answer (connection failed, curl timed out)
  std::string body;
  double seconds = 0;
  nlohmann::json json() const { return nlohmann::json::parse(body); }
};

// One curl run in flight; finish() waits for it (bounded) and reads what it got.
class CurlRun {
 public:
  CurlRun(const std::string& url, const std::vector<std::string>& args, const std::string& body,
          double max_seconds) {
    dir_ = server_detail::fresh_dir("jetmoe_curl");
    std::vector<std::string> argv = {"curl", "-sS", "-N", "--max-time", std::to_string(max_seconds),
                                     "-o", (dir_ / "body").string(), "-w", "%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!body.empty() || std::find(args.begin(), args.end(), "-X") != args.end()) {
      std::ofstream(dir_ / "request", std::ios::binary) << body;
      argv.insert(argv.end(), {"--data-binary", "@" + (dir_ / "request").string()});
    }
    argv.push_back(url);
    start_ = server_detail::Clock::now();
    max_seconds_ = max_seconds;
    pid_ = server_detail::spawn(argv, (dir_ / "status").string(), (dir_ / "stderr").string());
  }
  CurlRun(const CurlRun&) = delete;
  CurlRun& operator=(const CurlRun&) = delete;
  CurlRun(CurlRun&& other) noexcept
      : dir_(std::move(other.dir_)), pid_(other.pid_), start_(other.start_), max_seconds_(other.max_seconds_) {
    other.pid_ = -1;
    other.dir_.clear();
  }
  ~CurlRun() {
    if (pid_ > 0) server_detail::wait_exit(pid_, std::chrono::milliseconds(100));
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  HttpResult finish() {
    const auto limit = std::chrono::milliseconds(int64_t(max_seconds_ * 1000) + 5000);
    server_detail::wait_exit(pid_, limit);
    pid_ = -1;
    HttpResult r;
    r.seconds = std::chrono::duration<double>(server_detail::Clock::now() - start_).count();
    const std::string code = read_whole_file(dir_ / "status");
    r.status = code.empty() ? 0 : std::atoi(code.c_str());
    r.body = read_whole_file(dir_ / "body");
    return r;
  }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  server_detail::Clock::time_point start_;
  double max_seconds_ = 0;
};

// A running `jetmoe serve`. The destructor stops it (SIGTERM, then SIGKILL if it hangs).
class ServerProcess {
 public:
  ServerProcess(const std::string& model_dir, const std::vector<std::string>& flags,
                const std::vector<std::string>& env = {}, bool wait_ready = true) {
    dir_ = server_detail::fresh_dir("jetmoe_server");
    std::vector<std::string> args = {JETMOE_BINARY, "serve", "-m", model_dir, "--port", "0", "--threads", "1"};
    args.insert(args.end(), flags.begin(), flags.end());
    pid_ = server_detail::spawn(args, (dir_ / "stdout").string(), (dir_ / "stderr").string(), env);
    const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
    const auto deadline = server_detail::Clock::now() + std::chrono::seconds(30);
    while (server_detail::Clock::now() < deadline && port_ == 0) {
      std::smatch m;
      const std::string log = this->log();
      if (std::regex_search(log, m, listening)) port_ = std::stoi(m[1]);
      else std::this_thread::sleep_for(std::chrono::milliseconds(10));
      int status = 0;
      if (port_ == 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("jetmoe serve exited early: " + this->log());
      }
    }
    if (port_ == 0) throw std::runtime_error("jetmoe serve did not announce its port: " + log());
    if (wait_ready && !wait_until_healthy(std::chrono::seconds(60)))
      throw std::runtime_error("jetmoe serve did not become healthy: " + log());
  }
  // Stops the server; it must exit cleanly (0) without a sanitizer report in its log.
  ~ServerProcess() {
    if (pid_ > 0) {
      const int code = stop();
      const std::string log = this->log();
      EXPECT_EQ(code, 0) << "jetmoe serve did not shut down cleanly:\n" << log.substr(log.size() > 4000 ? log.size() - 4000 : 0);
      EXPECT_EQ(log.find("Sanitizer"), std::string::npos) << log;
      EXPECT_EQ(log.find("runtime error:"), std::string::npos) << log;
    }
    std::filesystem::remove_all(dir_);
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::string log() const { return read_whole_file(dir_ / "stderr"); }

  bool wait_until_healthy(std::chrono::milliseconds timeout) const {
    const auto deadline = server_detail::Clock::now() + timeout;
    while (server_detail::Clock::now() < deadline) {
      if (get("/health").status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Sends `signal` and waits (bounded) for the exit code; -1 if it had to be killed.
  int stop(int signal = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(20),
           bool* timed_out = nullptr) {
    kill(pid_, signal);
    const int code = server_detail::wait_exit(pid_, timeout, timed_out);
    pid_ = -1;
    return code;
  }

  CurlRun start(const std::string& path, const std::string& body, const std::vector<std::string>& headers = {},
                double max_seconds = 60) const {
    std::vector<std::string> args = {"-X", "POST"};  // even with an empty body
    if (!body.empty()) args.insert(args.end(), {"-H", "Content-Type: application/json"});
    for (const std::string& h : headers) args.insert(args.end(), {"-H", h});
    return CurlRun(url(path), args, body, max_seconds);
  }
  HttpResult post(const std::string& path, const std::string& body, const std::vector<std::string>& headers = {},
                  double max_seconds = 60) const {
    return start(path, body, headers, max_seconds).finish();
  }
  HttpResult post(const std::string& path, const nlohmann::json& body, const std::vector<std::string>& headers = {},
                  double max_seconds = 60) const {
    return post(path, body.dump(), headers, max_seconds);
  }
  HttpResult get(const std::string& path, const std::vector<std::string>& headers = {}) const {
    std::vector<std::string> args;
    for (const std::string& h : headers) args.insert(args.end(), {"-H", h});
    return CurlRun(url(path), args, "", 30).finish();
  }

  // Resident memory of the server process in KiB (from /proc).
  int64_t rss_kib() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
    return -1;
  }

  // The value of one metric line ("name value") in GET /metrics; -1 if absent.
  double metric(const std::string& name) const {
    const std::string text = get("/metrics").body;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line))
      if (line.rfind(name + " ", 0) == 0) return std::atof(line.c_str() + name.size() + 1);
    return -1;
  }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// The data: payloads of a server-sent-event stream, in order ("[DONE]" included).
inline std::vector<std::string> sse_payloads(const std::string& stream) {
  std::vector<std::string> payloads;
  size_t at = 0;
  while (at < stream.size()) {
    size_t end = stream.find("\n\n", at);
    if (end == std::string::npos) end = stream.size();
    const std::string event = stream.substr(at, end - at);
    if (event.rfind("data: ", 0) == 0) payloads.push_back(event.substr(6));
    else if (!event.empty() && event[0] != ':') payloads.push_back("<not an SSE data event: " + event + ">");
    at = end + 2;
  }
  return payloads;
}

// A raw loopback TCP connection, for clients that misbehave on purpose.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    // CLOEXEC: a process spawned meanwhile (curl) must not inherit it and keep it open after
    // this client hangs up.
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
    const timeval timeout{0, 200'000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~RawConnection() { close_now(); }
  bool send_text(const std::string& text) {
    return ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) == ssize_t(text.size());
  }
  // Reads until `needle` appeared `times` times, the peer closes, or `timeout` passes.
  // Returns what was read.
  std::string read_until(const std::string& needle, std::chrono::milliseconds timeout, bool* closed = nullptr,
                         int times = 1) {
    std::string got;
    const auto deadline = server_detail::Clock::now() + timeout;
    char buffer[4096];
    auto count = [&] {
      int n = 0;
      for (size_t at = got.find(needle); at != std::string::npos; at = got.find(needle, at + needle.size())) ++n;
      return n;
    };
    while (server_detail::Clock::now() < deadline && count() < times) {
      const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
      if (n == 0) {
        if (closed) *closed = true;
        break;
      }
      if (n > 0) got.append(buffer, size_t(n));
    }
    return got;
  }
  void close_now() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// A POST request as raw HTTP/1.1 text.
inline std::string raw_post(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

inline std::string tokenizer_asset_dir() {
  const char* env = std::getenv("JETMOE_TOKENIZER_ASSETS");
  return env && *env ? env : std::string(JETMOE_SOURCE_DIR) + "/build/tokenizer-assets";
}

// A random JetMoE checkpoint with the 32000-piece Llama-2 tokenizer, made with `jetmoe init`.
// `hidden` sets how heavy a forward is (16: instant; 256+: measurable per token).
inline std::string make_text_model(const std::string& dir, int hidden, int layers, int max_positions) {
  const std::string tokenizer = tokenizer_asset_dir() + "/llama2/tokenizer.json";
  if (!std::filesystem::exists(tokenizer))
    throw std::runtime_error("missing tokenizer test asset " + tokenizer + ": run tools/tokenizer/fetch_assets.sh");
  std::filesystem::create_directories(dir);
  const nlohmann::json config = {{"model_type", "jetmoe"},
                                 {"vocab_size", 32000},
                                 {"hidden_size", hidden},
                                 {"num_hidden_layers", layers},
                                 {"num_local_experts", 4},
                                 {"num_experts_per_tok", 2},
                                 {"num_key_value_heads", 2},
                                 {"kv_channels", hidden / 2},
                                 {"intermediate_size", hidden},
                                 {"max_position_embeddings", max_positions},
                                 // large weights: varied, confident greedy picks
                                 {"initializer_range", 0.5}};
  std::ofstream(dir + "/config.json") << config.dump();
  const std::string model = dir + "/model";
  const CliResult r = run_cli({"init", "--config", dir + "/config.json", "--out", model, "--dtype", "f32", "--seed",
                               "3", "--tokenizer", tokenizer});
  if (r.exit_code != 0) throw std::runtime_error("jetmoe init failed: " + r.err);
  return model;
}

}  // namespace jetmoe::e2e
