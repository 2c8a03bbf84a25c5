// The foundation: every worker runs in workerd, the RPC-only services refuse fetch, health()
// is callable over RPC from Node and from the api, and /health reports broken services.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { platform, request } from "./helpers.mjs";

describe("the platform", () => {
  let p;
  // A test-only JS worker that holds the three dispatch bindings exactly as the api does and
  // calls them the way production code calls a DispatchNamespace: get(name, args, {limits}).
  const probe = {
    name: "dispatch-probe",
    modules: true,
    compatibilityDate: "2025-09-01",
    wrappedBindings: {
      production: { scriptName: "dispatch-production" },
      staging: { scriptName: "dispatch-staging" },
      development: { scriptName: "dispatch-development" },
    },
    script: `export default { async fetch(request, env) {
      const [, ns, name] = new URL(request.url).pathname.split("/");
      try {
        const worker = await env[ns].get(name, {}, { limits: { cpuMs: 50, subRequests: 10 } });
        return await worker.fetch(new Request("http://" + name + ".example/hello"));
      } catch (e) { return new Response(String(e.message), { status: 500 }); }
    } }`,
  };
  before(async () => { p = await platform({ extraWorkers: [probe] }); });
  after(async () => { await p?.dispose(); });

  for (const service of ["db", "auth", "do"]) {
    test(`${service} has no fetch handler: fetching it fails`, async () => {
      const worker = await p.mf.getWorker(service);
      let outcome;
      try {
        const res = await worker.fetch("http://internal/");
        outcome = { status: res.status, text: await res.text() };
      } catch (e) {
        outcome = { error: String(e?.message ?? e) };
      }
      // workerd refuses a fetch to an entrypoint without a fetch handler.
      assert.ok(outcome.error !== undefined || outcome.status >= 500, JSON.stringify(outcome));
      assert.doesNotMatch(outcome.text ?? "", /ok/);
    });

    test(`${service}.health() is callable from Node over RPC`, async () => {
      const worker = await p.mf.getWorker(service);
      const health = await worker.health();
      assert.deepEqual({ ...health }, { ok: true, service });
    });
  }

  test("GET /health on an API host fans out to every service over RPC", async () => {
    const res = await request(p.url, "api.do", "/health");
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.status, "ok");
    for (const service of ["db", "auth", "do"]) {
      assert.equal(res.json.services[service].ok, true, service);
      assert.equal(typeof res.json.services[service].latencyMs, "number");
    }
  });

  for (const namespace of ["production", "staging", "development"]) {
    test(`the ${namespace} dispatch namespace emulation reaches its user worker`, async () => {
      const res = await (await p.mf.getWorker("dispatch-probe")).fetch(`http://probe/${namespace}/myapp`);
      const body = await res.json();
      assert.equal(body.namespace, namespace);
      assert.equal(body.path, "/hello");
      assert.deepEqual(JSON.parse(body.dispatchLimits), { cpuMs: 50, subRequests: 10 });
    });
  }

  test("an unknown user worker fails with 'Worker not found'", async () => {
    const res = await (await p.mf.getWorker("dispatch-probe")).fetch("http://probe/production/nobody");
    assert.equal(res.status, 500);
    assert.match(await res.text(), /^Worker not found/);
  });
});

describe("a platform with broken services (test-only config)", () => {
  let p;
  before(async () => {
    p = await platform({
      overrides: {
        // db loses its D1 database; the api loses its binding to do.
        db: { d1Databases: {} },
        api: { serviceBindings: { DB_SERVICE: "db", AUTH_SERVICE: "auth" } },
      },
    });
  });
  after(async () => { await p?.dispose(); });

  test("/health answers 503 naming the services that are down; only admins see why", async () => {
    const res = await request(p.url, "api.do", "/health");
    assert.equal(res.status, 503, res.text);
    assert.deepEqual(res.json.down.sort(), ["db", "do"]);
    assert.equal(res.json.services.auth.ok, true);
    // Anonymous: status and latency only, never internal text; the reason is in the log.
    for (const service of ["db", "do"]) {
      assert.deepEqual(Object.keys(res.json.services[service]).sort(), ["latencyMs", "ok"], service);
    }
    assert.doesNotMatch(res.text, /D1|binding|configured/);
    assert.ok(p.logs.some((l) => l.includes("health: service down") && l.includes("D1")), "the log has the reason");
    const admin = await request(p.url, "api.do", "/health", { headers: { "x-api-key": "dev-admin-key" } });
    assert.equal(admin.status, 503, admin.text);
    assert.match(admin.json.services.db.error, /D1/);
    assert.match(admin.json.services.do.error, /not configured/);
  });
});
