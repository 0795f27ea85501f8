// Browser test of the trace view, run by TestCrossLanguageTrace with a
// running triad: renders the cross-language trace's flame timeline in
// Debian's Chromium, checks what it shows, hovers and selects the Scala
// span, and saves a screenshot. With BIG_TRACE_ID it also loads a large
// trace and reports how long the first render took, measured in the page.
//
// Env: BASE_URL, TOKEN, TRACE_ID, [BIG_TRACE_ID], [HTML_FILE] (an exported
// page), ARTIFACTS (screenshot dir).
// Prints one JSON line of measurements; exits non-zero on any failure.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";

const { BASE_URL, TOKEN, TRACE_ID, BIG_TRACE_ID, HUGE_TRACE_ID, WIDE_TRACE_ID, HTML_FILE, ARTIFACTS = "artifacts" } = process.env;
assert.ok(BASE_URL && TOKEN && TRACE_ID, "BASE_URL, TOKEN and TRACE_ID are required");
mkdirSync(ARTIFACTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const out = {};
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1600 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // The login check answers 401 before the login: the browser logs it.
  page.on("console", (m) => { if (m.type() === "error" && !/status of 401/.test(m.text())) errors.push(m.text()); });

  async function show(id) {
    await page.fill("#trace-id", id);
    await page.click("button[type=submit]");
    await page.waitForFunction((want) => {
      const c = document.getElementById("flame");
      return c.dataset.spans && location.hash === "#" + want;
    }, id, { timeout: 30000 });
    return page.$eval("#flame", (c) => ({ spans: Number(c.dataset.spans), fetchMs: Number(c.dataset.fetchMs), renderMs: Number(c.dataset.renderMs) }));
  }

  await page.goto(BASE_URL + "/ui/trace.html");
  // The dashboard's login: the token opens a session cookie.
  await page.fill("#login-token", TOKEN);
  await page.press("#login-token", "Enter");
  await page.waitForSelector("#login", { state: "hidden" });
  // On arrival: recent traces are listed, and the service dropdown lists
  // the services that sent spans (the sample services').
  await page.waitForSelector("#found-table tbody tr", { timeout: 30000 });
  // The found traces are plotted too, one dot each.
  assert.equal(await page.$$eval("#scatter circle", (cs) => cs.length), await page.$$eval("#found-table tbody tr", (rs) => rs.length));
  await page.waitForFunction(() => document.querySelectorAll("#service option").length > 1, null, { timeout: 30000 });
  const services = await page.$$eval("#service option", (os) => os.map((o) => o.value));
  for (const s of ["checkout-go", "quote-py", "price-scala"]) assert.ok(services.includes(s), "the service dropdown lists " + s + ": " + services);
  await page.selectOption("#service", "quote-py");
  await page.waitForFunction(() => [...document.querySelectorAll("#operation option")].some((o) => o.value === "GET /quote"), null, { timeout: 30000 });
  // The service graph: Go → Python → Scala, each service in its language.
  await page.waitForSelector('#graph g.edge[data-from="checkout-go"][data-to="quote-py"]', { timeout: 30000 });
  await page.waitForSelector('#graph g.edge[data-from="quote-py"][data-to="price-scala"]', { timeout: 30000 });
  const langs = await page.$$eval("#graph g.node", (ns) => Object.fromEntries(ns.map((n) => [n.dataset.service, n.dataset.language])));
  assert.equal(langs["checkout-go"], "go");
  assert.equal(langs["quote-py"], "python");
  assert.equal(langs["price-scala"], "scala");
  // Services that call each other: two edges, on different lines, with
  // labels apart.
  await page.waitForSelector('#graph g.edge[data-from="cycle-a"][data-to="cycle-b"]', { timeout: 30000 });
  const cycle = await page.evaluate(() => ["cycle-a", "cycle-b"].map((from) => {
    const g = document.querySelector(`#graph g.edge[data-from="${from}"][data-to="${from === "cycle-a" ? "cycle-b" : "cycle-a"}"]`);
    const b = g.querySelector("text").getBBox();
    return { d: g.querySelector("path").getAttribute("d"), box: { x: b.x, y: b.y, w: b.width, h: b.height } };
  }));
  assert.notEqual(cycle[0].d, cycle[1].d, "A → B and B → A are drawn apart");
  const boxes = await page.$$eval("#graph g.edge text", (ts) => ts.map((t) => { const b = t.getBBox(); return { x: b.x, y: b.y, w: b.width, h: b.height, text: t.textContent }; }));
  for (const [i, p] of boxes.entries()) for (const q of boxes.slice(i + 1)) {
    assert.ok(p.x + p.w <= q.x || q.x + q.w <= p.x || p.y + p.h <= q.y || q.y + q.h <= p.y, "edge labels do not overlap: " + JSON.stringify([p, q]));
  }
  out.graph = langs;
  await page.locator("#graph").screenshot({ path: ARTIFACTS + "/service-graph.png" });
  out.services = services.filter(Boolean);
  assert.deepEqual(out.services, [...out.services].sort(), "listed by name");
  const small = await show(TRACE_ID);
  assert.equal(small.spans, 8);
  out.small = small;
  const summary = await page.textContent("#summary");
  assert.match(summary, /8 spans · 3 services · languages: go, python, scala/);
  const legend = await page.textContent("#legend");
  for (const l of ["go", "python", "scala"]) assert.ok(legend.includes(l), "legend shows " + l);

  // Rows are 20px.
  const box = await page.locator("#flame").boundingBox();
  const at = (row, frac) => ({ x: box.x + box.width * frac, y: box.y + 2 + row * 20 + 8 });
  let p = at(0, 0.5);
  await page.mouse.move(p.x, p.y);
  await page.waitForSelector("#tooltip:not([hidden])");
  assert.match(await page.textContent("#tooltip"), /checkout-go · GET \/checkout/);
  await page.screenshot({ path: ARTIFACTS + "/trace-flame.png", fullPage: true });
  // Where the Scala server span is, from the same API the page reads.
  const where = await page.evaluate(async ([id, token]) => {
    const r = await fetch("/api/v1/traces/" + id, { headers: { Authorization: "Bearer " + token } });
    const v = (await r.json()).data;
    const sp = v.spans.find((s) => s.service === "price-scala" && s.name === "GET /price");
    return { depth: sp.depth, frac: (sp.offset_ns + sp.duration_ns / 2) / v.summary.duration_ns };
  }, [TRACE_ID, TOKEN]);
  p = at(where.depth, where.frac);
  await page.mouse.move(p.x, p.y);
  assert.match(await page.textContent("#tooltip"), /price-scala · GET \/price/);
  assert.match(await page.textContent("#tooltip"), /language: scala \(heuristic\)/);
  const whole = await page.$eval("#ruler", (r) => ({ ...r.dataset }));
  assert.match(await page.textContent("#window-label"), /^Whole trace: /);
  assert.ok(Number(whole.ticks) > 1, "the ruler has ticks");
  await page.mouse.click(p.x, p.y);
  // The click zoomed into the span: the ruler shows the narrower window.
  const zoomed = await page.$eval("#ruler", (r) => ({ ...r.dataset }));
  assert.ok(Number(zoomed.end) - Number(zoomed.start) < Number(whole.end) - Number(whole.start), "a zoom narrows the ruler's window");
  assert.ok(Number(zoomed.start) > Number(whole.start), "the window starts later");
  assert.match(await page.textContent("#window-label"), /^Zoomed: \+.* of .*% shown\)$/);
  out.ruler = { whole, zoomed };
  // Dragging the minimap's window pans: same width, another start.
  const mm = await page.locator("#minimap").boundingBox();
  await page.mouse.move(mm.x + mm.width * 0.5, mm.y + mm.height / 2);
  await page.mouse.down();
  await page.mouse.move(mm.x + mm.width * 0.1, mm.y + mm.height / 2, { steps: 5 });
  await page.mouse.up();
  const panned = await page.$eval("#ruler", (r) => ({ ...r.dataset }));
  assert.ok(Number(panned.start) < Number(zoomed.start), "the window moved earlier");
  assert.ok(Math.abs((Number(panned.end) - Number(panned.start)) - (Number(zoomed.end) - Number(zoomed.start))) <= 1, "and kept its width");
  const detail = await page.textContent("#detail");
  assert.match(detail, /price-scala · GET \/price/);
  assert.match(detail, /scala \(heuristic\)/);
  // The class path is long: folded, with a button that shows it all.
  const folded = page.locator("#detail td", { hasText: "trace/testdata/scalasvc" }).first();
  assert.doesNotMatch(await folded.textContent(), /scala-library/, "a long value is folded");
  await folded.locator("button.show-all").click();
  assert.match(await folded.textContent(), /scala-library/, "the resource's command line shows why it is Scala");
  // The span table: by self time first, then by duration.
  await page.click("#span-table-section > summary");
  const bySelf = await page.$$eval("#spans-by tbody tr", (rs) => rs.length);
  assert.equal(bySelf, 8);
  await page.click("#spans-by thead button >> text=Duration");
  assert.equal(await page.getAttribute("#spans-by", "data-by"), "duration");
  const durs = await page.$$eval("#spans-by tbody tr td:nth-child(2)", (tds) => tds.map((t) => t.textContent));
  assert.equal(durs[0], "GET /checkout", "the root lasts longest");
  // Compared with itself: every position in both, nothing only in one.
  await page.fill("#compare-id", TRACE_ID);
  await page.click("#compare-form button[type=submit]");
  await page.waitForSelector("#compare-table tbody tr", { timeout: 30000 });
  assert.match(await page.textContent("#compare"), /0 spans only in A, 0 only in B/);
  assert.equal(await page.$$eval("#compare-table tr.only-a, #compare-table tr.only-b", (rs) => rs.length), 0);
  // The download is the trace as OTLP/JSON.
  assert.match(await page.getAttribute("#download", "href"), /^\/api\/v1\/traces\/[0-9a-f]{32}\?format=otlp$/);
  await page.screenshot({ path: ARTIFACTS + "/trace-flame-selected.png", fullPage: true });
  // Zoomed into the Scala span: Escape zooms out again; c collapses it.
  await page.focus("#flame");
  await page.keyboard.press("Escape");
  const tall = await page.$eval("#flame", (c) => c.clientHeight);
  await page.keyboard.press("c");
  assert.ok((await page.$eval("#flame", (c) => c.clientHeight)) < tall, "collapsing the Scala span hid its child's row");
  await page.keyboard.press("c");
  assert.match(await page.textContent("#window-label"), /^Whole trace: /, "Escape zoomed out");

  if (BIG_TRACE_ID) {
    // Deep links follow the hash, and Back returns to the last trace.
    await page.evaluate((id) => { location.hash = "#" + id; }, BIG_TRACE_ID);
    await page.waitForFunction((n) => document.getElementById("flame").dataset.spans !== n, "8", { timeout: 30000 });
    assert.equal(await page.inputValue("#trace-id"), BIG_TRACE_ID);
    await page.goBack();
    await page.waitForFunction(() => document.getElementById("flame").dataset.spans === "8", null, { timeout: 30000 });
    assert.equal(await page.evaluate(() => location.hash), "#" + TRACE_ID);
    // A link's target, "#trace/span", selects that span.
    const scalaID = await page.evaluate(async ([id, token]) => {
      const r = await fetch("/api/v1/traces/" + id, { headers: { Authorization: "Bearer " + token } });
      return (await r.json()).data.spans.find((s) => s.name === "price lookup").span_id;
    }, [TRACE_ID, TOKEN]);
    await page.evaluate(([id, span]) => { location.hash = "#" + id + "/" + span; }, [TRACE_ID, scalaID]);
    await page.waitForFunction(() => /price lookup/.test(document.getElementById("detail").textContent), null, { timeout: 30000 });
  }

  if (BIG_TRACE_ID) {
    await page.goto(BASE_URL + "/ui/trace.html");
    const t0 = Date.now();
    const big = await show(BIG_TRACE_ID);
    out.big = { ...big, wallMs: Date.now() - t0 };
    await page.screenshot({ path: ARTIFACTS + "/trace-flame-big.png" });
    // Hovering stays responsive: time 50 mouse moves across the canvas.
    const bb = await page.locator("#flame").boundingBox();
    const h0 = Date.now();
    for (let i = 0; i < 50; i++) await page.mouse.move(bb.x + (bb.width * i) / 50, bb.y + 30);
    out.big.hover50Ms = Date.now() - h0;
  }
  if (HUGE_TRACE_ID) {
    // 50k spans: draw, then hover, zoom and select, each timed from the
    // test (Playwright's round trips included).
    await page.goto(BASE_URL + "/ui/trace.html");
    const t0 = Date.now();
    const huge = await show(HUGE_TRACE_ID);
    out.huge = { ...huge, wallMs: Date.now() - t0 };
    const bb = await page.locator("#flame").boundingBox();
    const h0 = Date.now();
    for (let i = 0; i < 50; i++) await page.mouse.move(bb.x + (bb.width * i) / 50, bb.y + 30);
    out.huge.hover50Ms = Date.now() - h0;
    const before = await page.$eval("#ruler", (r) => r.dataset.end);
    const z0 = Date.now();
    await page.mouse.click(bb.x + bb.width * 0.5, bb.y + 10); // the root: zoomed into, with a margin
    await page.waitForFunction((b) => document.getElementById("ruler").dataset.end !== b, before, { timeout: 30000 });
    out.huge.zoomSelectMs = Date.now() - z0;
    const s0 = Date.now();
    await page.focus("#flame");
    await page.keyboard.press("ArrowDown");
    await page.waitForFunction(() => document.getElementById("detail").textContent.length > 0, null, { timeout: 30000 });
    out.huge.keySelectMs = Date.now() - s0;
    const e0 = Date.now();
    await page.keyboard.press("Escape");
    out.huge.zoomOutMs = Date.now() - e0;
    await page.screenshot({ path: ARTIFACTS + "/trace-flame-50k.png" });
    // A span past the detail budget comes lean: selecting it (here by its
    // deep link) reads its details.
    const lean = await page.evaluate(async ([id, token]) => {
      const r = await fetch("/api/v1/traces/" + id, { headers: { Authorization: "Bearer " + token } });
      return (await r.json()).data.spans.find((s) => s.lean).span_id;
    }, [HUGE_TRACE_ID, TOKEN]);
    await page.evaluate(([id, span]) => { location.hash = "#" + id + "/" + span; }, [HUGE_TRACE_ID, lean]);
    await page.waitForFunction(() => /Attributes/.test(document.getElementById("detail").textContent), null, { timeout: 30000 });
    assert.match(await page.textContent("#detail"), /item/, "the lean span's attributes were read");
  }
  if (WIDE_TRACE_ID) {
    // One span with 3001 attributes and 1000 events: its details are
    // virtualised, so the DOM holds a screenful of rows, and scrolling
    // brings the last ones in.
    await page.evaluate((id) => { location.hash = "#" + id + "/0707070707070707"; }, WIDE_TRACE_ID);
    const w0 = Date.now();
    await page.waitForFunction(() => /Attributes \(3001\)/.test(document.getElementById("detail").textContent), null, { timeout: 30000 });
    out.wide = { selectMs: Date.now() - w0 };
    const lists = await page.$$eval("#detail .vlist", (ls) => ls.map((l) => Number(l.dataset.rows)));
    assert.deepEqual(lists, [3001, 1000], "attributes and events are virtualised lists");
    out.wide.rowsInDom = await page.$$eval("#detail .vrow", (rs) => rs.length);
    assert.ok(out.wide.rowsInDom < 100, "a screenful of rows in the DOM, not 4001: " + out.wide.rowsInDom);
    assert.ok(!(await page.textContent("#detail")).includes("attr.2999"), "rows out of view are not drawn");
    const [attrs, events] = await page.$$("#detail .vlist");
    await attrs.evaluate((l) => { l.scrollTop = l.scrollHeight; });
    await page.waitForFunction(() => [...document.querySelectorAll("#detail .vkey")].some((k) => k.textContent === "attr.long"), null, { timeout: 10000 });
    assert.ok((await page.textContent("#detail")).includes("attr.2999"), "scrolled to the end: the last attributes are drawn");
    // The long value is folded; "show all" shows it whole below the list.
    const longRow = page.locator("#detail .vrow", { hasText: "attr.long" });
    await longRow.locator("button.show-all").click();
    assert.equal(await page.textContent("#detail .vfull:not([hidden])"), "attr.long = " + "x".repeat(2000));
    await events.evaluate((l) => { l.scrollTop = l.scrollHeight; });
    await page.waitForFunction(() => [...document.querySelectorAll("#detail .vkey")].some((k) => / event 999$/.test(k.textContent)), null, { timeout: 10000 });
    out.wide.rowsInDomAfterScroll = await page.$$eval("#detail .vrow", (rs) => rs.length);
    assert.ok(out.wide.rowsInDomAfterScroll < 100);
    await page.screenshot({ path: ARTIFACTS + "/trace-wide-span.png" });
  }
  // A span another writer garbled (attributes a string, a null event, a
  // link that is a number): named, and the rest shown.
  await page.evaluate(() => { location.hash = "#c7c1e00102030405060708090a0b0c0d/c701010101010101"; });
  await page.waitForFunction(() => /Could not be read/.test(document.getElementById("detail").textContent), null, { timeout: 30000 });
  const garbled = await page.textContent("#detail");
  assert.match(garbled, /stored attributes are not a JSON object: "not an object"/);
  assert.match(garbled, /\(not an event\)/);
  assert.match(garbled, /kept/);
  assert.equal(errors.length, 0, "no page errors: " + errors.join("; "));
  if (HTML_FILE) {
    // `triad trace --format html`: the same view from a file, no server.
    await page.goto("file://" + HTML_FILE);
    await page.waitForFunction(() => document.getElementById("flame").dataset.spans === "8");
    assert.match(await page.textContent("#summary"), /languages: go, python, scala/);
    await page.screenshot({ path: ARTIFACTS + "/trace-export.png", fullPage: true });
  }
  assert.deepEqual(errors, [], "no errors in the page");
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
