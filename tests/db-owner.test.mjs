// Admin addressing of documents: an id several users hold is named by its owner (`?owner=`
// over HTTP, `ctx.owner` over RPC, admins only), and admin listings say whose each document is.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { platform, request } from "./helpers.mjs";

const ADMIN = { "x-api-key": "dev-admin-key" };
const ctxFor = (userId, role = "user") => ({ requestId: "01JSCL1ENT0000000000000000", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", userId, role });
const plain = (v) => JSON.parse(JSON.stringify(v));
const yieldToIo = () => new Promise((resolve) => setImmediate(resolve));

describe("an admin names a document's owner", () => {
  let p, db;
  const c = `owned-${process.pid}`;
  const rpc = async (method, ...args) => {
    const reply = plain(await db[method](...args));
    await yieldToIo();
    return reply;
  };
  const api = (method, path, { body, headers = ADMIN } = {}) =>
    request(p.url, "api.do", `/api/db/${c}${path}`, {
      method, body, headers: { ...(body ? { "content-type": "application/json" } : {}), ...headers },
    });

  before(async () => {
    p = await platform();
    db = await p.mf.getWorker("db");
    for (const owner of ["alice", "bob"]) {
      assert.equal((await rpc("put", ctxFor(owner), c, "shared", { who: owner })).ok, true);
    }
    assert.equal((await rpc("put", ctxFor("alice"), c, "solo", { who: "alice" })).ok, true);
  });
  after(async () => { await p?.dispose(); });

  test("without an owner the shared id is ambiguous, and the problem says how to name one", async () => {
    const res = await api("GET", "/shared");
    assert.equal(res.status, 409, res.text);
    assert.match(res.json.detail, /\?owner=/);
  });

  test("?owner= reads, patches and deletes exactly that owner's copy", async () => {
    assert.equal((await api("GET", "/shared?owner=bob")).json.who, "bob");
    assert.equal((await api("GET", "/shared?owner=alice")).json.who, "alice");
    const patched = await api("PATCH", "/shared?owner=alice", { body: { seen: true } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal((await rpc("get", ctxFor("alice"), c, "shared")).value.seen, true);
    assert.equal((await rpc("get", ctxFor("bob"), c, "shared")).value.seen, undefined);
    assert.equal((await api("GET", "/nobody-has-this?owner=bob")).status, 404);
    assert.equal((await api("DELETE", "/shared?owner=bob")).status, 204);
    assert.equal((await rpc("get", ctxFor("bob"), c, "shared")).error.status, 404);
    assert.equal((await rpc("get", ctxFor("alice"), c, "shared")).value.who, "alice");
    // A PUT naming an owner writes as that owner: bob gets a copy again, alice's stays.
    assert.equal((await api("PUT", "/shared?owner=bob", { body: { who: "bob", v: 2 } })).status, 201);
    assert.equal((await rpc("get", ctxFor("bob"), c, "shared")).value.v, 2);
    assert.equal((await rpc("get", ctxFor("alice"), c, "shared")).value.v, undefined);
  });

  test("admin listings show each document's owner; ?owner= lists one owner's", async () => {
    const all = await api("GET", "");
    assert.equal(all.status, 200, all.text);
    assert.deepEqual(all.json.items.map((d) => `${d.id}:${d._owner}`).sort(), ["shared:alice", "shared:bob", "solo:alice"]);
    const alice = await api("GET", "?owner=alice");
    assert.deepEqual(alice.json.items.map((d) => d.id).sort(), ["shared", "solo"]);
    // A user's own listing carries no owner field: it is always theirs.
    const own = await rpc("list", ctxFor("alice"), c);
    assert.ok(own.value.items.every((d) => d._owner === undefined));
  });

  test("only an admin may name an owner; a bad owner is 400", async () => {
    const email = `owner-${Date.now()}@example.com`;
    const password = "correct horse battery";
    const auth = (path, body) => request(p.url, "api.do", `/api/auth${path}`, {
      method: "POST", headers: { "content-type": "application/json" }, body,
    });
    assert.equal((await auth("/signup", { email, password })).status, 201);
    const token = (await auth("/login", { email, password })).json.token;
    const res = await api("GET", "/shared?owner=alice", { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 403, res.text);
    assert.equal(res.headers["content-type"], "application/problem+json");
    assert.equal((await api("GET", "/shared?owner=")).status, 400);
    // Over RPC the same rule: ctx.owner from a non-admin is refused, not obeyed.
    const reply = await rpc("get", { ...ctxFor("bob"), owner: "alice" }, c, "solo");
    assert.equal(reply.ok, false);
    assert.equal(reply.error.status, 400);
    assert.equal((await rpc("get", { ...ctxFor("root", "admin"), owner: "alice" }, c, "solo")).value.who, "alice");
  });
});
