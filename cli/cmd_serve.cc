// jetmoe serve: an OpenAI-compatible HTTP server (src/serve). Every flag can also come from a
// JETMOE_* environment variable; the command line wins. SIGINT and SIGTERM shut it down.
#include <signal.h>

#include <atomic>
#include <thread>

#include "common.h"
#include "serve/server.h"

namespace jetmoe::cli {

namespace {

// Signals are taken synchronously by one thread (sigtimedwait), never by a handler that could
// interrupt the server mid-work. Must be called before any other thread exists, so that all
// inherit the blocked mask.
class ShutdownSignals {
 public:
  explicit ShutdownSignals(serve::ShutdownRequest& shutdown) {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not a dead server
    thread_ = std::thread([this, &shutdown] {
      const timespec poll{0, 100'000'000};
      while (!done_.load()) {
        if (sigtimedwait(&signals_, nullptr, &poll) > 0) shutdown.request();
      }
    });
  }
  ~ShutdownSignals() {
    done_.store(true);
    thread_.join();
  }

 private:
  sigset_t signals_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace

Command add_serve_command(CLI::App& parent) {
  auto o = std::make_shared<serve::ServerOptions>();
  CLI::App* app = parent.add_subcommand("serve", "Serve the model over HTTP with an OpenAI-compatible API");
  add_model_flag(*app, o->model_dir);
  app->get_option("--model")->envname("JETMOE_MODEL");
  add_threads_flag(*app, o->threads);
  app->get_option("--threads")->envname("JETMOE_THREADS");
  add_bf16_prefill_flag(*app, o->bf16_prefill);
  app->get_option("--bf16-prefill")->envname("JETMOE_BF16_PREFILL");
  app->add_option("--host", o->host, "Address to listen on (loopback unless you choose otherwise)")
      ->capture_default_str()->envname("JETMOE_HOST");
  app->add_option("--port", o->port, "Port to listen on; 0 = any free port (the one chosen is logged)")
      ->capture_default_str()->check(CLI::Range(0, 65535))->envname("JETMOE_PORT");
  app->add_option("--parallel", o->parallel, "Slots: requests decoded together")
      ->capture_default_str()->check(CLI::Range(1, 256))->envname("JETMOE_PARALLEL");
  app->add_option("-c,--ctx-size", o->ctx_size, "KV cache positions per slot; 0 = max_position_embeddings")
      ->capture_default_str()->check(CLI::NonNegativeNumber)->envname("JETMOE_CTX_SIZE");
  add_cache_type_flag(*app, o->cache_type)->envname("JETMOE_CACHE_TYPE");
  app->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' (all routes but / and /health)")
      ->envname("JETMOE_API_KEY");
  app->add_option("--alias", o->model_alias, "Model id clients use (default: the model directory's name)")
      ->envname("JETMOE_ALIAS");
  app->add_option("--max-body-bytes", o->max_body_bytes, "Largest request body accepted (413 beyond)")
      ->capture_default_str()->check(CLI::Range(size_t(1024), size_t(1) << 32))->envname("JETMOE_MAX_BODY_BYTES");
  app->add_option("--max-tokens-limit", o->max_tokens_limit, "Largest max_tokens a request may ask for (400 beyond)")
      ->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(1) << 40))->envname("JETMOE_MAX_TOKENS_LIMIT");
  app->add_option("--max-queue", o->max_queue, "Requests waiting for a slot before new ones get 503")
      ->capture_default_str()->check(CLI::Range(0, 100000))->envname("JETMOE_MAX_QUEUE");
  app->add_option("--max-stop-strings", o->max_stop_strings, "Stop strings one request may give")
      ->capture_default_str()->check(CLI::Range(0, 1024))->envname("JETMOE_MAX_STOP_STRINGS");
  app->add_option("--max-stop-bytes", o->max_stop_bytes, "Length of one stop string")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20))->envname("JETMOE_MAX_STOP_BYTES");
  app->add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens a slot evaluates per engine step")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20))->envname("JETMOE_PREFILL_CHUNK");
  app->add_option("--http-threads", o->http_threads, "Connections served at once; 0 = parallel + max-queue + 4")
      ->capture_default_str()->check(CLI::Range(0, 4096))->envname("JETMOE_HTTP_THREADS");
  app->add_option("--read-timeout", o->read_timeout_seconds, "Seconds a client may stay silent mid-request")
      ->capture_default_str()->check(CLI::Range(1, 3600))->envname("JETMOE_READ_TIMEOUT");
  return {app, [o] {
            check_model_dir(o->model_dir);
            serve::ShutdownRequest shutdown;
            ShutdownSignals signals(shutdown);
            serve::run_server(*o, shutdown);
          }};
}

}  // namespace jetmoe::cli
