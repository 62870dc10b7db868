// Projector dashboard: polls the HTTP API and renders status, lag and rate
// charts, shadow-build progress, failures and a state browser. Vanilla JS,
// no build step; every value from the server is inserted as text, never as
// markup. Fields a server may not have (e.g. `stalled`) are optional.
"use strict";

const POLL_MS = 1500;
const HISTORY = 80; // points per chart: two minutes at POLL_MS
const charts = new Map(); // projection name -> { lag: [], rate: [], last }
let projections = [];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);
const path = (s) => encodeURIComponent(s);

async function api(url, init) {
  const response = await fetch(url, init);
  const text = await response.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { ok: response.ok, status: response.status, body, headers: response.headers };
}

function errorText(reply) {
  const e = reply.body && reply.body.error;
  return e ? `${reply.status} ${e.code}: ${e.message}` : `${reply.status}: ${String(reply.body)}`;
}

function fmt(n, digits = 0) {
  if (n === undefined || n === null || Number.isNaN(n)) return "–";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits });
}

function spark(values, label) {
  const w = 120, h = 24, ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const max = Math.max(1, ...values);
  const step = w / (HISTORY - 1);
  const offset = w - (values.length - 1) * step;
  const points = values.map((v, i) => `${(offset + i * step).toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  const title = document.createElementNS(ns, "title");
  title.textContent = `${label}: max ${fmt(max, 1)}`;
  svg.append(title);
  return svg;
}

function record(p, now) {
  let c = charts.get(p.name);
  if (!c) charts.set(p.name, (c = { lag: [], rate: [], last: null }));
  let rate = null;
  if (c.last && c.last.hash === p.hash && now > c.last.t) {
    rate = Math.max(0, (p.events_applied - c.last.applied) / ((now - c.last.t) / 1000));
  }
  c.last = { t: now, applied: p.events_applied, hash: p.hash };
  c.lag.push(p.lag || 0);
  if (rate !== null) c.rate.push(rate);
  for (const series of [c.lag, c.rate]) while (series.length > HISTORY) series.shift();
  return { chart: c, rate };
}

function statusBadges(p) {
  const state = (p.status && p.status.state) || "unknown";
  const badges = [el("span", { class: `badge ${state}`, "data-state": state }, state)];
  // Stall detection, where the server reports it.
  if (p.stalled === true || (p.status && p.status.stalled === true)) {
    badges.push(" ", el("span", { class: "badge stalled" }, "stalled"));
  }
  if (p.building) badges.push(" ", el("span", { class: "badge building" }, "building"));
  const health = p.source && p.source.health;
  if (health && health.state && health.state !== "ok") {
    badges.push(" ", el("span", { class: "badge down", title: health.error || "" }, `source ${health.state}`));
  }
  return badges;
}

function failureCell(p) {
  const f = p.failures || {};
  const total = (f.dead_letters || 0) + (f.parked || 0) + (f.skipped || 0);
  if (!total) return el("td", { class: "muted" }, "none");
  const parts = [];
  if (f.dead_letters) parts.push(`${f.dead_letters} dead`);
  if (f.parked) parts.push(`${f.parked} parked`);
  if (f.skipped) parts.push(`${f.skipped} skipped`);
  return el("td", {}, el("a", {
    href: "#failures",
    class: "error",
    onclick: () => {
      $("failures-projection").value = p.name;
      showFailures();
    },
  }, parts.join(", ")));
}

function detailRows(p) {
  const rows = [];
  const sub = (...content) => el("tr", { class: "sub" }, el("td"), el("td", { colspan: 9 }, ...content));
  const b = p.building;
  if (b) {
    const g = b.progress || {};
    const done = g.events_done || 0, total = g.events_total || 0;
    rows.push(sub(
      `building ${b.version} (${(b.hash || "").slice(0, 12)}) in the shadow: `,
      el("progress", { max: Math.max(total, 1), value: Math.min(done, Math.max(total, 1)) }),
      ` ${fmt(done)} / ${fmt(total)} events, ${fmt(g.events_per_second)} events/s`,
      g.eta_seconds != null ? `, ETA ${fmt(g.eta_seconds, 1)} s` : "",
      b.status && b.status.state === "failed" ? el("span", { class: "error" }, ` failed: ${b.status.message}`) : "",
    ));
  }
  if (Array.isArray(p.units) && p.units.length) {
    // A partitioned projection: partition u of every topic is unit u.
    const sub_units = p.units.map((u) => el("span", { class: "unit", "data-unit": u.unit, "data-state": u.status && u.status.state },
      `${u.unit}: ${u.status && u.status.state} ${fmt(u.events_applied)} events, lag ${fmt(u.lag)}`));
    rows.push(el("tr", { class: "sub", "data-units": p.name }, el("td"), el("td", { colspan: 9 },
      `${p.units.length} units: `, ...sub_units.flatMap((s, i) => (i ? ["; ", s] : [s])))));
  }
  if (p.last_error) rows.push(sub(el("span", { class: "error" }, `error: ${p.last_error}`)));
  if (p.status && p.status.state === "failed") {
    const s = p.status;
    const at = s.offset != null ? ` ${s.source}/${s.partition}@${s.offset}` : "";
    rows.push(sub(
      el("button", { type: "button", class: "resume", title: `run the failed event${at} again`, onclick: () => resume(p.name, false) }, "Resume"),
      " ",
      s.offset != null
        ? el("button", { type: "button", class: "resume-skip", title: `record${at} as skipped and go on`, onclick: () => resume(p.name, true) }, "Skip event and resume")
        : "",
    ));
  }
  if (p.last_failure) {
    const f = p.last_failure;
    rows.push(sub(el("span", { class: "muted" },
      `last ${f.kind}: ${f.source}/${f.partition}@${f.offset}: ${f.error}`)));
  }
  for (const w of (p.source && p.source.warnings) || []) rows.push(sub(el("span", { class: "error" }, w)));
  return rows;
}

function renderProjections(list, now) {
  const body = $("projections").tBodies[0];
  const rows = [];
  for (const p of list.projections || []) {
    const { chart, rate } = record(p, now);
    rows.push(el("tr", { "data-projection": p.name },
      el("td", {}, el("strong", {}, p.name)),
      el("td", { title: p.hash }, `${p.version} `, el("span", { class: "muted" }, (p.hash || "").slice(0, 8))),
      el("td", {}, statusBadges(p)),
      el("td", { class: "num" }, fmt(p.events_applied)),
      el("td", { class: "num" }, fmt(p.keys)),
      el("td", { class: "num", "data-lag": p.lag }, fmt(p.lag)),
      el("td", {}, spark(chart.lag, `lag of ${p.name}`)),
      el("td", { class: "num", "data-rate": rate === null ? "" : rate.toFixed(1) }, rate === null ? "–" : fmt(rate, 1)),
      el("td", {}, spark(chart.rate, `events/s of ${p.name}`)),
      failureCell(p),
    ), ...detailRows(p));
  }
  body.replaceChildren(...rows);
  $("no-projections").hidden = rows.length > 0;
  const rejected = list.rejected || [];
  $("rejected").replaceChildren(...(rejected.length ? [
    el("h3", {}, "Rejected modules"),
    el("ul", {}, rejected.map((r) => el("li", {}, el("code", {}, r.file), ": ", el("span", { class: "error" }, r.error)))),
  ] : []));
}

function renderTopics(reply) {
  const rows = ((reply && reply.topics) || []).map((t) => el("tr", {},
    el("td", {}, t.name),
    el("td", { class: "num" }, fmt(t.partitions)),
    el("td", { class: "num" }, fmt((t.heads || []).reduce((a, b) => a + b, 0))),
    el("td", { class: "muted" }, (t.heads || []).join(" · ")),
  ));
  $("topics").tBodies[0].replaceChildren(...rows);
}

// In a group (GET /v1/cluster answers): the members, and where each unit
// of each projection is active and kept as standby. Hidden otherwise.
function renderGroup(reply) {
  const group = reply && reply.ok ? reply.body : null;
  $("group").hidden = !group;
  if (!group) return;
  $("group-name").textContent =
    `${group.group}: ${fmt(group.slots)} slots, this instance ${group.me}, ${fmt(group.rebalances)} rebalances`;
  const members = (group.members || []).map((m) => el("tr", {},
    el("td", {}, m.url, m.me ? " (this one)" : ""),
    el("td", {}, el("span", { class: `badge ${m.alive ? "ok" : "down"}` },
      m.alive ? "alive" : `not seen for ${fmt(m.seen_ms_ago / 1000, 1)} s`)),
    el("td", {}, (m.slots || []).join(", ") || "none"),
  ));
  $("members").tBodies[0].replaceChildren(...members);
  const rows = [];
  for (const p of group.projections || []) {
    for (const u of p.units || []) {
      rows.push(el("tr", { "data-projection": p.name },
        el("td", {}, p.name),
        el("td", {}, u.unit === null || u.unit === undefined ? "whole" : String(u.unit)),
        el("td", { class: "num" }, fmt(u.slot)),
        el("td", {}, u.active || el("span", { class: "badge down" }, "no owner")),
        el("td", { class: "muted" }, (u.standbys || []).join(", ") || "none"),
        el("td", {}, el("span", { class: `badge ${u.status}`, "data-state": u.status }, u.status)),
        el("td", { class: "num" }, fmt(u.lag)),
      ));
    }
  }
  $("placements").tBodies[0].replaceChildren(...rows);
}

function syncSelect(select, values) {
  const current = [...select.options].map((o) => o.value);
  if (current.length === values.length && current.every((v, i) => v === values[i])) return;
  const keep = select.value;
  select.replaceChildren(...values.map((v) => el("option", { value: v }, v)));
  if (values.includes(keep)) select.value = keep;
  select.dispatchEvent(new Event("change"));
}

function syncSelectors() {
  const names = projections.map((p) => p.name);
  syncSelect($("failures-projection"), names);
  syncSelect($("state-projection"), names);
  syncQueries();
}

function syncQueries() {
  const p = projections.find((x) => x.name === $("state-projection").value);
  syncSelect($("query-name"), (p && p.queries) || []);
}

async function poll() {
  try {
    const [list, topics] = await Promise.all([api("/v1/projections"), api("/v1/topics")]);
    if (!list.ok) throw new Error(errorText(list));
    // Only an instance in a group has a group view.
    const group = list.body.group ? await api("/v1/cluster") : null;
    const now = Date.now();
    projections = list.body.projections || [];
    renderProjections(list.body, now);
    if (topics.ok) renderTopics(topics.body);
    renderGroup(group);
    syncSelectors();
    $("health").textContent = "connected";
    $("health").className = "badge ok";
    $("updated").textContent = `updated ${new Date(now).toLocaleTimeString()}`;
  } catch (e) {
    $("health").textContent = "unreachable";
    $("health").className = "badge down";
    $("updated").textContent = String(e.message || e);
  }
  setTimeout(poll, POLL_MS);
}

// Admin actions: the token is asked for when the server wants one (401),
// and kept for this tab only.

async function admin(url, body) {
  for (;;) {
    const token = sessionStorage.getItem("projector-token");
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const reply = await api(url, { method: "POST", headers, body: JSON.stringify(body) });
    if (reply.status !== 401) return reply;
    sessionStorage.removeItem("projector-token");
    const entered = window.prompt(token ? "Wrong admin token; enter it again" : "Admin token (api_token)");
    if (!entered) return reply;
    sessionStorage.setItem("projector-token", entered.trim());
  }
}

async function resume(name, skip) {
  let reason = null;
  if (skip) {
    reason = window.prompt(`Why skip the event ${name} failed on? (kept with the skipped record)`);
    if (reason === null) return;
  }
  const out = $("action-result");
  const reply = await admin(`/v1/projections/${path(name)}/resume`, skip ? { skip, reason } : { skip });
  out.className = reply.ok ? "muted" : "error";
  out.dataset.status = reply.status;
  if (!reply.ok) {
    out.textContent = errorText(reply);
    return;
  }
  const s = reply.body.skipped;
  out.textContent = s
    ? `${name} resumed: ${s.source}/${s.partition}@${s.offset} recorded as skipped (${s.reason})`
    : `${name} resumed: running the failed event again`;
}

// Errors and dead letters.

async function showFailures(event) {
  if (event) event.preventDefault();
  const name = $("failures-projection").value;
  if (!name) return;
  const kind = $("failures-kind").value;
  const reply = await api(`/v1/projections/${path(name)}/dead-letters?kind=${path(kind)}&limit=50`);
  const out = $("failures");
  if (!reply.ok) {
    out.replaceChildren(el("p", { class: "error" }, errorText(reply)));
    return;
  }
  const r = reply.body, c = r.counts || {};
  const records = r.records || [];
  out.replaceChildren(
    el("p", {}, `${r.projection}: error policy ${r.error_policy}; ${fmt(c.dead_letters)} dead letters, ${fmt(c.parked)} parked, ${fmt(c.skipped)} skipped`),
    records.length
      ? el("table", {},
        el("thead", {}, el("tr", {}, ["id", "kind", "event", "key", "error", "failed at", "attempts", "payload", "reason"].map((h) => el("th", {}, h)))),
        el("tbody", {}, records.map((f) => el("tr", {},
          el("td", {}, f.id),
          el("td", {}, f.kind),
          el("td", {}, `${f.source}/${f.partition}@${f.offset}`),
          el("td", {}, f.key ?? ""),
          el("td", { class: "error" }, f.error),
          el("td", {}, new Date(f.failed_at * 1000).toLocaleString()),
          el("td", { class: "num" }, f.attempts),
          el("td", {}, el("code", {}, JSON.stringify(f.payload))),
          el("td", { class: "reason" }, f.reason ?? ""),
        ))))
      : el("p", { class: "muted" }, "No failed events kept."),
  );
}

// State browser.

function versionQuery(sep) {
  const v = $("state-version").value.trim();
  return v ? `${sep}version=${path(v)}` : "";
}

function showResult(kind, reply, offsets, content) {
  const out = $("state-result");
  out.dataset.kind = kind;
  out.dataset.status = reply.status;
  const head = el("p", { class: reply.ok ? "muted" : "error" },
    reply.ok ? `${reply.status} OK` : errorText(reply),
    offsets ? ` · offsets ${JSON.stringify(offsets)}` : "");
  out.replaceChildren(head, ...(content || []));
}

const pretty = (value) => el("pre", {}, JSON.stringify(value, null, 2));

async function lookup(event) {
  event.preventDefault();
  const name = $("state-projection").value;
  const key = $("lookup-key").value;
  const reply = await api(`/v1/projections/${path(name)}/state/${path(key)}${versionQuery("?")}`);
  let offsets = null;
  try {
    offsets = JSON.parse(reply.headers.get("projector-offsets"));
  } catch {
    offsets = reply.body && reply.body.error && reply.body.error.offsets;
  }
  showResult("lookup", reply, offsets, reply.ok ? [pretty(reply.body)] : []);
}

async function scan(event, startAfter) {
  if (event) event.preventDefault();
  const name = $("state-projection").value;
  const prefix = $("scan-prefix").value;
  const limit = $("scan-limit").value || "50";
  let url = `/v1/projections/${path(name)}/state?prefix=${path(prefix)}&limit=${path(limit)}`;
  if (startAfter) url += `&start_after=${path(startAfter)}`;
  const reply = await api(url + versionQuery("&"));
  if (!reply.ok) return showResult("scan", reply, null);
  const r = reply.body;
  const items = r.items || [];
  showResult("scan", reply, r.offsets, [
    el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "key"), el("th", {}, "value"))),
      el("tbody", {}, items.map((i) => el("tr", {},
        el("td", {}, el("code", {}, i.key), i.key_hex ? el("span", { class: "muted" }, ` (hex ${i.key_hex})`) : ""),
        el("td", {}, el("code", {}, JSON.stringify(i.value))))))),
    items.length ? "" : el("p", { class: "muted" }, "No keys with this prefix."),
    r.next_start_after != null
      ? el("button", { type: "button", onclick: () => scan(null, r.next_start_after) }, "Next page")
      : "",
  ]);
}

async function runQuery(event) {
  event.preventDefault();
  const name = $("state-projection").value;
  const query = $("query-name").value;
  if (!query) return;
  const reply = await api(`/v1/projections/${path(name)}/query/${path(query)}${versionQuery("?")}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: $("query-args").value,
  });
  showResult("query", reply, reply.ok ? reply.body.offsets : null, reply.ok ? [pretty(reply.body.result)] : []);
}

document.addEventListener("DOMContentLoaded", () => {
  $("failures-form").addEventListener("submit", showFailures);
  $("lookup-form").addEventListener("submit", lookup);
  $("scan-form").addEventListener("submit", (e) => scan(e));
  $("query-form").addEventListener("submit", runQuery);
  $("state-projection").addEventListener("change", syncQueries);
  poll();
});
