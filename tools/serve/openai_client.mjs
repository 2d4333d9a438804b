// Talks to a running `jetmoe serve` with the official OpenAI SDK, as a user's tool would:
// chat and completions, whole and streamed, greedy. Prints one JSON object with what came back
// (the C++ test compares it with curl's answers); exits non-zero if the SDK raised.
//
// usage: node openai_client.mjs BASE_URL MODEL_ID API_KEY
import OpenAI from "openai";

const [baseURL, model, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, timeout: 60_000, maxRetries: 0 });
const messages = [{ role: "user", content: "Tell me a story" }];
const common = { model, max_tokens: 12, temperature: 0 };

const chat = await client.chat.completions.create({ ...common, messages });

let chatStreamed = "";
let chatFinish = null;
let chatUsage = null;
const chatStream = await client.chat.completions.create({
  ...common, messages, stream: true, stream_options: { include_usage: true },
});
for await (const chunk of chatStream) {
  if (chunk.usage) chatUsage = chunk.usage;
  for (const choice of chunk.choices) {
    chatStreamed += choice.delta.content ?? "";
    if (choice.finish_reason) chatFinish = choice.finish_reason;
  }
}

const completion = await client.completions.create({ ...common, prompt: "Once upon a time" });

let completionStreamed = "";
const completionStream = await client.completions.create({ ...common, prompt: "Once upon a time", stream: true });
for await (const chunk of completionStream) completionStreamed += chunk.choices[0]?.text ?? "";

const models = await client.models.list();

let errorStatus = null;
try {
  await client.chat.completions.create({ ...common, messages: [] });
} catch (e) {
  errorStatus = e.status;  // the SDK turns the JSON error into an APIError
}

console.log(JSON.stringify({
  chat: chat.choices[0].message.content,
  chat_finish: chat.choices[0].finish_reason,
  chat_usage: chat.usage,
  chat_streamed: chatStreamed,
  chat_streamed_finish: chatFinish,
  chat_streamed_usage: chatUsage,
  completion: completion.choices[0].text,
  completion_streamed: completionStreamed,
  models: models.data.map((m) => m.id),
  error_status: errorStatus,
}));
