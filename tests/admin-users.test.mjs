// The admin routes over users (issue 18), in workerd over HTTP: finding users by email
// (case-insensitive, substring or prefix, keyset pages), ending every session of a user,
// another user's keys (list, revoke), and the audit trail of those changes with the admin's
// id; admin only (401 anonymous, 403 for a user), bad ids, limits and bodies are 400
// problem+json with the request id. Then the console's API prefix: its cookie (HttpOnly,
// SameSite=Strict, Path=/console), the Origin check on every change, admins only beyond
// sign-in, and sign-out ending the session server-side.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { platform, request } from "./helpers.mjs";
import { DEV_ADMIN_API_KEY } from "../scripts/platform.mjs";

const HOST = "api.do";
const ORIGIN = `http://${HOST}`;
const PASSWORD = "correct horse battery";
const ADMIN = { "x-api-key": DEV_ADMIN_API_KEY };
let counter = 0;
const tag = `adm${Date.now().toString(36)}`;
const uniqueEmail = (name) => `${name}-${tag}-${++counter}@Example.com`;
const ULID_UNKNOWN = "01JZZZZZZZZZZZZZZZZZZZZZZZ";

function call(p, method, path, { headers = {}, body } = {}) {
  const h = { ...headers };
  if (body !== undefined) h["content-type"] ??= "application/json";
  return request(p.url, HOST, path, { method, headers: h, body });
}
const bearer = (token) => ({ authorization: `Bearer ${token}` });

function assertProblem(res, status, what) {
  assert.equal(res.status, status, `${what}: ${res.text}`);
  assert.match(res.headers["content-type"] ?? "", /application\/problem\+json/, what);
  assert.equal(res.json.status, status, what);
  assert.equal(typeof res.json.requestId, "string", what);
  assert.equal(res.json.requestId, res.headers["x-request-id"], what);
}

async function signup(p, email = uniqueEmail("user")) {
  const res = await call(p, "POST", "/api/auth/signup", { body: { email, password: PASSWORD } });
  assert.equal(res.status, 201, res.text);
  return res.json.user;
}

async function login(p, email) {
  const res = await call(p, "POST", "/api/auth/login", { body: { email, password: PASSWORD } });
  assert.equal(res.status, 200, res.text);
  const cookie = [res.headers["set-cookie"] ?? []].flat().find((c) => c.startsWith("session="));
  return { token: res.json.token, session: cookie.slice("session=".length).split(";")[0] };
}

async function setRole(p, id, role, headers = ADMIN) {
  const res = await call(p, "PUT", `/api/auth/users/${id}/role`, { headers, body: { role } });
  assert.equal(res.status, 200, res.text);
  return res;
}

describe("admin routes over users", () => {
  let p, admin, adminToken, plain, plainToken;
  before(async () => {
    p = await platform();
    admin = await signup(p, uniqueEmail("admin"));
    await setRole(p, admin.id, "admin");
    adminToken = (await login(p, admin.email)).token;
    plain = await signup(p, uniqueEmail("plain"));
    plainToken = (await login(p, plain.email)).token;
  });
  after(async () => { await p?.dispose(); });

  const routes = () => [
    ["GET", "/api/auth/users?q=x"],
    ["GET", `/api/auth/users/${plain.id}/keys`],
    ["DELETE", `/api/auth/users/${plain.id}/sessions`],
    ["DELETE", `/api/auth/users/${plain.id}/keys/AAAAAAAAAAAA`],
    ["GET", "/api/auth/audit"],
  ];

  test("admin only: 401 anonymous, 403 for a user, through every credential kind", async () => {
    for (const [method, path] of routes()) {
      assertProblem(await call(p, method, path), 401, `anonymous ${method} ${path}`);
      assertProblem(await call(p, method, path, { headers: bearer(plainToken) }), 403, `user ${method} ${path}`);
      assertProblem(await call(p, method, path, { headers: { cookie: `console_session=${"a".repeat(43)}` } }), 401, `console cookie off the console ${path}`);
    }
    const ok = await call(p, "GET", "/api/auth/users?q=x", { headers: bearer(adminToken) });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.headers["cache-control"], "no-store");
  });

  test("auth itself refuses non-admin callers of the admin RPCs (the api is not the only gate)", async () => {
    const authRpc = await p.mf.getWorker("auth");
    const ctx = (userId, role) => ({ requestId: "01J00000000000000000000000", traceparent: "", userId, role });
    const calls = [
      ["findUsers", { q: "a" }],
      ["endUserSessions", { userId: plain.id }],
      ["listUserKeys", { userId: plain.id }],
      ["revokeUserKey", { userId: plain.id, keyId: "AAAAAAAAAAAA" }],
      ["listAudit", {}],
    ];
    for (const [method, input] of calls) {
      const asUser = await authRpc[method](ctx(plain.id, "user"), input);
      assert.deepEqual([asUser.ok, asUser.error?.status], [false, 403], `${method} as a user`);
      const anonymous = await authRpc[method](ctx(null, null), input);
      assert.deepEqual([anonymous.ok, anonymous.error?.status], [false, 401], `${method} anonymous`);
      const shape = await authRpc[method](ctx(admin.id, "admin"), "not an object");
      assert.deepEqual([shape.ok, shape.error?.status], [false, 400], `${method} with a bad input`);
    }
    const asAdmin = await authRpc.listUserKeys(ctx(admin.id, "admin"), { userId: plain.id });
    assert.deepEqual([asAdmin.ok, asAdmin.userId, asAdmin.keys.length], [true, plain.id, 0]);
  });

  test("validation: bad ids, limits, matches, cursors and bodies are 400 problem+json", async () => {
    const bad = [
      ["GET", "/api/auth/users/not-a-user/keys"],
      ["GET", `/api/auth/users/${plain.id.toLowerCase()}/keys`],
      ["DELETE", "/api/auth/users/01JZZZZZZZZZZZZZZZZZZZZZ%2Fx/sessions"],
      ["DELETE", `/api/auth/users/${plain.id}/keys/short`],
      ["DELETE", `/api/auth/users/${plain.id}/keys/AAAAAAAAAAA%21`],
      ["DELETE", "/api/auth/users/nope/keys/AAAAAAAAAAAA"],
      ["GET", "/api/auth/users?limit=0"],
      ["GET", "/api/auth/users?limit=101"],
      ["GET", "/api/auth/users?limit=ten"],
      ["GET", "/api/auth/users?limit=2.5"],
      ["GET", "/api/auth/users?match=fuzzy"],
      ["GET", `/api/auth/users?q=${"a".repeat(255)}`],
      ["GET", "/api/auth/users?q=a%00b"],
      ["GET", "/api/auth/audit?limit=-1"],
      ["GET", "/api/auth/audit?cursor=not-a-cursor"],
      ["GET", "/api/auth/audit?userId=nobody"],
    ];
    for (const [method, path] of bad) {
      assertProblem(await call(p, method, path, { headers: ADMIN }), 400, `${method} ${path}`);
    }
    for (const body of ["{not json", "[1]", JSON.stringify({ role: 7 }), JSON.stringify({})]) {
      assertProblem(await call(p, "PUT", `/api/auth/users/${plain.id}/role`, { headers: ADMIN, body }), 400, `role body ${body}`);
    }
    // setRole keeps its answer from before these routes: an id no user has is 404.
    assertProblem(await call(p, "PUT", "/api/auth/users/nope/role", { headers: ADMIN, body: { role: "user" } }), 404, "role of a bad id");
    for (const path of [`/api/auth/users/${ULID_UNKNOWN}/keys`]) {
      assertProblem(await call(p, "GET", path, { headers: ADMIN }), 404, path);
    }
    assertProblem(await call(p, "DELETE", `/api/auth/users/${ULID_UNKNOWN}/sessions`, { headers: ADMIN }), 404, "sessions of nobody");
    assertProblem(await call(p, "POST", "/api/auth/users", { headers: ADMIN, body: {} }), 405, "POST /users");
    assertProblem(await call(p, "PUT", `/api/auth/users/${plain.id}/sessions`, { headers: ADMIN }), 405, "PUT sessions");
  });

  test("find users: case-insensitive substring or prefix, keyset pages in email order", async () => {
    const group = `pg${tag}`;
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await signup(p, `${group}-${i}@Example.com`)).email);
    made.sort();
    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      const qs = new URLSearchParams({ q: group.toUpperCase(), limit: "2" });
      if (cursor) qs.set("cursor", cursor);
      const res = await call(p, "GET", `/api/auth/users?${qs}`, { headers: ADMIN });
      assert.equal(res.status, 200, res.text);
      assert.ok(res.json.users.length <= 2);
      seen.push(...res.json.users.map((u) => u.email));
      cursor = res.json.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    assert.deepEqual(seen, made, "every match once, in email order");
    assert.equal(pages, 3);

    const prefix = await call(p, "GET", `/api/auth/users?q=${group}-3&match=prefix`, { headers: ADMIN });
    assert.deepEqual(prefix.json.users.map((u) => u.email), [`${group}-3@example.com`]);
    const notPrefix = await call(p, "GET", `/api/auth/users?q=${group.slice(2)}&match=prefix`, { headers: ADMIN });
    assert.deepEqual(notPrefix.json.users, [], "a substring is not a prefix");
    const substring = await call(p, "GET", `/api/auth/users?q=${group.slice(2)}-4@EXAMPLE`, { headers: ADMIN });
    assert.deepEqual(substring.json.users.map((u) => u.email), [`${group}-4@example.com`]);
    const user = substring.json.users[0];
    assert.deepEqual(Object.keys(user).sort(), ["createdAt", "email", "id", "permissions", "role"]);
  });

  test("ending a user's sessions: their token and cookie fail at once; audited with the admin's id", async () => {
    const victim = await signup(p);
    const a = await login(p, victim.email);
    const b = await login(p, victim.email);
    assert.equal((await call(p, "GET", "/api/auth/me", { headers: bearer(a.token) })).status, 200);
    assert.equal((await call(p, "GET", "/api/auth/me", { headers: { cookie: `session=${b.session}` } })).status, 200);
    const ended = await call(p, "DELETE", `/api/auth/users/${victim.id}/sessions`, { headers: bearer(adminToken) });
    assert.equal(ended.status, 200, ended.text);
    assert.deepEqual(ended.json, { userId: victim.id, ended: 2 });
    assertProblem(await call(p, "GET", "/api/auth/me", { headers: bearer(a.token) }), 401, "token after the end");
    assertProblem(await call(p, "GET", "/api/auth/me", { headers: bearer(b.token) }), 401, "second token");
    assertProblem(await call(p, "GET", "/api/auth/me", { headers: { cookie: `session=${a.session}` } }), 401, "cookie after the end");
    const again = await call(p, "DELETE", `/api/auth/users/${victim.id}/sessions`, { headers: ADMIN });
    assert.deepEqual(again.json, { userId: victim.id, ended: 0 });
    // The user can sign in again.
    assert.equal((await call(p, "GET", "/api/auth/me", { headers: bearer((await login(p, victim.email)).token) })).status, 200);

    const audit = await call(p, "GET", `/api/auth/audit?userId=${victim.id}`, { headers: ADMIN });
    assert.equal(audit.status, 200, audit.text);
    const [second, first] = audit.json.items;
    assert.equal(audit.json.items.length, 2);
    assert.equal(first.action, "endSessions");
    assert.equal(first.actor, admin.id);
    assert.deepEqual([first.before, first.after], [{ liveSessions: 2 }, { liveSessions: 0 }]);
    assert.equal(first.requestId, ended.headers["x-request-id"]);
    assert.equal(second.actor, "admin", "the ADMIN_API_KEY is recorded as admin");
    assert.deepEqual(second.before, { liveSessions: 0 });
    assert.ok(Date.parse(first.at) <= Date.parse(second.at));
  });

  test("another user's keys: listed, revoked (then 401), audited; wrong owner or revoked twice is 404", async () => {
    const owner = await signup(p);
    const { token } = await login(p, owner.email);
    const keys = [];
    for (const name of ["first", "second"]) {
      const res = await call(p, "POST", "/api/auth/keys", { headers: bearer(token), body: { name } });
      assert.equal(res.status, 201, res.text);
      keys.push(res.json);
    }
    const listed = await call(p, "GET", `/api/auth/users/${owner.id}/keys`, { headers: bearer(adminToken) });
    assert.equal(listed.status, 200, listed.text);
    assert.equal(listed.json.userId, owner.id);
    assert.deepEqual(listed.json.keys.map((k) => k.name), ["first", "second"]);
    assert.ok(!listed.text.includes(keys[0].key), "never the secret");

    assert.equal((await call(p, "GET", "/api/auth/me", { headers: { "x-api-key": keys[0].key } })).status, 200);
    assertProblem(await call(p, "DELETE", `/api/auth/users/${plain.id}/keys/${keys[0].id}`, { headers: ADMIN }), 404, "not that user's key");
    const revoked = await call(p, "DELETE", `/api/auth/users/${owner.id}/keys/${keys[0].id}`, { headers: bearer(adminToken) });
    assert.equal(revoked.status, 204, revoked.text);
    assertProblem(await call(p, "GET", "/api/auth/me", { headers: { "x-api-key": keys[0].key } }), 401, "revoked key");
    assert.equal((await call(p, "GET", "/api/auth/me", { headers: { "x-api-key": keys[1].key } })).status, 200, "the other key lives");
    assertProblem(await call(p, "DELETE", `/api/auth/users/${owner.id}/keys/${keys[0].id}`, { headers: ADMIN }), 404, "twice");
    const after = await call(p, "GET", `/api/auth/users/${owner.id}/keys`, { headers: ADMIN });
    assert.deepEqual(after.json.keys.map((k) => k.name), ["second"]);

    // An admin revoking someone's key through the owner's route is audited as well.
    const viaOwnRoute = await call(p, "DELETE", `/api/auth/keys/${keys[1].id}`, { headers: bearer(adminToken) });
    assert.equal(viaOwnRoute.status, 204, viaOwnRoute.text);

    const audit = await call(p, "GET", `/api/auth/audit?userId=${owner.id}&actor=${admin.id}`, { headers: ADMIN });
    assert.equal(audit.json.items.length, 2, audit.text);
    const [last, first] = audit.json.items;
    assert.equal(first.action, "revokeKey");
    assert.equal(first.keyId, keys[0].id);
    assert.deepEqual(first.before, { keyId: keys[0].id, name: "first", prefix: keys[0].prefix });
    assert.deepEqual(first.after, { revoked: true });
    assert.equal(first.requestId, revoked.headers["x-request-id"]);
    assert.equal(last.keyId, keys[1].id);
  });

  test("role changes are audited with before and after; the trail pages newest first", async () => {
    const target = await signup(p);
    await setRole(p, target.id, "admin", bearer(adminToken));
    await setRole(p, target.id, "admin", bearer(adminToken)); // no change, no row
    const demoted = await setRole(p, target.id, "user", ADMIN);
    const all = await call(p, "GET", `/api/auth/audit?userId=${target.id}`, { headers: ADMIN });
    assert.deepEqual(all.json.items.map((a) => [a.action, a.actor, a.before, a.after]), [
      ["setRole", "admin", { role: "admin" }, { role: "user" }],
      ["setRole", admin.id, { role: "user" }, { role: "admin" }],
    ]);
    assert.equal(all.json.items[0].requestId, demoted.headers["x-request-id"]);
    assert.equal(all.json.nextCursor, null);

    const ids = [];
    let cursor = null;
    for (let i = 0; i < 4; i++) {
      const qs = new URLSearchParams({ limit: "1" });
      if (cursor) qs.set("cursor", cursor);
      const page = await call(p, "GET", `/api/auth/audit?${qs}`, { headers: ADMIN });
      assert.equal(page.status, 200, page.text);
      assert.equal(page.json.items.length, 1);
      ids.push(page.json.items[0].id);
      cursor = page.json.nextCursor;
      assert.ok(cursor);
    }
    assert.deepEqual(ids, [...ids].sort().reverse(), "newest first");
    assert.equal(new Set(ids).size, 4);
    assert.equal(ids[0], all.json.items[0].id, "the newest row is the last change");
  });
});

describe("the console's API prefix: cookie, Origin, admins only", () => {
  let p, admin, plain;
  before(async () => {
    p = await platform();
    admin = await signup(p, uniqueEmail("cadmin"));
    await setRole(p, admin.id, "admin");
    plain = await signup(p, uniqueEmail("cplain"));
  });
  after(async () => { await p?.dispose(); });

  const origin = { origin: ORIGIN };
  async function consoleLogin(email) {
    const res = await call(p, "POST", "/console/api/auth/login", { headers: origin, body: { email, password: PASSWORD } });
    assert.equal(res.status, 200, res.text);
    const cookie = [res.headers["set-cookie"]].flat().find((c) => c.startsWith("console_session="));
    assert.ok(cookie, JSON.stringify(res.headers));
    return { res, cookie, value: cookie.split(";")[0].slice("console_session=".length) };
  }
  const withCookie = (value, extra = {}) => ({ cookie: `console_session=${value}`, ...extra });

  test("sign-in sets an HttpOnly, SameSite=Strict cookie scoped to /console, and no token", async () => {
    const { res, cookie } = await consoleLogin(admin.email);
    const attrs = cookie.split(";").map((a) => a.trim().toLowerCase());
    assert.ok(attrs.includes("httponly") && attrs.includes("samesite=strict") && attrs.includes("path=/console"), cookie);
    assert.ok(!attrs.includes("secure"), "plain http: no Secure (https adds it)");
    assert.ok(attrs.some((a) => /^max-age=\d{5,}$/.test(a)), cookie);
    assert.equal(res.json.token, undefined, "no token for script to hold");
    assert.equal(res.json.user.email, admin.email.toLowerCase());
    assert.equal(res.headers["cache-control"], "no-store");
  });

  test("every change needs the console's own Origin: 403 problem+json otherwise", async () => {
    const { value } = await consoleLogin(admin.email);
    for (const headers of [{}, { origin: "https://evil.example" }, { origin: "http://api.do.evil.example" }, { origin: "null" }, { origin: "https://api.do" }]) {
      assertProblem(await call(p, "POST", "/console/api/auth/login", { headers, body: { email: admin.email, password: PASSWORD } }), 403, `login ${JSON.stringify(headers)}`);
      assertProblem(await call(p, "PUT", `/console/api/auth/users/${plain.id}/role`, { headers: withCookie(value, headers), body: { role: "admin" } }), 403, `role ${JSON.stringify(headers)}`);
      assertProblem(await call(p, "DELETE", `/console/api/auth/users/${plain.id}/sessions`, { headers: withCookie(value, headers) }), 403, "sessions");
    }
    assert.equal((await call(p, "GET", "/api/auth/me", { headers: ADMIN })).status, 200);
    const me = await call(p, "GET", "/console/api/auth/me", { headers: withCookie(value) });
    assert.equal(me.json.user.role, "admin");
    const still = await call(p, "GET", `/console/api/auth/users?q=${encodeURIComponent(plain.email)}`, { headers: withCookie(value) });
    assert.equal(still.json.users[0].role, "user", "nothing refused was done");
    const changed = await call(p, "PUT", `/console/api/auth/users/${plain.id}/role`, { headers: withCookie(value, origin), body: { role: "user" } });
    assert.equal(changed.status, 200, changed.text);
  });

  test("only the cookie counts there; non-admins reach sign-in, me and sign-out only", async () => {
    assertProblem(await call(p, "GET", "/console/api/auth/me", { headers: ADMIN }), 401, "the admin key is not the console's credential");
    assertProblem(await call(p, "GET", "/console/api/routes", { headers: ADMIN }), 401, "routes with the admin key");
    const { value } = await consoleLogin(plain.email);
    const me = await call(p, "GET", "/console/api/auth/me", { headers: withCookie(value) });
    assert.equal(me.status, 200, me.text);
    assert.equal(me.json.user.role, "user");
    for (const path of ["/console/api/routes", "/console/api/auth/users", "/console/api/auth/keys", "/console/api/waitlist", "/console/api/metrics"]) {
      assertProblem(await call(p, "GET", path, { headers: withCookie(value) }), 403, path);
    }
    const bad = await call(p, "GET", "/console/api/auth/me", { headers: withCookie("x".repeat(43)) });
    assertProblem(bad, 401, "a made-up cookie");
    assert.match([bad.headers["set-cookie"]].flat().join("\n"), /console_session=; HttpOnly; SameSite=Strict; Path=\/console; Max-Age=0/, "a dead cookie is cleared");
  });

  test("sign-out ends the session server-side and clears the cookie", async () => {
    const { value } = await consoleLogin(admin.email);
    assert.equal((await call(p, "GET", "/console/api/auth/audit", { headers: withCookie(value) })).status, 200);
    assertProblem(await call(p, "POST", "/console/api/auth/logout", { headers: withCookie(value) }), 403, "sign-out without Origin");
    const out = await call(p, "POST", "/console/api/auth/logout", { headers: withCookie(value, origin) });
    assert.equal(out.status, 204, out.text);
    assert.match([out.headers["set-cookie"]].flat().join("\n"), /console_session=; .*Max-Age=0/);
    assertProblem(await call(p, "GET", "/console/api/auth/me", { headers: withCookie(value) }), 401, "the old cookie, replayed");
  });
});
