// The operators' console in a real browser (Debian's headless Chromium through playwright-core,
// as the waitlist's browser test): sign in as an admin, add a runtime route sending a new
// custom domain to a user worker and reach it, delete it and get the waitlist, promote a user,
// revoke a key, export a waitlist's CSV; a non-admin gets the 403 page; no console errors and
// no CSP violations; usable at 360 px. Screenshots of every page, light and dark, go to
// test-results/ (gitignored).
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
    await page.getByLabel("Email").fill(who.email);
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

  test("an admin adds a route, reaches the domain, deletes it, promotes a user, revokes a key, exports CSV", async () => {
    // A key of the admin's own, to revoke from the console.
    const login = await auth("/login", { email: users.admin.email, password: PASSWORD });
    const key = await auth("/keys", { name: "console-test-key" }, { authorization: `Bearer ${login.json.token}` });
    assert.equal(key.status, 201, key.text);

    const { context, page, problems } = await open();
    await signIn(page, users.admin);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.locator("#health-rows tr").first().waitFor();
    assert.match(await page.locator("#health-rows").innerText(), /db/);
    // The last hour's charts, from the Analytics Engine stand-in: inline SVG, labelled.
    await page.locator("#chart-latency svg").waitFor();
    assert.equal(await page.locator("svg.chart").count(), 3);
    assert.match(await page.locator("#chart-requests svg").getAttribute("aria-label"), /Requests per minute over the last hour: \d+ in all/);
    assert.match(await page.locator("#metrics-source").innerText(), /requests, \d+ errors in the last hour \(source: local-stand-in\)/);
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

    // Users and keys: promote a user, revoke the admin's key.
    await page.getByRole("link", { name: "Users and keys" }).click();
    await page.getByLabel("User id").fill(users.promoted.id);
    await page.getByLabel("Role").selectOption("admin");
    await page.getByRole("button", { name: "Change role" }).click();
    await page.getByText(`${users.promoted.id} is now admin.`).waitFor();
    const promoted = await auth("/login", { email: users.promoted.email, password: PASSWORD });
    assert.equal(promoted.json.user.role, "admin");
    await page.getByRole("button", { name: "Revoke key console-test-key" }).click();
    await page.getByText("Revoked console-test-key.").waitFor();
    const withKey = await request(p.url, "api.do", "/api/auth/me", { headers: { "x-api-key": key.json.key } });
    assert.equal(withKey.status, 401, "the revoked key no longer works");
    await shot(page, "users-light");

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

  test("a non-admin gets the 403 page", async () => {
    const { context, page, problems } = await open();
    await signIn(page, users.plain);
    await page.getByRole("heading", { name: "403: admins only" }).waitFor();
    assert.equal(await page.locator("#nav").isHidden(), true);
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
      await shot(page, `${name}-dark-360`);
    }
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, "rgb(18, 18, 18)");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await shot(page, "signin-dark-360");
    assert.deepEqual(problems, []);
    await context.close();
  });
});
