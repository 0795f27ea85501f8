// Sweeps: running sweeps with a progress bar per key range (each range's
// cursor between its bounds), pause/resume/cancel for operators, the
// configured schedules and the history. Refreshed every second.
"use strict";
triad.start("Sweeps", async () => {
  const { el, api, table, fmtTime, status, can } = triad;
  const st = document.getElementById("status"), running = document.getElementById("running");
  const meta = await triad.meta();
  triad.options(document.getElementById("start-entity"), meta.entities, false);
  const historyForm = document.getElementById("history-filter");
  triad.options(historyForm.elements.entity, meta.entities, true);
  triad.options(historyForm.elements.state, meta.sweep_states.filter((x) => x !== "running" && x !== "paused"), true);
  const historyFilter = triad.filtered(historyForm, "/api/v1/sweeps");
  let historyQuery = historyFilter.query();
  historyForm.addEventListener("submit", (ev) => { ev.preventDefault(); historyQuery = historyFilter.query(); refresh(); });

  function rangeShare(r) {
    if (r.state === "done") return 1;
    const width = r.hi - r.lo;
    return width > 0 ? Math.max(0, Math.min(1, (r.cursor - r.lo) / width)) : 0;
  }

  function control(s, action, label) {
    return el("button", { type: "button", dataset: { action, sweep: String(s.id) }, onclick: async () => {
      try {
        await api("POST", "/api/v1/sweeps/" + s.id + "/" + action);
        status(st, "Sweep " + s.id + ": " + action + " asked for.");
        await refresh();
      } catch (e) { status(st, e.message, true); }
    } }, label);
  }

  // How the sweep judged the index: from a verified checkpoint (only the
  // documents written since read whole), a full content pass, or labels.
  function checkedBy(s) {
    if (!s.content_true) return "labels only";
    const c = s.checkpoint;
    if (!c) return "content";
    const base = c.base ? "content since seq_no " + c.base.seq_no + " (" + c.changed + " written since)" : "full content pass";
    return base + (c.advanced ? " · checkpoint " + c.taken.seq_no : "");
  }

  // rangeHolder says who works a range now: its owner while its claim is
  // live, or that nobody does (the owner died; another replica takes it).
  function rangeHolder(r) {
    if (r.holder === "") return " · unclaimed: " + (r.owner || "its owner") + " is gone; another replica takes it over";
    return r.owner ? " · " + r.owner : "";
  }

  async function card(s) {
    const d = await api("GET", "/api/v1/sweeps/" + s.id);
    const ranges = d.ranges_list || [];
    const share = ranges.length ? ranges.reduce((a, r) => a + rangeShare(r), 0) / ranges.length : 0;
    const bars = el("div", { className: "ranges", role: "img", "aria-label": ranges.length + " key ranges, " + Math.round(100 * share) + "% done" },
      ranges.map((r) => el("div", { className: "range " + r.state + (r.holder === "" ? " orphaned" : ""), title: "(" + r.lo + ", " + r.hi + "] " + r.state + rangeHolder(r) },
        el("span", { style: "width:" + (100 * rangeShare(r)).toFixed(1) + "%" }))));
    const buttons = can("operator") ? el("p", {},
      d.state === "running" ? control(d, "pause", "Pause") : null,
      d.state === "paused" ? control(d, "resume", "Resume") : null, " ",
      control(d, "cancel", "Cancel")) : null;
    return el("section", { className: "card sweep " + d.state, dataset: { sweep: String(d.id), state: d.state } },
      el("h4", {}, "Sweep " + d.id + " · " + d.entity + " · " + d.state + (d.stuck ? " · STUCK" : "")),
      el("progress", { max: 1, value: share, "aria-label": "sweep " + d.id + " progress" }),
      el("span", { className: "hint" }, " " + Math.round(100 * share) + "% · " + d.segments + " segments, " + d.dirty_segments + " dirty, " +
        d.records + " records, " + d.findings + " findings · mode " + d.mode + (d.content_true ? " (content-true)" : " (labels only: not content-true)") + (d.repair ? (d.dry_run ? " · repair (dry run)" : " · repair") : "")),
      bars, buttons);
  }

  async function refresh() {
    try {
      const list = await api("GET", "/api/v1/sweeps?limit=50");
      const active = list.filter((s) => s.state === "running" || s.state === "paused");
      running.replaceChildren(...(active.length ? await Promise.all(active.map(card)) : [el("p", { className: "hint" }, "None running.")]));
      const past = historyQuery.toString() ? await api("GET", "/api/v1/sweeps?limit=200&" + historyQuery) : list;
      const rows = past.filter((s) => s.state !== "running" && s.state !== "paused");
      document.getElementById("history").replaceChildren(rows.length ? table([
        ["ID", (s) => String(s.id)], ["Entity", (s) => s.entity], ["State", (s) => s.state + (s.stuck ? " (stuck)" : "")],
        ["Mode", (s) => s.mode + (s.content_true ? "" : " (labels only)")], ["Checked by", (s) => checkedBy(s)], ["Trigger", (s) => s.trigger + (s.schedule ? " · " + s.schedule : "")], ["By", (s) => s.actor],
        ["Started", (s) => fmtTime(s.created_at)], ["Finished", (s) => fmtTime(s.finished_at)], ["Records", (s) => String(s.records)],
        ["Dirty segments", (s) => String(s.dirty_segments)], ["Findings", (s) => String(s.findings)], ["Repaired", (s) => String(s.repaired)],
        ["Drift", (s) => (s.records ? (100 * s.findings / s.records).toFixed(4) + "%" : "—")], ["Error", (s) => s.error || ""],
        ["", (s) => (can("operator") && s.state === "done" && s.findings > s.repaired ? el("button", { type: "button", dataset: { plan: String(s.id) }, onclick: () => planFindings(s) }, "Plan a repair of its findings") : "")],
      ], rows, { id: "history-table" }) : el("p", { className: "empty", id: "history-table" }, historyQuery.toString()
        ? "No finished sweep matches this filter."
        : "No sweep has finished yet. Start one above (operators), or configure repair.schedules; a sweep compares every record's copies by content."));
    } catch (e) {
      status(st, e.message, true);
    }
  }

  // A sweep that only compared (no repair) leaves findings to repair: a
  // plan of them, to review and apply on the Plans page.
  async function planFindings(s) {
    try {
      const p = await api("POST", "/api/v1/plans", { sweep: s.id, trigger: "ui" });
      location.href = "/ui/plans.html?id=" + p.id;
    } catch (e) { status(st, "No plan: " + e.message, true); }
  }

  document.getElementById("start").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      const s = await api("POST", "/api/v1/sweeps", { entity: f.get("entity"), mode: f.get("mode"), rate: Number(f.get("rate") || 0),
        repair: f.get("repair") === "on", dry_run: f.get("dry_run") === "on", trigger: "ui" });
      status(st, "Sweep " + s.id + " started.");
      await refresh();
    } catch (e) { status(st, e.message, true); }
  });

  const sched = await api("GET", "/api/v1/sweeps/schedules");
  document.getElementById("schedules").replaceChildren(sched.length ? table([
    ["Name", (s) => s.name], ["Entity", (s) => s.entity], ["When", (s) => s.every ? "every " + s.every : "cron " + s.cron], ["Mode", (s) => s.mode],
    ["Repair", (s) => (s.repair ? (s.dry_run ? "dry run" : "yes") : "no")], ["Rate", (s) => String(s.rate || "unlimited")],
  ], sched) : el("p", { className: "empty" }, "No schedules configured: add repair.schedules to the configuration (docs/checks.md) to sweep by itself."));
  await refresh();
  triad.every(refresh, 1000);
});
