// Builds the tokenizer test corpus: a JSON array of strings ("lines"; some hold newlines).
// Deterministic: hand-picked edge cases, seeded random mixes of words, scripts, code and
// whitespace, and real text (licence prose and JS source) from files that are always present.
//
// usage: node make_corpus.mjs OUT.json [TRAIN.txt]
// TRAIN.txt, when given, receives extra real prose for training the small SentencePiece model.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

// Small seeded PRNG (mulberry32) so every run yields the same corpus.
function makeRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = makeRandom(20240611);
const pick = (list) => list[Math.floor(random() * list.length)];
const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));

// Edge cases that tokenizers commonly get wrong.
const edgeCases = [
  "", " ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\n ", "\r\n", "\t\t\t", " \t \n ",
  "a", " a", "a ", " a ", "  a  ", "a  b", "a   b", "a\tb", "a\nb", "a\n\nb", "a \n b",
  "grabbed", " grabbed", "           grabbed", "\ttabs\t\t\t\tout here", "ax\n####\nboo",
  "Hello world", "Hello World!", "hello, world", "HELLO WORLD", "Hello\u00a0world",
  "</s>", "<s>", "<unk>", "<s>Hello", "Hello</s>", "Hello </s> world", "</s></s>", "<s> <s>",
  "a</s>b", " </s> ", "<s>\n</s>", "<</s>>", "< s>", "<s", "s>", "</s", "<0x41>", "<0x0A>",
  "\u2581", "\u2581\u2581hello", "hello\u2581world", " \u2581 ",
  "0", "12", "123", "1234567890", "3.14159", "1,000,000", "-42", "2024-06-11", "0x1F", "1e-10",
  "\u00e9", "e\u0301", "caf\u00e9", "cafe\u0301", "na\u00efve", "\u00c5ngstr\u00f6m", "Stra\u00dfe",
  "\u4e2d\u6587", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\ud55c\uad6d\uc5b4",
  "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
  "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35", "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
  "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5", "\ud83e\udd99", "\ud83e\udd99\ua64a", "\ua64a\ud83e\udd99", "\u9547",
  "\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67", "\ud83c\uddeb\ud83c\uddf7", "\ud83d\udc4d\ud83c\udffd", "\u2764\ufe0f",
  "\ud835\udd18\ud835\udd2b\ud835\udd26\ud835\udd20\ud835\udd2c\ud835\udd21\ud835\udd22", "\ue000\uf8ff", "\u0001\u0002\u007f", "\u000b\u000c",
  "\u200b", "a\u200bb", "\u3000", "\u2028", "x\u0000y",
  "The llama (/\u02c8l\u0251\u02d0m\u0259/; \ud83e\udd99Spanish pronunciation: [\u02c8\u028eama]) (Lama glama) is a domesticated South American camelid.",
  "My favourite condiment is ", "I believe the meaning of life is",
];

const words = [
  "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
  "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they",
  "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more",
  "when", "will", "would", "who", "so", "no", "mixture", "experts", "attention", "router", "token",
  "tokenizer", "language", "model", "training", "inference", "gradient", "llama", "JetMoE", "MoE",
  "transformer", "embedding", "vocabulary", "unbelievable", "antidisestablishmentarianism",
  "supercalifragilistic", "internationalization", "Mississippi", "Zürich", "naïve", "façade", "jalapeño",
  "Ångström", "résumé", "coöperate", "São", "Paulo", "Kraków", "Dvořák", "Øresund", "İstanbul",
];
const scripts = [
  ["\u4e00", "\u9fff"], ["\u3040", "\u309f"], ["\u30a0", "\u30ff"], ["\uac00", "\ud7a3"],
  ["\u0600", "\u06ff"], ["\u0590", "\u05ff"], ["\u0900", "\u097f"], ["\u0e00", "\u0e7f"],
  ["\u0400", "\u04ff"], ["\u0370", "\u03ff"], ["\u0300", "\u036f"], ["\u2200", "\u22ff"],
  ["\u2500", "\u257f"], ["\u0080", "\u00ff"], ["\u1000", "\u109f"], ["\u10a0", "\u10ff"],
];
const astral = [[0x1f300, 0x1f64f], [0x1f680, 0x1f6ff], [0x1f900, 0x1f9ff], [0x1d400, 0x1d7ff], [0x20000, 0x2a6df]];
const spaces = [" ", " ", " ", "  ", "   ", "\t", "\n", " \n", "\n\n", "\t\t", "    ", "\r\n", " \t "];
const punct = [".", ",", "!", "?", ";", ":", "...", "-", "--", "(", ")", "\"", "'", "`", "/", "\\", "@", "#", "%", "&", "*"];

function randomFromScript() {
  const [lo, hi] = pick(scripts);
  let s = "";
  for (let n = int(1, 8); n > 0; --n) s += String.fromCharCode(int(lo.charCodeAt(0), hi.charCodeAt(0)));
  return s;
}
function randomAstral() {
  const [lo, hi] = pick(astral);
  return String.fromCodePoint(int(lo, hi));
}
function randomNumber() {
  switch (int(0, 4)) {
    case 0: return String(int(0, 9));
    case 1: return String(int(0, 1e6));
    case 2: return (random() * 1000).toFixed(int(1, 5));
    case 3: return `${int(1, 31)}/${int(1, 12)}/${int(1900, 2100)}`;
    default: return String(int(1, 9)) + "0".repeat(int(1, 12));
  }
}
function randomPiece() {
  const r = random();
  if (r < 0.55) return pick(words);
  if (r < 0.65) return pick(punct);
  if (r < 0.75) return randomNumber();
  if (r < 0.87) return randomFromScript();
  if (r < 0.93) return randomAstral();
  if (r < 0.96) return pick(["</s>", "<s>", "<unk>", "\u2581", "<0x20>"]);
  return pick(words).toUpperCase();
}
function randomLine() {
  let s = random() < 0.15 ? pick(spaces) : "";
  for (let n = int(1, 24); n > 0; --n) {
    s += randomPiece();
    s += random() < 0.8 ? " " : random() < 0.5 ? "" : pick(spaces);
  }
  if (random() < 0.3) s = s.trimEnd();
  return s;
}

const codeTemplates = [
  () => `def ${pick(words)}_${int(0, 99)}(x, y=${randomNumber()}):\n    return x ${pick(["+", "*", "-", "//"])} y`,
  () => `for (int i = 0; i < ${int(1, 4096)}; ++i) {\n\tsum += a[i] * b[i];\n}`,
  () => `const ${pick(words)} = { key: "${pick(words)}", value: ${randomNumber()} };`,
  () => `if (x == ${int(0, 9)} && y != ${int(0, 9)}) {\n        printf("%d\\n", x);\n    }`,
  () => `SELECT ${pick(words)}, COUNT(*) FROM t WHERE id > ${int(0, 999)} GROUP BY 1;`,
  () => `<div class="${pick(words)}">${pick(words)} &amp; ${pick(words)}</div>`,
  () => `{"${pick(words)}": [${int(0, 9)}, ${int(0, 9)}], "ok": true}`,
  () => `#include <vector>\n\nstd::vector<float> v(${int(1, 64)}, 0.0f);  // zeros`,
  () => `    \n  \t  ${pick(words)}  \n\n\n${pick(words)}    `,
  () => `$ ls -la | grep "${pick(words)}" > out.txt 2>&1`,
];

const corpus = [...edgeCases];
for (let i = 0; i < 1400; ++i) corpus.push(randomLine());
for (let i = 0; i < 300; ++i) corpus.push(pick(codeTemplates)());
// A few long lines exercise the merge queue on long inputs.
for (let i = 0; i < 4; ++i) {
  let s = "";
  for (let n = 0; n < 400; ++n) s += randomLine() + pick(spaces);
  corpus.push(s);
}
corpus.push(" ".repeat(1000), "\n".repeat(300), "a".repeat(5000), "\ud83e\udd99".repeat(500));

// Real text: licence prose (Debian base-files) and source code (pinned npm packages), line by line
// and as multi-line paragraphs.
function readIfPresent(file) {
  try { return fs.readFileSync(file, "utf8"); } catch { return ""; }
}
const realSources = [
  "/usr/share/common-licenses/GPL-3",
  "/usr/share/common-licenses/Apache-2.0",
  path.join(here, "node_modules/llama-tokenizer-js/README.md"),
  path.join(here, "node_modules/@lenml/tokenizers/src/tokenizers/utils/data-structures.js"),
];
for (const file of realSources) {
  const lines = readIfPresent(file).split("\n");
  for (let i = 0; i < lines.length; i += 3) corpus.push(lines[i]);
  for (let i = 0; i + 6 < lines.length; i += 97) corpus.push(lines.slice(i, i + 6).join("\n"));
}

fs.writeFileSync(process.argv[2], JSON.stringify(corpus));
if (process.argv[3]) {
  const prose = realSources.map(readIfPresent).join("\n");
  fs.writeFileSync(process.argv[3], corpus.join("\n") + "\n" + prose);
}
console.log(`corpus: ${corpus.length} lines -> ${process.argv[2]}`);
