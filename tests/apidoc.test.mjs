// The machine-readable API descriptions: GET /openapi.json (OpenAPI 3.1, admin only) and
// rpc.discover on /rpc (OpenRPC, generated from the allowlist). Both are validated with real
// validators from the npm registry; every documented REST operation must answer on the local
// platform (nothing documented is missing), every registry service and path route must be
// documented, and the TypeScript declarations in types/ must declare every published method.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import metaSchema from "@open-rpc/meta-schema";
import jsonSchemaMeta from "@json-schema-tools/meta-schema";
import Ajv from "ajv";
import { platform, request } from "./helpers.mjs";
import { ROOT, DEV_ADMIN_API_KEY } from "../scripts/platform.mjs";

const admin = { "x-api-key": DEV_ADMIN_API_KEY };

describe("API descriptions", () => {
  let p;
  let openapi;
  let openrpc;
  before(async () => {
    p = await platform();
    const res = await request(p.url, "api.do", "/openapi.json", { headers: admin });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers["content-type"], "application/json");
    openapi = res.json;
    const rpc = await request(p.url, "api.do", "/rpc", {
      method: "POST",
      headers: { ...admin, "content-type": "application/json" },
      body: { jsonrpc: "2.0", id: 1, method: "rpc.discover" },
    });
    assert.equal(rpc.status, 200, rpc.text);
    openrpc = rpc.json.result;
  });
  after(async () => { await p?.dispose(); });

  test("/openapi.json is for admins only", async () => {
    const anon = await request(p.url, "api.do", "/openapi.json");
    assert.equal(anon.status, 401);
    assert.equal(anon.headers["content-type"], "application/problem+json");
    // Only on API hosts: elsewhere the path belongs to whoever the host routes to.
    const elsewhere = await request(p.url, "nobody.example.org", "/openapi.json", { headers: admin });
    assert.equal(elsewhere.status, 200);
    assert.match(elsewhere.headers["content-type"], /text\/html/);
  });

  test("the OpenAPI document is valid OpenAPI 3.1", async () => {
    const validator = new Validator();
    const result = await validator.validate(openapi);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 1)?.slice(0, 2000));
    assert.equal(validator.version, "3.1");
  });

  test("the OpenRPC document is valid against the OpenRPC meta-schema", () => {
    // The OpenRPC meta-schema refers to the JSON Schema meta-schema for every `schema` field.
    const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, logger: false });
    ajv.addSchema(jsonSchemaMeta.default ?? jsonSchemaMeta, "https://meta.json-schema.tools");
    const validate = ajv.compile(metaSchema.default ?? metaSchema);
    assert.equal(validate(openrpc), true, JSON.stringify(validate.errors, null, 1)?.slice(0, 2000));
    assert.equal(openrpc.openrpc, "1.3.2");
  });

  test("every method rpc.discover lists is callable, and ctx is never a param", async () => {
    const names = openrpc.methods.map((m) => m.name);
    assert.ok(names.includes("db.get") && names.includes("do.getServices") && names.includes("auth.health"));
    assert.ok(!JSON.stringify(openrpc).includes('"ctx"'));
    // Called with no params: a method that exists answers anything but -32601.
    const res = await request(p.url, "api.do", "/rpc", {
      method: "POST",
      headers: { ...admin, "content-type": "application/json" },
      body: names.map((method, id) => ({ jsonrpc: "2.0", id, method })),
    });
    assert.equal(res.status, 200, res.text);
    for (const answer of res.json) {
      assert.notEqual(answer.error?.code, -32601, `${names[answer.id]}: ${JSON.stringify(answer)}`);
    }
  });

  test("every documented REST operation answers (nothing documented is missing)", async () => {
    const fill = (template) =>
      template
        .replace("{collection}", "notes")
        .replace("{id}", "doc-1")
        .replace("{name}", "db")
        .replace("{domain}", "example.com")
        .replace("{service}", "webhooks")
        .replace("{path}", "x");
    for (const [template, operations] of Object.entries(openapi.paths)) {
      for (const method of Object.keys(operations)) {
        const res = await request(p.url, "api.do", fill(template), {
          method: method.toUpperCase(),
          headers: { ...admin, "content-type": "application/json" },
          body: ["post", "put", "patch"].includes(method) ? {} : undefined,
        });
        const what = `${method.toUpperCase()} ${template} → ${res.status} ${res.text.slice(0, 160)}`;
        assert.notEqual(res.status, 405, what);
        assert.ok(!(res.status === 404 && /no route for this path/.test(res.json?.detail ?? "")), what);
        assert.ok(res.status < 500 || [502, 503, 504].includes(res.status), what);
      }
    }
  });

  test("every registry service and every path route is documented", async () => {
    const services = await request(p.url, "api.do", "/api/do/services", { headers: admin });
    assert.equal(services.status, 200, services.text);
    const forwarded = openapi.paths["/api/{service}/{path}"].get.parameters.find((x) => x.name === "service").schema.enum;
    for (const { name } of services.json.services) {
      const documented = Object.keys(openapi.paths).some((k) => k.startsWith(`/api/${name}/`) || k === `/api/${name}`) || forwarded.includes(name);
      assert.ok(documented, `service ${name} is not documented`);
    }
    for (const route of ["/health", "/rpc", "/openapi.json"]) assert.ok(openapi.paths[route], route);
  });

  test("every service in the registry's source is documented, built-ins included", () => {
    // The registry (crates/gateway/src/registry.rs) is the router's table: each `def("name", ...)`
    // is answered at /api/{name}/* (and some also at the root, like /console).
    const source = readFileSync(path.join(ROOT, "crates/gateway/src/registry.rs"), "utf8");
    const names = [...source.matchAll(/\bdef\(\s*"([a-z0-9-]+)"/g)].map((m) => m[1]);
    assert.ok(names.length >= 10 && names.includes("routes") && names.includes("console"), `parsed ${names.length} services`);
    const forwarded = openapi.paths["/api/{service}/{path}"].get.parameters.find((x) => x.name === "service").schema.enum;
    const paths = Object.keys(openapi.paths);
    for (const name of names) {
      const documented = forwarded.includes(name) || paths.some((k) => k === `/api/${name}` || k.startsWith(`/api/${name}/`) || k === `/${name}` || k.startsWith(`/${name}/`));
      assert.ok(documented, `service ${name} (registry.rs) is not in assets/openapi.json`);
    }
  });

  test("the TypeScript declarations declare every published method", () => {
    for (const service of ["db", "do", "auth"]) {
      const dts = readFileSync(path.join(ROOT, "types", `${service}.d.ts`), "utf8");
      for (const m of openrpc.methods.filter((x) => x.name.startsWith(`${service}.`))) {
        const method = m.name.slice(service.length + 1);
        assert.match(dts, new RegExp(`\\b${method}\\s*\\(`), `types/${service}.d.ts lacks ${m.name}`);
      }
    }
  });
});
