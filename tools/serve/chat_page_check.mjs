// Drives the chat page of a running `jetmoe serve` in headless Chromium over the DevTools
// protocol (no npm packages: node's WebSocket): types a message, sends it, waits until the
// streamed reply is complete, checks that it arrived in pieces, and saves a screenshot.
// Prints one JSON object; exits non-zero on any failure.
//
// usage: node --experimental-websocket chat_page_check.mjs PAGE_URL SCREENSHOT.png [CHROMIUM]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [pageUrl, screenshotPath, browser = "chromium"] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "jetmoe-chromium-"));
const chromium = spawn(browser, ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--remote-debugging-port=0", `--user-data-dir=${profile}`, "--window-size=900,700", "about:blank"],
  { stdio: ["ignore", "ignore", "pipe"] });
const deadline = setTimeout(() => fail("timed out"), 60_000);

function fail(message) {
  console.error("chat_page_check: " + message);
  chromium.kill("SIGKILL");
  process.exit(1);
}

// The browser announces its DevTools endpoint on stderr.
const endpoint = await new Promise((resolve) => {
  let seen = "";
  chromium.stderr.on("data", (d) => {
    seen += d;
    const m = seen.match(/DevTools listening on (ws:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  chromium.on("exit", (code) => fail("chromium exited early (" + code + "): " + seen));
});

const socket = new WebSocket(endpoint);
await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
let nextId = 1;
const pending = new Map();
socket.onmessage = (event) => {
  const message = JSON.parse(event.data);
  if (message.id && pending.has(message.id)) {
    const { resolve, reject } = pending.get(message.id);
    pending.delete(message.id);
    message.error ? reject(new Error(JSON.stringify(message.error))) : resolve(message.result);
  }
};
function send(method, params = {}, sessionId = undefined) {
  const id = nextId++;
  socket.send(JSON.stringify({ id, method, params, sessionId }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const { targetId } = await send("Target.createTarget", { url: "about:blank" });
const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
const page = (method, params) => send(method, params, sessionId);
async function evaluate(expression) {
  const { result, exceptionDetails } = await page("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true });
  if (exceptionDetails) throw new Error(JSON.stringify(exceptionDetails));
  return result.value;
}

await page("Page.enable");
await page("Page.navigate", { url: pageUrl });
for (let i = 0; i < 100 && (await evaluate("document.readyState")) !== "complete"; ++i) await sleep(50);

// Record every text the reply bubble shows, to see the reply grow while it streams.
await evaluate(`(() => {
  window.__seen = [];
  new MutationObserver(() => {
    const reply = document.querySelector(".msg.assistant, .msg.error");
    if (reply) window.__seen.push(reply.textContent);
  }).observe(document.getElementById("log"), { childList: true, subtree: true, characterData: true });
  document.getElementById("input").value = "Tell me a story";
  document.getElementById("form").requestSubmit();
})()`);

let state = null;
for (let i = 0; i < 400; ++i) {
  state = await evaluate(`(() => {
    const reply = document.querySelector(".msg.assistant, .msg.error");
    return { reply: reply ? reply.textContent : null, done: reply ? reply.dataset.done === "true" : false,
             error: !!document.querySelector(".msg.error"), user: document.querySelector(".msg.user")?.textContent,
             seen: window.__seen.length, distinct: new Set(window.__seen).size };
  })()`);
  if (state.done || state.error) break;
  await sleep(50);
}
const shot = await page("Page.captureScreenshot", { format: "png" });
writeFileSync(screenshotPath, Buffer.from(shot.data, "base64"));
clearTimeout(deadline);
socket.close();
chromium.removeAllListeners("exit");
chromium.kill("SIGKILL");
// Chromium's helper processes may still be writing the profile for a moment after the kill;
// cleaning up is best effort and never decides the test.
try {
  rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
} catch (e) {
  console.error(`note: could not remove ${profile}: ${e.code}`);
}
console.log(JSON.stringify(state));
if (!state || !state.done || state.error) process.exit(1);
