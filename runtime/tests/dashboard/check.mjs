// Drives the dashboard in headless Chromium (playwright-core): run by
// runtime/tests/dashboard.rs against a server with the example projections
// and their sample events. Exits non-zero with the reason on any failure.
//
// Environment: DASHBOARD_URL, CHROMIUM (browser binary), PLAYWRIGHT_DIR (a
// folder with node_modules/playwright-core), EXPECTED_ORDERS (path of
// orders.expected.json), SCREENSHOT (PNG to write).
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import { env, WAIT, openPage, finish } from "./browser.mjs";

const url = env("DASHBOARD_URL");
const expected = JSON.parse(readFileSync(env("EXPECTED_ORDERS"), "utf8"));

const { browser, page, problems } = await openPage();
try {
  const response = await page.goto(url);
  assert.equal(response.status(), 200, "GET / answers 200");
  assert.equal(await page.title(), "Projector");

  // Both example projections listed, running, caught up.
  for (const name of ["order-totals", "account-balances"]) {
    const row = page.locator(`tr[data-projection="${name}"]`);
    await row.locator('[data-state="running"]').waitFor(WAIT);
    await row.locator('td[data-lag="0"]').waitFor(WAIT);
  }
  // order-totals is partitioned (3 partitions by default): its units.
  const units = page.locator('tr[data-units="order-totals"]');
  await units.locator('[data-unit="2"][data-state="running"]').waitFor(WAIT);
  assert.match(await units.innerText(), /^\s*3 units: 0: running/);

  // A second poll gives a rate and a chart with two points.
  await page.locator('tr[data-projection="order-totals"] td[data-rate]:not([data-rate=""])').waitFor(WAIT);
  assert.equal(await page.locator("svg.spark").count() >= 4, true, "a lag and a rate chart per projection");
  await page.locator("#topics tbody tr").first().waitFor(WAIT);
  assert.match(await page.locator("#topics").innerText(), /orders/);

  // Key lookup: the stored value and the offsets it reflects.
  await page.selectOption("#state-projection", "order-totals");
  await page.fill("#lookup-key", "customer/alice");
  await page.click("#lookup-form button");
  const lookup = page.locator('#state-result[data-kind="lookup"] pre');
  await lookup.waitFor(WAIT);
  assert.deepEqual(JSON.parse(await lookup.innerText()), expected["customer/alice"], "customer/alice");
  assert.match(await page.locator("#state-result").innerText(), /offsets \{"orders"/);

  // Prefix scan: every customer.
  await page.fill("#scan-prefix", "customer/");
  await page.click("#scan-form button");
  await page.locator('#state-result[data-kind="scan"] table').waitFor(WAIT);
  const customers = Object.keys(expected).filter((k) => k.startsWith("customer/"));
  const keys = await page.locator('#state-result[data-kind="scan"] tbody td:first-child code').allInnerTexts();
  assert.deepEqual(keys, customers, "scan customer/");

  // Custom query with arguments: the query list comes from the descriptor.
  await page.selectOption("#query-name", "top-customers");
  await page.fill("#query-args", '{"n": 2}');
  await page.click("#query-form button");
  const answer = page.locator('#state-result[data-kind="query"] pre');
  await answer.waitFor(WAIT);
  const top = customers
    .map((k) => ({ customer: k.slice("customer/".length), total_cents: expected[k].total_cents }))
    .sort((a, b) => b.total_cents - a.total_cents || a.customer.localeCompare(b.customer))
    .slice(0, 2);
  assert.deepEqual(JSON.parse(await answer.innerText()), top, "top-customers n=2");

  // Failures: none kept for the sample events.
  await page.selectOption("#failures-projection", "order-totals");
  await page.click("#failures-form button");
  await page.locator("#failures p").first().waitFor(WAIT);
  assert.match(await page.locator("#failures").innerText(), /error policy halt/);

  // Back to the lookup for the picture.
  await page.click("#lookup-form button");
  await page.locator('#state-result[data-kind="lookup"] pre').waitFor(WAIT);
  // Outside a group there is no group view.
  assert.equal(await page.locator("#group").isHidden(), true, "no group section alone");

  // In a group (the cluster view served by a stand-in here; the route's
  // own answers are tested against real instances in runtime/tests/group.rs):
  // members, and each unit's active instance and standbys.
  await page.route("**/v1/projections", async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    await route.fulfill({ response, json: { ...body, group: "orders" } });
  });
  await page.route("**/v1/cluster", (route) => route.fulfill({ json: {
    group: "orders", me: "http://a:7878", slots: 4, held: [0, 2], rebalances: 3,
    members: [
      { url: "http://a:7878", slots: [0, 2], alive: true, seen_ms_ago: 120, me: true },
      { url: "http://b:7878", slots: [1, 3], alive: false, seen_ms_ago: 12000, me: false },
    ],
    projections: [{ name: "order-totals", version: "abc", partitioned: true, standby_replicas: 1, units: [
      { unit: 0, slot: 0, active: "http://a:7878", standbys: ["http://b:7878"], status: "running", lag: 0 },
      { unit: 1, slot: 1, active: null, standbys: ["http://a:7878"], status: "standby", lag: 5 },
    ] }],
  } }));
  await page.locator("#group:not([hidden])").waitFor(WAIT);
  assert.match(await page.locator("#group-name").innerText(), /orders: 4 slots, this instance http:\/\/a:7878/);
  const members = await page.locator("#members tbody").innerText();
  assert.match(members, /http:\/\/a:7878 \(this one\)\s+alive\s+0, 2/);
  assert.match(members, /http:\/\/b:7878\s+not seen for 12 s/);
  const placements = page.locator('#placements tr[data-projection="order-totals"]');
  assert.equal(await placements.count(), 2);
  assert.match(await placements.nth(0).innerText(), /^order-totals\s+0\s+0\s+http:\/\/a:7878\s+http:\/\/b:7878\s+running\s+0$/);
  assert.match(await placements.nth(1).innerText(), /no owner\s+http:\/\/a:7878\s+standby\s+5$/);
  await page.unroute("**/v1/projections");
  await page.unroute("**/v1/cluster");
  await finish(page, problems);
  console.log(`dashboard ok; screenshot ${env("SCREENSHOT")}`);
} finally {
  await browser.close();
}
