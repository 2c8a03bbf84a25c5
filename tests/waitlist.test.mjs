// The waitlist for unmatched domains (CONTRACT "Waitlist"), in workerd over real HTTP with Host
// headers: the page and its CSP, escaping, JSON and form sign-ups stored in D1, repeats, bad
// input, cross-site posts, the safety checks (IP literal, punycode lookalike, denylist) and the
// admin listing as JSON and CSV.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { platform, request } from "./helpers.mjs";

const SALT = "waitlist-test-salt";
const ADMIN = { "x-api-key": "dev-admin-key" };
const JSON_HEADERS = { "content-type": "application/json" };
const FORM_HEADERS = { "content-type": "application/x-www-form-urlencoded" };
const BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

const sha256 = (text) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

describe("waitlist", () => {
  let p;
  let db;
  before(async () => {
    p = await platform({
      apiVars: {
        RATE_LIMITS: JSON.stringify({ default: { limit: 10000, windowSecs: 60 } }),
        WAITLIST_DENYLIST: "blocked.example, *.banned.example",
        WAITLIST_IP_SALT: SALT,
      },
    });
    db = await p.mf.getD1Database("WAITLIST_DB", "api");
  });
  after(async () => { await p?.dispose(); });

  const rows = async (domain) =>
    (await db.prepare("SELECT domain, email, ip_hash, created_at FROM waitlist_signups WHERE domain = ? ORDER BY email").bind(domain).all()).results;
  const signup = (host, email, headers = {}) =>
    request(p.url, host, "/waitlist", { method: "POST", headers: { ...JSON_HEADERS, ...headers }, body: { email } });
  const assertProblem = (res, status, what) => {
    assert.equal(res.status, status, `${what}: ${res.text}`);
    assert.equal(res.headers["content-type"], "application/problem+json", what);
    assert.equal(res.json.status, status, what);
    assert.equal(res.json.requestId, res.headers["x-request-id"], what);
  };

  test("any path on an unmatched host gets the page naming the domain, with its CSP", async () => {
    for (const path of ["/", "/pricing?ref=x", "/waitlist"]) {
      const res = await request(p.url, "coolstartup.example", path);
      assert.equal(res.status, 200, `${path}: ${res.text}`);
      assert.match(res.headers["content-type"], /^text\/html/);
      assert.match(res.text, /<h1>coolstartup\.<wbr>example is coming soon<\/h1>/);
      assert.match(res.text, /<title>coolstartup\.example — join the waitlist<\/title>/);
      assert.match(res.text, /<form id="waitlist-form" method="post" action="\/waitlist">/);
      assert.match(res.text, /role="status" aria-live="polite"/);
      assert.equal(res.headers["x-content-type-options"], "nosniff");
      // The CSP allows exactly the page's own inline style and script, by hash, and nothing else.
      const csp = res.headers["content-security-policy"];
      const style = res.text.match(/<style>([\s\S]*?)<\/style>/)[1];
      const script = res.text.match(/<script>([\s\S]*?)<\/script>/)[1];
      assert.match(csp, /^default-src 'none';/);
      assert.ok(csp.includes(`style-src ${sha256(style)};`), csp);
      assert.ok(csp.includes(`script-src ${sha256(script)};`), csp);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.match(csp, /form-action 'self'/);
      assert.ok(res.headers["x-request-id"]);
    }
    const head = await request(p.url, "coolstartup.example", "/", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.text, "");
  });

  test("the page shows only the normalised, escaped host; a hostile Host is never reflected", async () => {
    const res = await request(p.url, "Cool-Startup.Example.:8080", "/");
    assert.equal(res.status, 200, res.text);
    assert.match(res.text, /<h1>cool-startup\.<wbr>example is coming soon<\/h1>/);
    assert.doesNotMatch(res.text, /Cool-Startup|:8080|Example\./);
    // Markup cannot be a host: it never reaches the page (400 from the api, or Miniflare's
    // proxy refusing it first), and is not echoed in whatever answers.
    for (const host of [`x"><script>alert(1)</script>.example`, "a<b.example", "it's.example", "a&amp;b.example"]) {
      const bad = await request(p.url, host, "/");
      assert.ok(bad.status === 400 || bad.status >= 500, `${host}: ${bad.status}`);
      assert.doesNotMatch(bad.text, /<script>alert|a<b|it's|&amp;b/, host);
      assert.doesNotMatch(bad.headers["content-type"] ?? "", /text\/html/, host);
    }
  });

  test("a JSON sign-up is stored normalised with a hashed IP; a repeat is idempotent", async () => {
    const res = await signup("coolstartup.example", "  Ada.Lovelace@Example.COM ");
    assert.equal(res.status, 201, res.text);
    assert.deepEqual(res.json, { status: "joined" });
    assert.equal(res.headers["cache-control"], "no-store");
    const again = await signup("coolstartup.example", "ada.lovelace@example.com");
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.json, { status: "already_joined" });
    // Waitlist pages are tenant traffic: counted under the tenant policy (per address and
    // domain), and answered without the platform's rate-limit headers.
    assert.equal(again.headers["ratelimit-policy"], undefined);
    const stored = await rows("coolstartup.example");
    assert.equal(stored.length, 1, JSON.stringify(stored));
    const [row] = stored;
    assert.equal(row.email, "ada.lovelace@example.com");
    assert.equal(row.domain, "coolstartup.example");
    assert.match(row.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Math.abs(Date.parse(row.created_at) - Date.now()) < 60_000, row.created_at);
    // HMAC-SHA256 under the configured salt, 128 bits in hex; never the IP itself.
    assert.match(row.ip_hash, /^[0-9a-f]{32}$/);
    assert.equal(row.ip_hash, createHmac("sha256", SALT).update("127.0.0.1").digest("hex").slice(0, 32));
    // The same address on another domain is another sign-up.
    const other = await signup("otherstartup.example", "ada.lovelace@example.com");
    assert.equal(other.status, 201, other.text);
    assert.equal((await rows("otherstartup.example")).length, 1);
  });

  test("a form sign-up answers JSON to scripts and a confirmation page to a browser without JS", async () => {
    const form = await request(p.url, "formstartup.example", "/waitlist", {
      method: "POST", headers: { ...FORM_HEADERS, accept: "*/*" }, body: "email=grace%40example.com",
    });
    assert.equal(form.status, 201, form.text);
    assert.deepEqual(form.json, { status: "joined" });

    const page = await request(p.url, "formstartup.example", "/waitlist", {
      method: "POST", headers: { ...FORM_HEADERS, accept: BROWSER_ACCEPT, origin: "http://formstartup.example" },
      body: "email=Margaret%2Bwaitlist%40Example.com",
    });
    assert.equal(page.status, 201, page.text);
    assert.match(page.headers["content-type"], /^text\/html/);
    assert.match(page.text, /<h1>You're on the list<\/h1>/);
    assert.match(page.text, /href="\/">Back to formstartup\.example</);
    assert.ok(page.headers["content-security-policy"]);
    const repeat = await request(p.url, "formstartup.example", "/waitlist/", {
      method: "POST", headers: { ...FORM_HEADERS, accept: BROWSER_ACCEPT }, body: "email=margaret%2Bwaitlist%40example.com",
    });
    assert.equal(repeat.status, 200, repeat.text);
    assert.match(repeat.text, /<h1>You're already on the list<\/h1>/);
    assert.deepEqual((await rows("formstartup.example")).map((r) => r.email), ["grace@example.com", "margaret+waitlist@example.com"]);
  });

  test("bad sign-ups are refused and store nothing", async () => {
    const host = "badinput.example";
    const cases = [
      ["no @", JSON_HEADERS, JSON.stringify({ email: "not-an-email" }), 400],
      ["two @", JSON_HEADERS, JSON.stringify({ email: "a@b@example.com" }), 400],
      ["numeric TLD", JSON_HEADERS, JSON.stringify({ email: "a@10.0.0.1" }), 400],
      ["non-string", JSON_HEADERS, JSON.stringify({ email: ["a@example.com"] }), 400],
      ["missing field", JSON_HEADERS, JSON.stringify({ mail: "a@example.com" }), 400],
      ["broken JSON", JSON_HEADERS, "{\"email\":", 400],
      ["empty form", FORM_HEADERS, "", 400],
      ["bad form encoding", FORM_HEADERS, "email=%zz", 400],
      ["too long", JSON_HEADERS, JSON.stringify({ email: `${"a".repeat(250)}@example.com` }), 400],
      ["plain text", { "content-type": "text/plain" }, "a@example.com", 415],
      ["no content type", {}, "email=a%40example.com", 415],
      // Node sends a body without Content-Length chunked: the cap applies while streaming...
      ["oversized, chunked", JSON_HEADERS, JSON.stringify({ email: "a@example.com", pad: "x".repeat(5000) }), 413],
      // ...and a declared length over it is refused before reading.
      ["oversized, declared", { ...JSON_HEADERS, "content-length": "5034" }, JSON.stringify({ email: "a@example.com", pad: "x".repeat(5000) }), 413],
    ];
    for (const [what, headers, body, status] of cases) {
      const res = await request(p.url, host, "/waitlist", { method: "POST", headers, body });
      assertProblem(res, status, what);
      assert.ok(res.json.detail, what);
      assert.doesNotMatch(res.text, /not-an-email|at .*\.rs|panicked/, what);
    }
    // A browser without JS gets a page that says so, still a 400.
    const page = await request(p.url, host, "/waitlist", {
      method: "POST", headers: { ...FORM_HEADERS, accept: BROWSER_ACCEPT }, body: "email=nope",
    });
    assert.equal(page.status, 400);
    assert.match(page.headers["content-type"], /^text\/html/);
    assert.match(page.text, /role="alert"/);
    assert.deepEqual(await rows(host), []);
  });

  test("other methods get 405 with Allow", async () => {
    for (const [method, path, allow] of [["PUT", "/waitlist", "GET, HEAD, POST"], ["DELETE", "/waitlist", "GET, HEAD, POST"], ["POST", "/", "GET, HEAD"], ["PATCH", "/x", "GET, HEAD"]]) {
      const res = await request(p.url, "coolstartup.example", path, { method, headers: JSON_HEADERS, body: { email: "x@example.com" } });
      assertProblem(res, 405, `${method} ${path}`);
      assert.equal(res.headers.allow, allow);
    }
  });

  test("a sign-up posted from another site is refused (403); the domain's own page is fine", async () => {
    const host = "origincheck.example";
    for (const origin of ["https://evil.example", "null", "https://origincheck.example.evil.example"]) {
      const res = await signup(host, "victim@example.com", { origin });
      assertProblem(res, 403, origin);
    }
    assert.deepEqual(await rows(host), []);
    const own = await signup(host, "visitor@example.com", { origin: `http://${host}:8787` });
    assert.equal(own.status, 201, own.text);
  });

  test("an IP-literal host gets a 404 problem, not a page, and cannot take sign-ups", async () => {
    for (const host of ["10.1.2.3", "10.1.2.3:8080", "[2001:db8::1]"]) {
      const page = await request(p.url, host, "/");
      assertProblem(page, 404, host);
      const post = await signup(host, "a@example.com");
      assertProblem(post, 404, `POST ${host}`);
    }
    assert.deepEqual(await rows("10.1.2.3"), []);
    const logged = p.logs.filter((l) => l.includes('"waitlist refused"') && l.includes('"ip literal"'));
    assert.ok(logged.length >= 1, p.logs.slice(-5).join("\n"));
  });

  test("a punycode lookalike of a platform host gets a 404 problem", async () => {
    // xn--pi-6kc.do is Cyrillic "аpi.do"; xn--b-54b.do is "ԁb.do"; login.xn--pis-5cd.do sits under
    // "аpis.do"; d0.do imitates do.do and 1ocalhost localhost (ASCII lookalikes).
    for (const host of ["xn--pi-6kc.do", "XN--PI-6KC.DO", "xn--b-54b.do", "login.xn--pis-5cd.do", "xn--uth-5cd.do", "d0.do", "1ocalhost"]) {
      const page = await request(p.url, host, "/");
      assertProblem(page, 404, host);
      const post = await signup(host, "a@example.com");
      assertProblem(post, 404, `POST ${host}`);
      assert.doesNotMatch(page.text, /coming soon/);
    }
    // A harmless IDN gets its page (пример.do, Cyrillic, like no platform host).
    const idn = await request(p.url, "xn--e1afmkfd.example", "/");
    assert.equal(idn.status, 200, idn.text);
  });

  test("a denylisted domain (and its subdomains) gets a 404 problem", async () => {
    for (const host of ["blocked.example", "shop.blocked.example", "x.banned.example", "banned.example"]) {
      assertProblem(await request(p.url, host, "/"), 404, host);
      assertProblem(await signup(host, "a@example.com"), 404, `POST ${host}`);
    }
    const neighbour = await request(p.url, "notblocked.example", "/");
    assert.equal(neighbour.status, 200, neighbour.text);
  });

  test("admins list a domain's sign-ups as JSON and as CSV", async () => {
    const host = "listed.example";
    for (const email of ["zed@example.com", "=1+2@example.com", "amy@example.com"]) {
      assert.equal((await signup(host, email)).status, 201);
    }
    for (const [apiHost, path] of [["api.do", `/api/waitlist/${host}`], ["localhost", `/waitlist/Listed.Example`]]) {
      const res = await request(p.url, apiHost, path, { headers: ADMIN });
      assert.equal(res.status, 200, `${apiHost}${path}: ${res.text}`);
      assert.match(res.headers["content-type"], /^application\/json/);
      assert.equal(res.headers["cache-control"], "no-store");
      assert.equal(res.json.domain, host);
      assert.equal(res.json.count, 3);
      assert.deepEqual(res.json.signups.map((s) => Object.keys(s).sort()), [["createdAt", "email"], ["createdAt", "email"], ["createdAt", "email"]]);
      assert.deepEqual(res.json.signups.map((s) => s.email), ["zed@example.com", "=1+2@example.com", "amy@example.com"]);
      const times = res.json.signups.map((s) => s.createdAt);
      assert.deepEqual([...times].sort(), times);
    }
    const csv = await request(p.url, "api.do", `/api/waitlist/${host}`, { headers: { ...ADMIN, accept: "text/csv" } });
    assert.equal(csv.status, 200, csv.text);
    assert.match(csv.headers["content-type"], /^text\/csv/);
    assert.match(csv.headers["content-disposition"], /attachment; filename="waitlist-listed\.example\.csv"/);
    const lines = csv.text.split("\r\n");
    assert.equal(lines[0], "email,createdAt");
    assert.equal(lines.length, 5); // header, three rows, the empty string after the last CRLF
    assert.match(lines[1], /^zed@example\.com,\d{4}-/);
    assert.match(lines[2], /^'=1\+2@example\.com,/); // defused for spreadsheets
    assert.equal(lines[4], "");
    // An empty list is a list.
    const none = await request(p.url, "api.do", "/api/waitlist/nobody-here.example", { headers: ADMIN });
    assert.deepEqual(none.json, { domain: "nobody-here.example", count: 0, signups: [], nextCursor: null });
    // The overview counts per domain.
    const all = await request(p.url, "api.do", "/api/waitlist", { headers: ADMIN });
    assert.equal(all.status, 200, all.text);
    assert.equal(all.json.domains.find((d) => d.domain === host)?.count, 3);
  });

  test("the admin listing refuses bad requests", async () => {
    assertProblem(await request(p.url, "api.do", "/api/waitlist/a..b", { headers: ADMIN }), 400, "invalid domain");
    assertProblem(await request(p.url, "api.do", "/api/waitlist/a.example/more", { headers: ADMIN }), 404, "deeper path");
    const post = await request(p.url, "api.do", "/api/waitlist/a.example", { method: "POST", headers: { ...ADMIN, ...JSON_HEADERS }, body: {} });
    assertProblem(post, 405, "POST");
    assert.equal(post.headers.allow, "GET, HEAD");
  });

  test("the admin listing needs a credential (401) and an admin (403)", async () => {
    for (const path of ["/api/waitlist/coolstartup.example", "/api/waitlist", "/waitlist/coolstartup.example"]) {
      const res = await request(p.url, "api.do", path);
      assertProblem(res, 401, path);
      assert.doesNotMatch(res.text, /ada/);
    }
    assertProblem(await request(p.url, "api.do", "/api/waitlist/coolstartup.example", { headers: { "x-api-key": "wrong-key" } }), 401, "bad key");
  });

  test("a non-admin user gets 403 for the admin listing", async () => {
    const email = `member-${Date.now()}@example.com`;
    const password = "correct horse battery";
    const created = await request(p.url, "api.do", "/api/auth/signup", { method: "POST", headers: JSON_HEADERS, body: { email, password } });
    assert.equal(created.status, 201, created.text);
    const login = await request(p.url, "api.do", "/api/auth/login", { method: "POST", headers: JSON_HEADERS, body: { email, password } });
    assert.equal(login.status, 200, login.text);
    const res = await request(p.url, "api.do", "/api/waitlist/coolstartup.example", { headers: { authorization: `Bearer ${login.json.token}` } });
    assertProblem(res, 403, "non-admin");
  });
});
