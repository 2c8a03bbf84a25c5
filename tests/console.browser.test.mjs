// The operators' console in a real browser (Debian's headless Chromium through playwright-core,
// as the waitlist's browser test): sign in as an admin (an HttpOnly, SameSite=Strict cookie
// scoped to /console, no token in script), add a runtime route sending a new custom domain to
// a user worker and reach it, delete it and get the waitlist, export a waitlist's CSV; on
// Users and keys search a user by email, promote them, end their sessions (their token and
// cookie then fail), revoke their key (it then gets 401), and see those changes in the audit
// with the admin's id; a cross-origin POST is refused; a non-admin gets the 403 page; no
// console errors and no CSP violations; usable at 360 px. Screenshots of every page, light and
// dark, go to test-results/ (gitignored).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "../scripts/platform.mjs";
import { platform, request } from "./helpers.mjs";

const CHROMIUM = "/usr/bin/chromium";
const RESULTS = path.join(ROOT, "test-results");
const found = existsSync(CHROMIUM);
const ADMIN_KEY = { "x-api-key": "dev-admin-key" };
const PASSWORD = "console test password";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Text whose contrast with its background is under 4.5:1 (WCAG AA), as "text: ratio". */
const lowContrast = (page) => page.evaluate(() => {
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length || el.closest(".sr, [hidden]") || getComputedStyle(el).visibility === "hidden") continue;
    const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) out.push(`${el.textContent.trim().slice(0, 30)}: ${ratio.toFixed(2)}`);
  }
  return out;
});

describe("the console in a real browser", { skip: found ? false : `${CHROMIUM} not found: run scripts/ensure-chromium.sh` }, () => {
  let p, browser, origin, port;
  const users = {};
  const auth = (path, body, headers = {}) => request(p.url, "api.do", `/api/auth${path}`, {
    method: "POST", headers: { "content-type": "application/json", ...headers }, body,
  });

  async function makeUser(name, role) {
    const email = `${name}-${Date.now()}@example.com`;
    const signed = await auth("/signup", { email, password: PASSWORD });
    assert.equal(signed.status, 201, signed.text);
    const id = signed.json.user.id;
    if (role === "admin") {
      const set = await request(p.url, "api.do", `/api/auth/users/${id}/role`, {
        method: "PUT", headers: { "content-type": "application/json", ...ADMIN_KEY }, body: { role: "admin" },
      });
      assert.equal(set.status, 200, set.text);
    }
    return { email, id };
  }

  before(async () => {
    const { chromium } = await import("playwright-core");
    p = await platform({ apiVars: { ROUTES_TTL_MS: "300" } });
    port = new URL(p.url).port;
    origin = `http://127.0.0.1:${port}`;
    users.admin = await makeUser("console-admin", "admin");
    users.plain = await makeUser("console-plain", "user");
    users.promoted = await makeUser("console-promoted", "user");
    const signup = await request(p.url, "coolstartup.example", "/waitlist", {
      method: "POST", headers: { "content-type": "application/json" }, body: { email: "early@bird.example" },
    });
    assert.equal(signup.status, 201, signup.text);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP *.example 127.0.0.1"],
    });
    mkdirSync(RESULTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await p?.dispose();
  });

  /** A page recording console errors (CSP violations land there) and uncaught errors. A failed
   * fetch's own "Failed to load resource" line is the browser reporting a 4xx the page
   * expected (a 400 with problems, say), not a fault of the page. */
  async function open(options = {}) {
    const context = await browser.newContext({ acceptDownloads: true, ...options });
    const page = await context.newPage();
    const problems = [];
    page.on("console", (m) => {
      if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(String(e)));
    page.on("dialog", (d) => d.accept());
    return { context, page, problems };
  }

  async function signIn(page, who) {
    await page.goto(`${origin}/console`);
    await page.getByLabel("Email", { exact: true }).fill(who.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
  }

  const shot = (page, name) => page.screenshot({ path: path.join(RESULTS, `console-${name}.png`), fullPage: true });

  test("the console's files carry a strict CSP", async () => {
    const res = await request(p.url, "api.do", "/console");
    assert.equal(res.status, 200);
    assert.match(res.headers["content-type"], /text\/html/);
    const csp = res.headers["content-security-policy"];
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|https?:/);
    assert.doesNotMatch(res.text, /<script>|<style>| on[a-z]+=/, "no inline script, style or handler");
    assert.equal((await request(p.url, "api.do", "/console/nope")).status, 404);
    assert.equal((await request(p.url, "shop.example.com", "/console")).json?.worker, "myapp", "only on API hosts");
  });

  test("an admin adds a route, reaches the domain, deletes it, exports CSV", async () => {
    const { context, page, problems } = await open();
    await signIn(page, users.admin);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    // The session is the console's cookie, out of script's reach: no token in storage.
    const [cookie, ...others] = await context.cookies();
    assert.equal(others.length, 0, JSON.stringify(others));
    assert.equal(cookie.name, "console_session");
    assert.deepEqual([cookie.httpOnly, cookie.sameSite, cookie.path, cookie.secure], [true, "Strict", "/console", false]);
    assert.equal(await page.evaluate(() => document.cookie + JSON.stringify(sessionStorage) + JSON.stringify(localStorage)), "{}{}");
    await page.locator("#health-rows tr").first().waitFor();
    assert.match(await page.locator("#health-rows").innerText(), /db/);
    // The last hour's charts, from the Analytics Engine stand-in: inline SVG, labelled.
    await page.locator("#chart-latency svg").waitFor();
    assert.equal(await page.locator("svg.chart").count(), 3);
    assert.match(await page.locator("#chart-requests svg").getAttribute("aria-label"), /Requests per minute over the last hour: \d+ in all/);
    assert.match(await page.locator("#metrics-source").innerText(), /requests, \d+ errors in the last hour \(source: local-stand-in\)/);
    assert.deepEqual(await lowContrast(page), [], "Overview: contrast in light");
    await shot(page, "overview-light");

    // Routes: a broken entry shows its problems inline; a good one is added.
    await page.getByRole("link", { name: "Routes" }).click();
    await page.getByRole("heading", { name: "Routes" }).waitFor();
    await page.getByLabel("Domain", { exact: true }).fill("newshop.example");
    await page.getByLabel("Entry (the routes file's format)").fill('{"worker": "Bad Name", "namespace": "qa"}');
    await page.getByRole("button", { name: "Save route" }).click();
    await page.locator("#route-errors li").first().waitFor();
    assert.match(await page.locator("#route-errors").innerText(), /worker/);
    assert.equal(await page.locator("#route-entry").getAttribute("aria-invalid"), "true");
    await page.getByLabel("Entry (the routes file's format)").fill('{"worker": "myapp", "namespace": "production"}');
    await page.getByRole("button", { name: "Save route" }).click();
    await page.getByText("Added newshop.example.").waitFor();
    await page.locator("#route-rows", { hasText: "newshop.example" }).waitFor();
    await page.locator("#audit-rows", { hasText: "newshop.example" }).waitFor();
    assert.deepEqual(await lowContrast(page), [], "Routes: contrast in light");
    await shot(page, "routes-light");

    const visit = await context.newPage();
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      // A fresh query each time: the waitlist page is cacheable for 60 s.
      const res = await visit.goto(`http://newshop.example:${port}/?try=${i}`);
      reached = (await res.text()).includes('"worker":"myapp"');
      if (!reached) await sleep(100);
    }
    assert.ok(reached, "the new domain reaches the user worker");

    await page.getByRole("button", { name: "Delete newshop.example" }).click();
    await page.getByText("Deleted newshop.example.").waitFor();
    let waitlisted = false;
    for (let i = 0; i < 40 && !waitlisted; i++) {
      const res = await visit.goto(`http://newshop.example:${port}/?after-delete=${i}`);
      waitlisted = /<form/.test(await res.text());
      if (!waitlisted) await sleep(100);
    }
    assert.ok(waitlisted, "after the delete the domain gets its waitlist");

    // Waitlist: domains with counts, a domain's sign-ups, CSV export.
    await page.getByRole("link", { name: "Waitlist" }).click();
    await page.locator("#waitlist-rows", { hasText: "coolstartup.example" }).waitFor();
    await page.getByRole("button", { name: "Sign-ups of coolstartup.example" }).click();
    await page.locator("#signup-rows", { hasText: "early@bird.example" }).waitFor();
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Export coolstartup.example as CSV" }).click(),
    ]);
    assert.equal(download.suggestedFilename(), "waitlist-coolstartup.example.csv");
    assert.match(readFileSync(await download.path(), "utf8"), /early@bird\.example/);
    assert.deepEqual(await lowContrast(page), [], "Waitlist: contrast in light");
    await shot(page, "waitlist-light");

    // Keyboard: after a load the skip link is the first stop, and focus is visible on it.
    await page.reload();
    await page.locator("#waitlist-rows tr").first().waitFor();
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      return { cls: el.className, outline: getComputedStyle(el).outlineStyle };
    });
    assert.deepEqual(focused, { cls: "skip", outline: "solid" });

    assert.deepEqual(problems, []);
    await context.close();
  });

  test("Users and keys: search by email, promote, end sessions, revoke a key, the audit with the admin's id", async () => {
    // The user to manage, with a live token, a session cookie and an API key of their own.
    const target = users.promoted;
    const login = await auth("/login", { email: target.email, password: PASSWORD });
    assert.equal(login.status, 200, login.text);
    const token = login.json.token;
    const session = [login.headers["set-cookie"]].flat().find((c) => c.startsWith("session=")).split(";")[0];
    const key = await auth("/keys", { name: "console-test-key" }, { authorization: `Bearer ${token}` });
    assert.equal(key.status, 201, key.text);
    const me = (headers) => request(p.url, "api.do", "/api/auth/me", { headers });
    assert.equal((await me({ authorization: `Bearer ${token}` })).status, 200);

    const { context, page, problems } = await open();
    await signIn(page, users.admin);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.getByRole("link", { name: "Users and keys" }).click();
    await page.getByRole("heading", { name: "Users and keys" }).waitFor();

    // Search: part of the address, in upper case; then "starts with" rules out a middle part.
    const local = target.email.split("@")[0];
    await page.getByLabel("Search users by email").fill(local.slice(8).toUpperCase());
    await page.locator("#user-rows tr").nth(2).waitFor(); // the first load: everyone (3 users)
    await page.getByRole("button", { name: "Search users" }).click();
    await page.waitForFunction(() => document.querySelectorAll("#user-rows tr").length === 1);
    await page.getByRole("button", { name: `Manage ${target.email}` }).waitFor();
    await page.getByLabel("Match").selectOption("prefix");
    await page.getByRole("button", { name: "Search users" }).click();
    await page.locator("#user-rows", { hasText: "No users match" }).waitFor();
    await page.getByLabel("Search users by email").fill(local);
    await page.getByRole("button", { name: "Search users" }).click();
    await page.getByRole("button", { name: `Manage ${target.email}` }).click();
    await page.getByRole("heading", { name: `User ${target.email}` }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), "user-detail-h", "focus moves to the user");
    assert.equal(await page.locator("#user-id").innerText(), target.id);
    await page.locator("#key-rows", { hasText: "console-test-key" }).waitFor();
    await shot(page, "users-light");

    // Promote.
    await page.getByLabel("Role", { exact: true }).selectOption("admin");
    await page.getByRole("button", { name: "Change role" }).click();
    await page.getByText(`${target.email} is now admin.`).waitFor();
    assert.equal((await auth("/login", { email: target.email, password: PASSWORD })).json.user.role, "admin");

    // End every session: the token and the cookie stop working.
    await page.getByRole("button", { name: "End all sessions" }).click();
    await page.getByText(/^Ended [1-9]\d* sessions? of /).waitFor();
    assert.match(await page.locator("#user-result").innerText(), new RegExp(`^Ended 2 sessions of ${target.email.replace(/[.+]/g, "\\$&")}\\.$`));
    assert.equal((await me({ authorization: `Bearer ${token}` })).status, 401, "the token after the end");
    assert.equal((await me({ cookie: session })).status, 401, "the cookie after the end");

    // Revoke the key: it gets 401.
    assert.equal((await me({ "x-api-key": key.json.key })).status, 200);
    await page.getByRole("button", { name: "Revoke key console-test-key" }).click();
    await page.getByText("Revoked console-test-key.").waitFor();
    await page.locator("#key-rows", { hasText: "No active keys" }).waitFor();
    assert.equal((await me({ "x-api-key": key.json.key })).status, 401, "the revoked key");

    // The audit: the three changes, newest first, each with the admin's id.
    await page.locator("#user-audit-rows", { hasText: "revokeKey" }).waitFor();
    const audit = await page.locator("#user-audit-rows tr").evaluateAll((trs) => trs.slice(0, 3).map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.deepEqual(audit.map((r) => [r[1], r[2].split(" ")[0], r[3]]), [
      [users.admin.id, "revokeKey", target.id],
      [users.admin.id, "endSessions", target.id],
      [users.admin.id, "setRole", target.id],
    ]);
    assert.deepEqual(audit[2].slice(4), ["role: user", "role: admin"]);
    assert.deepEqual(audit[1].slice(4), ["liveSessions: 2", "liveSessions: 0"]);
    assert.match(audit[0][4], /^keyId: \w{12}, name: console-test-key, prefix: sk_\w{12}$/);
    assert.equal(audit[0][5], "revoked: true");
    assert.deepEqual(await lowContrast(page), [], "Users and keys: contrast in light");
    await shot(page, "users-audit-light");

    // Keyboard only: search again and reach the Manage button with Tab.
    await page.getByLabel("Search users by email").focus();
    await page.keyboard.press("Enter");
    await page.locator("#user-rows tr").first().waitFor();
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press("Tab");
      const label = await page.evaluate(() => document.activeElement.getAttribute("aria-label"));
      if (label === `Manage ${target.email}`) break;
    }
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute("aria-label")), `Manage ${target.email}`);
    assert.equal(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle), "solid", "visible focus");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: `User ${target.email}` }).waitFor();

    assert.deepEqual(problems, []);
    await context.close();
  });

  test("a cross-origin POST is refused, and the console's cookie never leaves /console", async () => {
    const { context, page, problems } = await open();
    await signIn(page, users.admin);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    // Another origin (localhost: the same server, another site) posts to the console's API
    // with the browser's credentials. The answer, seen on the wire (the page cannot read it),
    // is the Origin check's 403: without it, a sign-out without the (SameSite) cookie is a 401.
    const evil = await context.newPage();
    await evil.goto(`http://localhost:${port}/health`);
    const refused = evil.waitForResponse((r) => r.url().includes("/console/api/auth/logout"));
    await evil.evaluate((url) => fetch(url, { method: "POST", mode: "no-cors", credentials: "include", body: "x" }).catch(() => null),
      `${origin}/console/api/auth/logout`);
    assert.equal((await refused).status(), 403);
    const put = await evil.evaluate((url) => fetch(url, { method: "PUT", credentials: "include", headers: { "content-type": "application/json" }, body: "{}" })
      .then((r) => `status ${r.status}`, (e) => `blocked: ${e.name}`), `${origin}/console/api/auth/users/${users.plain.id}/role`);
    assert.match(put, /^blocked/, "a JSON PUT needs a preflight, which is refused");
    // The admin is still signed in (nothing was ended), and the plain user is still a user.
    await page.reload();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    const plain = await auth("/login", { email: users.plain.email, password: PASSWORD });
    assert.equal(plain.json.user.role, "user");
    // Path=/console: the browser does not send the console's cookie to the rest of the API.
    const elsewhere = await page.evaluate(() => fetch("/api/auth/me").then((r) => r.status));
    assert.equal(elsewhere, 401);
    assert.deepEqual(problems.filter((m) => !/CORS|Access-Control/.test(m)), []);
    await evil.close();
    await context.close();
  });

  test("a non-admin gets the 403 page", async () => {
    const { context, page, problems } = await open();
    await page.goto(`${origin}/console`);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    assert.deepEqual(await lowContrast(page), [], "sign-in: contrast in light");
    await shot(page, "signin-light");
    await signIn(page, users.plain);
    await page.getByRole("heading", { name: "403: admins only" }).waitFor();
    // The API agrees: the console's cookie of a non-admin reaches nothing but who-am-I.
    const status = await page.evaluate(() => fetch("/console/api/routes").then((r) => r.status));
    assert.equal(status, 403);
    assert.equal(await page.locator("#nav").isHidden(), true);
    assert.deepEqual(await lowContrast(page), [], "403: contrast in light");
    await shot(page, "forbidden-light");
    assert.deepEqual(problems, []);
    await context.close();
  });

  test("dark mode and 360 px: every page, no horizontal scroll", async () => {
    const { context, page, problems } = await open({ colorScheme: "dark", viewport: { width: 360, height: 740 } });
    await signIn(page, users.admin);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    for (const name of ["overview", "routes", "users", "waitlist"]) {
      await page.goto(`${origin}/console#${name}`);
      await page.locator(`#${name}`).waitFor();
      await sleep(200);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 360, `${name}: ${width} px wide at 360`);
      assert.deepEqual(await lowContrast(page), [], `${name}: contrast in dark`);
      await shot(page, `${name}-dark-360`);
    }
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, "rgb(18, 18, 18)");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    assert.deepEqual(await lowContrast(page), [], "sign-in: contrast in dark");
    await shot(page, "signin-dark-360");
    await signIn(page, users.plain);
    await page.getByRole("heading", { name: "403: admins only" }).waitFor();
    assert.deepEqual(await lowContrast(page), [], "403: contrast in dark");
    await shot(page, "forbidden-dark-360");
    assert.deepEqual(problems, []);
    await context.close();
  });
});

// The Requests page reads the log pipeline, which the other tests run without (it shares
// workerd's one thread locally): its own platform, with the tail worker on.
describe("the console's Requests page", { skip: found ? false : `${CHROMIUM} not found: run scripts/ensure-chromium.sh` }, () => {
  let p, browser, origin, admin;
  const marker = `/api/nothing-${Date.now().toString(36)}`;
  before(async () => {
    const { chromium } = await import("playwright-core");
    p = await platform({ logPipeline: true });
    origin = `http://127.0.0.1:${new URL(p.url).port}`;
    admin = { email: `console-logs-${Date.now()}@example.com` };
    const signed = await request(p.url, "api.do", "/api/auth/signup", { method: "POST", headers: { "content-type": "application/json" }, body: { email: admin.email, password: PASSWORD } });
    assert.equal(signed.status, 201, signed.text);
    const set = await request(p.url, "api.do", `/api/auth/users/${signed.json.user.id}/role`, {
      method: "PUT", headers: { "content-type": "application/json", ...ADMIN_KEY }, body: { role: "admin" },
    });
    assert.equal(set.status, 200, set.text);
    // 60 requests to a path no other test uses (404s), one 200 beside them.
    for (let i = 0; i < 60; i++) {
      const res = await request(p.url, "api.do", `${marker}/${i}`);
      assert.equal(res.status, 404);
    }
    assert.equal((await request(p.url, "api.do", "/health?live")).status, 200);
    // Wait for the tail worker's batch (2 s locally) to reach the bucket.
    let found = 0;
    for (let i = 0; i < 60 && found < 60; i++) {
      const res = await request(p.url, "api.do", `/api/logs?worker=api&message=request&path=${marker}/&limit=100`, { headers: ADMIN_KEY });
      assert.equal(res.status, 200, res.text);
      found = res.json.items.length;
      if (found < 60) await sleep(500);
    }
    assert.equal(found, 60, "the lines reached the log bucket");
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"] });
    mkdirSync(RESULTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await p?.dispose();
  });

  for (const scheme of ["light", "dark"]) {
    test(`filters by path, status and host, pages through the matches, shows bad filters (${scheme})`, async () => {
      const context = await browser.newContext(scheme === "dark" ? { colorScheme: "dark", viewport: { width: 360, height: 740 } } : {});
      const page = await context.newPage();
      const problems = [];
      page.on("console", (m) => { if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push(m.text()); });
      page.on("pageerror", (e) => problems.push(String(e)));
      await page.goto(`${origin}/console`);
      await page.getByLabel("Email", { exact: true }).fill(admin.email);
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await page.getByRole("link", { name: "Requests" }).click();
      await page.getByRole("heading", { name: "Requests" }).waitFor();

      await page.getByLabel("Path starts with").fill(`${marker}/`);
      await page.getByLabel("Status").fill("4xx");
      await page.getByLabel("Host").fill("API.do");
      await page.getByRole("button", { name: "Show requests" }).click();
      await page.locator("#req-rows tr", { hasText: `${marker}/49` }).waitFor();
      await page.getByRole("button", { name: "More requests" }).waitFor();
      assert.equal(await page.locator("#req-rows tr").count(), 50, "a page of 50");
      const first = await page.locator("#req-rows tr").first().evaluate((tr) => [...tr.cells].map((c) => c.textContent));
      assert.deepEqual(first.slice(1, 5), ["GET", "api.do", `${marker}/0`, "404"]);
      await page.getByRole("button", { name: "More requests" }).click();
      await page.locator("#req-rows tr").nth(59).waitFor();
      assert.equal(await page.locator("#req-rows tr").count(), 60);
      assert.equal(await page.getByRole("button", { name: "More requests" }).isHidden(), true);
      const paths = await page.locator("#req-rows tr td:nth-child(4)").allInnerTexts();
      assert.deepEqual(paths, Array.from({ length: 60 }, (_, i) => `${marker}/${i}`), "every match once, oldest first");
      if (scheme === "light") {
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= 1280, `${width}`);
      } else {
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= 360, `${width} px wide at 360`);
      }
      assert.deepEqual(await lowContrast(page), [], `Requests: contrast (${scheme})`);
      await page.screenshot({ path: path.join(RESULTS, `console-requests-${scheme === "dark" ? "dark-360" : "light"}.png`), fullPage: true });

      // A 200 status does not match the 404s; a bad status is shown on its field.
      await page.getByLabel("Status").fill("200");
      await page.getByRole("button", { name: "Show requests" }).click();
      await page.locator("#req-rows", { hasText: "No requests match" }).waitFor();
      await page.getByLabel("Status").fill("abc");
      await page.getByRole("button", { name: "Show requests" }).click();
      await page.locator("#req-errors", { hasText: "status" }).waitFor();
      assert.equal(await page.getByLabel("Status").getAttribute("aria-invalid"), "true");
      assert.deepEqual(problems, []);
      await context.close();
    });
  }
});
