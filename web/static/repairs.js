// Repair log browser: filters become the API's query, pages are keyset
// pages (the answer's `next` is the next page's `after`), a row opens its
// detail with the before/after diff.
"use strict";
triad.start("Repairs", async () => {
  const { el, api, table, fmtTime, status, options } = triad;
  const form = document.getElementById("filters"), out = document.getElementById("log");
  const more = document.getElementById("more"), detail = document.getElementById("detail"), st = document.getElementById("status");
  let query = "", next = "", rows = [];
  const m = await triad.meta();

  function params() {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      if (!v) continue;
      q.set(k, k === "since" || k === "until" ? new Date(v).toISOString().replace(/\.\d+Z$/, "Z") : v.trim());
    }
    return q;
  }

  function stateText(s) { return s ? "v" + s.version + " · " + s.digest : "absent"; }

  function showDetail(e) {
    detail.hidden = false;
    const changed = (a, b) => (a ? a.version : null) !== (b ? b.version : null) || (a ? a.digest : null) !== (b ? b.digest : null);
    detail.replaceChildren(
      el("h3", { id: "detail-title" }, "Entry " + e.id + " · " + e.entity + " " + e.key + " in " + e.store),
      table([["", (r) => r[0]], ["value", (r) => r[1]]], [
        ["class", e.class], ["action", e.action + " (" + e.priority + " priority)"], ["outcome", e.outcome],
        ["run", String(e.run_id)], ["attempts", String(e.attempts)], ["first", fmtTime(e.first_at)], ["last", fmtTime(e.last_at)],
        ["fields that differed", e.fields && e.fields.length ? e.fields.join(", ") : "—"],
        ["observed", e.observed || "—"],
        ["error", e.error || "—"],
        ["write trace", e.write_trace || "— (not written through triad, or untraced)"],
        ["runbook", m.runbooks.classes[e.class] ? el("a", { href: m.runbooks.classes[e.class], rel: "noopener noreferrer", target: "_blank", className: "runbook" }, "runbook for " + e.class) : "— (alert.class_runbooks)"],
      ], { className: "kv" }),
      el("h4", {}, "Before → after"),
      table([["", (r) => r[0]], ["before", (r) => r[1]], ["after", (r) => r[2]]], [
        ["version", e.before ? String(e.before.version) : "absent", e.after ? String(e.after.version) : "absent"],
        ["digest", e.before ? String(e.before.digest) : "absent", e.after ? String(e.after.digest) : "absent"],
      ], { className: "kv diff" + (changed(e.before, e.after) ? " changed" : "") }),
      el("p", {}, el("a", { href: "/ui/check.html?entity=" + encodeURIComponent(e.entity) + "&id=" + encodeURIComponent(e.key), id: "detail-check" }, "The three copies side by side, now"),
        e.write_trace ? " · " : "",
        e.write_trace ? el("a", { href: "/ui/trace.html#" + e.write_trace, id: "detail-trace" }, "Trace of the write that produced Postgres's copy") : ""));
    detail.querySelector("h3").focus?.();
  }

  function render() {
    const t = table([
      ["ID", (e) => el("button", { type: "button", className: "link", onclick: () => showDetail(e), "aria-label": "details of entry " + e.id }, String(e.id))],
      ["Last", (e) => fmtTime(e.last_at)], ["Entity", (e) => e.entity], ["Key", (e) => e.key], ["Store", (e) => e.store],
      ["Class", (e) => e.class], ["Action", (e) => e.action], ["Priority", (e) => e.priority],
      ["Before", (e) => stateText(e.before)], ["After", (e) => stateText(e.after)],
      ["Outcome", (e) => el("span", { className: "outcome " + e.outcome }, e.outcome)], ["Run", (e) => String(e.run_id)],
    ], rows, { id: "log-table" });
    out.replaceChildren(rows.length ? t : el("p", { className: "empty", id: "log-empty" }, query
      ? "No entries match this filter. Clear it, or widen the time window."
      : "The repair log is empty: nothing has been repaired or planned yet. Entries appear when a sweep (Sweeps page, or a schedule) or a check's repair (Check page) finds drift."));
    more.hidden = !next;
  }

  async function load(append) {
    const q = new URLSearchParams(query);
    q.set("limit", "50");
    if (append && next) q.set("after", next);
    const t0 = performance.now();
    try {
      const page = await api("GET", "/api/v1/repairs?" + q);
      rows = append ? rows.concat(page.entries) : page.entries;
      next = page.next || "";
      render();
      status(st, rows.length + " entries" + (next ? " (more below)" : "") + " · " + Math.round(performance.now() - t0) + " ms");
      out.dataset.loadedMs = String(Math.round(performance.now() - t0));
    } catch (e) {
      status(st, e.message, true);
    }
  }

  // The filter lives in the URL (a permalink) and in the export links.
  function setQuery(q) {
    query = q;
    history.replaceState(null, "", q ? "?" + q : location.pathname);
    const ex = new URLSearchParams(q);
    ex.delete("after");
    for (const f of ["csv", "ndjson"]) {
      ex.set("format", f);
      document.getElementById("export-" + f).href = "/api/v1/repairs?" + ex;
    }
  }

  // A plan from the filter: a dry run of the records it selects, saved to
  // review and apply on the Plans page.
  document.getElementById("plan-these").addEventListener("click", async () => {
    const q = new URLSearchParams(query);
    const filter = {};
    for (const k of ["store", "class", "outcome", "key", "since", "until"]) if (q.get(k)) filter[k] = q.get(k);
    if (q.get("run")) filter.run = Number(q.get("run"));
    try {
      const p = await api("POST", "/api/v1/plans", { entity: q.get("entity") || "profile", filter, trigger: "ui" });
      location.href = "/ui/plans.html?id=" + p.id;
    } catch (e) {
      status(st, "No plan: " + e.message, true);
    }
  });

  options(form.elements.entity, m.entities, true);
  options(form.elements.class, m.classes.filter((c) => c.drift).map((c) => c.name), true);
  options(form.elements.store, m.stores.filter((s) => s !== "postgres"), true);
  options(form.elements.outcome, m.outcomes, true);

  form.addEventListener("submit", (ev) => { ev.preventDefault(); setQuery(params().toString()); load(false); });
  form.addEventListener("reset", () => setTimeout(() => { setQuery(""); load(false); }));
  more.addEventListener("click", () => load(true));
  const initial = new URLSearchParams(location.search);
  for (const [k, v] of initial) if (form.elements[k] && k !== "since" && k !== "until") form.elements[k].value = v;
  setQuery(initial.toString());
  await load(false);
});
