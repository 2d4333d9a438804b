// Everything `jetmoe serve` can be told, with the defaults the command line starts from.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace jetmoe::serve {

struct ServerOptions {
  std::string model_dir;
  std::string model_alias;   // the id clients name in "model"; "" = the directory's name
  std::string host = "127.0.0.1";
  int port = 8080;           // 0 = any free port (the chosen one is logged)
  int parallel = 4;          // slots: sequences decoded together
  int64_t ctx_size = 0;      // KV cache positions per slot; 0 = max_position_embeddings
  DType cache_type = DType::F32;  // every slot's KV cache element type: F32 or F16
  int threads = 1;           // compute threads of the forward pass
  bool bf16_prefill = false; // prompt products with BF16 weights on bf16 dot products
  int http_threads = 0;      // connections served at once; 0 = parallel + max_queue + 4
  std::string api_key;       // "" = no authentication
  size_t max_body_bytes = 2 << 20;
  int64_t max_tokens_limit = 4096;  // largest max_tokens a request may ask for
  int max_queue = 64;               // requests waiting for a slot before 503
  int max_stop_strings = 4;
  int max_stop_bytes = 256;         // length of one stop string
  int prefill_chunk = 128;          // prompt tokens one slot evaluates per engine step
  int read_timeout_seconds = 10;    // a client silent this long mid-request is dropped

  int resolved_http_threads() const { return http_threads > 0 ? http_threads : parallel + max_queue + 4; }
};

// Throws jetmoe::Error naming the first option out of range.
void validate_server_options(const ServerOptions& options);

}  // namespace jetmoe::serve
