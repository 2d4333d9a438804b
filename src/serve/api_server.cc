#include "serve/api_server.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "core/error.h"
#include "formats/tokenizer/tokenizer.h"
#include "model/model.h"
#include "serve/api_error.h"
#include "serve/chat_page.h"
#include "serve/completion_request.h"
#include "serve/json_fields.h"

namespace jetmoe::serve {

using nlohmann::json;

namespace {

constexpr const char* kJson = "application/json; charset=utf-8";

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_json(body), kJson);
}

// Runs a handler; an ApiError (or anything else thrown) becomes an OpenAI-style error.
template <typename Handler>
void guarded(httplib::Response& res, Handler&& handler) {
  try {
    handler();
  } catch (const ApiError& e) {
    send_json(res, e.status(), e.to_json());
  } catch (const std::exception& e) {
    send_json(res, 500, error_json(500, str_cat("internal error: ", e.what())));
  }
}

// Compares without an early exit, so the time taken does not reveal how much of a key matched.
bool same_secret(const std::string& given, const std::string& key) {
  if (given.size() != key.size()) return false;  // the length of a key is not the secret
  unsigned char diff = 0;
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i]);
  return diff == 0;
}

std::string status_phrase(int status) {
  switch (status) {
    case 400: return "the request is malformed";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 413: return "the request body is too large";
    case 414: return "the request URI is too long";
    default: return str_cat("HTTP status ", status);
  }
}

}  // namespace

ApiServer::ApiServer(const ServerOptions& options, Metrics& metrics)
    : options_(options), metrics_(metrics), http_(std::make_unique<httplib::Server>()) {
  validate_server_options(options_);
  const size_t threads = size_t(options_.resolved_http_threads());
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // SO_REUSEADDR only: the library's default adds SO_REUSEPORT, which would let a second
  // server share a port that is already serving instead of failing to bind.
  http_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  http_->set_payload_max_length(options_.max_body_bytes);
  http_->set_read_timeout(options_.read_timeout_seconds, 0);
  http_->set_write_timeout(options_.read_timeout_seconds, 0);
  http_->set_keep_alive_timeout(5);
  http_->set_keep_alive_max_count(1000);
  install_routes();
}

ApiServer::~ApiServer() { stop(); }

int ApiServer::bind() {
  int port = options_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(options_.host);
    if (port <= 0) fail("serve: cannot bind to ", options_.host, " on any port");
  } else if (!http_->bind_to_port(options_.host, port)) {
    fail("serve: cannot bind to ", options_.host, ":", port, " (in use, or not an address of this machine)");
  }
  return port;
}

void ApiServer::start() {
  thread_ = std::thread([this] { http_->listen_after_bind(); });
}

void ApiServer::set_backend(const ModelBackend& backend) {
  JM_CHECK(!ready_.load());
  backend_ = backend;
  ready_.store(true, std::memory_order_release);
}

void ApiServer::stop() {
  if (stopping_.exchange(true)) return;
  http_->stop();
  if (thread_.joinable()) thread_.join();
}

const ModelBackend& ApiServer::backend_or_503() const {
  if (stopping_.load()) throw ApiError(503, "the server is shutting down");
  if (!ready_.load(std::memory_order_acquire)) throw ApiError(503, "the model is still loading; try again shortly");
  return *backend_;
}

void ApiServer::install_routes() {
  httplib::Server& http = *http_;

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options_.api_key.empty() || req.path == "/health" || req.path == "/") return httplib::Server::HandlerResponse::Unhandled;
    const std::string given = req.get_header_value("Authorization");
    const std::string bearer = "Bearer ";
    if (given.rfind(bearer, 0) == 0 && same_secret(given.substr(bearer.size()), options_.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    send_json(res, 401, error_json(401, given.empty() ? "missing API key: send 'Authorization: Bearer KEY'"
                                                      : "invalid API key", "invalid_api_key"));
    res.set_header("WWW-Authenticate", "Bearer");
    return httplib::Server::HandlerResponse::Handled;
  });

  // Errors httplib raises itself (unknown route, body too large, unreadable request) get the
  // same JSON shape as ours; responses that already have a body keep it.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = status_phrase(res.status);
    if (res.status == 404) message = str_cat("no route ", req.method, " ", req.path);
    if (res.status == 413) message = "the request body is larger than this server accepts (see --max-body-bytes)";
    res.set_content(dump_json(error_json(res.status, message)), kJson);
  });

  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
    std::string what = "unknown";
    try {
      if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_json(res, 500, error_json(500, str_cat("internal error: ", what)));
  });

  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.count_http_response(res.status);
    std::fprintf(stderr, "serve: %s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
  });

  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(chat_page_html(), "text/html; charset=utf-8");
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (ready_.load(std::memory_order_acquire) && !stopping_.load()) return send_json(res, 200, {{"status", "ok"}});
    json body = error_json(503, stopping_.load() ? "the server is shutting down" : "the model is still loading");
    body["status"] = stopping_.load() ? "stopping" : "loading";
    send_json(res, 503, body);
  });

  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.prometheus_text(), "text/plain; version=0.0.4; charset=utf-8");
  });

  auto models = [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const ModelBackend& b = backend_or_503();
      const json model = {{"id", b.model_id},
                          {"object", "model"},
                          {"created", 0},
                          {"owned_by", "jetmoe.cpp"},
                          {"meta", {{"n_ctx", b.context_size}, {"n_vocab", b.tokenizer->vocab_size()}}}};
      if (req.matches.size() > 1) {
        if (req.matches[1] != b.model_id) throw ApiError(404, str_cat("the model '", req.matches[1].str(), "' does not exist"), "model", "model_not_found");
        return send_json(res, 200, model);
      }
      send_json(res, 200, {{"object", "list"}, {"data", json::array({model})}});
    });
  };
  http.Get("/v1/models", models);
  http.Get("/models", models);
  http.Get(R"(/v1/models/(.+))", models);

  http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const ModelBackend& b = backend_or_503();
      const json body = parse_request_body(req.body);
      const std::optional<std::string> content = optional_string(body, "content");
      if (!content) bad_request("'content' (a string) is required", "content");
      const bool add_special = optional_bool(body, "add_special").value_or(false);
      const bool with_pieces = optional_bool(body, "with_pieces").value_or(false);
      const std::vector<int32_t> ids = b.tokenizer->encode(*content, add_special);
      json tokens = json::array();
      for (const int32_t id : ids) {
        if (with_pieces) tokens.push_back({{"id", id}, {"piece", std::string(b.tokenizer->piece(id))}});
        else tokens.push_back(id);
      }
      send_json(res, 200, {{"tokens", tokens}});
    });
  });

  http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const ModelBackend& b = backend_or_503();
      const json body = parse_request_body(req.body);
      const auto it = body.find("tokens");
      if (it == body.end() || !it->is_array()) bad_request("'tokens' (an array of token ids) is required", "tokens");
      std::vector<int32_t> ids;
      for (const json& id : *it) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= b.tokenizer->vocab_size())
          bad_request(str_cat("'tokens' must hold integers in [0, ", b.tokenizer->vocab_size(), "), got ", id.dump()),
                      "tokens");
        ids.push_back(int32_t(id.get<int64_t>()));
      }
      send_json(res, 200, {{"content", b.tokenizer->decode(ids)}});
    });
  });

  for (const char* path : {"/v1/completions", "/completions"})
    http.Post(path, [this](const httplib::Request& req, httplib::Response& res) {
      handle_completion(req, res, Endpoint::Completions);
    });
  for (const char* path : {"/v1/chat/completions", "/chat/completions"})
    http.Post(path, [this](const httplib::Request& req, httplib::Response& res) {
      handle_completion(req, res, Endpoint::ChatCompletions);
    });
}

}  // namespace jetmoe::serve
