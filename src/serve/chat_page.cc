#include "serve/chat_page.h"

namespace jetmoe::serve {

namespace {

// Model output is only ever inserted as text (textContent), never as HTML.
constexpr const char* kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jetmoe chat</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { padding: 8px 16px; background: #1f2937; color: #f9fafb; display: flex; gap: 12px; align-items: center; }
  header input { flex: 0 1 220px; }
  #log { flex: 1; overflow-y: auto; padding: 16px; background: #f3f4f6; }
  .msg { max-width: 46em; margin: 0 0 12px; padding: 8px 12px; border-radius: 8px; white-space: pre-wrap; }
  .user { background: #dbeafe; margin-left: auto; }
  .assistant { background: #fff; border: 1px solid #e5e7eb; }
  .error { background: #fee2e2; }
  form { display: flex; gap: 8px; padding: 12px 16px; border-top: 1px solid #e5e7eb; }
  textarea { flex: 1; resize: none; height: 3em; font: inherit; }
</style>
</head>
<body>
<header><strong>jetmoe chat</strong><span id="model"></span>
  <input id="key" type="password" placeholder="API key (if the server needs one)">
  <button id="reset" type="button">New chat</button></header>
<div id="log"></div>
<form id="form"><textarea id="input" placeholder="Type a message; Enter sends, Shift+Enter adds a line"></textarea>
  <button id="send" type="submit">Send</button></form>
<script>
"use strict";
const log = document.getElementById("log"), input = document.getElementById("input");
const keyBox = document.getElementById("key"), sendButton = document.getElementById("send");
keyBox.value = localStorage.getItem("jetmoe-key") || "";
keyBox.onchange = () => localStorage.setItem("jetmoe-key", keyBox.value);
let messages = [];

function headers() {
  const h = { "Content-Type": "application/json" };
  if (keyBox.value) h["Authorization"] = "Bearer " + keyBox.value;
  return h;
}
function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}
fetch("/v1/models", { headers: headers() }).then(r => r.json())
  .then(j => { document.getElementById("model").textContent = j.data ? j.data[0].id : ""; }).catch(() => {});
document.getElementById("reset").onclick = () => { messages = []; log.textContent = ""; };
input.addEventListener("keydown", e => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); document.getElementById("form").requestSubmit(); }
});

document.getElementById("form").onsubmit = async e => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || sendButton.disabled) return;
  input.value = "";
  messages.push({ role: "user", content: text });
  bubble("user", text);
  const reply = bubble("assistant", "");
  sendButton.disabled = true;
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(),
      body: JSON.stringify({ messages, stream: true, max_tokens: 512 }),
    });
    if (!response.ok) throw new Error((await response.json()).error.message);
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "", done = false;
    while (!done) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") { done = true; break; }
        const json = JSON.parse(data);
        if (json.error) throw new Error(json.error.message);
        const delta = json.choices.length ? json.choices[0].delta : null;
        if (delta && delta.content) { reply.textContent += delta.content; log.scrollTop = log.scrollHeight; }
      }
    }
    messages.push({ role: "assistant", content: reply.textContent });
    reply.dataset.done = "true";
  } catch (err) {
    reply.className = "msg error";
    reply.textContent = "Error: " + err.message;
    messages.pop();
  } finally {
    sendButton.disabled = false;
  }
};
</script>
</body>
</html>
)HTML";

}  // namespace

const std::string& chat_page_html() {
  static const std::string page = kPage;
  return page;
}

}  // namespace jetmoe::serve
