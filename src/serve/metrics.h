// Server counters and gauges, rendered in the Prometheus text format for GET /metrics.
// Written by the engine and HTTP threads, read by scrapes: one mutex, cheap updates.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace jetmoe::serve {

struct EngineGauges {
  int64_t requests_running = 0;
  int64_t requests_waiting = 0;
  int64_t kv_cache_used_tokens = 0;      // positions held by all slots' caches
  int64_t kv_cache_capacity_tokens = 0;  // slots x context size
  int64_t slots = 0;
  int64_t kv_cache_bytes = 0;            // memory of all slots' caches, in their element type
};

class Metrics {
 public:
  // Prompt tokens evaluated (not those reused from a cache) and the seconds it took.
  void add_prompt_tokens(int64_t tokens, double seconds);
  void add_reused_prompt_tokens(int64_t tokens);
  // Tokens generated (sampled) and the seconds of forward passes and sampling they took.
  void add_generated_tokens(int64_t tokens, double seconds);
  // "finished", "cancelled", "failed" or "rejected" (queue full).
  void count_request(const std::string& outcome);
  void count_http_response(int status);
  void set_engine_gauges(const EngineGauges& gauges);
  EngineGauges engine_gauges() const;

  std::string prometheus_text() const;

 private:
  mutable std::mutex mutex_;
  int64_t prompt_tokens_ = 0, reused_prompt_tokens_ = 0, generated_tokens_ = 0;
  double prompt_seconds_ = 0, generation_seconds_ = 0;
  std::map<std::string, int64_t> requests_;
  std::map<int, int64_t> http_responses_;
  EngineGauges gauges_;
};

}  // namespace jetmoe::serve
