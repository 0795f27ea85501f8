// Overview: store health (polls /-/ready), a consistency gauge per entity
// (the last finished sweep), drift and repairs per hour from the repair
// log (an inline SVG bar chart), and the last sweeps. Values are set with
// textContent only, so nothing from the server is interpreted as HTML.
"use strict";
triad.start("Overview", async () => {
  const { el, api, table, fmtTime } = triad;
  const tbody = document.querySelector("#deps tbody"), overall = document.getElementById("overall"), updated = document.getElementById("updated");
  const SVG = "http://www.w3.org/2000/svg";

  function cell(tr, text, cls) {
    tr.append(el("td", cls ? { className: cls } : {}, text));
  }

  function renderReady(rep) {
    overall.textContent = rep.status.replace("_", " ");
    overall.className = "badge " + rep.status;
    tbody.replaceChildren();
    for (const name of Object.keys(rep.dependencies).sort()) {
      const d = rep.dependencies[name];
      const tr = el("tr", { className: d.status, dataset: { dependency: name } });
      cell(tr, name);
      cell(tr, d.status, "state");
      // A store's own health where it reports one (Elasticsearch): yellow
      // serves but is degraded (a replica unassigned).
      cell(tr, d.health || "—", "health " + (d.health || ""));
      cell(tr, d.version || "—");
      cell(tr, d.status === "up" ? d.latency_ms.toFixed(1) + " ms" : "—");
      cell(tr, d.since ? new Date(d.since).toLocaleTimeString() : "—");
      cell(tr, d.error || d.health_note || "", "detail");
      tbody.append(tr);
    }
    updated.textContent = "Updated " + new Date().toLocaleTimeString();
  }

  async function tick() {
    try {
      const res = await fetch("/-/ready", { cache: "no-store" });
      renderReady(await res.json());
    } catch (e) {
      overall.textContent = "triad unreachable";
      overall.className = "badge unreachable";
    }
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }

  // chart draws repair-log entries per bucket (a minute over the last
  // hour, or an hour over the last day), stacked by outcome.
  function chart(buckets, step, n) {
    const outcomes = ["repaired", "noop", "planned", "conflict", "failed", "skipped"];
    const colors = { repaired: "#1b7f3b", noop: "#9aa0a6", planned: "#1a73e8", conflict: "#e37400", failed: "#b3261e", skipped: "#5f6368" };
    const end = Math.floor(Date.now() / step) * step;
    const starts = [];
    for (let i = n - 1; i >= 0; i--) starts.push(end - i * step);
    const per = new Map(starts.map((h) => [h, {}]));
    for (const b of buckets) {
      const h = per.get(Math.floor(new Date(b.start).getTime() / step) * step);
      if (h) h[b.outcome] = (h[b.outcome] || 0) + b.count;
    }
    const max = Math.max(1, ...[...per.values()].map((h) => Object.values(h).reduce((a, x) => a + x, 0)));
    const W = 720, H = 160, bw = W / n;
    const label = (t) => new Date(t).toLocaleTimeString([], step < 3600e3 ? { hour: "2-digit", minute: "2-digit" } : { hour: "2-digit" });
    const s = svg("svg", { viewBox: "0 0 " + W + " " + (H + 20), width: "100%", role: "img", "aria-label": "repair log entries per " + (step < 3600e3 ? "minute" : "hour") + ", by outcome" });
    starts.forEach((h, i) => {
      let y = H;
      for (const o of outcomes) {
        const c = per.get(h)[o] || 0;
        if (!c) continue;
        const hgt = (c / max) * H;
        y -= hgt;
        const r = svg("rect", { x: i * bw + 1, y, width: Math.max(1, bw - 2), height: hgt, fill: colors[o], class: "bar " + o });
        r.append(svg("title", {}));
        r.firstChild.textContent = label(h) + ": " + c + " " + o;
        s.append(r);
      }
      if (i % Math.ceil(n / 8) === 0) {
        const t = svg("text", { x: i * bw + 2, y: H + 15, "font-size": 11, fill: "#5f6368" });
        t.textContent = label(h);
        s.append(t);
      }
    });
    const legend = el("p", { className: "legend" }, outcomes.map((o) => el("span", { className: "key" }, el("i", { style: "background:" + colors[o] }), o)));
    const total = buckets.reduce((a, b) => a + b.count, 0);
    const span = step < 3600e3 ? "the last hour" : "the last 24 h";
    return el("div", { dataset: { entries: String(total) } }, s, legend, el("p", { className: total ? "hint" : "empty" }, total
      ? total + " entries in " + span
      : "No drift found or repaired in " + span + ". Sweeps (Sweeps page, or repair.schedules) and checks with a repair add entries here."));
  }

  // polaris shows, per derived store, the share of this replica's writes
  // the store held within 1 s and within 10 s of their Postgres commit.
  async function polaris() {
    const box = document.getElementById("polaris");
    const rows = await api("GET", "/api/v1/stats/consistent-after");
    const within = (r, sec) => (r.within.find((w) => w.seconds === sec) || { share: 0 }).share;
    const pct = (x) => (100 * x).toFixed(x === 1 ? 0 : 3) + "%";
    const order = { redis: 0, elasticsearch: 1 }; // the serving stores first, then the archive
    const live = rows.filter((r) => r.writes > 0).sort((a, b) => (order[a.store] ?? 9) - (order[b.store] ?? 9));
    box.replaceChildren(live.length ? el("div", { className: "figures" }, live.map((r) => el("div", { className: "figure", dataset: { store: r.store, writes: String(r.writes) } },
      el("strong", {}, pct(within(r, 1))), " of writes in " + r.store + " within 1 s",
      el("span", { className: "hint" }, " · " + pct(within(r, 10)) + " within 10 s · " + r.writes + " writes since this triad started")))) :
      el("p", { className: "empty" }, "No writes through this triad yet: the figure counts the profiles its pipeline writes (POST /api/v1/profiles/batch)."));
  }

  async function sweeps() {
    const perMinute = document.getElementById("rates-minute").checked;
    const [list, stats] = await Promise.all([api("GET", "/api/v1/sweeps?limit=20"),
      api("GET", perMinute ? "/api/v1/repairs/stats?minutes=60" : "/api/v1/repairs/stats?hours=24")]);
    const last = new Map();
    // The gauge counts content-true sweeps only: the label-only quick mode
    // cannot see a change that left triad's labels alone.
    for (const s of list) if (s.state === "done" && s.content_true && !last.has(s.entity)) last.set(s.entity, s);
    document.getElementById("gauges").replaceChildren(...(last.size ? [...last.values()].map((s) => {
      const ratio = s.records ? 1 - s.findings / s.records : 1;
      return el("div", { className: "gauge", dataset: { entity: s.entity, ratio: ratio.toFixed(6) } },
        el("meter", { min: 0, max: 1, low: 0.999, high: 0.9999, optimum: 1, value: ratio, "aria-label": s.entity + " consistency" }),
        el("strong", {}, " " + s.entity + " " + (100 * ratio).toFixed(3) + "%"),
        el("span", { className: "hint" }, " content-true sweep " + s.id + " · " + s.records + " records · " + s.findings + " drifted · " + fmtTime(s.finished_at)));
    }) : [el("p", { className: "empty" }, "No finished sweep yet. Start one on the Sweeps page, or schedule them (repair.schedules): the gauge shows the share of records the last one found consistent.")]));
    document.getElementById("rates").replaceChildren(perMinute ? chart(stats, 60e3, 60) : chart(stats, 3600e3, 24));
    await polaris();
    document.getElementById("sweeps").replaceChildren(table([
      ["ID", (s) => el("a", { href: "/ui/sweeps.html#" + s.id }, String(s.id))], ["Entity", (s) => s.entity], ["Mode", (s) => s.mode + (s.content_true ? "" : " (labels only)")], ["State", (s) => s.state],
      ["Started", (s) => fmtTime(s.created_at)], ["Records", (s) => String(s.records)], ["Findings", (s) => String(s.findings)],
      ["Repaired", (s) => String(s.repaired)],
    ], list.slice(0, 10)));
  }

  for (const id of ["rates-minute", "rates-hour"]) document.getElementById(id).addEventListener("change", () => sweeps().catch(() => {}));
  // The newest alerts (fired, resolved) and traces, each a link to its page.
  async function recent() {
    const [al, tr] = await Promise.all([api("GET", "/api/v1/alerts"), api("GET", "/api/v1/traces?limit=5")]);
    const alerts = al.alerts.slice(0, 5);
    const state = (x) => (x.resolved_at ? "resolved" : x.fired_at ? "firing" : "pending");
    document.getElementById("recent-alerts").replaceChildren(alerts.length ? table([
      ["Rule", (x) => el("a", { href: "/ui/alerts.html?alerts.rule=" + encodeURIComponent(x.rule) }, x.rule)],
      ["State", (x) => el("span", { className: "alert-state " + state(x) }, state(x) + (x.silenced_by && x.silenced_by.length ? " (silenced)" : ""))],
      ["Summary", (x) => (x.annotations || {}).summary || ""], ["Fired", (x) => fmtTime(x.fired_at)], ["Resolved", (x) => fmtTime(x.resolved_at)],
    ], alerts, { id: "recent-alerts-table" }) : el("p", { className: "empty" }, "No alert has fired. The rules (Alerts page) watch drift rates, failing repairs and sweeps, and the stores."));
    document.getElementById("recent-traces").replaceChildren(tr.traces.length ? table([
      ["Trace", (f) => el("a", { href: "/ui/trace.html#" + f.trace_id }, f.trace_id.slice(0, 16) + "…")],
      ["Root", (f) => f.root_service + " · " + f.root_name], ["Services", (f) => f.services.join(", ")],
      ["Spans", (f) => String(f.spans)], ["Started", (f) => new Date(f.start_unix_nano / 1e6).toLocaleTimeString()],
    ], tr.traces, { id: "recent-traces-table" }) : el("p", { className: "empty" }, "No spans yet. Services send OTLP to triad (HTTP :4318, gRPC :4317); make demo runs three that do."));
  }

  tick();
  triad.every(tick, 1000);
  recent().catch(() => {});
  triad.every(() => recent().catch(() => {}), 10000);
  await sweeps().catch((e) => triad.status(updated, e.message, true));
  triad.every(sweeps, 10000);
});
