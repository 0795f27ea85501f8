// Check by ID: each store's presence, version, digest, class and the
// fields that differ from Postgres; operators preview a repair (dry run)
// and then apply exactly that.
"use strict";
triad.start("Check", async () => {
  const { el, api, table, status, can } = triad;
  const form = document.getElementById("check"), results = document.getElementById("results"), st = document.getElementById("status");
  const box = document.getElementById("repair"), plan = document.getElementById("plan"), apply = document.getElementById("apply"), applied = document.getElementById("applied");
  let last = null; // {entity, keys}
  const meta = await triad.meta();
  triad.options(document.getElementById("entity"), meta.entities, false);

  function ids() { return document.getElementById("ids").value.split(/[\s,]+/).filter(Boolean); }

  function entriesTable(entries) {
    return table([["Key", (e) => e.key], ["Store", (e) => e.store], ["Class", (e) => e.class], ["Action", (e) => e.action],
      ["Priority", (e) => e.priority], ["Outcome", (e) => el("span", { className: "outcome " + e.outcome }, e.outcome)], ["Error", (e) => e.error || ""]],
    entries, { className: "entries" });
  }

  async function check(entity, keys, afterRepair) {
    results.replaceChildren();
    if (!afterRepair) { plan.replaceChildren(); applied.replaceChildren(); }
    apply.hidden = true;
    try {
      const res = await api("POST", "/api/v1/checks", { entity, ids: keys });
      let drift = 0;
      for (const r of res.results) {
        if (!r.consistent) drift++;
        const stores = Object.entries(r.stores).sort(([a], [b]) => (a === "postgres" ? -1 : b === "postgres" ? 1 : a.localeCompare(b)));
        results.append(el("section", { className: "card result " + (r.consistent ? "ok" : "drift"), dataset: { key: r.key } },
          el("h3", {}, r.entity + " " + r.key + " — " + (r.consistent ? "consistent" : "drift")),
          table([["Store", ([s]) => s], ["Present", ([, v]) => (v.present ? (v.deleted ? "tombstone" : "yes") : "no")],
            ["Version", ([, v]) => (v.version ? String(v.version) : "—")], ["Digest", ([, v]) => (v.digest ? String(v.digest) : "—")],
            ["Class", ([, v]) => el("span", { className: "class " + (v.class || "") }, v.class || "")],
            ["Fields that differ", ([, v]) => (v.diff && v.diff.length ? v.diff.join(", ") : "")],
            ["Why invalid", ([, v]) => v.corrupt || ""]], stores)));
      }
      status(st, res.results.length + " checked, " + drift + " with drift");
      if (keys.length === 1) await sideBySide(entity, keys[0]);
      if (entity === "profile" && keys.length === 1) await record(keys[0]);
      last = { entity, keys };
      box.hidden = !can("operator") || (drift === 0 && !afterRepair);
    } catch (e) {
      status(st, e.message, true);
    }
  }

  // One record's three copies side by side: every counted field, the
  // cells that differ from the primary's highlighted; versions, digests,
  // the trace of the write that produced the primary's copy, and the raw
  // stored value of a copy that is not a valid record.
  async function sideBySide(entity, id) {
    let r;
    try {
      r = await api("GET", "/api/v1/checks/" + encodeURIComponent(entity) + "/" + encodeURIComponent(id) + "?fields=true");
    } catch (e) {
      results.append(el("p", { className: "error", id: "side" }, "Side by side: " + e.message));
      return;
    }
    const stores = Object.keys(r.stores).sort((a, b) => (a === "postgres" ? -1 : b === "postgres" ? 1 : a.localeCompare(b)));
    const primary = r.stores.postgres || {};
    const names = [];
    for (const s of stores) for (const f of Object.keys(r.stores[s].fields || {})) if (!names.includes(f)) names.push(f);
    const text = (v) => (v === undefined ? "—" : JSON.stringify(v));
    const row = (label, cell) => el("tr", {}, el("th", { scope: "row" }, label), stores.map((s) => cell(s, r.stores[s])));
    const plain = (f) => (s, v) => el("td", {}, f(v, s));
    const body = el("tbody", {},
      row("class", plain((v, s) => (s === "postgres" ? "primary" : meta.runbooks.classes[v.class]
        ? el("span", {}, v.class + " ", el("a", { href: meta.runbooks.classes[v.class], rel: "noopener noreferrer", target: "_blank", className: "runbook" }, "runbook"))
        : v.class || ""))),
      row("present", plain((v) => (v.present ? (v.deleted ? "tombstone" : "yes") : "no"))),
      row("version", (s, v) => el("td", { className: s !== "postgres" && v.present && v.version !== primary.version ? "differs" : "" }, v.version ? String(v.version) : "—")),
      row("stored digest", (s, v) => el("td", { className: s !== "postgres" && v.present && v.digest !== primary.digest ? "differs" : "" }, v.digest || "—")),
      row("content digest", (s, v) => el("td", { className: s !== "postgres" && v.present && v.computed_digest !== primary.computed_digest ? "differs" : "" }, v.computed_digest || "—")),
      names.map((f) => row(f, (s, v) => {
        const mine = text((v.fields || {})[f]), theirs = text((primary.fields || {})[f]);
        return el("td", { className: s !== "postgres" && v.present && !v.corrupt && mine !== theirs ? "differs" : "" }, el("code", {}, mine));
      })),
      row("write trace", plain((v) => (v.write_trace ? el("a", { href: "/ui/trace.html#" + v.write_trace, className: "write-trace" }, v.write_trace.slice(0, 12) + "…") : "—"))),
    );
    for (const s of stores) {
      if (r.stores[s].raw) body.append(row("raw (" + s + ")", (t, v) => el("td", {}, t === s ? el("pre", { className: "raw" }, v.raw) : "")));
      if (r.stores[s].corrupt) body.append(row("why invalid (" + s + ")", (t, v) => el("td", {}, t === s ? v.corrupt : "")));
    }
    const t = el("table", { className: "side-by-side", id: "side-table" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "field"), stores.map((s) => el("th", { scope: "col" }, s)))), body);
    results.append(el("section", { className: "card", id: "side" },
      el("h3", {}, r.entity + " " + r.key + " in each store"),
      el("p", { className: "hint" }, "Highlighted: differs from Postgres, the source of truth. The write trace is the ingest batch that wrote Postgres's copy, while the row is still what it wrote."),
      t));
  }

  // The profile as the read path serves it, every value as text.
  async function record(id) {
    try {
      const p = await api("GET", "/api/v1/profiles/" + encodeURIComponent(id));
      const rows = Object.entries(p).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]);
      results.append(el("section", { className: "card", id: "record" }, el("h3", {}, "Profile " + id + " as served"),
        table([["Field", (r) => r[0]], ["Value", (r) => el("code", {}, r[1])]], rows, { className: "kv" })));
    } catch (e) {
      results.append(el("p", { className: "hint", id: "record" }, "Profile " + id + ": " + e.message));
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const entity = document.getElementById("entity").value, keys = ids();
    history.replaceState(null, "", "?entity=" + encodeURIComponent(entity) + "&id=" + encodeURIComponent(keys.join(",")));
    check(entity, keys);
  });

  document.getElementById("preview").addEventListener("click", async () => {
    applied.replaceChildren();
    try {
      const run = await api("POST", "/api/v1/repairs", { entity: last.entity, ids: last.keys, dry_run: true, trigger: "ui" });
      plan.replaceChildren(el("p", { id: "plan-summary" }, "Dry run " + run.run.id + ": " + run.run.planned + " writes planned."), entriesTable(run.entries));
      apply.hidden = run.run.planned === 0;
    } catch (e) {
      plan.replaceChildren(el("p", { className: "error" }, e.message));
    }
  });

  apply.addEventListener("click", async () => {
    try {
      const run = await api("POST", "/api/v1/repairs", { entity: last.entity, ids: last.keys, dry_run: false, trigger: "ui" });
      applied.replaceChildren(el("p", { id: "applied-summary" }, "Run " + run.run.id + ": " + run.run.repaired + " repaired, " + run.run.noop + " no-op, " +
        run.run.conflicts + " conflicts, " + run.run.failed + " failed."), entriesTable(run.entries));
      await check(last.entity, last.keys, true);
    } catch (e) {
      applied.replaceChildren(el("p", { className: "error" }, e.message));
    }
  });

  const q = new URLSearchParams(location.search);
  if (q.get("id")) {
    document.getElementById("entity").value = q.get("entity") || "profile";
    document.getElementById("ids").value = q.get("id");
    await check(document.getElementById("entity").value, ids());
  }
});
