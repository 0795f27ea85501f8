// Shared by every dashboard page: the header and navigation, the login
// form (a token opens an HttpOnly session cookie; the page keeps only the
// session's CSRF token), API calls with that CSRF token on mutations, and
// el(), which builds elements with textContent only, so nothing from the
// server or the stores is ever interpreted as HTML.
"use strict";
const triad = (function () {
  const roles = { viewer: 1, operator: 2, admin: 3 };
  let session = null;

  // el("td", {className: "x", dataset: {k: "v"}, onclick: f}, "text", child…)
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === "dataset") Object.assign(e.dataset, v);
      else if (k === "style") e.style.cssText = v; // CSSOM: the page's CSP refuses style attributes
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k in e && typeof v !== "string") e[k] = v;
      else e.setAttribute(k === "className" ? "class" : k, v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // every(fn, ms) runs fn every ms while the page is visible: polling
  // pauses when the tab is hidden (no requests from a background tab) and,
  // when it is shown again, runs at once and resumes.
  function every(fn, ms) {
    let timer = null;
    const run = () => { Promise.resolve().then(fn).catch(() => {}); };
    const start = () => { if (timer === null) timer = setInterval(run, ms); };
    const stop = () => { if (timer !== null) { clearInterval(timer); timer = null; } };
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") stop();
      else { run(); start(); }
    });
    if (document.visibilityState !== "hidden") start();
  }

  class APIError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && session && session.csrf_token) headers["X-CSRF-Token"] = session.csrf_token;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin", cache: "no-store" });
    let env = null;
    try { env = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      const msg = env && env.error ? env.error.message : res.status + " " + res.statusText;
      if (res.status === 401 && path !== "/api/v1/session") showLogin("Your session ended: log in again.");
      throw new APIError(res.status, msg);
    }
    return env ? env.data : null;
  }

  function can(role) { return session && roles[session.role] >= roles[role]; }

  // meta() is GET /api/v1/meta, once per page: the navigation and the
  // enums (entities, stores, classes, outcomes) every page offers.
  let metaP = null;
  function meta() {
    if (!metaP) metaP = api("GET", "/api/v1/meta").catch((e) => { metaP = null; throw e; });
    return metaP;
  }

  // options(select, values, any) fills a <select> from an enum, keeping
  // its current value; any adds an empty "any" choice first.
  function options(select, values, any) {
    const keep = select.value;
    select.replaceChildren(...(any ? [el("option", { value: "" }, "any")] : []), ...values.map((v) => el("option", { value: v }, v)));
    if (keep && values.includes(keep)) select.value = keep;
  }

  // filtered(form, apiPath, prefix) makes a filter form a permalink: its
  // values are the page's URL query (under prefix, when a page has more
  // than one list), restored from it on load, and the filter of the CSV
  // and NDJSON export links it adds (the API streams the whole list).
  // query() returns the API query and updates the URL and the links.
  function filtered(form, apiPath, prefix) {
    prefix = prefix || "";
    const links = el("span", { className: "exports" }, "Export: ",
      el("a", { className: "export-csv", href: apiPath + "?format=csv" }, "CSV"), " · ",
      el("a", { className: "export-ndjson", href: apiPath + "?format=ndjson" }, "NDJSON"));
    form.append(" ", links);
    const url = new URLSearchParams(location.search);
    for (const [k, v] of url) {
      if (!k.startsWith(prefix)) continue;
      const f = form.elements[k.slice(prefix.length)];
      if (f && f.type !== "datetime-local") f.value = v;
    }
    function query() {
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) q.set(k, String(v).trim());
      const page = new URLSearchParams(location.search);
      for (const k of [...page.keys()]) if (k.startsWith(prefix) && (prefix || !k.includes("."))) page.delete(k);
      for (const [k, v] of q) page.set(prefix + k, v);
      history.replaceState(null, "", (page.toString() ? "?" + page : location.pathname) + location.hash);
      for (const f of ["csv", "ndjson"]) {
        const x = new URLSearchParams(q);
        x.set("format", f);
        links.querySelector(".export-" + f).href = apiPath + "?" + x;
      }
      return q;
    }
    query();
    return { query };
  }

  function header(current) {
    const nav = el("nav", { "aria-label": "pages", id: "nav" });
    nav.dataset.current = current;
    const who = el("span", { id: "who", className: "who" });
    const out = el("button", { id: "logout", type: "button", hidden: true, onclick: logout }, "Log out");
    const h = el("header", {}, el("h1", {}, el("a", { href: "/" }, "triad")), nav, el("span", { className: "spacer" }), who, out);
    document.body.prepend(h);
  }

  // fillNav builds the navigation from the API's list of pages.
  async function fillNav() {
    const nav = document.getElementById("nav");
    try {
      const m = await meta();
      nav.replaceChildren(...m.pages.map((p) => {
        const a = el("a", { href: p.href }, p.name);
        if (p.role) a.dataset.needs = p.role;
        if (p.name === nav.dataset.current) a.setAttribute("aria-current", "page");
        return a;
      }));
    } catch (e) {
      nav.replaceChildren(el("a", { href: "/" }, "Overview"));
    }
    showWho();
  }

  function showWho() {
    const who = document.getElementById("who");
    who.textContent = session ? session.name + " · " + session.role : "";
    document.getElementById("logout").hidden = !session || session.via !== "session";
    for (const a of document.querySelectorAll("header nav a[data-needs]")) a.hidden = !can(a.dataset.needs);
    for (const e of document.querySelectorAll("[data-needs]:not(a)")) e.hidden = !can(e.dataset.needs);
  }

  let loginResolve = null;
  function showLogin(message) {
    session = null;
    showWho();
    let box = document.getElementById("login");
    if (!box) {
      const input = el("input", { id: "login-token", type: "password", autocomplete: "off", required: true, size: 40, "aria-describedby": "login-msg" });
      const form = el("form", { id: "login-form", className: "card" },
        el("h2", {}, "Log in"),
        el("p", { className: "hint" }, "Paste an API token (triad token create, or the demo's .triad/admin-token). It opens a session; the token itself is not kept by the page."),
        el("label", {}, "Token ", input), " ", el("button", { type: "submit" }, "Log in"),
        el("p", { id: "login-msg", className: "error", role: "alert" }));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const msg = document.getElementById("login-msg");
        msg.textContent = "";
        try {
          session = await api("POST", "/api/v1/session", { token: input.value.trim() });
          input.value = "";
          box.hidden = true;
          document.querySelector("main").hidden = false;
          showWho();
          if (loginResolve) { const r = loginResolve; loginResolve = null; r(session); }
        } catch (e) {
          msg.textContent = e.message;
        }
      });
      box = el("section", { id: "login", "aria-labelledby": "login-title" }, form);
      document.body.append(box);
    }
    box.hidden = false;
    document.querySelector("main").hidden = true;
    if (message) document.getElementById("login-msg").textContent = message;
    document.getElementById("login-token").focus();
  }

  async function logout() {
    try { await api("DELETE", "/api/v1/session"); } catch (e) { /* ended anyway */ }
    showLogin("Logged out.");
  }

  // start(pageName, run): header, then the session (or the login form),
  // then run(session) once.
  async function start(current, run) {
    // Every form here is handled by script: none is ever submitted by the
    // browser (a submit before the page's handlers are attached would
    // reload the page and lose what was typed). body[data-ready] is set
    // once the page has attached them and drawn its first view.
    document.addEventListener("submit", (ev) => ev.preventDefault(), true);
    header(current);
    try {
      session = await api("GET", "/api/v1/session");
    } catch (e) {
      session = null;
    }
    if (!session) {
      session = await new Promise((resolve) => { loginResolve = resolve; showLogin(); });
    }
    showWho();
    await fillNav();
    await run(session);
    document.body.dataset.ready = "1";
  }

  function fmtTime(s) {
    if (!s) return "—";
    const d = new Date(s);
    return isNaN(d) ? String(s) : d.toLocaleString();
  }

  // table(columns, rows): columns are [title, row => text or Node].
  function table(columns, rows, props) {
    const t = el("table", props || {});
    t.append(el("thead", {}, el("tr", {}, columns.map(([title]) => el("th", { scope: "col" }, title)))));
    const tb = el("tbody");
    for (const r of rows) tb.append(el("tr", {}, columns.map(([, f]) => el("td", {}, f(r) ?? "—"))));
    t.append(tb);
    return t;
  }

  function status(node, text, isError) {
    node.textContent = text;
    node.className = isError ? "error" : "hint";
  }

  return { el, api, start, can, table, fmtTime, status, every, meta, options, filtered, session: () => session, APIError };
})();
