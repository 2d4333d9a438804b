#include "serve/server_options.h"

#include "core/error.h"
#include "model/kv_cache.h"

namespace jetmoe::serve {

void validate_server_options(const ServerOptions& o) {
  if (o.host.empty()) fail("--host must not be empty");
  if (o.port < 0 || o.port > 65535) fail("--port must be in [0, 65535], got ", o.port);
  if (o.parallel < 1 || o.parallel > 256) fail("--parallel must be in [1, 256], got ", o.parallel);
  if (o.ctx_size < 0) fail("--ctx-size must be >= 0 (0 = the model's max_position_embeddings), got ", o.ctx_size);
  if (!is_kv_cache_type(o.cache_type)) fail("--cache-type must be f32 or f16, got ", dtype_name(o.cache_type));
  if (o.threads < 1) fail("--threads must be >= 1, got ", o.threads);
  if (o.http_threads < 0 || o.http_threads > 4096) fail("--http-threads must be in [0, 4096], got ", o.http_threads);
  if (o.max_body_bytes < 1024) fail("--max-body-bytes must be at least 1024, got ", o.max_body_bytes);
  if (o.max_tokens_limit < 1) fail("--max-tokens-limit must be >= 1, got ", o.max_tokens_limit);
  if (o.max_queue < 0 || o.max_queue > 100000) fail("--max-queue must be in [0, 100000], got ", o.max_queue);
  if (o.max_stop_strings < 0) fail("--max-stop-strings must be >= 0, got ", o.max_stop_strings);
  if (o.max_stop_bytes < 1) fail("--max-stop-bytes must be >= 1, got ", o.max_stop_bytes);
  if (o.prefill_chunk < 1) fail("--prefill-chunk must be >= 1, got ", o.prefill_chunk);
  if (o.read_timeout_seconds < 1) fail("--read-timeout must be >= 1 second, got ", o.read_timeout_seconds);
}

}  // namespace jetmoe::serve
