// Tokens (admin): list, create (the secret is shown once), revoke; and the
// audit log of every mutation, in keyset pages.
"use strict";
triad.start("Tokens", async () => {
  const { el, api, table, fmtTime, status } = triad;
  const st = document.getElementById("status");
  let audit = [];
  const auditFilter = triad.filtered(document.getElementById("audit-filter"), "/api/v1/audit");
  let auditQuery = auditFilter.query().toString();

  async function tokens() {
    const list = await api("GET", "/api/v1/tokens");
    document.getElementById("tokens").replaceChildren(list.length === 0 ? el("p", { className: "empty" }, "No API tokens yet (the bootstrap admin token is configured, not listed). Create one per service or person above: viewers read, operators repair, admins manage.") : table([
      ["ID", (t) => String(t.id)], ["Name", (t) => t.name], ["Role", (t) => t.role], ["Prefix", (t) => t.prefix + "…"],
      ["Created", (t) => fmtTime(t.created_at)], ["Expires", (t) => fmtTime(t.expires_at)], ["Last used", (t) => fmtTime(t.last_used_at)],
      ["", (t) => el("button", { type: "button", onclick: () => revoke(t) }, "Revoke")],
    ], list, { id: "tokens-table" }));
  }

  async function revoke(t) {
    if (!confirm("Revoke token " + t.name + "? Its sessions end too.")) return;
    try { await api("DELETE", "/api/v1/tokens/" + t.id); status(st, "Revoked " + t.name + "."); await tokens(); await loadAudit(false); } catch (e) { status(st, e.message, true); }
  }

  async function loadAudit(older) {
    const q = new URLSearchParams(auditQuery);
    q.set("limit", "50");
    if (older && audit.length) q.set("before", String(audit[audit.length - 1].id));
    const page = await api("GET", "/api/v1/audit?" + q);
    audit = older ? audit.concat(page) : page;
    document.getElementById("audit").replaceChildren(audit.length ? table([
      ["ID", (e) => String(e.id)], ["At", (e) => fmtTime(e.at)], ["Actor", (e) => e.actor], ["Role", (e) => e.role], ["Via", (e) => e.via],
      ["Request", (e) => e.method + " " + e.path], ["Status", (e) => String(e.status)], ["From", (e) => e.remote], ["Request ID", (e) => e.request_id],
    ], audit, { id: "audit-table" }) : el("p", { className: "empty" }, auditQuery ? "No audit entry matches this filter." : "No mutation yet: every change through the API or the dashboard is recorded here."));
    document.getElementById("audit-more").hidden = page.length < 50;
  }

  document.getElementById("create").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      const t = await api("POST", "/api/v1/tokens", { name: f.get("name"), role: f.get("role"), ttl: f.get("ttl") || "" });
      const box = document.getElementById("secret");
      box.hidden = false;
      box.replaceChildren("Token " + t.name + " (" + t.role + "), shown once: ", el("code", { id: "token-secret" }, t.secret));
      ev.target.reset();
      await tokens();
      await loadAudit(false);
    } catch (e) { status(st, e.message, true); }
  });
  document.getElementById("audit-filter").addEventListener("submit", (ev) => {
    ev.preventDefault();
    auditQuery = auditFilter.query().toString();
    loadAudit(false).catch((e) => status(st, e.message, true));
  });
  document.getElementById("audit-more").addEventListener("click", () => loadAudit(true).catch((e) => status(st, e.message, true)));
  try {
    await tokens();
    await loadAudit(false);
  } catch (e) {
    status(st, e.status === 403 ? "Tokens and the audit log need the admin role." : e.message, true);
  }
});
