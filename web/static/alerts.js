// Alerts: current alert instances, the rules, webhook endpoints (admins
// add, test-fire and remove them) and the delivery log.
"use strict";
triad.start("Alerts", async () => {
  const { el, api, table, fmtTime, status, can } = triad;
  const st = document.getElementById("status");
  const labels = (m) => Object.entries(m || {}).filter(([k]) => k !== "alertname").map(([k, v]) => k + "=" + v).join(" ");

  async function refresh() {
    try {
      const a = await api("GET", "/api/v1/alerts");
      document.getElementById("alerts").replaceChildren(a.alerts.length ? table([
        ["Rule", (x) => x.rule], ["State", (x) => el("span", { className: "alert-state " + (x.resolved_at ? "resolved" : x.fired_at ? "firing" : "pending") },
          x.resolved_at ? "resolved" : x.fired_at ? "firing" : "pending")],
        ["Labels", (x) => labels(x.labels)], ["Summary", (x) => (x.annotations || {}).summary || ""], ["Value", (x) => String(x.value)],
        ["Since", (x) => fmtTime(x.fired_at || x.active_since)], ["Resolved", (x) => fmtTime(x.resolved_at)],
      ], a.alerts, { id: "alerts-table" }) : el("p", { className: "hint" }, "No alerts."));
      document.getElementById("rules").replaceChildren(table([
        ["Name", (r) => r.name], ["Kind", (r) => r.kind], ["Threshold", (r) => String(r.threshold)],
        ["Window", (r) => r.window || "—"], ["For", (r) => r.for || "—"], ["Severity", (r) => r.severity],
      ], a.rules));
      const ds = await api("GET", "/api/v1/alerts/deliveries?limit=100");
      document.getElementById("deliveries").replaceChildren(ds.length ? table([
        ["ID", (d) => String(d.id)], ["Webhook", (d) => d.webhook], ["Group", (d) => d.group_key], ["Status", (d) => (d.test ? "test" : d.status)],
        ["State", (d) => el("span", { className: "delivery " + d.state }, d.state)], ["Attempts", (d) => String(d.attempts)],
        ["Answer", (d) => (d.last_status ? String(d.last_status) : "")], ["Error", (d) => d.last_error || ""],
        ["Queued", (d) => fmtTime(d.created_at)], ["Delivered", (d) => fmtTime(d.delivered_at)],
      ], ds, { id: "deliveries-table" }) : el("p", { className: "hint" }, "Nothing sent yet."));
      if (can("admin")) {
        const hooks = await api("GET", "/api/v1/webhooks");
        document.getElementById("hooks").replaceChildren(hooks.length ? table([
          ["Name", (w) => w.name], ["URL", (w) => w.url], ["Format", (w) => w.format], ["Rules", (w) => (w.rules.length ? w.rules.join(", ") : "all")],
          ["Resolved", (w) => (w.send_resolved ? "sent" : "not sent")], ["Added", (w) => fmtTime(w.created_at) + " by " + w.created_by],
          ["", (w) => el("span", {},
            el("button", { type: "button", dataset: { test: w.name }, onclick: () => testFire(w) }, "Test-fire"), " ",
            el("button", { type: "button", onclick: () => remove(w) }, "Remove"))],
        ], hooks, { id: "hooks-table" }) : el("p", { className: "hint" }, "No endpoints."));
      }
    } catch (e) {
      status(st, e.message, true);
    }
  }

  async function testFire(w) {
    try {
      const d = await api("POST", "/api/v1/webhooks/" + encodeURIComponent(w.id) + "/test");
      status(st, "Test to " + w.name + ": " + d.state + (d.last_status ? " (answered " + d.last_status + ")" : "") + (d.last_error ? " — " + d.last_error : ""), d.state !== "delivered");
      st.dataset.testState = d.state;
      await refresh();
    } catch (e) { status(st, e.message, true); }
  }

  async function remove(w) {
    if (!confirm("Remove webhook " + w.name + " and its delivery log?")) return;
    try { await api("DELETE", "/api/v1/webhooks/" + encodeURIComponent(w.id)); await refresh(); } catch (e) { status(st, e.message, true); }
  }

  document.getElementById("add-hook").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const rules = String(f.get("rules") || "").split(/[\s,]+/).filter(Boolean);
    try {
      const w = await api("POST", "/api/v1/webhooks", { name: f.get("name"), url: f.get("url"), format: f.get("format"),
        secret: f.get("secret") || undefined, rules, send_resolved: f.get("send_resolved") === "on" });
      const box = document.getElementById("secret");
      box.hidden = false;
      box.replaceChildren("Signing secret of " + w.name + " (shown once): ", el("code", { id: "secret-value" }, w.secret));
      ev.target.reset();
      await refresh();
    } catch (e) { status(st, e.message, true); }
  });

  await refresh();
  triad.every(refresh, 5000);
});
