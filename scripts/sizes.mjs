// The size budgets of the built workers (release build, wasm-opt -Oz, names stripped), as
// gzip -9 of the wasm: the api 500 KiB (it is on every request's cold start), every other
// worker 1 MiB. `node scripts/sizes.mjs` prints the table and exits non-zero, naming the
// worker, when one is missing or over its budget; scripts/bench.mjs reports the same numbers.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BUDGET_KIB = { api: 500, db: 1024, auth: 1024, do: 1024, tail: 1024 };

export function workerSizes() {
  return Object.entries(BUDGET_KIB).map(([worker, budgetKiB]) => {
    const wasm = path.join(ROOT, "crates", worker, "build/index_bg.wasm");
    const bytes = existsSync(wasm) ? readFileSync(wasm) : null;
    const gzipKiB = bytes ? gzipSync(bytes, { level: 9 }).length / 1024 : NaN;
    return { worker, rawKiB: bytes ? bytes.length / 1024 : NaN, gzipKiB, budgetKiB, met: gzipKiB < budgetKiB };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sizes = workerSizes();
  console.log("| worker | wasm KiB | gzip KiB | budget KiB |\n| --- | --- | --- | --- |");
  for (const s of sizes) console.log(`| ${s.worker} | ${s.rawKiB.toFixed(1)} | ${s.gzipKiB.toFixed(1)} | ${s.budgetKiB} |`);
  const over = sizes.filter((s) => !s.met);
  for (const s of over) {
    console.error(Number.isNaN(s.gzipKiB)
      ? `sizes: crates/${s.worker}/build/index_bg.wasm is missing (build first)`
      : `sizes: ${s.worker} is ${s.gzipKiB.toFixed(1)} KiB gzip, over its ${s.budgetKiB} KiB budget`);
  }
  process.exitCode = over.length ? 1 : 0;
}
