// Drives the dashboard's resume buttons in headless Chromium
// (playwright-core): run by runtime/tests/dashboard.rs against a server
// with an admin token and the `hostile` projection halted on f1 (events
// a1, f1, a2, f2). "Skip event and resume" asks for a reason and passes
// over f1 (it then halts on f2); "Resume" runs f2 again. The token is
// asked for once, when the server first wants it. Exits non-zero with
// the reason on any failure.
//
// Environment: DASHBOARD_URL, CHROMIUM, PLAYWRIGHT_DIR, TOKEN, SCREENSHOT.
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const require = createRequire(`${env("PLAYWRIGHT_DIR")}/`);
const { chromium } = require("playwright-core");
const WAIT = { timeout: 60_000 }; // an upper bound only: every wait is for a condition
const REASON = "bad upstream data, ticket 42";

const problems = [];
const prompts = [];
const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(WAIT.timeout);
  page.on("console", (m) => {
    // The 401 that makes the page ask for the token is expected.
    if (m.type() === "error" && !m.text().includes("401")) problems.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400 && r.status() !== 401) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on("dialog", async (dialog) => {
    prompts.push(dialog.message());
    if (/token/i.test(dialog.message())) await dialog.accept(env("TOKEN"));
    else if (/skip/i.test(dialog.message())) await dialog.accept(REASON);
    else await dialog.dismiss();
  });

  await page.goto(env("DASHBOARD_URL"));
  const row = page.locator('tr[data-projection="hostile"]');
  await row.locator('[data-state="failed"]').waitFor(WAIT);

  // Skip: a reason and the token are asked for; the projection passes
  // over f1, applies a2 and halts on f2.
  await page.click("button.resume-skip");
  await page.locator("#action-result").filter({ hasText: "recorded as skipped" }).waitFor(WAIT);
  assert.match(await page.locator("#action-result").innerText(), new RegExp(`orders/\\d+@1 recorded as skipped \\(${REASON}\\)`));
  assert.equal(prompts.filter((p) => /token/i.test(p)).length, 1, `token asked once: ${prompts}`);
  await page.locator("#projections").filter({ hasText: "refusing f2" }).waitFor(WAIT);
  await row.locator('[data-state="failed"]').waitFor(WAIT);

  // Resume: the token is kept; the event runs again (and fails again).
  await page.click("button.resume");
  await page.locator("#action-result").filter({ hasText: "running the failed event again" }).waitFor(WAIT);
  assert.equal(await page.locator("#action-result").getAttribute("data-status"), "200");
  assert.equal(prompts.filter((p) => /token/i.test(p)).length, 1, `token not asked again: ${prompts}`);

  // The skipped record with the operator's reason, in the failures list.
  await page.selectOption("#failures-projection", "hostile");
  await page.selectOption("#failures-kind", "skipped");
  await page.click("#failures-form button");
  await page.locator("#failures td.reason").first().waitFor(WAIT);
  assert.equal(await page.locator("#failures td.reason").first().innerText(), REASON);
  assert.match(await page.locator("#failures").innerText(), /refusing f1/);

  await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });
  assert.deepEqual(problems, [], "no console errors, page errors or failed requests");
  console.log(`dashboard resume ok; prompts: ${JSON.stringify(prompts)}`);
} finally {
  await browser.close();
}
