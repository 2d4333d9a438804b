// Reads a GGUF file with Hugging Face's @huggingface/gguf (an implementation independent of
// jetmoe.cpp) and prints what it saw as one JSON object on stdout:
//   {"version", "tensor_count", "kv_count", "tensor_data_offset",
//    "metadata": {key: {"type", "sub_type"?, "value"}}, "tensors": [{"name", "shape", "dtype", "offset"}]}
// 64-bit integers (BigInt) are printed as decimal strings, so nothing is rounded; "shape" is in
// file order (ne[0] first).
// usage: node tools/gguf/read_gguf.mjs FILE.gguf
import { gguf } from "@huggingface/gguf";

const file = process.argv[2];
if (!file) {
  console.error("usage: node read_gguf.mjs FILE.gguf");
  process.exit(2);
}

const { typedMetadata, tensorInfos, tensorDataOffset } = await gguf(file, { allowLocalFile: true, typedMetadata: true });

const header = new Set(["version", "tensor_count", "kv_count"]);
const metadata = {};
for (const [key, entry] of Object.entries(typedMetadata)) {
  if (header.has(key)) continue;
  metadata[key] = { type: entry.type, ...(entry.subType !== undefined && { sub_type: entry.subType }), value: entry.value };
}

const out = {
  version: typedMetadata.version.value,
  tensor_count: typedMetadata.tensor_count.value,
  kv_count: typedMetadata.kv_count.value,
  tensor_data_offset: tensorDataOffset,
  metadata,
  tensors: tensorInfos.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, offset: t.offset })),
};
const replacer = (_key, value) =>
  typeof value === "bigint" ? value.toString() : typeof value === "number" && !Number.isFinite(value) ? String(value) : value;
process.stdout.write(JSON.stringify(out, replacer) + "\n");
