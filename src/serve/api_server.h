// The HTTP side of `jetmoe serve`: routes, authentication, limits and errors, on Debian's
// cpp-httplib. Requests for text generation are read and checked here, then handed to the
// Engine as jobs; their results are written back whole or as server-sent events.
//
// Routes: GET / (chat page), GET /health, GET /metrics, GET /v1/models, POST /tokenize,
// POST /detokenize, POST /v1/completions, POST /v1/chat/completions (also without /v1).
// The server answers while the model loads: /health says 503 until set_backend().
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "serve/completion_request.h"
#include "serve/metrics.h"
#include "serve/server_options.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace jetmoe {
class Model;
class Tokenizer;
}  // namespace jetmoe

namespace jetmoe::serve {

class Engine;

// What requests need once the model is loaded; everything outlives the server's use of it.
struct ModelBackend {
  const Model* model = nullptr;
  const Tokenizer* tokenizer = nullptr;
  Engine* engine = nullptr;
  std::string model_id;
  int64_t context_size = 0;
};

class ApiServer {
 public:
  ApiServer(const ServerOptions& options, Metrics& metrics);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds host:port and returns the port (the one chosen for port 0). Throws jetmoe::Error.
  int bind();
  // Serves on a thread of its own until stop().
  void start();
  // From now on generation requests are served and /health says 200. Call once.
  void set_backend(const ModelBackend& backend);
  // Stops accepting, ends open responses, joins the server thread. Idempotent.
  void stop();

 private:
  void install_routes();
  const ModelBackend& backend_or_503() const;
  void handle_completion(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);

  const ServerOptions options_;
  Metrics& metrics_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  std::optional<ModelBackend> backend_;  // written once, before ready_ turns true
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
};

}  // namespace jetmoe::serve
