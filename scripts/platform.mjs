// The local platform: every worker of this repo in one workerd (through Miniflare), with local
// KV, D1 (migrations applied), Durable Objects and Assets, plus an emulation of the three
// Workers-for-Platforms dispatch namespaces. `scripts/dev`, `scripts/test` and `scripts/bench`
// all start the platform through `startPlatform`, so they cannot drift apart.
import { Miniflare } from "miniflare";
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
// result. Locally the binding is a service binding to this entrypoint: `get` arrives as a
// Workers RPC call (so it returns a promise, which the api awaits either way) and hands back
// an RpcTarget whose `fetch` reaches the user worker through an ordinary service binding.
// A missing worker fails the way the platform does: "Worker not found".
// The limits cannot be enforced locally; they are passed on in a header so tests can see them.
const DISPATCHER_SOURCE = `
import { WorkerEntrypoint, RpcTarget } from "cloudflare:workers";
class LocalUserWorker extends RpcTarget {
  #fetcher; #name; #limits;
  constructor(fetcher, name, limits) { super(); this.#fetcher = fetcher; this.#name = name; this.#limits = limits; }
  async fetch(request) {
    if (!this.#fetcher) throw new Error("Worker not found: " + this.#name);
    const forwarded = new Request(request);
    if (this.#limits) forwarded.headers.set("x-local-dispatch-limits", JSON.stringify(this.#limits));
    return this.#fetcher.fetch(forwarded);
  }
}
export default class LocalDispatchNamespace extends WorkerEntrypoint {
  get(name, args, options) {
    const fetcher = typeof name === "string" ? this.env["USER_WORKER:" + name] : undefined;
    return new LocalUserWorker(fetcher, String(name), options && options.limits);
  }
  async fetch() { return new Response("a dispatch namespace is reached through get(name)", { status: 400 }); }
}
`;

/**
 * Miniflare options for the whole platform. `apiVars` adds or replaces api vars (tests use it
 * for short TTLs and limits), `apiServices` adds service bindings to the api, `assetsDirectory`
 * replaces assets/; `overrides.{worker}` shallow-merges into that worker's options.
 */
export function platformOptions({ port = 0, persistTo, userWorkersRoot, overrides = {}, extraWorkers = [], apiVars = {}, apiServices = {}, assetsDirectory } = {}) {
  const userWorkers = findUserWorkers(userWorkersRoot);
  const dispatchers = Object.entries(NAMESPACES).map(([binding, namespace]) => ({
    name: `dispatch-${namespace}`,
    modules: true,
    script: DISPATCHER_SOURCE,
    compatibilityDate: COMPATIBILITY_DATE,
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
  const workers = [
    merge(
      "api",
      rustWorker("api", "crates/api", {
        serviceBindings: {
          DB_SERVICE: "db",
          AUTH_SERVICE: "auth",
          DO_SERVICE: "do",
          ...Object.fromEntries(dispatchers.map((d) => [d.binding, d.name])),
          ...apiServices,
        },
        kvNamespaces: { ROUTES_CACHE: "routes-cache", AUTH_CACHE: "auth-cache" },
        d1Databases: { WAITLIST_DB: "platform-waitlist" },
        durableObjects: { RATE_LIMITER: { className: "RateLimiter", useSQLite: true } },
        // As wrangler.jsonc's `ratelimits` (locally exact; approximate in production).
        ratelimits: { TENANT_RATE_LIMITER: { namespace_id: "1001", simple: { limit: 1000, period: 60 } } },
        // Workers Analytics Engine has no local equivalent: a wrapped binding (as workers-rs's
        // own tests do) that prints each data point as one line, so tests can read them.
        wrappedBindings: { ANALYTICS: { scriptName: "analytics-engine-local" } },
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
    merge("db", rustWorker("db", "crates/db", { d1Databases: { DB: "platform-db" } })),
    merge(
      "auth",
      rustWorker("auth", "crates/auth", {
        d1Databases: { DB: "platform-auth" },
        kvNamespaces: { AUTH_CACHE: "auth-cache" },
        bindings: { TOKEN_KEYS: DEV_TOKEN_KEYS },
      }),
    ),
    merge("do", rustWorker("do", "crates/do", { serviceBindings: { DB_SERVICE: "db", AUTH_SERVICE: "auth" } })),
    {
      name: "analytics-engine-local",
      modules: true,
      script: `export default function () {
        return { writeDataPoint(point) { console.log("analytics-engine " + JSON.stringify(point ?? {})); } };
      }`,
    },
    ...dispatchers.map(({ binding, ...worker }) => worker),
    ...users,
    ...extraWorkers,
  ];
  const persist = persistTo
    ? { defaultPersistRoot: persistTo, kvPersist: true, d1Persist: true, durableObjectsPersist: true, cachePersist: true }
    : { kvPersist: false, d1Persist: false, durableObjectsPersist: false, cachePersist: false };
  return { host: "127.0.0.1", port, cf: false, ...persist, workers };
}

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

/** Starts the platform; resolves once it serves and migrations are applied. */
export async function startPlatform(options = {}) {
  const { onOutput, ...rest } = options;
  const mfOptions = platformOptions(rest);
  if (onOutput) {
    mfOptions.handleRuntimeStdio = (stdout, stderr) => {
      for (const stream of [stdout, stderr]) {
        let buffered = "";
        stream.on("data", (chunk) => {
          buffered += chunk.toString();
          const lines = buffered.split("\n");
          buffered = lines.pop();
          for (const line of lines) onOutput(line);
        });
      }
    };
  }
  const mf = new Miniflare(mfOptions);
  const url = await mf.ready;
  const migrations = await applyMigrations(mf);
  return { mf, url, migrations, dispose: () => mf.dispose() };
}
