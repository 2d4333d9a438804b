#include "serve/metrics.h"

#include <sstream>

namespace jetmoe::serve {

void Metrics::add_prompt_tokens(int64_t tokens, double seconds) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += tokens;
  prompt_seconds_ += seconds;
}

void Metrics::add_reused_prompt_tokens(int64_t tokens) {
  std::lock_guard lock(mutex_);
  reused_prompt_tokens_ += tokens;
}

void Metrics::add_generated_tokens(int64_t tokens, double seconds) {
  std::lock_guard lock(mutex_);
  generated_tokens_ += tokens;
  generation_seconds_ += seconds;
}

void Metrics::count_request(const std::string& outcome) {
  std::lock_guard lock(mutex_);
  ++requests_[outcome];
}

void Metrics::count_http_response(int status) {
  std::lock_guard lock(mutex_);
  ++http_responses_[status];
}

void Metrics::set_engine_gauges(const EngineGauges& gauges) {
  std::lock_guard lock(mutex_);
  gauges_ = gauges;
}

EngineGauges Metrics::engine_gauges() const {
  std::lock_guard lock(mutex_);
  return gauges_;
}

namespace {

// One metric: its HELP and TYPE lines, then the samples the caller writes.
void header(std::ostringstream& out, const char* name, const char* type, const char* help) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

template <typename T>
void single(std::ostringstream& out, const char* name, const char* type, const char* help, T value) {
  header(out, name, type, help);
  out << name << " " << value << "\n";
}

}  // namespace

std::string Metrics::prometheus_text() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  out.precision(9);
  single(out, "jetmoe_prompt_tokens_total", "counter", "Prompt tokens evaluated (not counting reused ones).",
         prompt_tokens_);
  single(out, "jetmoe_prompt_tokens_reused_total", "counter", "Prompt tokens served from a slot's KV cache.",
         reused_prompt_tokens_);
  single(out, "jetmoe_prompt_seconds_total", "counter", "Seconds spent evaluating prompts.", prompt_seconds_);
  single(out, "jetmoe_generated_tokens_total", "counter", "Tokens generated.", generated_tokens_);
  single(out, "jetmoe_generation_seconds_total", "counter", "Seconds spent generating tokens.",
         generation_seconds_);
  single(out, "jetmoe_prompt_tokens_per_second", "gauge", "Prompt evaluation throughput while busy.",
         prompt_seconds_ > 0 ? double(prompt_tokens_) / prompt_seconds_ : 0.0);
  single(out, "jetmoe_generated_tokens_per_second", "gauge", "Generation throughput while busy.",
         generation_seconds_ > 0 ? double(generated_tokens_) / generation_seconds_ : 0.0);
  single(out, "jetmoe_requests_running", "gauge", "Requests holding a slot.", gauges_.requests_running);
  single(out, "jetmoe_requests_waiting", "gauge", "Requests queued for a slot.", gauges_.requests_waiting);
  single(out, "jetmoe_slots", "gauge", "Slots (sequences decoded together).", gauges_.slots);
  single(out, "jetmoe_kv_cache_used_tokens", "gauge", "KV cache positions in use over all slots.",
         gauges_.kv_cache_used_tokens);
  single(out, "jetmoe_kv_cache_capacity_tokens", "gauge", "KV cache positions over all slots.",
         gauges_.kv_cache_capacity_tokens);
  single(out, "jetmoe_kv_cache_bytes", "gauge", "Memory of the KV caches of all slots (their whole capacity).",
         gauges_.kv_cache_bytes);
  single(out, "jetmoe_kv_cache_usage_ratio", "gauge", "Used over capacity.",
         gauges_.kv_cache_capacity_tokens > 0
             ? double(gauges_.kv_cache_used_tokens) / double(gauges_.kv_cache_capacity_tokens)
             : 0.0);
  header(out, "jetmoe_requests_total", "counter", "Generation requests by outcome.");
  for (const char* outcome : {"finished", "cancelled", "failed", "rejected"}) {
    const auto it = requests_.find(outcome);
    out << "jetmoe_requests_total{outcome=\"" << outcome << "\"} " << (it == requests_.end() ? 0 : it->second)
        << "\n";
  }
  header(out, "jetmoe_http_responses_total", "counter", "HTTP responses by status code.");
  for (const auto& [status, count] : http_responses_)
    out << "jetmoe_http_responses_total{status=\"" << status << "\"} " << count << "\n";
  return out.str();
}

}  // namespace jetmoe::serve
