// Prints what Hugging Face's @huggingface/gguf (independent of jetmoe.cpp) knows of ggml's tensor
// and file types, as one JSON object on stdout:
//   {"tensor_types": {name: id}, "file_types": {name: id}, "descriptions": {name: text}}
// The tests use it to check the ids and the block layout facts jetmoe.cpp writes into GGUF files.
// usage: node tools/gguf/ggml_types.mjs
import { GGMLQuantizationType, GGMLFileQuantizationType, GGUF_QUANT_DESCRIPTIONS } from "@huggingface/gguf";

// TypeScript numeric enums map both ways; keep name -> id.
const forward = (e) => Object.fromEntries(Object.entries(e).filter(([name]) => Number.isNaN(Number(name))));

const tensorTypes = forward(GGMLQuantizationType);
const descriptions = {};
for (const [name, id] of Object.entries(tensorTypes)) {
  if (GGUF_QUANT_DESCRIPTIONS[id]) descriptions[name] = GGUF_QUANT_DESCRIPTIONS[id].txt;
}
process.stdout.write(
  JSON.stringify({ tensor_types: tensorTypes, file_types: forward(GGMLFileQuantizationType), descriptions }) + "\n",
);
