// Test-only fault injection in workerd. A D1 database or KV namespace of any worker is replaced
// by a Miniflare wrapped binding that forwards every operation to the real local binding, but
// first asks Node (a function-valued service binding) whether this operation should fail or
// hang. Rules are set from the test: "the Nth statement matching /UPDATE users/ on auth's D1
// throws", "every KV call on the api's AUTH_CACHE throws", "auth's D1 hangs". The real
// databases stay reachable under a second binding name (REAL_*), for migrations and for
// counting rows before and after a fault. No mock stands in for a binding that has a local
// equivalent: reads and writes that are not failed go to the real local D1 and KV.
import { platform } from "./helpers.mjs";
import { applyMigrations, DEV_ADMIN_API_KEY, platformOptions } from "../scripts/platform.mjs";

// The wrapped D1: the class names are what workers-rs checks (`D1Database`), the methods what
// it calls (prepare → bind → first/all/run/raw, batch, exec).
const FAULTY_D1 = `
async function gate(env, op, sql) {
  const res = await env.FAULTS.fetch("http://faults/", { method: "POST", body: JSON.stringify({ target: env.TARGET, op, sql }) });
  const { action, message } = await res.json();
  if (action === "hang") await new Promise((resolve) => setTimeout(resolve, 600000)); // real pending I/O: workerd cancels a promise nothing can resolve
  if (action === "fail") throw new Error(message);
}
class D1PreparedStatement {
  constructor(env, sql, inner) { this.env = env; this.sql = sql; this.inner = inner; }
  bind(...values) { return new D1PreparedStatement(this.env, this.sql, this.inner.bind(...values)); }
  async first(column) { await gate(this.env, "first", this.sql); return column == null ? this.inner.first() : this.inner.first(column); }
  async all() { await gate(this.env, "all", this.sql); return this.inner.all(); }
  async run() { await gate(this.env, "run", this.sql); return this.inner.run(); }
  async raw(options) { await gate(this.env, "raw", this.sql); return this.inner.raw(options); }
}
class D1Database {
  constructor(env) { this.env = env; }
  prepare(sql) { return new D1PreparedStatement(this.env, sql, this.env.INNER.prepare(sql)); }
  async batch(statements) {
    for (const s of statements) await gate(this.env, "batch", s.sql);
    return this.env.INNER.batch(statements.map((s) => s.inner));
  }
  async exec(sql) { await gate(this.env, "exec", sql); return this.env.INNER.exec(sql); }
}
export default function (env) { return new D1Database(env); }
`;

const FAULTY_KV = `
async function gate(env, op, key) {
  const res = await env.FAULTS.fetch("http://faults/", { method: "POST", body: JSON.stringify({ target: env.TARGET, op, sql: String(key) }) });
  const { action, message } = await res.json();
  if (action === "hang") await new Promise((resolve) => setTimeout(resolve, 600000)); // real pending I/O: workerd cancels a promise nothing can resolve
  if (action === "fail") throw new Error(message);
}
class KvNamespace {
  constructor(env) { this.env = env; }
  async get(key, options) { await gate(this.env, "get", key); return this.env.INNER.get(key, options); }
  async getWithMetadata(key, options) { await gate(this.env, "get", key); return this.env.INNER.getWithMetadata(key, options); }
  async put(key, value, options) { await gate(this.env, "put", key); return this.env.INNER.put(key, value, options); }
  async delete(key) { await gate(this.env, "delete", key); return this.env.INNER.delete(key); }
  async list(options) { await gate(this.env, "list", ""); return this.env.INNER.list(options); }
}
export default function (env) { return new KvNamespace(env); }
`;

/**
 * The fault plan, decided in Node. A rule: `{target, op?, match?, nth?, times?, action,
 * message?}`: it applies to operations on `target` (e.g. "auth:DB") whose op equals `op` (if
 * given) and whose SQL or key matches `match` (if given); it skips the first `nth - 1` of
 * them, then acts on `times` of them (default: all further ones). `seen` records every
 * operation (target, op, sql), `hits` the ones a rule acted on.
 */
export function faultPlan() {
  const plan = {
    rules: [],
    seen: [],
    hits: [],
    set(...rules) {
      plan.rules = rules.map((r) => ({ nth: 1, times: Infinity, action: "fail", message: "injected fault", ...r, count: 0, acted: 0 }));
    },
    clear() { plan.rules = []; },
    decide({ target, op, sql }) {
      plan.seen.push({ target, op, sql });
      for (const rule of plan.rules) {
        if (rule.target !== target) continue;
        if (rule.op && rule.op !== op) continue;
        if (rule.match && !rule.match.test(sql)) continue;
        rule.count += 1;
        if (rule.count < rule.nth || rule.acted >= rule.times) continue;
        rule.acted += 1;
        plan.hits.push({ target, op, sql, action: rule.action });
        return { action: rule.action, message: rule.message };
      }
      return { action: "pass" };
    },
  };
  return plan;
}

/** Platform options that put the named bindings behind the fault plan. */
export function faultOptions(plan, { d1 = [], kv = [] } = {}) {
  const handler = async (request) => Response.json(plan.decide(await request.json()));
  const extraWorkers = [];
  const wrapped = {}; // worker → {binding: designator}
  const real = {}; // worker → {d1: {...}, kv: {...}}
  const wrap = (kind, worker, binding, id) => {
    const name = `faulty-${kind}-${worker}-${binding}`.toLowerCase().replace(/_/g, "-");
    extraWorkers.push({
      name,
      modules: true,
      script: kind === "d1" ? FAULTY_D1 : FAULTY_KV,
      ...(kind === "d1" ? { d1Databases: { INNER: id } } : { kvNamespaces: { INNER: id } }),
      serviceBindings: { FAULTS: handler },
      bindings: { TARGET: `${worker}:${binding}` },
    });
    (wrapped[worker] ??= {})[binding] = { scriptName: name };
    ((real[worker] ??= { d1: {}, kv: {} })[kind])[`REAL_${binding}`] = id;
  };
  const D1_IDS = { "db:DB": "platform-db", "auth:DB": "platform-auth", "api:WAITLIST_DB": "platform-waitlist" };
  const KV_IDS = { "api:AUTH_CACHE": "auth-cache", "api:ROUTES_CACHE": "routes-cache", "auth:AUTH_CACHE": "auth-cache" };
  for (const target of d1) wrap("d1", ...target.split(":"), D1_IDS[target]);
  for (const target of kv) wrap("kv", ...target.split(":"), KV_IDS[target]);

  // What each worker keeps of its own D1/KV bindings (the wrapped ones move to REAL_*).
  const base = {
    api: { d1: { WAITLIST_DB: "platform-waitlist" }, kv: { ROUTES_CACHE: "routes-cache", AUTH_CACHE: "auth-cache" } },
    db: { d1: { DB: "platform-db" }, kv: {} },
    auth: { d1: { DB: "platform-auth" }, kv: { AUTH_CACHE: "auth-cache" } },
  };
  const overrides = {};
  const migrations = [];
  for (const [worker, bindings] of Object.entries(wrapped)) {
    const keep = (kind) => Object.fromEntries(Object.entries(base[worker][kind]).filter(([b]) => !(b in bindings)));
    overrides[worker] = {
      d1Databases: { ...keep("d1"), ...real[worker].d1 },
      kvNamespaces: { ...keep("kv"), ...real[worker].kv },
      // The worker's own wrapped bindings (the api's analytics stand-in and dispatch
      // namespaces), plus the fault wrappers.
      wrappedBindings: {
        ...(platformOptions({ logPipeline: false }).workers.find((w) => w.name === worker)?.wrappedBindings ?? {}),
        ...bindings,
      },
    };
    for (const b of Object.keys(real[worker].d1)) {
      const dir = worker === "api" ? "migrations" : `crates/${worker}/migrations`;
      migrations.push({ worker, binding: b, dir });
    }
  }
  return { overrides, extraWorkers, migrations };
}

/** The platform with faults injectable on the given bindings; `real(worker, binding)` is the real D1. */
export async function faultyPlatform(plan, targets, options = {}) {
  const { overrides, extraWorkers, migrations } = faultOptions(plan, targets);
  const merged = { ...overrides };
  for (const [worker, extra] of Object.entries(options.overrides ?? {})) merged[worker] = { ...merged[worker], ...extra };
  const p = await platform({
    ...options,
    overrides: merged,
    extraWorkers: [...extraWorkers, ...(options.extraWorkers ?? [])],
  });
  await applyMigrations(p.mf, migrations);
  p.realD1 = (worker, binding) => p.mf.getD1Database(`REAL_${binding}`, worker);
  p.realKv = (worker, binding) => p.mf.getKVNamespace(`REAL_${binding}`, worker);
  return p;
}

export const ADMIN = { "x-api-key": DEV_ADMIN_API_KEY };
