// Drives the dashboard's resume buttons in headless Chromium
// (playwright-core): run by runtime/tests/dashboard.rs against a server
// with an admin token and the `hostile` projection halted on f1 (events
// a1, f1, a2, f2). "Skip event and resume" asks for a reason and passes
// over f1 (it then halts on f2); "Resume" runs f2 again. The token is
// asked for once, when the server first wants it. Exits non-zero with
// the reason on any failure.
//
// Environment: DASHBOARD_URL, CHROMIUM, PLAYWRIGHT_DIR, TOKEN, SCREENSHOT.
import assert from "node:assert/strict";
import { env, WAIT, openPage, finish } from "./browser.mjs";

const REASON = "bad upstream data, ticket 42";

// The 401 that makes the page ask for the token is expected.
const { browser, page, problems } = await openPage({
  expected: (status, text) => status === 401 || text.includes("401"),
});
const prompts = [];
try {
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

  await finish(page, problems);
  console.log(`dashboard resume ok; prompts: ${JSON.stringify(prompts)}`);
} finally {
  await browser.close();
}
