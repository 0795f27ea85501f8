// Repair plans: the list, one plan's review (counts by store and class, a
// sample, the whole list as CSV or NDJSON) and its apply, which writes
// exactly the reviewed entries and reports those whose record changed.
"use strict";
triad.start("Plans", async () => {
  const { el, api, table, fmtTime, status, can } = triad;
  const st = document.getElementById("status"), box = document.getElementById("plan"), list = document.getElementById("plans");
  const meta = await triad.meta();
  const entitySelect = document.getElementById("plan-entity");
  for (const e of meta.entities) entitySelect.append(el("option", { value: e }, e));
  if (meta.entities.includes("profile")) entitySelect.value = "profile"; // the built-in entity first

  const stateText = (s) => (s ? "v" + s.version + " · " + s.digest : "absent");
  const entries = (rows) => table([["Key", (e) => e.key], ["Store", (e) => e.store], ["Class", (e) => e.class], ["Action", (e) => e.action],
    ["Before", (e) => stateText(e.before)], ["After", (e) => stateText(e.after)], ["Outcome", (e) => el("span", { className: "outcome " + e.outcome }, e.outcome)],
    ["Note", (e) => e.error || e.observed || ""]], rows, { className: "entries" });

  async function showPlan(id) {
    let p;
    try {
      p = await api("GET", "/api/v1/plans/" + encodeURIComponent(id));
    } catch (e) {
      status(st, e.message, true);
      return;
    }
    const applied = !!p.applied_at;
    const apply = el("button", { type: "button", id: "apply-plan", hidden: applied || !can("operator") }, "Apply this plan (" + p.entries + " writes)");
    const result = el("div", { id: "apply-result", "aria-live": "polite" });
    apply.addEventListener("click", async () => {
      apply.disabled = true;
      try {
        const r = await api("POST", "/api/v1/plans/" + p.id + "/apply?trigger=ui");
        result.replaceChildren(el("p", { id: "apply-summary" }, "Run " + r.run.id + ": " + r.run.repaired + " repaired, " + r.run.skipped + " skipped (changed since review), " +
          r.run.conflicts + " conflicts, " + r.run.failed + " failed."), r.not_written.length ? entries(r.not_written) : "");
        apply.hidden = true;
        await loadList();
      } catch (e) {
        result.replaceChildren(el("p", { className: "error" }, e.message));
        apply.disabled = false;
      }
    });
    box.replaceChildren(
      el("h3", { id: "plan-title", tabindex: "-1" }, "Plan " + p.id + " · " + p.entity + " · " + p.source),
      table([["", (r) => r[0]], ["", (r) => r[1]]], [
        ["made by", p.created_by + ", " + fmtTime(p.created_at)],
        ["records", String(p.keys)], ["writes planned", String(p.entries)],
        ["dry run", p.dry_run_id ? el("a", { href: "/ui/repairs.html?run=" + p.dry_run_id }, "run " + p.dry_run_id) : "—"],
        ["applied", applied ? p.applied_by + ", " + fmtTime(p.applied_at) + (p.applied_run ? " (" : "") : "not yet"],
      ].map((r) => (r[0] === "applied" && p.applied_run ? [r[0], el("span", {}, r[1], el("a", { href: "/ui/repairs.html?run=" + p.applied_run }, "run " + p.applied_run), ")")] : r)), { className: "kv" }),
      el("h4", {}, "By store and class"),
      table([["Store", (c) => c.store], ["Class", (c) => c.class], ["Action", (c) => c.action], ["Writes", (c) => String(c.count)]], p.counts || [], { id: "plan-counts" }),
      el("h4", {}, "Sample (the first " + (p.sample || []).length + ")"), entries(p.sample || []),
      el("p", {}, "The whole list: ", el("a", { href: "/api/v1/plans/" + p.id + "/entries?format=csv", id: "plan-csv" }, "CSV"), " · ",
        el("a", { href: "/api/v1/plans/" + p.id + "/entries?format=ndjson", id: "plan-ndjson" }, "NDJSON")),
      el("p", { className: "hint" }, applied ? "Applied: a plan applies once." : "Applying writes exactly these entries, each only while its record is still what the dry run saw; the others are skipped and listed."),
      apply, result);
    box.hidden = false;
    box.querySelector("h3").focus();
    history.replaceState(null, "", "?id=" + p.id);
  }

  async function loadList() {
    try {
      const plans = await api("GET", "/api/v1/plans?limit=50");
      if (!plans.length) {
        list.replaceChildren(el("p", { className: "empty" }, "No plans yet. On the Repairs page, filter the log and choose “Plan a repair of these”; or give IDs above."));
        return;
      }
      list.replaceChildren(table([
        ["Plan", (p) => el("a", { href: "?id=" + p.id, onclick: (ev) => { ev.preventDefault(); showPlan(p.id); } }, String(p.id))],
        ["Made", (p) => fmtTime(p.created_at)], ["By", (p) => p.created_by], ["Entity", (p) => p.entity], ["Source", (p) => p.source],
        ["Records", (p) => String(p.keys)], ["Writes", (p) => String(p.entries)],
        ["Applied", (p) => (p.applied_at ? p.applied_by + ", " + fmtTime(p.applied_at) : "not yet")],
      ], plans, { id: "plans-table" }));
    } catch (e) {
      status(st, e.message, true);
    }
  }

  document.getElementById("new-plan").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const ids = document.getElementById("plan-ids").value.split(/[\s,]+/).filter(Boolean);
    status(st, "Planning a repair of " + ids.length + " record" + (ids.length === 1 ? "" : "s") + " (a dry run)…");
    try {
      const p = await api("POST", "/api/v1/plans", { entity: entitySelect.value, ids, trigger: "ui" });
      status(st, "Plan " + p.id + " saved: " + p.entries + " writes planned.");
      await loadList();
      await showPlan(p.id);
    } catch (e) {
      status(st, e.message, true);
    }
  });

  await loadList();
  const id = new URLSearchParams(location.search).get("id");
  if (id) await showPlan(id);
});
