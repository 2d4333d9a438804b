#include "serve/completion_request.h"

#include <algorithm>

#include "core/error.h"
#include "formats/tokenizer/tokenizer.h"
#include "serve/api_error.h"
#include "serve/json_fields.h"

namespace jetmoe::serve {

using nlohmann::json;

namespace {

std::string message_content(const json& message, size_t index) {
  const std::string where = str_cat("messages[", index, "].content");
  const auto it = message.find("content");
  if (it == message.end() || it->is_null()) return "";  // an assistant turn that only called tools
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) bad_request(str_cat("'", where, "' must be a string or an array of text parts, got ",
                                           json_kind(*it)), where);
  std::string text;
  for (const json& part : *it) {
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
        !part["text"].is_string())
      bad_request(str_cat("'", where, "' parts must be {\"type\": \"text\", \"text\": \"...\"}; this model reads "
                          "text only"), where);
    text += part["text"].get<std::string>();
  }
  return text;
}

std::vector<int32_t> completion_prompt(const json& body, const Tokenizer& tokenizer, const RequestLimits& limits) {
  const auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) bad_request("'prompt' is required", "prompt");
  json prompt = *it;
  // A batch of one prompt is that prompt; larger batches would need n choices.
  if (prompt.is_array() && prompt.size() == 1 && (prompt[0].is_string() || prompt[0].is_array()))
    prompt = json(prompt[0]);
  if (prompt.is_string()) return tokenizer.encode(prompt.get<std::string>(), /*add_bos=*/true);
  if (!prompt.is_array() || prompt.empty())
    bad_request("'prompt' must be a string, an array of token ids, or an array holding one of those", "prompt");
  std::vector<int32_t> ids;
  for (const json& id : prompt) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= limits.vocab_size)
      bad_request(str_cat("'prompt' token ids must be integers in [0, ", limits.vocab_size, "), got ", id.dump()),
                  "prompt");
    ids.push_back(int32_t(id.get<int64_t>()));
  }
  return ids;
}

std::vector<std::string> stop_strings(const json& body, const RequestLimits& limits) {
  std::vector<std::string> stops;
  const auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return stops;
  if (it->is_string()) {
    stops.push_back(it->get<std::string>());
  } else if (it->is_array()) {
    for (const json& s : *it) {
      if (!s.is_string()) bad_request(str_cat("'stop' entries must be strings, got ", json_kind(s)), "stop");
      stops.push_back(s.get<std::string>());
    }
  } else {
    bad_request(str_cat("'stop' must be a string or an array of strings, got ", json_kind(*it)), "stop");
  }
  if (int64_t(stops.size()) > limits.max_stop_strings)
    bad_request(str_cat("'stop' has ", stops.size(), " strings; at most ", limits.max_stop_strings, " are allowed"),
                "stop");
  for (const std::string& s : stops) {
    if (s.empty()) bad_request("'stop' strings must not be empty", "stop");
    if (int64_t(s.size()) > limits.max_stop_bytes)
      bad_request(str_cat("'stop' strings may be at most ", limits.max_stop_bytes, " bytes, got one of ", s.size()),
                  "stop");
  }
  return stops;
}

// Parameters we do not implement are refused when they would change the answer, rather
// than silently ignored.
void refuse_unsupported(const json& body) {
  if (const auto n = optional_int(body, "n", 1, 128); n && *n != 1)
    bad_request("'n' must be 1: one choice per request is supported", "n");
  if (const auto best_of = optional_int(body, "best_of", 1, 128); best_of && *best_of != 1)
    bad_request("'best_of' must be 1", "best_of");
  if (optional_bool(body, "echo").value_or(false)) bad_request("'echo' is not supported", "echo");
  if (const auto suffix = optional_string(body, "suffix"); suffix && !suffix->empty())
    bad_request("'suffix' is not supported", "suffix");
  if (const auto it = body.find("logit_bias"); it != body.end() && !it->is_null() && !it->empty())
    bad_request("'logit_bias' is not supported", "logit_bias");
  if (const auto it = body.find("tools"); it != body.end() && !it->is_null() && !it->empty())
    bad_request("'tools' are not supported by this model", "tools");
}

void read_sampling(const json& body, CompletionRequest& r) {
  // OpenAI's defaults: plain sampling at temperature 1; llama.cpp's extensions off.
  SamplingParams& p = r.sampling;
  p.temperature = float(optional_number(body, "temperature", 0.0, 2.0).value_or(1.0));
  p.top_p = float(optional_number(body, "top_p", 0.0, 1.0).value_or(1.0));
  if (p.top_p == 0.0f) p.top_p = 1e-6f;  // "only the most likely": the sampler wants (0, 1]
  p.top_k = int(optional_int(body, "top_k", 0, 1 << 30).value_or(0));
  p.min_p = float(optional_number(body, "min_p", 0.0, 1.0).value_or(0.0));
  p.presence_penalty = float(optional_number(body, "presence_penalty", -2.0, 2.0).value_or(0.0));
  p.frequency_penalty = float(optional_number(body, "frequency_penalty", -2.0, 2.0).value_or(0.0));
  p.repeat_penalty = float(optional_number(body, "repeat_penalty", 1e-3, 100.0).value_or(1.0));
  p.repeat_last_n = int(optional_int(body, "repeat_last_n", -1, 1 << 30).value_or(64));
  r.seed = optional_seed(body, "seed");
  if (r.seed) p.seed = *r.seed;
}

void read_logprobs(const json& body, CompletionRequest& r, const RequestLimits& limits) {
  const int max_top = std::min(kMaxTopLogprobs, int(limits.vocab_size));
  if (r.endpoint == Endpoint::ChatCompletions) {
    const bool wanted = optional_bool(body, "logprobs").value_or(false);
    const auto top = optional_int(body, "top_logprobs", 0, max_top);
    if (top && !wanted) bad_request("'top_logprobs' needs 'logprobs': true", "top_logprobs");
    if (wanted) r.top_logprobs = int(top.value_or(0));
  } else {
    // The legacy API: "logprobs": N asks for the token's logprob and N alternatives.
    if (const auto n = optional_int(body, "logprobs", 0, max_top)) r.top_logprobs = int(*n);
  }
}

}  // namespace

std::vector<ChatMessage> parse_chat_messages(const json& body) {
  const auto it = body.find("messages");
  if (it == body.end() || it->is_null()) bad_request("'messages' is required", "messages");
  if (!it->is_array()) bad_request(str_cat("'messages' must be an array, got ", json_kind(*it)), "messages");
  if (it->empty()) bad_request("'messages' must hold at least one message", "messages");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string where = str_cat("messages[", i, "]");
    if (!m.is_object()) bad_request(str_cat("'", where, "' must be an object, got ", json_kind(m)), where);
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string()) bad_request(str_cat("'", where, ".role' must be a string"), where);
    std::string name = role->get<std::string>();
    if (name == "developer") name = "system";  // OpenAI's newer name for the system turn
    if (name != "system" && name != "user" && name != "assistant")
      bad_request(str_cat("'", where, ".role' must be system, developer, user or assistant, got '", name, "'"),
                  where + ".role");
    messages.push_back({name, message_content(m, i)});
  }
  return messages;
}

CompletionRequest parse_completion_request(const json& body, Endpoint endpoint, const Tokenizer& tokenizer,
                                           const RequestLimits& limits) {
  CompletionRequest r;
  r.endpoint = endpoint;
  if (const auto model = optional_string(body, "model"); model && *model != limits.model_id)
    throw ApiError(404, str_cat("the model '", *model, "' does not exist; this server serves '", limits.model_id, "'"),
                   "model", "model_not_found");
  refuse_unsupported(body);
  read_sampling(body, r);
  read_logprobs(body, r, limits);
  r.stop = stop_strings(body, limits);
  r.ignore_eos = optional_bool(body, "ignore_eos").value_or(false);
  r.stream = optional_bool(body, "stream").value_or(false);
  if (const auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) bad_request("'stream_options' must be an object", "stream_options");
    r.include_usage = optional_bool(*it, "include_usage").value_or(false);
  }

  if (endpoint == Endpoint::ChatCompletions) {
    const std::vector<ChatMessage> messages = parse_chat_messages(body);
    try {
      r.prompt = tokenize_chat(tokenizer, messages, /*add_generation_prompt=*/true);
    } catch (const Error& e) {
      bad_request(e.what(), "messages");
    }
    // A model that spells the next turn's tag instead of ending its turn is stopped there.
    for (const char* tag : {"<|user|>", "<|system|>"}) r.stop.push_back(tag);
  } else {
    r.prompt = completion_prompt(body, tokenizer, limits);
  }
  if (r.prompt.empty()) bad_request("the prompt is empty", "prompt");
  if (int64_t(r.prompt.size()) > limits.context_size)
    throw ApiError(400, str_cat("the prompt has ", r.prompt.size(), " tokens but the context holds ",
                                limits.context_size, "; shorten it"),
                   endpoint == Endpoint::ChatCompletions ? "messages" : "prompt", "context_length_exceeded");

  // max_completion_tokens is the chat API's newer name for max_tokens.
  std::optional<int64_t> max_tokens = optional_int(body, "max_tokens", 1, limits.max_tokens_limit);
  if (!max_tokens) max_tokens = optional_int(body, "max_completion_tokens", 1, limits.max_tokens_limit);
  r.max_tokens = max_tokens.value_or(limits.max_tokens_limit);
  return r;
}

}  // namespace jetmoe::serve
