// Alerts: current alert instances, the rules, webhook endpoints (admins
// add, test-fire and remove them) and the delivery log.
"use strict";
triad.start("Alerts", async () => {
  const { el, api, table, fmtTime, status, can } = triad;
  const st = document.getElementById("status");
  const runbook = (url) => (url ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank", className: "runbook" }, "runbook") : "");
  const labels = (m) => Object.entries(m || {}).filter(([k]) => k !== "alertname").map(([k, v]) => k + "=" + v).join(" ");

  const alertsForm = document.getElementById("alerts-filter"), deliveriesForm = document.getElementById("deliveries-filter");
  const meta = await triad.meta();
  triad.options(alertsForm.elements.state, meta.alert_states, true);
  triad.options(deliveriesForm.elements.state, meta.delivery_states, true);
  const alertsFilter = triad.filtered(alertsForm, "/api/v1/alerts", "alerts.");
  const deliveriesFilter = triad.filtered(deliveriesForm, "/api/v1/alerts/deliveries", "deliveries.");
  let rulesFilled = false;
  for (const f of [alertsForm, deliveriesForm]) f.addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });

  async function refresh() {
    try {
      const aq = alertsFilter.query(), dq = deliveriesFilter.query();
      const a = await api("GET", "/api/v1/alerts?" + aq);
      if (!rulesFilled) { triad.options(alertsForm.elements.rule, a.rules.map((r) => r.name), true); rulesFilled = true; const want = new URLSearchParams(location.search).get("alerts.rule"); if (want) alertsForm.elements.rule.value = want; }
      document.getElementById("alerts").replaceChildren(a.alerts.length ? table([
        ["Rule", (x) => x.rule], ["State", (x) => el("span", { className: "alert-state " + (x.resolved_at ? "resolved" : x.fired_at ? "firing" : "pending") },
          x.resolved_at ? "resolved" : x.fired_at ? "firing" : "pending")],
        ["Labels", (x) => labels(x.labels)], ["Summary", (x) => (x.annotations || {}).summary || ""], ["Value", (x) => String(x.value)],
        ["Since", (x) => fmtTime(x.fired_at || x.active_since)], ["Resolved", (x) => fmtTime(x.resolved_at)],
        ["Silenced", (x) => (x.silenced_by && x.silenced_by.length ? "by silence " + x.silenced_by.join(", ") : "")],
        ["Runbook", (x) => runbook((x.annotations || {}).runbook_url)],
      ], a.alerts, { id: "alerts-table" }) : el("p", { className: "empty" }, aq.toString() ? "No alert matches this filter." : "No alerts. Rules below fire when a sweep finds drift above its threshold, repairs fail, a store is unreachable or loses data; add a webhook to be told."));
      document.getElementById("rules").replaceChildren(table([
        ["Name", (r) => r.name], ["Kind", (r) => r.kind], ["Threshold", (r) => String(r.threshold)],
        ["Window", (r) => r.window || "—"], ["For", (r) => r.for || "—"], ["Severity", (r) => r.severity],
        ["Runbook", (r) => runbook(r.runbook_url) || "—"],
      ], a.rules));
      await silences();
      dq.set("limit", "100");
      const ds = await api("GET", "/api/v1/alerts/deliveries?" + dq);
      document.getElementById("deliveries").replaceChildren(ds.length ? table([
        ["ID", (d) => String(d.id)], ["Webhook", (d) => d.webhook], ["Group", (d) => d.group_key], ["Status", (d) => (d.test ? "test" : d.status)],
        ["State", (d) => el("span", { className: "delivery " + d.state }, d.state)], ["Attempts", (d) => String(d.attempts)],
        ["Answer", (d) => (d.last_status ? String(d.last_status) : "")], ["Error", (d) => d.last_error || ""],
        ["Queued", (d) => fmtTime(d.created_at)], ["Delivered", (d) => fmtTime(d.delivered_at)],
      ], ds, { id: "deliveries-table" }) : el("p", { className: "empty" }, dq.get("state") || dq.get("webhook") ? "No delivery matches this filter." : "Nothing sent yet: a firing or resolved alert is delivered to every webhook that wants its rule; Test-fire sends one now."));
      if (can("admin")) {
        const hooks = await api("GET", "/api/v1/webhooks");
        document.getElementById("hooks").replaceChildren(hooks.length ? table([
          ["Name", (w) => w.name], ["URL", (w) => w.url], ["Format", (w) => w.format], ["Rules", (w) => (w.rules.length ? w.rules.join(", ") : "all")],
          ["Resolved", (w) => (w.send_resolved ? "sent" : "not sent")], ["Added", (w) => fmtTime(w.created_at) + " by " + w.created_by],
          ["", (w) => el("span", {},
            el("button", { type: "button", dataset: { test: w.name }, onclick: () => testFire(w) }, "Test-fire"), " ",
            el("button", { type: "button", onclick: () => remove(w) }, "Remove"))],
        ], hooks, { id: "hooks-table" }) : el("p", { className: "empty" }, "No webhook endpoints: add one above (a chat tool, a pager, Alertmanager) to be told when an alert fires."));
      }
    } catch (e) {
      status(st, e.message, true);
    }
  }

  // Silences: active and pending ones first, then those that expired
  // (kept and listed); a notice names those that expired in the last day.
  async function silences() {
    const ss = await api("GET", "/api/v1/silences");
    const order = { active: 0, pending: 1, expired: 2 };
    ss.sort((a, b) => order[a.state] - order[b.state] || b.id - a.id);
    const matchers = (m) => m.map((x) => x.name + (x.regex ? "=~" : "=") + x.value).join(" ");
    document.getElementById("silences").replaceChildren(ss.length ? table([
      ["ID", (x) => String(x.id)], ["State", (x) => el("span", { className: "silence-state " + x.state }, x.state)], ["Matchers", (x) => matchers(x.matchers)],
      ["Comment", (x) => x.comment], ["By", (x) => x.created_by], ["Starts", (x) => fmtTime(x.starts_at)],
      ["Ends", (x) => fmtTime(x.ends_at) + (x.expired_by ? " (ended by " + x.expired_by + ")" : "")],
      ["", (x) => (x.state !== "expired" && can("operator") ? el("button", { type: "button", onclick: () => expire(x) }, "Expire now") : "")],
    ], ss.map((x) => x), { id: "silences-table" }) : el("p", { className: "empty" }, "No silences. A silence mutes the alerts its matchers select (alertname, entity, store, class, kind, severity) for a while, with a comment saying why."));
    const dayAgo = Date.now() - 24 * 3600 * 1000;
    const recent = ss.filter((x) => x.state === "expired" && !x.expired_by && new Date(x.ends_at).getTime() > dayAgo);
    const notice = document.getElementById("silence-notice");
    notice.hidden = recent.length === 0;
    notice.replaceChildren(...recent.map((x) => el("span", { className: "expired-notice", dataset: { silence: String(x.id) } },
      "Silence " + x.id + " (" + matchers(x.matchers) + ") expired " + fmtTime(x.ends_at) + ": its alerts notify again. ")));
  }

  function parseMatchers(text) {
    return text.split(/\s+/).filter(Boolean).map((t) => {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(=~|=)(.*)$/.exec(t);
      if (!m) throw new Error("a matcher is label=value or label=~regex, got " + JSON.stringify(t));
      return { name: m[1], value: m[3], regex: m[2] === "=~" };
    });
  }

  document.getElementById("silence-preview").addEventListener("click", async () => {
    const out = document.getElementById("silence-previewed");
    try {
      const hits = await api("POST", "/api/v1/silences/preview", { matchers: parseMatchers(document.getElementById("silence-matchers").value) });
      out.replaceChildren(el("p", { id: "preview-summary" }, "Would mute " + hits.length + " active alert" + (hits.length === 1 ? "" : "s") + (hits.length ? ": " : "."),
        hits.map((x) => x.rule + " {" + labels(x.labels) + "}").join("; ")));
    } catch (e) { out.replaceChildren(el("p", { className: "error" }, e.message)); }
  });

  document.getElementById("add-silence").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      const x = await api("POST", "/api/v1/silences", { matchers: parseMatchers(String(f.get("matchers"))), duration: f.get("duration"), comment: f.get("comment") });
      status(st, "Silence " + x.id + " " + x.state + " until " + fmtTime(x.ends_at) + ".");
      document.getElementById("silence-previewed").replaceChildren();
      await refresh();
    } catch (e) { status(st, e.message, true); }
  });

  async function expire(x) {
    try { await api("DELETE", "/api/v1/silences/" + x.id); await refresh(); } catch (e) { status(st, e.message, true); }
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
