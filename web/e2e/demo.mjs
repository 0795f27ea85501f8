// The demo's check (make demo-check, in make test): after `make demo` has
// run by itself for five minutes, read through the API what it shows,
// then screenshot the Overview and the receiver's page in Chromium.
//
// Env: BASE_URL (triad), TOKEN_FILE (admin token), RECEIVER_URL,
// REPORT (the buggy service's report), ARTIFACTS. Prints what it found;
// exits non-zero when the story is incomplete.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";

const { BASE_URL = "http://127.0.0.1:8383", TOKEN_FILE = "../../.triad/admin-token", RECEIVER_URL = "http://127.0.0.1:8384",
  REPORT = "../../.triad/buggysvc.json", ARTIFACTS = "artifacts" } = process.env;
mkdirSync(ARTIFACTS, { recursive: true });
const token = readFileSync(TOKEN_FILE, "utf8").trim();
const say = (s) => console.log("ok  " + s);

async function api(path) {
  const res = await fetch(BASE_URL + path, { headers: { Authorization: "Bearer " + token } });
  const body = await res.json();
  assert.equal(res.status, 200, path + ": " + JSON.stringify(body));
  return body.data;
}

// 1. Sweeps with findings, by the schedule.
const sweeps = await api("/api/v1/sweeps?limit=50");
const found = sweeps.filter((s) => s.state === "done" && s.findings > 0);
assert.ok(found.length >= 1, "a finished sweep with findings: " + JSON.stringify(sweeps.map((s) => [s.id, s.state, s.findings])));
say(`${sweeps.length} sweeps (${sweeps.filter((s) => s.trigger === "schedule").length} by the schedule), ${found.length} with findings: ` +
  found.map((s) => `#${s.id} ${s.findings}/${s.records} found, ${s.repaired} repaired`).join("; "));

// 2. A repair of each kind of drift the buggy service made.
const report = JSON.parse(readFileSync(REPORT, "utf8"));
const repaired = new Map();
for (let after = ""; ;) {
  const page = await api("/api/v1/repairs?outcome=repaired&limit=1000" + (after ? "&after=" + after : ""));
  for (const e of page.entries) repaired.set(e.store + "/" + e.class, (repaired.get(e.store + "/" + e.class) || 0) + 1);
  if (!page.next) break;
  after = page.next;
}
const made = Object.entries(report.drifts).filter(([, n]) => n > 0);
assert.ok(made.length >= 6, "the buggy service made every kind of drift: " + JSON.stringify(report.drifts));
for (const [kind, n] of made) {
  const want = report.expect[kind];
  assert.ok(repaired.get(want) > 0, `a repair of ${kind} (${want}, made ${n} times); repaired: ${JSON.stringify([...repaired])}`);
}
say("repairs of every kind the buggy service made: " + made.map(([k, n]) => `${k} ×${n} → ${report.expect[k]} repaired ×${repaired.get(report.expect[k])}`).join(", "));

// 3. An alert fired and resolved, at the local receiver, signed.
const got = await (await fetch(RECEIVER_URL + "/received.json")).json();
const drift = got.filter((n) => n.alerts.some((a) => a.labels.alertname === "DriftRateHigh"));
const fired = drift.filter((n) => n.event === "firing"), resolved = drift.filter((n) => n.event === "resolved");
assert.ok(fired.length >= 1 && resolved.length >= 1, "DriftRateHigh fired and resolved at the receiver: " + JSON.stringify(got.map((n) => [n.at, n.event])));
assert.ok(drift.every((n) => n.verified), "every notification's signature verified");
const firstFire = fired[fired.length - 1], firstResolve = resolved[resolved.length - 1]; // newest first
assert.ok(firstFire.alerts[0].annotations.runbook_url, "the rule's runbook is in the payload");
say(`DriftRateHigh fired at ${firstFire.at} and resolved at ${firstResolve.at} (receiver: ${got.length} notifications, all verified)`);

// 4. Traces of all three languages.
const traces = (await api("/api/v1/traces?service=checkout-go&limit=5")).traces;
assert.ok(traces.length >= 1, "cross-language traces");
const view = await api("/api/v1/traces/" + traces[0].trace_id + "?detail=false");
const langs = new Set(view.spans.map((s) => s.language));
for (const l of ["go", "python", "scala"]) assert.ok(langs.has(l), "a " + l + " span in trace " + traces[0].trace_id + ": " + [...langs]);
say(`trace ${traces[0].trace_id}: ${view.spans.length} spans in ${[...langs].sort().join(", ")}`);

// 5. The Overview with data on it, and the receiver's page.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1366, height: 900 } })).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(BASE_URL + "/");
  await page.fill("#login-token", token);
  await page.press("#login-token", "Enter");
  await page.waitForSelector(".gauge[data-entity=profile]", { timeout: 20000 });
  await page.waitForFunction(() => Number(document.querySelector("#rates [data-entries]")?.dataset.entries) > 0, null, { timeout: 20000 });
  await page.waitForSelector("#polaris .figure", { timeout: 20000 });
  await page.waitForSelector("#recent-alerts-table", { timeout: 20000 });
  await page.waitForSelector("#recent-traces-table", { timeout: 20000 });
  const alertStates = await page.locator("#recent-alerts-table .alert-state").allTextContents();
  assert.ok(alertStates.some((x) => x.startsWith("resolved")), "the Overview shows the resolved alert: " + alertStates);
  const gauge = await page.getAttribute(".gauge[data-entity=profile]", "data-ratio");
  const entries = await page.getAttribute("#rates [data-entries]", "data-entries");
  const figure = (await page.textContent("#polaris .figure")).trim();
  await page.screenshot({ path: ARTIFACTS + "/demo-overview.png", fullPage: true });
  assert.deepEqual(errors, [], "page errors");
  say(`Overview: profile consistency ${gauge}, ${entries} repair-log entries in the last hour, Polaris: ${figure}, alerts ${alertStates.join("/")}`);
  await page.goto(RECEIVER_URL + "/");
  await page.screenshot({ path: ARTIFACTS + "/demo-receiver.png", fullPage: true });
  say("screenshots: " + ARTIFACTS + "/demo-overview.png, demo-receiver.png");
} finally {
  await browser.close();
}
