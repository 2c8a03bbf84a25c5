// Response budgets, in workerd: a db list page ends at its byte budget (100 documents of ~1 MiB
// walk in pages of four, over HTTP and over RPC), a JSON-RPC batch answers the calls past its
// result budget with -32004 instead of building the whole array, and the waitlist admin
// listing is paginated (keyset cursor) with a streamed CSV export. The documents and sign-ups
// are written straight into the local D1 databases (generated inside SQLite), so the test
// does not push 100 MiB through HTTP first.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { readFile, readdir, readlink } from "node:fs/promises";
import { platform, request } from "./helpers.mjs";

const ADMIN = { "x-api-key": "dev-admin-key" };
const RATE_LIMITS = JSON.stringify({ default: { limit: 100000, windowSecs: 60 } });
// Mirrors gateway::documents::LIST_PAGE_BUDGET_BYTES and gateway::jsonrpc::MAX_BATCH_RESULT_BYTES.
const PAGE_BUDGET = 4 << 20;
const BATCH_BUDGET = 8 << 20;
const DOC_CHARS = 999_000;
const DOCS = 100;
// A rendered item adds its id and system fields to the stored JSON; a page's JSON adds a little.
const PAGE_SLACK = 64 * 1024;

/** The workerd processes Miniflare started (children of this Node process), with their RSS. */
async function workerdMemory() {
  const found = [];
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const status = await readFile(`/proc/${pid}/status`, "utf8");
      const ppid = Number(/PPid:\s+(\d+)/.exec(status)?.[1]);
      const exe = await readlink(`/proc/${pid}/exe`).catch(() => "");
      if (ppid === process.pid && /workerd/.test(exe)) {
        const kb = (key) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
        found.push({ pid: Number(pid), rssKiB: kb("VmRSS"), peakKiB: kb("VmHWM") });
      }
    } catch {
      // a process that ended meanwhile
    }
  }
  return found;
}

describe("db list pages and JSON-RPC batches stay within their byte budgets", () => {
  let p;
  const collection = `big-${process.pid}`;
  before(async () => {
    p = await platform({ apiVars: { RATE_LIMITS } });
    const db = await p.mf.getD1Database("DB", "db");
    // 100 documents of ~1 MiB each, owned by the admin identity ("admin"), ids d000..d099.
    await db
      .prepare(
        `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${DOCS - 1})
         INSERT INTO documents (owner, collection, id, data, version, created_at, updated_at)
         SELECT 'admin', ?1, printf('d%03d', i),
                '{"n":' || i || ',"blob":"' || replace(hex(zeroblob(${DOC_CHARS})), '00', 'x') || '"}',
                1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z' FROM n`,
      )
      .bind(collection)
      .run();
  });
  after(async () => { await p?.dispose(); });

  test("a 100-document page of ~1 MiB documents arrives in budgeted pages, every document once", async () => {
    const before = await workerdMemory();
    const pages = [];
    const seen = [];
    let cursor = "";
    do {
      const res = await request(p.url, "api.do", `/api/db/${collection}?limit=100&cursor=${encodeURIComponent(cursor)}`, { headers: ADMIN });
      assert.equal(res.status, 200, res.text.slice(0, 300));
      const bytes = Buffer.byteLength(res.text);
      pages.push({ items: res.json.items.length, bytes });
      assert.ok(bytes <= PAGE_BUDGET + PAGE_SLACK, `page ${pages.length} is ${bytes} bytes`);
      assert.ok(res.json.items.length >= 1);
      seen.push(...res.json.items.map((d) => d.id));
      cursor = res.json.nextCursor ?? "";
      assert.ok(pages.length <= DOCS, "the walk must end");
    } while (cursor);
    const after = await workerdMemory();
    assert.deepEqual(seen, Array.from({ length: DOCS }, (_, i) => `d${String(i).padStart(3, "0")}`));
    // ~999 kB each: four fit in 4 MiB, a fifth would not.
    assert.equal(pages.length, 25, JSON.stringify(pages));
    assert.ok(pages.every((page) => page.items === 4), JSON.stringify(pages));
    const largest = Math.max(...pages.map((page) => page.bytes));
    console.log(
      `db list: ${pages.length} pages for ${DOCS} documents of ~${DOC_CHARS} bytes; largest page ${largest} bytes ` +
        `(budget ${PAGE_BUDGET}); workerd RSS before ${JSON.stringify(before)} after ${JSON.stringify(after)}`,
    );
  });

  test("db.list over RPC (a user's own rows) ends at the same budget", async () => {
    const db = await p.mf.getWorker("db");
    const ctx = { requestId: "01JBUDGET00000000000000000", traceparent: "", userId: "admin", role: "user" };
    const first = JSON.parse(JSON.stringify(await db.list(ctx, collection, { limit: 100 })));
    assert.equal(first.ok, true);
    assert.equal(first.value.items.length, 4);
    assert.ok(first.value.nextCursor);
    const second = JSON.parse(JSON.stringify(await db.list(ctx, collection, { limit: 100, cursor: first.value.nextCursor })));
    assert.deepEqual(second.value.items.map((d) => d.id), ["d004", "d005", "d006", "d007"]);
    // a small limit still wins over the budget
    const two = JSON.parse(JSON.stringify(await db.list(ctx, collection, { limit: 2 })));
    assert.deepEqual(two.value.items.map((d) => d.id), ["d000", "d001"]);
  });

  test("a JSON-RPC batch answers the results past its budget with -32004, in order", async () => {
    const call = (id) => ({ jsonrpc: "2.0", id, method: "db.list", params: [collection, { limit: 100 }] });
    const res = await request(p.url, "api.do", "/rpc", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: [call(1), call(2), call(3), call(4), { jsonrpc: "2.0", id: 5, method: "do.getServices" }],
    });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const bytes = Buffer.byteLength(res.text);
    assert.ok(bytes <= BATCH_BUDGET + PAGE_SLACK, `batch answer is ${bytes} bytes`);
    const byId = Object.fromEntries(res.json.map((r) => [r.id, r]));
    // two pages of ~4 MB fit in 8 MiB; the third and fourth do not; a small result still does
    assert.equal(byId[1].result.items.length, 4);
    assert.equal(byId[2].result.items.length, 4);
    for (const id of [3, 4]) {
      assert.equal(byId[id].error?.code, -32004, JSON.stringify(byId[id]).slice(0, 300));
      assert.match(byId[id].error.message, /too large/i);
    }
    assert.ok(Array.isArray(byId[5].result), JSON.stringify(byId[5]).slice(0, 300));
    assert.ok(p.logs.some((l) => l.includes("batch result dropped")), "do logs the dropped results");
    console.log(`rpc batch: answer ${bytes} bytes (budget ${BATCH_BUDGET})`);
  });
});

describe("the waitlist admin listing is paginated and its CSV export streamed", () => {
  let p;
  const domain = "crowded.example";
  const SIGNUPS = 2500;
  before(async () => {
    p = await platform({ apiVars: { RATE_LIMITS } });
    const db = await p.mf.getD1Database("WAITLIST_DB", "api");
    // Two sign-ups share each timestamp, so the cursor must order by (created_at, email).
    await db
      .prepare(
        `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${SIGNUPS - 1})
         INSERT INTO waitlist_signups (domain, email, ip_hash, created_at)
         SELECT ?1, printf('u%05d@mail.example', i), NULL,
                printf('2026-01-01T00:%02d:%02d.000Z', (i / 2) / 60 % 60, (i / 2) % 60) FROM n`,
      )
      .bind(domain)
      .run();
    await db.prepare("INSERT INTO waitlist_signups (domain, email, ip_hash, created_at) VALUES ('other.example', 'a@b.example', NULL, '2026-01-01T00:00:00.000Z')").run();
  });
  after(async () => { await p?.dispose(); });

  test("JSON pages of at most `limit` sign-ups, walked with nextCursor, every sign-up once", async () => {
    const seen = [];
    const sizes = [];
    let cursor = "";
    do {
      const res = await request(p.url, "api.do", `/api/waitlist/${domain}?limit=1000&cursor=${cursor}`, { headers: ADMIN });
      assert.equal(res.status, 200, res.text.slice(0, 300));
      assert.equal(res.json.domain, domain);
      assert.equal(res.json.count, res.json.signups.length);
      sizes.push(res.json.signups.length);
      seen.push(...res.json.signups.map((s) => s.email));
      cursor = res.json.nextCursor ?? "";
    } while (cursor && sizes.length < 10);
    assert.deepEqual(sizes, [1000, 1000, 500]);
    assert.equal(new Set(seen).size, SIGNUPS);
    // the default page is 100
    const first = await request(p.url, "api.do", `/api/waitlist/${domain}`, { headers: ADMIN });
    assert.equal(first.json.signups.length, 100);
    assert.ok(first.json.nextCursor);
    // bad paging input is a 400 problem
    for (const q of ["limit=0", "limit=1001", "cursor=garbage!"]) {
      const res = await request(p.url, "api.do", `/api/waitlist/${domain}?${q}`, { headers: ADMIN });
      assert.equal(res.status, 400, `${q}: ${res.text}`);
      assert.equal(res.json.requestId, res.headers["x-request-id"]);
    }
  });

  test("the domain overview is paginated too", async () => {
    const one = await request(p.url, "api.do", "/api/waitlist?limit=1", { headers: ADMIN });
    assert.equal(one.status, 200, one.text);
    assert.deepEqual(one.json.domains.map((d) => d.domain), ["crowded.example"]);
    assert.equal(one.json.domains[0].count, SIGNUPS);
    const two = await request(p.url, "api.do", `/api/waitlist?limit=1&cursor=${one.json.nextCursor}`, { headers: ADMIN });
    assert.deepEqual(two.json.domains.map((d) => d.domain), ["other.example"]);
    assert.equal(two.json.nextCursor, null);
  });

  test("the CSV export streams every sign-up (chunked, no Content-Length)", async () => {
    const res = await request(p.url, "api.do", `/api/waitlist/${domain}`, { headers: { ...ADMIN, accept: "text/csv" } });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.match(res.headers["content-type"], /^text\/csv/);
    assert.equal(res.headers["content-length"], undefined);
    assert.equal(res.headers["transfer-encoding"], "chunked");
    const lines = res.text.split("\r\n");
    assert.equal(lines[0], "email,createdAt");
    assert.equal(lines.at(-1), "");
    const rows = lines.slice(1, -1);
    assert.equal(rows.length, SIGNUPS);
    assert.equal(new Set(rows.map((r) => r.split(",")[0])).size, SIGNUPS);
    assert.equal(rows[0], "u00000@mail.example,2026-01-01T00:00:00.000Z");
  });
});
