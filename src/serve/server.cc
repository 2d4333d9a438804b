#include "serve/server.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "core/error.h"
#include "core/parallel.h"
#include "formats/model_files.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "serve/api_server.h"
#include "serve/engine.h"
#include "serve/metrics.h"

namespace jetmoe::serve {

void ShutdownRequest::request() {
  {
    std::lock_guard lock(mutex_);
    requested_ = true;
  }
  changed_.notify_all();
}

bool ShutdownRequest::requested() const {
  std::lock_guard lock(mutex_);
  return requested_;
}

bool ShutdownRequest::wait_for(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return requested_; });
}

std::string model_id_for(const ServerOptions& options) {
  if (!options.model_alias.empty()) return options.model_alias;
  std::filesystem::path dir(options.model_dir);
  if (dir.filename().empty()) dir = dir.parent_path();  // "models/tiny/"
  const std::string name = dir.filename().string();
  return name.empty() ? "jetmoe" : name;
}

void run_server(const ServerOptions& options, const ShutdownRequest& shutdown) {
  validate_server_options(options);
  Metrics metrics;
  ApiServer api(options, metrics);
  const int port = api.bind();
  api.start();
  std::fprintf(stderr, "serve: listening on http://%s:%d\n", options.host.c_str(), port);

  // Loaded while the server already answers (/health: 503).
  std::fprintf(stderr, "serve: loading %s\n", options.model_dir.c_str());
  std::unique_ptr<Model> model;
  std::optional<Tokenizer> tokenizer;
  try {
    tokenizer = load_model_tokenizer(options.model_dir);
    model = Model::load(options.model_dir);
    if (options.bf16_prefill) model->set_matmul_options({.activations = ops::Activations::BF16});
  } catch (...) {
    api.stop();
    throw;
  }
  ThreadPool pool(options.threads);
  EngineOptions engine_options;
  engine_options.parallel = options.parallel;
  engine_options.context_size = options.ctx_size;
  engine_options.cache_type = options.cache_type;
  engine_options.max_queue = options.max_queue;
  engine_options.prefill_chunk = options.prefill_chunk;
  Engine engine(*model, *tokenizer, pool, engine_options, metrics);
  // However this scope ends, stop in order before the engine goes away: first the jobs
  // (their responses finish), then the connections.
  struct StopInOrder {
    Engine& engine;
    ApiServer& api;
    ~StopInOrder() {
      engine.stop();
      api.stop();
    }
  } stop_in_order{engine, api};
  engine.start();
  api.set_backend({model.get(), &*tokenizer, &engine, model_id_for(options), engine.context_size()});
  std::fprintf(stderr, "serve: ready: model '%s', %d slots of %lld positions (%s KV cache)\n",
               model_id_for(options).c_str(), options.parallel, static_cast<long long>(engine.context_size()),
               kv_cache_type_name(options.cache_type));

  // Every wait is bounded; the loop ends when a shutdown is requested.
  while (!shutdown.wait_for(std::chrono::milliseconds(500))) {
  }
  std::fprintf(stderr, "serve: shutting down\n");
}

}  // namespace jetmoe::serve
