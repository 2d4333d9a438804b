// POST /v1/completions and /v1/chat/completions: read the request, queue a job, write the
// answer back whole or streamed. Both ways keep writing while the job runs (tokens, or
// whitespace before a whole JSON answer) so that a client that went away is noticed within a
// poll interval and its slot freed.
#include <httplib.h>

#include <chrono>
#include <ctime>
#include <random>

#include "core/error.h"
#include "serve/api_error.h"
#include "serve/api_server.h"
#include "serve/engine.h"
#include "serve/json_fields.h"
#include "serve/openai_format.h"

namespace jetmoe::serve {

using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

// How often a waiting response looks at its job (and at its client).
constexpr auto kPoll = std::chrono::milliseconds(50);
// A non-streamed answer that is ready within this time is sent as a plain response (with a
// Content-Length and the right status for late errors); a slower one streams whitespace first.
constexpr auto kPlainAnswerWait = std::chrono::milliseconds(300);
// An idle event stream gets an SSE comment this often (clients ignore it; a closed one fails).
constexpr auto kStreamKeepAlive = std::chrono::seconds(1);
constexpr const char* kJson = "application/json; charset=utf-8";

uint64_t random_u64() {
  thread_local std::mt19937_64 rng{(uint64_t(std::random_device{}()) << 32) ^ std::random_device{}()};
  return rng();
}

std::string response_id(Endpoint endpoint) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(random_u64()));
  return std::string(endpoint == Endpoint::ChatCompletions ? "chatcmpl-" : "cmpl-") + hex;
}

int status_of_failure(const JobOutcome& outcome) {
  if (outcome.status == JobStatus::Cancelled) return 499;
  return outcome.error.find("shutting down") != std::string::npos ? 503 : 500;
}

json failure_json(const JobOutcome& outcome) {
  return error_json(status_of_failure(outcome), outcome.error.empty() ? "the request was cancelled" : outcome.error);
}

// The state a response keeps between calls of its content provider.
struct PlainAnswer {
  std::shared_ptr<Job> job;
  CompletionBuilder builder;
  Clock::time_point last_write = Clock::now();
};

struct StreamedAnswer {
  std::shared_ptr<Job> job;
  StreamEncoder encoder;
  bool started = false;
  Clock::time_point last_write = Clock::now();
};

// Cancels the job when the response ends before the job did (client gone, server stopping).
auto cancel_unless_done(std::shared_ptr<Job> job) {
  return [job](bool) { if (!job->ended()) job->cancel(); };
}

void answer_whole(httplib::Response& res, std::shared_ptr<Job> job, const ResponseMeta& meta,
                  const Tokenizer& tokenizer) {
  auto answer = std::make_shared<PlainAnswer>(PlainAnswer{job, CompletionBuilder(meta, tokenizer)});
  std::vector<JobEvent> events;
  const Clock::time_point deadline = Clock::now() + kPlainAnswerWait;
  bool ended = false;
  while (!ended && Clock::now() < deadline) ended = job->wait(events, kPoll);
  for (const JobEvent& e : events) answer->builder.add(e);
  if (ended) {
    const JobOutcome outcome = job->outcome();
    const bool ok = outcome.status == JobStatus::Finished;
    res.status = ok ? 200 : status_of_failure(outcome);
    res.set_content(dump_json(ok ? answer->builder.response(outcome) : failure_json(outcome)), kJson);
    return;
  }
  res.set_chunked_content_provider(
      kJson,
      [answer](size_t, httplib::DataSink& sink) {
        try {
          std::vector<JobEvent> more;
          const bool done = answer->job->wait(more, kPoll);
          for (const JobEvent& e : more) answer->builder.add(e);
          if (!done) {
            // JSON may start with whitespace; writing it is how a closed connection shows.
            if (Clock::now() - answer->last_write < kPoll) return true;
            answer->last_write = Clock::now();
            return sink.write(" ", 1);
          }
          const JobOutcome outcome = answer->job->outcome();
          const std::string body =
              dump_json(outcome.status == JobStatus::Finished ? answer->builder.response(outcome) : failure_json(outcome));
          if (!sink.write(body.data(), body.size())) return false;
          sink.done();
          return true;
        } catch (const std::exception&) {
          return false;  // an exception must not escape into the HTTP library's thread
        }
      },
      cancel_unless_done(job));
}

void answer_streamed(httplib::Response& res, std::shared_ptr<Job> job, const ResponseMeta& meta,
                     const Tokenizer& tokenizer, bool include_usage) {
  auto answer = std::make_shared<StreamedAnswer>(StreamedAnswer{job, StreamEncoder(meta, tokenizer, include_usage)});
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [answer](size_t, httplib::DataSink& sink) {
        try {
          std::string out;
          if (!answer->started) {
            answer->started = true;
            out = answer->encoder.begin();
          }
          std::vector<JobEvent> events;
          const bool done = answer->job->wait(events, kPoll);
          for (const JobEvent& e : events) out += answer->encoder.event(e);
          if (done) out += answer->encoder.end(answer->job->outcome());
          if (out.empty() && Clock::now() - answer->last_write >= kStreamKeepAlive) out = ": keep-alive\n\n";
          if (!out.empty()) {
            answer->last_write = Clock::now();
            if (!sink.write(out.data(), out.size())) return false;
          }
          if (done) sink.done();
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      cancel_unless_done(job));
}

}  // namespace

void ApiServer::handle_completion(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
  try {
    const ModelBackend& b = backend_or_503();
    const json body = parse_request_body(req.body);
    RequestLimits limits;
    limits.model_id = b.model_id;
    limits.context_size = b.context_size;
    limits.vocab_size = b.tokenizer->vocab_size();
    limits.max_tokens_limit = options_.max_tokens_limit;
    limits.max_stop_strings = options_.max_stop_strings;
    limits.max_stop_bytes = options_.max_stop_bytes;
    CompletionRequest request = parse_completion_request(body, endpoint, *b.tokenizer, limits);

    JobSpec spec;
    spec.prompt = std::move(request.prompt);
    spec.sampling = request.sampling;
    spec.sampling.seed = request.seed ? *request.seed : random_u64();
    spec.max_tokens = request.max_tokens;
    spec.stop = std::move(request.stop);
    spec.ignore_eos = request.ignore_eos;
    spec.top_logprobs = request.top_logprobs;
    spec.continues_prompt_text = endpoint == Endpoint::Completions;
    auto job = std::make_shared<Job>(std::move(spec));
    b.engine->submit(job);

    const ResponseMeta meta{response_id(endpoint), int64_t(std::time(nullptr)), b.model_id, endpoint,
                            request.top_logprobs >= 0};
    if (request.stream) answer_streamed(res, job, meta, *b.tokenizer, request.include_usage);
    else answer_whole(res, job, meta, *b.tokenizer);
  } catch (const ApiError& e) {
    res.status = e.status();
    res.set_content(dump_json(e.to_json()), kJson);
  } catch (const std::exception& e) {
    res.status = 500;
    res.set_content(dump_json(error_json(500, str_cat("internal error: ", e.what()))), kJson);
  }
}

}  // namespace jetmoe::serve
