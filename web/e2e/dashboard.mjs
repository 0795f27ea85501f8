// Browser test of the dashboard, run by TestDashboardInBrowser against a
// running triad with real stores (profile 7 drifted in Redis; a trace
// with script payloads in its attributes; a webhook receiver that
// verifies signatures). Debian's Chromium, driven by playwright-core.
//
// Env: BASE_URL, ADMIN_TOKEN, VIEWER_TOKEN, TRACE_ID, HOOK_URL, HOOK_SECRET,
// ARTIFACTS (screenshot dir). Prints what it measured; exits non-zero on
// any failure.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";

const { BASE_URL, ADMIN_TOKEN, VIEWER_TOKEN, TRACE_ID, HOOK_URL, HOOK_SECRET, PLAN_ID, ARTIFACTS = "artifacts" } = process.env;
assert.ok(BASE_URL && ADMIN_TOKEN && VIEWER_TOKEN && TRACE_ID && HOOK_URL && HOOK_SECRET, "env missing");
mkdirSync(ARTIFACTS, { recursive: true });
const XSS = `<img src=x onerror=window.__xss=1><script>window.__xss=2</script>`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const shot = (page, name) => page.screenshot({ path: ARTIFACTS + "/" + name, fullPage: true });
const step = (name) => console.log("ok  " + name);

async function newPage() {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 860 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error" && !/401|403|Failed to load resource/.test(m.text())) errors.push(m.text()); });
  page.on("dialog", (d) => d.accept());
  return { page, errors };
}

async function login(page, token) {
  await page.waitForSelector("#login-token");
  await page.fill("#login-token", token);
  await page.press("#login-token", "Enter"); // keyboard, not a click
  await page.waitForSelector("#login", { state: "hidden" });
}

// ready waits until the page has attached its handlers and drawn its
// first view (common.js sets body[data-ready]).
const ready = (page) => page.waitForSelector("body[data-ready]", { timeout: 20000 });

async function noXSS(page, where) {
  assert.equal(await page.evaluate(() => window.__xss), undefined, "a script payload ran on " + where);
  assert.equal(await page.locator("main img[src=x]").count(), 0, "an injected element exists on " + where);
}

try {
  // --- login (admin), check a drifted profile, preview, repair ---
  const { page, errors } = await newPage();
  await page.goto(BASE_URL + "/ui/check.html");
  await shot(page, "login.png");
  await page.fill("#login-token", "triad_not-a-token");
  await page.press("#login-token", "Enter");
  await page.waitForFunction(() => document.getElementById("login-msg").textContent.includes("invalid"));
  await login(page, ADMIN_TOKEN);
  await ready(page);
  assert.match(await page.textContent("#who"), /bootstrap-admin · admin/);
  step("login (a bad token is refused with its reason)");

  await page.selectOption("#entity", "profile");
  await page.fill("#ids", "7");
  await page.click("#check button[type=submit]");
  await page.waitForSelector(".result.drift");
  const redisRow = page.locator(".result.drift tbody tr", { hasText: "redis" });
  assert.match(await redisRow.textContent(), /field_mismatch|stale/);
  await page.waitForSelector("#record");
  const rec = await page.textContent("#record");
  assert.ok(rec.includes(XSS), "the profile's script payload is shown as text: " + rec);
  await noXSS(page, "check");
  // Side by side: the redis column's stored digest is highlighted (the
  // drift is its label), postgres's copy names the trace of its write.
  await page.waitForSelector("#side-table");
  const sideHead = await page.locator("#side-table thead th").allTextContents();
  assert.deepEqual(sideHead, ["field", "postgres", "elasticsearch", "redis"]);
  const storedDigest = page.locator("#side-table tbody tr", { hasText: "stored digest" });
  assert.equal(await storedDigest.locator("td.differs").count(), 1, "one copy's stored digest differs");
  assert.equal(await storedDigest.locator("td").nth(2).getAttribute("class"), "differs", "and it is redis's");
  assert.ok((await page.textContent("#side-table")).includes(XSS), "field values shown as text in the side-by-side view");
  assert.equal(await page.locator("#side-table a.write-trace").count(), 1, "postgres's copy links to the trace of its write");
  await shot(page, "check-drift.png");
  await page.click("#preview");
  await page.waitForSelector("#plan-summary");
  assert.match(await page.textContent("#plan-summary"), /1 writes planned/);
  assert.match(await page.textContent("#plan"), /planned/);
  await page.click("#apply");
  await page.waitForSelector("#applied-summary");
  assert.match(await page.textContent("#applied-summary"), /1 repaired/);
  await page.waitForSelector(".result.ok");
  await shot(page, "check-repaired.png");
  step("check profile 7: redis drift shown, dry-run plan of 1 write, repaired, consistent after");

  // --- the repair log, filtered, and an entry's detail ---
  await page.click("header nav a:text('Repairs')");
  await ready(page);
  await page.waitForSelector("#log-table");
  await page.fill("#filters input[name=key]", "7");
  await page.selectOption("#filters select[name=outcome]", "repaired");
  await page.click("#filters button[type=submit]");
  await page.waitForFunction(() => /^1 entries/.test(document.getElementById("status").textContent));
  const rows = await page.locator("#log-table tbody tr").allTextContents();
  assert.equal(rows.length, 1);
  assert.match(rows[0], /profile.*7.*redis/);
  await page.locator("#log-table tbody button.link").first().click();
  await page.waitForSelector("#detail:not([hidden])");
  assert.match(await page.textContent("#detail"), /Before → after/);
  await shot(page, "repairs-filtered.png");
  step("repair log filtered by key and outcome: 1 entry, detail with before/after");

  // The filter is in the URL and in the export links; the export is the
  // filtered list.
  assert.match(page.url(), /key=7/);
  const csvHref = await page.getAttribute("#export-csv", "href");
  assert.match(csvHref, /format=csv/);
  assert.match(csvHref, /outcome=repaired/);
  const csv = await page.request.get(BASE_URL + csvHref);
  assert.equal(csv.status(), 200);
  const csvLines = (await csv.text()).trim().split("\n");
  assert.equal(csvLines.length, 2, "a header and the one entry: " + csvLines.join(" | "));
  assert.match(csvLines[1], /,7,redis,/);
  step("the filter is the URL; its CSV export holds the same 1 entry");

  // --- a reviewed plan from the Plans page: IDs, review, apply ---
  await page.click("header nav a:text('Plans')");
  await ready(page);
  await page.waitForSelector("#plans-table, #plans .empty");
  assert.equal(await page.inputValue("#plan-entity"), "profile", "the built-in entity is the default");
  await page.fill("#plan-ids", "7");
  await page.press("#plan-ids", "Enter");
  await page.waitForSelector("#status.error", { timeout: 10000 });
  assert.match(await page.textContent("#status"), /nothing to repair/, "profile 7 is consistent now: no plan is saved");
  step("plans page: a dry run that plans nothing saves no plan, and says so");
  await page.fill("#plan-ids", PLAN_ID);
  await page.press("#plan-ids", "Enter");
  await page.waitForSelector("#plan-counts, #status.error");
  assert.equal(await page.locator("#status.error").count(), 0, "plan of " + PLAN_ID + ": " + await page.textContent("#status"));
  assert.match(await page.textContent("#plan-counts"), /redis\s*field_mismatch\s*write\s*1/);
  assert.match(page.url(), /plans\.html\?id=\d+/, "the plan is a permalink");
  assert.equal(await page.locator("#plan-csv").count(), 1);
  await shot(page, "plan-review.png");
  await page.click("#apply-plan");
  await page.waitForSelector("#apply-summary");
  assert.match(await page.textContent("#apply-summary"), /1 repaired, 0 skipped/);
  assert.equal(await page.locator("#apply-plan").isHidden(), true, "a plan applies once");
  step("plans page: profile " + PLAN_ID + "'s drift planned, reviewed (counts, CSV), applied once: 1 repaired");

  // --- from the entry to the trace of the ingest write that produced the record ---
  await page.goBack();
  await page.waitForSelector("#detail:not([hidden]), #log-table");
  if (await page.locator("#detail[hidden]").count()) {
    await page.locator("#log-table tbody button.link").first().click();
    await page.waitForSelector("#detail:not([hidden])");
  }
  const toTrace = page.locator("#detail-trace");
  assert.equal(await toTrace.count(), 1, "the entry links to the trace of the write");
  const writeTrace = (await toTrace.getAttribute("href")).split("#")[1];
  await toTrace.click();
  await page.waitForFunction((id) => document.getElementById("flame")?.dataset.trace === id && Number(document.getElementById("flame").dataset.spans) >= 1,
    writeTrace, { timeout: 20000 });
  await page.waitForSelector("#written-table tr[data-key='7']");
  const written = await page.textContent("#written-table tr[data-key='7']");
  assert.match(written, /profile 7/);
  assert.match(written, /consistent/, "the record the trace wrote is consistent again after the repair: " + written);
  await shot(page, "write-trace.png");
  step("repair-log entry → the trace of the ingest batch that wrote profile 7 (" + writeTrace + "), listing the record and its consistency now");

  // --- a sweep: start (slowly), pause, resume, cancel ---
  await page.click("header nav a:text('Sweeps')");
  await ready(page);
  await page.waitForSelector("#start");
  await page.fill("#start input[name=rate]", "5");
  await page.click("#start button[type=submit]");
  await page.waitForSelector("section.sweep[data-state=running] button[data-action=pause]");
  let t0 = Date.now();
  await page.click("section.sweep[data-state=running] button[data-action=pause]");
  await page.waitForSelector("section.sweep[data-state=paused]", { timeout: 20000 });
  const pausedAfter = Date.now() - t0;
  await shot(page, "sweep-paused.png");
  t0 = Date.now();
  await page.click("section.sweep[data-state=paused] button[data-action=resume]");
  await page.waitForSelector("section.sweep[data-state=running]", { timeout: 20000 });
  const resumedAfter = Date.now() - t0;
  await page.click("section.sweep button[data-action=cancel]");
  await page.waitForFunction(() => /cancelled/.test(document.getElementById("history-table")?.textContent || ""), null, { timeout: 20000 });
  step(`sweep paused (shown ${pausedAfter} ms after the click), resumed (${resumedAfter} ms), cancelled`);

  // --- a trace: flame timeline, payloads as text ---
  await page.click("header nav a:text('Traces')");
  await ready(page);
  // The service dropdown lists the services that sent spans.
  await page.waitForFunction(() => [...document.querySelectorAll("#service option")].some((o) => o.value === "checkout-go"), null, { timeout: 20000 });
  await page.selectOption("#service", "checkout-go");
  await page.click("#search button[type=submit]");
  await page.waitForSelector("#found-table a:text('" + TRACE_ID + "')");
  await page.click("#found-table a:text('" + TRACE_ID + "')");
  await page.waitForFunction(() => document.getElementById("flame").dataset.spans === "3", null, { timeout: 20000 });
  await page.locator("#flame").scrollIntoViewIfNeeded();
  const box = await page.locator("#flame").boundingBox();
  await page.mouse.click(box.x + box.width * 0.5, box.y + 2 + 8);
  await page.waitForFunction(() => document.getElementById("detail").textContent.includes("comment"));
  assert.ok((await page.textContent("#detail")).includes(XSS), "span attributes shown as text");
  await noXSS(page, "trace");
  await shot(page, "trace.png");
  step("trace search by service found " + TRACE_ID + ": 3 spans on the flame timeline, attribute payload shown as text");

  // --- the trace page from the keyboard: the span table, zoom, pan ---
  await page.locator("#span-table-section summary").focus();
  await page.keyboard.press("Enter"); // opens the table
  const lastRow = page.locator("#spans-by tbody tr").last();
  const wantSpan = await lastRow.getAttribute("data-span");
  await lastRow.focus();
  await page.keyboard.press("Enter");
  await page.waitForFunction((id) => location.hash.endsWith("/" + id) || document.getElementById("detail").dataset.span === id
    || document.getElementById("detail").textContent.includes(id), wantSpan, { timeout: 5000 });
  await page.locator("#flame").focus();
  const before = await page.textContent("#window-label");
  await page.keyboard.press("Escape");
  await page.keyboard.press("+");
  await page.waitForFunction((b) => document.getElementById("window-label").textContent !== b, before, { timeout: 5000 });
  const win0 = await page.getAttribute("#minimap", "data-window");
  await page.locator("#minimap").focus();
  await page.keyboard.press("ArrowRight");
  await page.waitForFunction((w) => document.getElementById("minimap").dataset.window !== w, win0, { timeout: 5000 });
  step("trace page from the keyboard: a span-table row selected with Enter, + zoomed in, → panned the overview strip");

  // --- alerts: add the webhook, test-fire it ---
  await page.click("header nav a:text('Alerts')");
  await ready(page);
  await page.waitForSelector("#add-hook");
  await page.fill("#add-hook input[name=name]", "e2e-receiver");
  await page.fill("#add-hook input[name=url]", HOOK_URL);
  await page.fill("#add-hook input[name=secret]", HOOK_SECRET);
  await page.click("#add-hook button[type=submit]");
  await page.waitForSelector("#hooks-table");
  await page.fill("#add-hook input[name=name]", "metadata");
  await page.fill("#add-hook input[name=url]", "http://169.254.169.254/latest/meta-data/");
  await page.click("#add-hook button[type=submit]");
  await page.waitForFunction(() => /refused for webhooks/.test(document.getElementById("status").textContent));
  await page.click("#hooks-table button[data-test=e2e-receiver]");
  await page.waitForFunction(() => document.getElementById("status").dataset.testState === "delivered", null, { timeout: 20000 });
  await page.waitForFunction(() => /delivered/.test(document.getElementById("deliveries-table")?.textContent || ""), null, { timeout: 20000 });
  await shot(page, "alerts-test-fired.png");
  step("webhook added, a metadata URL refused, test-fire delivered");

  // --- a silence: preview, create (2 s), its expiry shown with a notice ---
  await page.fill("#silence-matchers", "alertname=StoreUnreachable store=~redis|etcd");
  await page.click("#silence-preview");
  await page.waitForSelector("#preview-summary");
  assert.match(await page.textContent("#preview-summary"), /Would mute 0 active alerts/);
  await page.fill("#silence-duration", "2s");
  await page.fill("#silence-comment", "e2e: redis maintenance");
  await page.press("#silence-comment", "Enter"); // keyboard, not a click
  await page.waitForSelector("#silences-table .silence-state.active");
  await shot(page, "silence-active.png");
  // The page polls every 5 s: the expiry shows within about 7 s.
  await page.waitForSelector("#silences-table .silence-state.expired", { timeout: 20000 });
  await page.waitForSelector("#silence-notice:not([hidden]) .expired-notice", { timeout: 20000 });
  assert.match(await page.textContent("#silence-notice"), /expired/);
  assert.match(await page.textContent("#silences-table"), /e2e: redis maintenance/);
  await shot(page, "silence-expired.png");
  step("silence previewed (mutes 0 active alerts), created from the keyboard, shown expired with a notice");

  // --- every list keeps its filter in the URL (a permalink) and exports it ---
  const exported = [];
  for (const [path, form, field, value, link, api] of [
    ["/ui/sweeps.html?state=cancelled", "#history-filter", "state", "cancelled", "#history-filter .export-csv", "/api/v1/sweeps\\?state=cancelled&format=csv"],
    ["/ui/alerts.html?deliveries.state=delivered", "#deliveries-filter", "state", "delivered", "#deliveries-filter .export-csv", "/api/v1/alerts/deliveries\\?state=delivered&format=csv"],
    ["/ui/tokens.html?actor=bootstrap-admin", "#audit-filter", "actor", "bootstrap-admin", "#audit-filter .export-csv", "/api/v1/audit\\?actor=bootstrap-admin&format=csv"],
    ["/ui/trace.html?s.service=checkout-go&s.since=24", "#search", "service", "checkout-go", "#search-csv", "/api/v1/traces\\?service=checkout-go.*format=csv"],
  ]) {
    await page.goto(BASE_URL + path);
    await page.waitForFunction(([f, n, v]) => document.querySelector(f)?.elements[n]?.value === v, [form, field, value], { timeout: 10000 });
    await page.waitForFunction(([l, re]) => new RegExp(re).test(document.querySelector(l)?.getAttribute("href") || ""), [link, api], { timeout: 10000 });
    const href = await page.getAttribute(link, "href");
    const res = await page.request.get(BASE_URL + href);
    assert.equal(res.status(), 200, href);
    assert.match(res.headers()["content-disposition"] || "", /attachment; filename="triad-.*\.csv"/);
    const lines = (await res.text()).trim().split("\n");
    assert.ok(lines.length >= 2, href + ": a header and at least one row: " + lines.join(" | "));
    for (const l of lines.slice(1)) assert.ok(l.includes(value), href + ": every row is in the filter: " + l);
    exported.push(path.split("?")[0].replace("/ui/", "") + " " + (lines.length - 1));
  }
  step("filters restored from the URL and exported as CSV: " + exported.join(", ") + " rows");

  // --- every page once more, for script payloads and errors ---
  for (const p of ["/", "/ui/repairs.html", "/ui/sweeps.html", "/ui/alerts.html", "/ui/tokens.html"]) {
    await page.goto(BASE_URL + p);
    await page.waitForLoadState("networkidle");
    await noXSS(page, p);
    if (p === "/") {
      // The overview shows Elasticsearch's own health (the single-node
      // stack's indices have no replicas: green).
      await page.waitForSelector('tr[data-dependency="elasticsearch"] td.health.green', { timeout: 20000 });
    }
  }
  assert.deepEqual(errors, [], "page errors");

  // --- polling pauses while the tab is hidden, and resumes when shown ---
  // (the overview polls /-/ready every second)
  await page.goto(BASE_URL + "/");
  await page.waitForSelector('tr[data-dependency="redis"]');
  let polls = 0;
  const count = (req) => { if (req.url().endsWith("/-/ready")) polls++; };
  page.on("request", count);
  const setVisibility = (state) => page.evaluate((s) => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => s });
    document.dispatchEvent(new Event("visibilitychange"));
  }, state);
  await setVisibility("hidden");
  await page.waitForTimeout(300); // a request already on its way
  polls = 0;
  await page.waitForTimeout(3000);
  assert.equal(polls, 0, "no polling while the tab is hidden");
  await setVisibility("visible");
  await page.waitForTimeout(1500);
  assert.ok(polls >= 1, "polling resumes when the tab is shown: " + polls);
  page.off("request", count);
  step("polling paused while hidden (0 requests in 3 s), resumed when shown (" + polls + " in 1.5 s)");

  // --- a viewer sees no repair controls and cannot mutate ---
  const v = await newPage();
  await v.page.goto(BASE_URL + "/ui/check.html?entity=profile&id=7");
  await login(v.page, VIEWER_TOKEN);
  await v.page.waitForSelector(".result");
  assert.equal(await v.page.isVisible("#repair"), false, "no repair controls for a viewer");
  assert.equal(await v.page.isVisible("header nav a:text('Tokens')"), false);
  const code = await v.page.evaluate(async () => (await fetch("/api/v1/repairs", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })).status);
  assert.equal(code, 403, "a cookie mutation without the CSRF token");
  step("viewer: no repair controls, no Tokens page, mutations refused");
  console.log(JSON.stringify({ pausedAfterMs: pausedAfter, resumedAfterMs: resumedAfter }));
} finally {
  await browser.close();
}
