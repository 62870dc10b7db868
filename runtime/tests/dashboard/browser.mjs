// What both dashboard checks share: their environment, a headless Chromium
// page (playwright-core) that records every console error, page error,
// failed request and HTTP error as a problem, and the final verdict.
import { createRequire } from "node:module";
import assert from "node:assert/strict";

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

export const WAIT = { timeout: 60_000 }; // an upper bound only: every wait is for a condition

// Opens a page; `expected(status, text)` names the HTTP errors a check
// provokes on purpose (e.g. the 401 that makes the page ask for a token).
export async function openPage({ expected = () => false } = {}) {
  const require = createRequire(`${env("PLAYWRIGHT_DIR")}/`);
  const { chromium } = require("playwright-core");
  const problems = [];
  const browser = await chromium.launch({
    executablePath: env("CHROMIUM"),
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(WAIT.timeout);
  page.on("console", (m) => {
    if (m.type() === "error" && !expected(null, m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400 && !expected(r.status(), "")) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  return { browser, page, problems };
}

// Takes the screenshot and fails on any problem seen on the way.
export async function finish(page, problems) {
  await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });
  assert.deepEqual(problems, [], "no console errors, page errors or failed requests");
}
