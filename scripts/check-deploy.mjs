// Proves each worker deploys: `wrangler deploy --dry-run --outdir` for every config (offline),
// checking that wrangler lists the bindings the worker needs, and that the RPC-only workers'
// bundles define no fetch handler.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./platform.mjs";

const CONFIGS = [
  {
    name: "api",
    config: "wrangler.jsonc",
    bindings: [
      ["RATE_LIMITER", "Durable Object"], ["TENANT_RATE_LIMITER", "Rate Limit"], ["ROUTES_CACHE", "KV Namespace"], ["AUTH_CACHE", "KV Namespace"],
      ["WAITLIST_DB", "D1 Database"], ["DB_SERVICE", "Worker"], ["AUTH_SERVICE", "Worker"], ["DO_SERVICE", "Worker"],
      ["ASSETS", "Assets"], ["ANALYTICS", "Analytics Engine"], ["LOGS", "R2 Bucket"], ["PRODUCTION", "Dispatch Namespace"], ["STAGING", "Dispatch Namespace"], ["DEVELOPMENT", "Dispatch Namespace"],
    ],
    fetchHandler: true,
  },
  { name: "db", config: "crates/db/wrangler.jsonc", bindings: [["DB", "D1 Database"]], fetchHandler: false },
  { name: "auth", config: "crates/auth/wrangler.jsonc", bindings: [["DB", "D1 Database"], ["AUTH_CACHE", "KV Namespace"]], fetchHandler: false },
  { name: "do", config: "crates/do/wrangler.jsonc", bindings: [["DB_SERVICE", "Worker"], ["AUTH_SERVICE", "Worker"]], fetchHandler: false },
  // The tail worker: a tail handler (checked below), no fetch handler.
  { name: "tail", config: "crates/tail/wrangler.jsonc", bindings: [["LOGS", "R2 Bucket"], ["LOG_BATCHER", "Durable Object"]], fetchHandler: false, tailHandler: true },
];

let failures = 0;
for (const { name, config, bindings, fetchHandler, tailHandler = false } of CONFIGS) {
  const outdir = path.join(ROOT, "target/dry-run", name);
  let output;
  try {
    output = execFileSync(path.join(ROOT, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", outdir, "-c", config], {
      cwd: ROOT,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", SKIP_WORKER_BUILD: "1", CI: "1", NO_COLOR: "1" },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (e) {
    console.error(`✗ ${name}: wrangler deploy --dry-run failed\n${e.stdout ?? ""}${e.stderr ?? ""}`);
    failures++;
    continue;
  }
  const missing = bindings.filter(([binding, kind]) => !output.split("\n").some((l) => l.includes(`env.${binding}`) && l.includes(kind)));
  const bundle = readdirSync(outdir).find((f) => f.endsWith(".js"));
  const code = bundle ? readFileSync(path.join(outdir, bundle), "utf8") : "";
  const hasFetch = /prototype\.fetch\s*=/.test(code);
  const hasTail = /prototype\.tail\s*=/.test(code);
  const size = (output.match(/Total Upload: ([^\n]+)/) ?? [])[1] ?? "?";
  if (missing.length || !bundle || hasFetch !== fetchHandler || hasTail !== tailHandler) {
    failures++;
    console.error(`✗ ${name}: missing bindings [${missing.map((m) => m.join(" ")).join(", ")}]` +
      `${bundle ? "" : ", no bundle"}${hasFetch !== fetchHandler ? `, fetch handler ${hasFetch ? "present" : "absent"}` : ""}` +
      `${hasTail !== tailHandler ? `, tail handler ${hasTail ? "present" : "absent"}` : ""}`);
  } else {
    console.log(`✓ ${name}: ${bindings.length} bindings listed, ${fetchHandler ? "fetch handler" : "no fetch handler (RPC only)"}${tailHandler ? ", tail handler" : ""}, upload ${size}`);
  }
}
process.exit(failures ? 1 : 0);
