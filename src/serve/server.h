// `jetmoe serve` as a library call: bind, announce the address, load the model while
// answering 503, serve until asked to stop, then shut down in order (refuse new work, end
// running jobs, close connections).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include "serve/server_options.h"

namespace jetmoe::serve {

// Set once (e.g. from a signal-handling thread); waited on by the server.
class ShutdownRequest {
 public:
  void request();
  bool requested() const;
  // True once requested; waits at most `timeout`.
  bool wait_for(std::chrono::milliseconds timeout) const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  bool requested_ = false;
};

// Runs until `shutdown` is requested. Logs to stderr, first "serve: listening on http://HOST:PORT".
// Throws jetmoe::Error if the address cannot be bound or the model cannot be loaded.
void run_server(const ServerOptions& options, const ShutdownRequest& shutdown);

// The id clients use for the model: the alias, else the directory's last component.
std::string model_id_for(const ServerOptions& options);

}  // namespace jetmoe::serve
