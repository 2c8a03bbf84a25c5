// The release build: every worker's wasm compiles, carries no names section (the build strips
// it, scripts/strip-wasm-names.mjs), and keeps its other custom sections.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { stripNames } from "../scripts/strip-wasm-names.mjs";

const WORKERS = ["api", "db", "auth", "do", "tail"];

for (const w of WORKERS) {
  test(`${w}: the built wasm compiles and has no names section`, async () => {
    const module = await WebAssembly.compile(readFileSync(new URL(`../crates/${w}/build/index_bg.wasm`, import.meta.url)));
    assert.equal(WebAssembly.Module.customSections(module, "name").length, 0);
    assert.ok(WebAssembly.Module.exports(module).length > 0);
  });
}

// A module with one function, a `name` section and another custom section, by hand.
const custom = (name, payload) => { const n = Buffer.from(name); const body = Buffer.concat([Buffer.from([n.length]), n, Buffer.from(payload)]); return Buffer.concat([Buffer.from([0, body.length]), body]); };
const sample = Buffer.concat([
  Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]),
  Buffer.from([0x01, 0x04, 0x01, 0x60, 0x00, 0x00]), // type section: () -> ()
  Buffer.from([0x03, 0x02, 0x01, 0x00]), // function section: one function of type 0
  Buffer.from([0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00]), // export "f"
  Buffer.from([0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b]), // code: empty body
  custom("name", [0x01, 0x04, 0x01, 0x00, 0x01, 0x66]), // function names: 0 -> "f"
  custom("producers", [0x00]),
]);

test("stripNames removes the names section and nothing else", async () => {
  const before = await WebAssembly.compile(sample);
  assert.equal(WebAssembly.Module.customSections(before, "name").length, 1);
  const { bytes, removed } = stripNames(sample);
  assert.equal(removed, custom("name", [0x01, 0x04, 0x01, 0x00, 0x01, 0x66]).length);
  const after = await WebAssembly.compile(bytes);
  assert.equal(WebAssembly.Module.customSections(after, "name").length, 0);
  assert.equal(WebAssembly.Module.customSections(after, "producers").length, 1);
  assert.deepEqual(WebAssembly.Module.exports(after), [{ name: "f", kind: "function" }]);
  assert.deepEqual(stripNames(bytes), { bytes, removed: 0 });
});

test("stripNames refuses what is not wasm, and a section that runs past the end", () => {
  assert.throws(() => stripNames(Buffer.from("not wasm at all")), /not a wasm module/);
  assert.throws(() => stripNames(Buffer.concat([sample.subarray(0, 8), Buffer.from([0x01, 0x7f, 0x00])])), /runs past the end/);
});
