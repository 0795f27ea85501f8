// Repair log browser: filters become the API's query, pages are keyset
// pages (the answer's `next` is the next page's `after`), a row opens its
// detail with the before/after diff.
"use strict";
triad.start("Repairs", async () => {
  const { el, api, table, fmtTime, status } = triad;
  const form = document.getElementById("filters"), out = document.getElementById("log");
  const more = document.getElementById("more"), detail = document.getElementById("detail"), st = document.getElementById("status");
  let query = "", next = "", rows = [];

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
    out.replaceChildren(t);
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

  form.addEventListener("submit", (ev) => { ev.preventDefault(); query = params().toString(); history.replaceState(null, "", "?" + query); load(false); });
  form.addEventListener("reset", () => setTimeout(() => { query = ""; history.replaceState(null, "", location.pathname); load(false); }));
  more.addEventListener("click", () => load(true));
  const initial = new URLSearchParams(location.search);
  for (const [k, v] of initial) if (form.elements[k] && k !== "since" && k !== "until") form.elements[k].value = v;
  query = initial.toString();
  await load(false);
});
