// Removes the `name` custom section (function and local names, for stack traces only) from
// built wasm files, in place. worker-build 0.8 always passes `--debuginfo` to wasm-opt, which
// keeps that section whatever the crate's wasm-opt flags say; in the api it is a fifth of the
// file and about 14 % of its gzip size, paid on every cold start. Nothing at run time reads it:
// a panic's message and location live in the data section. Usage: node strip-wasm-names.mjs FILE...
import { readFileSync, writeFileSync } from "node:fs";

function leb128(bytes, at) {
  let value = 0, shift = 0, byte;
  do {
    if (at >= bytes.length) throw new Error("truncated LEB128");
    byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return { value, next: at };
}

export function stripNames(bytes) {
  const magic = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  if (bytes.length < 8 || magic.some((b, i) => bytes[i] !== b)) throw new Error("not a wasm module (version 1)");
  const kept = [bytes.subarray(0, 8)];
  let at = 8, removed = 0;
  while (at < bytes.length) {
    const start = at, id = bytes[at];
    const { value: size, next } = leb128(bytes, at + 1);
    const end = next + size;
    if (end > bytes.length) throw new Error(`section at ${start} runs past the end of the file`);
    let drop = false;
    if (id === 0) {
      const { value: len, next: nameAt } = leb128(bytes, next);
      drop = Buffer.from(bytes.subarray(nameAt, nameAt + len)).toString("utf8") === "name";
    }
    if (drop) removed += end - start; else kept.push(bytes.subarray(start, end));
    at = end;
  }
  return { bytes: Buffer.concat(kept), removed };
}

for (const file of process.argv.slice(2)) {
  const { bytes, removed } = stripNames(readFileSync(file));
  writeFileSync(file, bytes);
  console.log(`${file}: ${removed} bytes of names removed, ${bytes.length} left`);
}
