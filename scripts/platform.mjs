// The local platform: every worker of this repo in one workerd (through Miniflare), with local
// KV, D1 (migrations applied), Durable Objects and Assets, plus an emulation of the three
// Workers-for-Platforms dispatch namespaces. `scripts/dev`, `scripts/test` and `scripts/bench`
// all start the platform through `startPlatform`, so they cannot drift apart.
import { Miniflare } from "miniflare";
import { startFront } from "./front.mjs";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const COMPATIBILITY_DATE = "2026-07-30";
export const NAMESPACES = { PRODUCTION: "production", STAGING: "staging", DEVELOPMENT: "development" };
export const DEV_ADMIN_API_KEY = "dev-admin-key";
// Local-only signing key for access tokens (two keys: current, then previous, for rotation tests).
export const DEV_TOKEN_KEYS =
  "dev1:ZGV2LXRva2VuLWtleS1vbmUtMzItYnl0ZXMtbG9uZy1hdC1sZWFzdA,dev0:ZGV2LXRva2VuLWtleS16ZXJvLTMyLWJ5dGVzLWxvbmctYXQtbGVhc3Q";

const WASM_RULES = [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }];

/** A Rust worker built by worker-build into `{dir}/build`. */
function rustWorker(name, dir, options = {}) {
  const scriptPath = path.join(ROOT, dir, "build/index.js");
  if (!existsSync(scriptPath)) {
    throw new Error(`${scriptPath} is missing: build the workers first (scripts/build-worker)`);
  }
  return {
    name,
    modules: true,
    modulesRoot: path.join(ROOT, dir, "build"),
    scriptPath,
    modulesRules: WASM_RULES,
    compatibilityDate: COMPATIBILITY_DATE,
    ...options,
  };
}

/** Every `examples/user-workers/{namespace}/{name}/index.js`, or the folder given. */
export function findUserWorkers(root = path.join(ROOT, "examples/user-workers")) {
  const found = [];
  for (const namespace of Object.values(NAMESPACES)) {
    const dir = path.join(root, namespace);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      const file = path.join(dir, name, "index.js");
      if (existsSync(file)) found.push({ namespace, name, file });
    }
  }
  return found;
}

// The emulated dispatch namespace. In production the api calls
// `env.PRODUCTION.get(name, args, { limits })` on a DispatchNamespace and then `fetch`es the
// result. Locally each namespace binding is a Miniflare wrapped binding: this module runs
// inside the api's own isolate (as a DispatchNamespace does) with a service binding to each
// user worker, and `get` returns an object whose `fetch` is that binding's own. So the call is
// an ordinary HTTP-level fetch, as in production: redirects as sent, bodies streamed both ways,
// a WebSocket upgrade answered with the worker's 101 and its WebSocket (a Workers RPC hop in
// between would carry none of a WebSocket). A missing worker fails the way the platform does:
// "Worker not found". The limits cannot be enforced locally; they are passed on in a header so
// tests can see them.
const DISPATCHER_SOURCE = `
export default function (env) {
  return {
    get(name, args, options) {
      const fetcher = typeof name === "string" ? env["USER_WORKER:" + name] : undefined;
      const limits = options && options.limits;
      return {
        fetch(input, init) {
          if (!fetcher) throw new Error("Worker not found: " + String(name));
          const forwarded = new Request(input, init);
          if (limits) forwarded.headers.set("x-local-dispatch-limits", JSON.stringify(limits));
          return fetcher.fetch(forwarded);
        },
      };
    },
  };
}
`;

/** The log pipeline's R2 bucket: written by the tail worker, read by the api's /api/logs. */
export const LOGS_BUCKET = "platform-logs";
/** While this object exists in the bucket, the fault injector fails every write (tests). */
export const LOGS_FAULT_KEY = "_faults/fail-writes";

// A fault injector for R2 (local tests only; R2 has no failure switch of its own): a wrapped
// binding in front of the real local bucket that fails every put while LOGS_FAULT_KEY exists.
// The class is named R2Bucket because workers-rs checks a binding's constructor name.
const LOGS_FAULTS_SOURCE = `
export default function (env) {
  const inner = env.LOGS;
  class R2Bucket {
    async put(key, value, options) {
      if (await inner.head(${JSON.stringify(LOGS_FAULT_KEY)})) throw new Error("injected R2 failure (local fault injection)");
      return inner.put(key, value, options);
    }
    get(...args) { return inner.get(...args); }
    head(...args) { return inner.head(...args); }
    list(...args) { return inner.list(...args); }
    delete(...args) { return inner.delete(...args); }
  }
  return new R2Bucket();
}
`;

/**
 * Miniflare options for the whole platform. `apiVars` adds or replaces api vars (tests use it
 * for short TTLs and limits), `apiServices` adds service bindings to the api, `assetsDirectory`
 * replaces assets/; `overrides.{worker}` shallow-merges into that worker's options.
 * `tailVars` adds or replaces the tail worker's vars (batch bounds); `logsFaults` puts the
 * fault injector in front of the tail worker's R2 bucket (see LOGS_FAULTS_SOURCE);
 * `logPipeline: false` runs no tail worker and gives the producers no tail consumer.
 */
export function platformOptions({ port = 0, persistTo, userWorkersRoot, overrides = {}, extraWorkers = [], apiVars = {}, apiServices = {}, assetsDirectory, tailVars = {}, logsFaults = false, logPipeline = true } = {}) {
  const userWorkers = findUserWorkers(userWorkersRoot);
  const dispatchers = Object.entries(NAMESPACES).map(([binding, namespace]) => ({
    name: `dispatch-${namespace}`,
    modules: true,
    script: DISPATCHER_SOURCE,
    // (no compatibility date: a wrapped binding runs with its host worker's)
    serviceBindings: Object.fromEntries(
      userWorkers.filter((w) => w.namespace === namespace).map((w) => [`USER_WORKER:${w.name}`, `user-${namespace}-${w.name}`]),
    ),
    binding,
  }));
  const users = userWorkers.map((w) => ({
    name: `user-${w.namespace}-${w.name}`,
    modules: true,
    scriptPath: w.file,
    compatibilityDate: COMPATIBILITY_DATE,
  }));
  const merge = (name, base) => ({ ...base, ...(overrides[name] ?? {}) });
  // Every platform worker's trace events go to the tail worker (their tail_consumers).
  const tails = (producer) => (logPipeline ? [producer === "api" ? "tail" : `tail-${producer}`] : []);
  const workers = [
    merge(
      "api",
      rustWorker("api", "crates/api", {
        serviceBindings: {
          DB_SERVICE: "db",
          AUTH_SERVICE: "auth",
          DO_SERVICE: "do",
          ...apiServices,
        },
        kvNamespaces: { ROUTES_CACHE: "routes-cache", AUTH_CACHE: "auth-cache" },
        d1Databases: { WAITLIST_DB: "platform-waitlist" },
        durableObjects: { RATE_LIMITER: { className: "RateLimiter", useSQLite: true } },
        // As wrangler.jsonc's `ratelimits` (locally exact; approximate in production).
        ratelimits: { TENANT_RATE_LIMITER: { namespace_id: "1001", simple: { limit: 1000, period: 60 } } },
        r2Buckets: { LOGS: LOGS_BUCKET },
        tails: tails("api"),
        // Workers Analytics Engine has no local equivalent: a wrapped binding (as workers-rs's
        // own tests do) that prints each data point as one line, so tests can read them.
        wrappedBindings: {
          ANALYTICS: { scriptName: "analytics-engine-local" },
          ...Object.fromEntries(dispatchers.map((d) => [d.binding, { scriptName: d.name }])),
        },
        assets: {
          directory: assetsDirectory ?? path.join(ROOT, "assets"),
          binding: "ASSETS",
          // run_worker_first: the routing table in assets/ is never served publicly.
          routerConfig: { has_user_worker: true, invoke_user_worker_ahead_of_assets: true },
        },
        bindings: {
          API_HOSTS: "api.do,localhost,127.0.0.1",
          PLATFORM_ZONE: "do",
          CORS_ORIGINS: "*",
          ADMIN_API_KEY: DEV_ADMIN_API_KEY,
          TOKEN_KEYS: DEV_TOKEN_KEYS,
          ...apiVars,
        },
      }),
    ),
    merge("db", rustWorker("db", "crates/db", { d1Databases: { DB: "platform-db" }, tails: tails("db") })),
    merge(
      "auth",
      rustWorker("auth", "crates/auth", {
        d1Databases: { DB: "platform-auth" },
        kvNamespaces: { AUTH_CACHE: "auth-cache" },
        bindings: { TOKEN_KEYS: DEV_TOKEN_KEYS },
        tails: tails("auth"),
      }),
    ),
    merge("do", rustWorker("do", "crates/do", { serviceBindings: { DB_SERVICE: "db", AUTH_SERVICE: "auth" }, tails: tails("do") })),
    // The tail worker, once per producer: local workerd leaves a trace's scriptName null, so
    // each instance is told its producer's name (LOCAL_PRODUCER_NAME). They share one
    // LogBatcher namespace (the "tail" instance's) and one bucket, as one deployed tail does.
    ...(logPipeline ? ["api", "db", "auth", "do"] : []).map((producer) =>
      merge(
        producer === "api" ? "tail" : `tail-${producer}`,
        rustWorker(producer === "api" ? "tail" : `tail-${producer}`, "crates/tail", {
          durableObjects: { LOG_BATCHER: { className: "LogBatcher", useSQLite: true, ...(producer === "api" ? {} : { scriptName: "tail" }) } },
          ...(logsFaults ? { wrappedBindings: { LOGS: { scriptName: "logs-faults-local" } } } : { r2Buckets: { LOGS: LOGS_BUCKET } }),
          // Locally a record waits at most 2 s (production: 60 s), in one buffer per worker.
          bindings: { LOG_BATCH_MAX_AGE_MS: "2000", LOG_SHARDS: "1", LOG_RETENTION_DAYS: "30", ...tailVars, LOCAL_PRODUCER_NAME: producer },
        }),
      ),
    ),
    ...(logPipeline && logsFaults ? [{ name: "logs-faults-local", modules: true, script: LOGS_FAULTS_SOURCE, r2Buckets: { LOGS: LOGS_BUCKET } }] : []),
    {
      name: "analytics-engine-local",
      modules: true,
      script: ANALYTICS_STAND_IN,
    },
    ...dispatchers.map(({ binding, ...worker }) => worker),
    ...users,
    ...extraWorkers,
  ];
  const persist = persistTo
    ? { defaultPersistRoot: persistTo, kvPersist: true, d1Persist: true, durableObjectsPersist: true, cachePersist: true, r2Persist: true }
    : { kvPersist: false, d1Persist: false, durableObjectsPersist: false, cachePersist: false, r2Persist: false };
  return { host: "127.0.0.1", port, cf: false, ...persist, workers };
}

/**
 * The local stand-in for Workers Analytics Engine (the binding has no local equivalent): it
 * prints each data point as one line (tests read them) and keeps the points, in memory, for a
 * day (at most 100 000), to answer the console's one query, `gateway::metrics::overview_sql`,
 * through `localQuery(sql)` in the SQL API's JSON shape. It is not a SQL engine (any other
 * query is refused), does not sample, and forgets everything on restart.
 */
const ANALYTICS_STAND_IN = `
const points = (globalThis.__analyticsPoints ??= []);
const DAY_MS = 86400000, CAP = 100000;
const pad = (n) => String(n).padStart(2, "0");
const minuteOf = (t) => { const d = new Date(t - (t % 60000)); return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":00"; };
const rank = (sorted, q) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : 0;
export default function () {
  return {
    writeDataPoint(point) {
      console.log("analytics-engine " + JSON.stringify(point ?? {}));
      points.push({ t: Date.now(), doubles: (point && point.doubles) || [] });
      while (points.length > CAP || (points.length && points[0].t < Date.now() - DAY_MS)) points.shift();
    },
    localQuery(sql) {
      const window = /INTERVAL '(\\d+)' MINUTE GROUP BY minute/.exec(sql);
      if (!window || !/AS p99/.test(sql)) throw new Error("the local analytics stand-in answers only the console's overview query");
      const since = Date.now() - Number(window[1]) * 60000;
      const byMinute = new Map();
      for (const p of points) {
        if (p.t <= since) continue;
        const m = minuteOf(p.t);
        const bucket = byMinute.get(m) ?? { requests: 0, errors: 0, durations: [] };
        bucket.requests += 1;
        if ((p.doubles[0] ?? 0) >= 500) bucket.errors += 1;
        bucket.durations.push(p.doubles[1] ?? 0);
        byMinute.set(m, bucket);
      }
      const data = [...byMinute.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([minute, b]) => {
        const sorted = b.durations.sort((x, y) => x - y);
        return { minute, requests: String(b.requests), errors: String(b.errors), p50: rank(sorted, 0.5), p99: rank(sorted, 0.99) };
      });
      return JSON.stringify({ meta: [], data, rows: data.length });
    },
  };
}`;

/** Applies each database's migrations folder in order, recording them the way wrangler does. */
export const MIGRATIONS = [
  { worker: "db", binding: "DB", dir: "crates/db/migrations" },
  { worker: "auth", binding: "DB", dir: "crates/auth/migrations" },
  { worker: "api", binding: "WAITLIST_DB", dir: "migrations" },
];

export async function applyMigrations(mf, targets = MIGRATIONS) {
  const applied = [];
  for (const { worker: service, binding, dir: relative } of targets) {
    const dir = path.join(ROOT, relative);
    if (!existsSync(dir)) continue;
    let db;
    try {
      db = await mf.getD1Database(binding, service);
    } catch {
      continue; // a test config without this database
    }
    await db.exec(
      "CREATE TABLE IF NOT EXISTS d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    );
    const done = new Set((await db.prepare("SELECT name FROM d1_migrations").all()).results.map((r) => r.name));
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
      if (done.has(file)) continue;
      const sql = readFileSync(path.join(dir, file), "utf8")
        .split("\n")
        .filter((line) => !line.trim().startsWith("--"))
        .join("\n");
      const statements = sql.split(/;\s*(?:\n|$)/).map((s) => s.trim()).filter(Boolean);
      await db.batch([
        ...statements.map((s) => db.prepare(s)),
        db.prepare("INSERT INTO d1_migrations (name) VALUES (?)").bind(file),
      ]);
      applied.push(`${service}/${file}`);
    }
  }
  return applied;
}

/** A `handleRuntimeStdio` that hands workerd's stdout and stderr to `onLine`, a line at a time. */
export function runtimeLines(onLine) {
  return (stdout, stderr) => {
    for (const stream of [stdout, stderr]) {
      let buffered = "";
      stream.on("data", (chunk) => {
        buffered += chunk.toString();
        const lines = buffered.split("\n");
        buffered = lines.pop();
        for (const line of lines) onLine(line);
      });
    }
  };
}

/** Starts the platform; resolves once it serves and migrations are applied. */
export async function startPlatform(options = {}) {
  // `front` (default on): the Node relay of scripts/front.mjs on the public port, so Hosts the
  // runtime cannot represent get the edge's 400 instead of workerd's 500; Miniflare's entry
  // then listens on a free port of its own.
  const { onOutput, front = true, ...rest } = options;
  const publicPort = rest.port ?? 0;
  if (front) rest.port = 0;
  const mfOptions = platformOptions(rest);
  if (onOutput) mfOptions.handleRuntimeStdio = runtimeLines(onOutput);
  const mf = new Miniflare(mfOptions);
  const entry = await mf.ready;
  const migrations = await applyMigrations(mf);
  if (!front) return { mf, url: entry, entry, migrations, dispose: () => mf.dispose() };
  const relay = await startFront({ host: mfOptions.host, port: publicPort, upstream: entry });
  return { mf, url: relay.url, entry, migrations, dispose: async () => { await relay.close(); await mf.dispose(); } };
}
