// Encodes the corpus with @lenml/tokenizers (a JS port of Hugging Face tokenizers) for each
// tokenizer.json asset, and writes DIR/expected.json:
//   { "reference": "...", "ids": [[...] per line], "decoded": [string per line] }
// ids: encode(line) with add_special_tokens (BOS) and special tokens in text recognised;
// decoded: decode(ids, skip_special_tokens=true); decoded_with_special: the same with specials kept.
// For llama2/ it also writes llama_tokenizer_js.json: llama-tokenizer-js's encode(line) (BOS, no
// special-token parsing), a second independent implementation on the Llama-2 vocabulary.
//
// usage: node reference_ids.mjs ASSET_DIR CORPUS.json

import fs from "node:fs";
import path from "node:path";
import { TokenizerLoader } from "@lenml/tokenizers";
import llamaTokenizer from "llama-tokenizer-js";

const [dest, corpusPath] = process.argv.slice(2);
const corpus = JSON.parse(fs.readFileSync(corpusPath, "utf8"));

for (const name of ["mistral", "mistral-pairs", "mistral-metaspace", "llama2"]) {
  const dir = path.join(dest, name);
  const tokenizer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
  });
  const ids = corpus.map((line) => tokenizer.encode(line, { add_special_tokens: true }));
  const decoded = ids.map((line) => tokenizer.decode(line, { skip_special_tokens: true }));
  const decoded_with_special = ids.map((line) => tokenizer.decode(line, { skip_special_tokens: false }));
  fs.writeFileSync(path.join(dir, "expected.json"),
                   JSON.stringify({ reference: "@lenml/tokenizers 3.7.2", ids, decoded, decoded_with_special }));
  console.log(`reference_ids: ${name}: ${ids.length} lines`);
}

const jsIds = corpus.map((line) => llamaTokenizer.encode(line));
fs.writeFileSync(path.join(dest, "llama2", "llama_tokenizer_js.json"),
                 JSON.stringify({ reference: "llama-tokenizer-js 1.2.2", ids: jsIds }));
