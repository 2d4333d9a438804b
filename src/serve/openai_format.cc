#include "serve/openai_format.h"

#include "serve/api_error.h"
#include "serve/token_logprobs.h"

namespace jetmoe::serve {

using nlohmann::json;

const char* openai_finish_reason(FinishReason reason) {
  return reason == FinishReason::Length ? "length" : "stop";
}

json usage_json(const JobOutcome& o) {
  return {{"prompt_tokens", o.prompt_tokens},
          {"completion_tokens", o.generated_tokens},
          {"total_tokens", o.prompt_tokens + o.generated_tokens},
          {"prompt_tokens_details", {{"cached_tokens", o.cached_prompt_tokens}}}};
}

std::string sse_event(const json& payload) { return "data: " + dump_json(payload) + "\n\n"; }

namespace {

json byte_list(const std::string& text) {
  json bytes = json::array();
  for (const char c : text) bytes.push_back(int(static_cast<unsigned char>(c)));
  return bytes;
}

// The chat API's entry for one token: {token, logprob, bytes, top_logprobs: [...]}.
json chat_token_logprob(const Tokenizer& tokenizer, const SampledToken& t) {
  auto entry = [&](int32_t id, float logprob) {
    const std::string text = token_text(tokenizer, id);
    return json{{"token", text}, {"logprob", logprob}, {"bytes", byte_list(text)}};
  };
  json item = entry(t.id, t.logprob);
  json top = json::array();
  for (const TokenLogprob& alt : t.top) top.push_back(entry(alt.id, alt.logprob));
  item["top_logprobs"] = std::move(top);
  return item;
}

// The legacy completions API's logprobs: parallel arrays over the tokens.
json completion_logprobs(const Tokenizer& tokenizer, const std::vector<const SampledToken*>& tokens,
                         const std::vector<size_t>& offsets) {
  json out = {{"tokens", json::array()},
              {"token_logprobs", json::array()},
              {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  for (size_t i = 0; i < tokens.size(); ++i) {
    out["tokens"].push_back(token_text(tokenizer, tokens[i]->id));
    out["token_logprobs"].push_back(tokens[i]->logprob);
    json top = json::object();
    for (const TokenLogprob& alt : tokens[i]->top) top[token_text(tokenizer, alt.id)] = alt.logprob;
    out["top_logprobs"].push_back(std::move(top));
    out["text_offset"].push_back(offsets[i]);
  }
  return out;
}

const char* object_name(Endpoint endpoint, bool chunk) {
  if (endpoint == Endpoint::Completions) return "text_completion";
  return chunk ? "chat.completion.chunk" : "chat.completion";
}

}  // namespace

void CompletionBuilder::add(const JobEvent& event) {
  if (event.token) {
    tokens_.push_back(event);
    text_offsets_.push_back(text_.size());
  }
  text_ += event.text;
}

json CompletionBuilder::response(const JobOutcome& outcome) const {
  json choice = {{"index", 0}, {"finish_reason", openai_finish_reason(outcome.finish_reason)}};
  json logprobs = nullptr;
  if (meta_.logprobs) {
    if (meta_.endpoint == Endpoint::ChatCompletions) {
      json content = json::array();
      for (const JobEvent& e : tokens_) content.push_back(chat_token_logprob(tokenizer_, *e.token));
      logprobs = {{"content", std::move(content)}};
    } else {
      std::vector<const SampledToken*> tokens;
      for (const JobEvent& e : tokens_) tokens.push_back(&*e.token);
      logprobs = completion_logprobs(tokenizer_, tokens, text_offsets_);
    }
  }
  if (meta_.endpoint == Endpoint::ChatCompletions) {
    choice["message"] = {{"role", "assistant"}, {"content", text_}};
  } else {
    choice["text"] = text_;
  }
  choice["logprobs"] = std::move(logprobs);
  return {{"id", meta_.id},
          {"object", object_name(meta_.endpoint, false)},
          {"created", meta_.created},
          {"model", meta_.model},
          {"choices", json::array({std::move(choice)})},
          {"usage", usage_json(outcome)}};
}

json StreamEncoder::chunk(json choice) const {
  json c = {{"id", meta_.id},
            {"object", object_name(meta_.endpoint, true)},
            {"created", meta_.created},
            {"model", meta_.model},
            {"choices", json::array({std::move(choice)})}};
  if (include_usage_) c["usage"] = nullptr;  // as OpenAI: every chunk but the last has usage null
  return c;
}

std::string StreamEncoder::begin() {
  if (meta_.endpoint != Endpoint::ChatCompletions) return "";
  return sse_event(chunk({{"index", 0},
                          {"delta", {{"role", "assistant"}, {"content", ""}}},
                          {"logprobs", nullptr},
                          {"finish_reason", nullptr}}));
}

std::string StreamEncoder::event(const JobEvent& event) {
  const bool with_logprobs = meta_.logprobs && event.token;
  if (event.text.empty() && !with_logprobs) return "";
  json logprobs = nullptr;
  if (with_logprobs) {
    if (meta_.endpoint == Endpoint::ChatCompletions)
      logprobs = {{"content", json::array({chat_token_logprob(tokenizer_, *event.token)})}};
    else
      logprobs = completion_logprobs(tokenizer_, {&*event.token}, {text_bytes_});
  }
  text_bytes_ += event.text.size();
  json choice = {{"index", 0}, {"logprobs", std::move(logprobs)}, {"finish_reason", nullptr}};
  if (meta_.endpoint == Endpoint::ChatCompletions)
    choice["delta"] = {{"content", event.text}};
  else
    choice["text"] = event.text;
  return sse_event(chunk(std::move(choice)));
}

std::string StreamEncoder::end(const JobOutcome& outcome) {
  if (outcome.status != JobStatus::Finished) {
    const int status = outcome.status == JobStatus::Failed ? 500 : 499;
    return sse_event(error_json(status, outcome.error.empty() ? "the request was cancelled" : outcome.error));
  }
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", openai_finish_reason(outcome.finish_reason)}};
  if (meta_.endpoint == Endpoint::ChatCompletions)
    choice["delta"] = json::object();
  else
    choice["text"] = "";
  std::string out = sse_event(chunk(std::move(choice)));
  if (include_usage_) {
    json usage = chunk(json());
    usage["choices"] = json::array();
    usage["usage"] = usage_json(outcome);
    out += sse_event(usage);
  }
  return out + kSseDone;
}

}  // namespace jetmoe::serve
