// The waitlist page in a real browser: Debian's headless Chromium (scripts/ensure-chromium.sh
// installs it) driven by playwright-core. Chromium's host resolver maps *.example to the local
// platform, so the page is loaded as http://coolstartup.example:{port}/ with that Host header,
// exactly as a visitor would see it. It signs up with JS (the live region answers) and without
// JS (the form posts and a confirmation page comes back), checks that the page's CSP blocks
// nothing of its own, and saves screenshots under test-results/ (gitignored).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { ROOT } from "../scripts/platform.mjs";
import { platform } from "./helpers.mjs";

const CHROMIUM = "/usr/bin/chromium";
const RESULTS = path.join(ROOT, "test-results");
const found = existsSync(CHROMIUM);

describe("waitlist in a real browser", { skip: found ? false : `${CHROMIUM} not found: run scripts/ensure-chromium.sh (Debian's chromium package)` }, () => {
  let p;
  let browser;
  let origin;
  before(async () => {
    const { chromium } = await import("playwright-core");
    p = await platform();
    const port = new URL(p.url).port;
    origin = `http://coolstartup.example:${port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // Any *.example host reaches the local platform, which routes on the Host header.
        "--host-resolver-rules=MAP *.example 127.0.0.1",
      ],
    });
    mkdirSync(RESULTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await p?.dispose();
  });

  /** A page that records console errors (CSP violations land there) and uncaught errors. */
  async function open(options = {}) {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    const problems = [];
    page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
    page.on("pageerror", (e) => problems.push(String(e)));
    return { context, page, problems };
  }

  const stored = async (email) => {
    const db = await p.mf.getD1Database("WAITLIST_DB", "api");
    return (await db.prepare("SELECT domain, email FROM waitlist_signups WHERE email = ?").bind(email).all()).results;
  };

  test("the page loads, the form signs up, the live region confirms", async () => {
    const { context, page, problems } = await open({ viewport: { width: 1280, height: 800 } });
    try {
      const response = await page.goto(`${origin}/`);
      assert.equal(response.status(), 200);
      assert.equal(await page.title(), "coolstartup.example — join the waitlist");
      assert.equal(await page.locator("h1").textContent(), "coolstartup.example is coming soon");
      // Reachable by its label, as assistive technology finds it.
      const email = page.getByLabel("Email address");
      await email.fill("ada@example.com");
      await page.getByRole("button", { name: "Join the waitlist" }).click();
      const status = page.getByRole("status");
      await status.filter({ hasText: "You're on the list" }).waitFor({ timeout: 10_000 });
      assert.equal(await status.getAttribute("data-state"), "ok");
      assert.equal(await email.inputValue(), "", "the form is reset after joining");
      await page.screenshot({ path: path.join(RESULTS, "waitlist.png"), fullPage: true });

      // Joining again says so, in place.
      await email.fill("ADA@example.com");
      await page.getByRole("button", { name: "Join the waitlist" }).click();
      await status.filter({ hasText: "already on the list" }).waitFor({ timeout: 10_000 });

      // The style and script ran under the CSP (their hashes match): nothing was blocked.
      assert.deepEqual(problems, []);
      const accent = await page.locator("button").evaluate((b) => getComputedStyle(b).backgroundColor);
      assert.notEqual(accent, "rgba(0, 0, 0, 0)", "the stylesheet applied");
      assert.deepEqual(await stored("ada@example.com"), [{ domain: "coolstartup.example", email: "ada@example.com" }]);
    } finally {
      await context.close();
    }
  });

  test("a refused address is explained in the live region", async () => {
    const { context, page } = await open();
    try {
      await page.goto(`${origin}/`);
      // Passes the browser's own type=email check, fails the server's (numeric TLD).
      await page.getByLabel("Email address").fill("someone@example.123");
      await page.getByRole("button", { name: "Join the waitlist" }).click();
      const status = page.getByRole("status");
      await status.filter({ hasText: "invalid email address" }).waitFor({ timeout: 10_000 });
      assert.equal(await status.getAttribute("data-state"), "error");
      assert.deepEqual(await stored("someone@example.123"), []);
    } finally {
      await context.close();
    }
  });

  test("without JavaScript the form posts and a confirmation page comes back", async () => {
    const { context, page, problems } = await open({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
    try {
      await page.goto(`${origin}/`);
      await page.screenshot({ path: path.join(RESULTS, "waitlist-mobile.png"), fullPage: true });
      await page.getByLabel("Email address").fill("grace@example.com");
      await Promise.all([page.waitForURL(`${origin}/waitlist`), page.getByRole("button", { name: "Join the waitlist" }).click()]);
      assert.equal(await page.locator("h1").textContent(), "You're on the list");
      await page.screenshot({ path: path.join(RESULTS, "waitlist-nojs-joined.png"), fullPage: true });
      assert.deepEqual(problems, []);
      assert.deepEqual(await stored("grace@example.com"), [{ domain: "coolstartup.example", email: "grace@example.com" }]);
    } finally {
      await context.close();
    }
  });

  test("the dark colour scheme renders", async () => {
    const { context, page, problems } = await open({ colorScheme: "dark", viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(`${origin}/`);
      const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(background, "rgb(13, 15, 30)"); // --bg in the dark palette
      await page.screenshot({ path: path.join(RESULTS, "waitlist-dark.png"), fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });
});
