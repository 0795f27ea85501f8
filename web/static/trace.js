// Trace view: fetches /api/v1/traces/{id} and draws a flame timeline on a
// canvas (x = time, rows by depth), so 10k spans draw in one pass. Text from
// spans (names, attributes) is only ever drawn on the canvas or set with
// textContent: nothing a sender wrote is interpreted as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("lookup"), idInput = $("trace-id"), skewInput = $("skew");
  const colorBy = $("color-by"), status = $("status"), section = $("trace");
  const canvas = $("flame"), tooltip = $("tooltip"), detail = $("detail"), legend = $("legend");
  const ruler = $("ruler"), windowLabel = $("window-label"), download = $("download"), minimap = $("minimap");
  const ctx = canvas.getContext("2d");
  const ROW = 20;
  const FOLD = 300; // characters of a value shown before "show all"
  const TABLE_ROWS = 200; // the span table lists the top rows by its sort
  const LANG = { go: "#00add8", python: "#f2c94c", scala: "#dc322f", java: "#b07219", kotlin: "#a97bff",
    javascript: "#e8d44d", rust: "#dea584", "c++": "#f34b7d", ruby: "#cc342d", dotnet: "#512bd4", php: "#777bb4" };
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

  let view = null;        // the API's answer
  let spans = [];         // view.spans with layout fields
  let collapsed = new Set();
  let visible = [];       // indexes drawn, by row
  let rows = [];          // rows[depth] = indexes of visible spans at that depth, by start
  let win = { start: 0, dur: 1 };
  let selected = -1;
  let hover = -1;

  // A page written by `triad trace --format html` carries its trace and
  // has no lookup form.
  const embedded = $("trace-data");
  // The hash is the trace ID, optionally "/span ID" to select a span.
  function fromHash() {
    const m = /^#([0-9a-fA-F]{32})(?:\/([0-9a-fA-F]{16}))?$/.exec(location.hash);
    return m ? { trace: m[1].toLowerCase(), span: (m[2] || "").toLowerCase() } : null;
  }
  let wantSpan = "";
  if (form && fromHash()) { idInput.value = fromHash().trace; wantSpan = fromHash().span; }

  function hashColor(s) {
    let h = 0;
    for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
    return PALETTE[Math.abs(h) % PALETTE.length];
  }
  function colorOf(sp) {
    if (sp.placeholder) return "#c8c8c8";
    if (colorBy.value === "service") return hashColor(sp.service);
    return LANG[sp.language] || hashColor(sp.language || "?");
  }
  function fmtDur(ns) {
    if (ns < 1e3) return ns + " ns";
    if (ns < 1e6) return (ns / 1e3).toPrecision(3) + " µs";
    if (ns < 1e9) return (ns / 1e6).toPrecision(3) + " ms";
    return (ns / 1e9).toPrecision(3) + " s";
  }

  async function load(id) {
    const t0 = performance.now();
    status.textContent = "Loading " + id + "…";
    const q = skewInput.checked ? "?adjust_skew=true" : "";
    let res;
    try {
      // The dashboard session's cookie authenticates the request.
      res = await fetch("/api/v1/traces/" + encodeURIComponent(id) + q, { credentials: "same-origin", cache: "no-store" });
    } catch (e) {
      status.textContent = "triad unreachable: " + e;
      return;
    }
    const body = await res.json().catch(() => null);
    if (!res.ok || !body || body.status !== "success") {
      status.textContent = (body && body.error ? body.error.message : res.statusText) + " (" + res.status + ")";
      section.hidden = true;
      return;
    }
    const t1 = performance.now();
    show(body.data);
    const t2 = performance.now();
    canvas.dataset.fetchMs = (t1 - t0).toFixed(1);
    canvas.dataset.renderMs = (t2 - t1).toFixed(1);
    status.textContent = "Drawn " + view.summary.spans + " spans in " + (t2 - t1).toFixed(0) + " ms (fetched in " + (t1 - t0).toFixed(0) + " ms).";
    // A new trace is a new history entry, so Back returns to the last one.
    if (!location.hash.startsWith("#" + id)) history.pushState(null, "", "#" + id);
    download.href = "/api/v1/traces/" + id + "?format=otlp";
    download.download = "trace-" + id + ".otlp.json";
    selectWanted();
    written(id);
  }

  // The records this trace wrote (its ingest batches), and their
  // consistency now: each links to its side-by-side check.
  async function written(id) {
    const box = $("written");
    if (!box || typeof triad === "undefined") return; // a page of `triad trace --format html`
    const el = triad.el;
    box.hidden = true;
    let body;
    try {
      const res = await fetch("/api/v1/traces/" + encodeURIComponent(id) + "/records", { credentials: "same-origin", cache: "no-store" });
      body = await res.json();
      if (!res.ok) throw new Error(body && body.error ? body.error.message : res.statusText);
    } catch (e) {
      box.replaceChildren(el("p", { className: "hint" }, "Records written: " + e.message));
      box.hidden = false;
      return;
    }
    const d = body.data;
    if (!d.records.length) return; // not a write through triad
    const rows = d.records.map((r) => el("tr", { dataset: { key: r.key } },
      el("td", {}, el("a", { href: "/ui/check.html?entity=" + encodeURIComponent(r.entity) + "&id=" + encodeURIComponent(r.key) }, r.entity + " " + r.key)),
      el("td", {}, String(r.version)),
      el("td", {}, r.current ? "yes" : "no: written again since"),
      el("td", { className: r.consistent ? "state-ok" : "state-drift" }, r.consistent ? "consistent" : "drift: " +
        Object.entries(r.stores).filter(([, v]) => v.class && !["ok", "absent", "absent_allowed"].includes(v.class)).map(([s, v]) => s + " " + v.class).join(", "))));
    box.replaceChildren(el("h3", {}, "Records this trace wrote (" + d.records.length + (d.truncated ? "+" : "") + ")"),
      el("table", { id: "written-table" }, el("thead", {}, el("tr", {}, ["record", "version written", "still what it wrote", "consistency now"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows)));
    box.hidden = false;
  }

  // Deep links follow the hash: typing one, Back and Forward load that
  // trace.
  window.addEventListener("hashchange", () => {
    const h = fromHash();
    if (!form || !h) return;
    wantSpan = h.span;
    if (view && view.summary.trace_id === h.trace) { selectWanted(); return; }
    idInput.value = h.trace;
    load(h.trace);
  });

  // selectWanted selects the span the hash names, once its trace is shown.
  function selectWanted() {
    if (!wantSpan || !view) return;
    const i = spans.findIndex((s) => s.span_id === wantSpan);
    wantSpan = "";
    if (i >= 0) select(i, true);
  }

  function show(data) {
    view = data;
    spans = view.spans;
    collapsed = new Set();
    selected = -1;
    win = { start: 0, dur: Math.max(1, view.summary.duration_ns) };
    section.hidden = false;
    renderSummary();
    layout();
    draw();
    showDetail(-1);
    selfTimes();
    spanTable("self");
    canvas.dataset.spans = String(view.summary.spans);
    canvas.dataset.trace = view.summary.trace_id;
  }

  // selfTimes sets each span's self time: its duration less the time at
  // least one of its children ran (children clipped to it).
  function selfTimes() {
    const kids = new Map();
    spans.forEach((sp, i) => { if (sp.parent >= 0) (kids.get(sp.parent) || kids.set(sp.parent, []).get(sp.parent)).push(i); });
    spans.forEach((sp, i) => {
      const a = sp.offset_ns, b = a + sp.duration_ns;
      const iv = (kids.get(i) || []).map((c) => [Math.max(a, spans[c].offset_ns), Math.min(b, spans[c].offset_ns + spans[c].duration_ns)])
        .filter(([x, y]) => y > x).sort((p, q) => p[0] - q[0]);
      let covered = 0, end = a;
      for (const [x, y] of iv) { if (y > end) { covered += y - Math.max(x, end); end = y; } }
      sp.self_ns = Math.max(0, sp.duration_ns - covered);
    });
  }

  // spanTable lists the top spans by self time or duration; a row
  // selects its span.
  function spanTable(by) {
    const box = $("span-table");
    if (!box || typeof triad === "undefined") return;
    const key = by === "self" ? "self_ns" : "duration_ns";
    const order = spans.map((_, i) => i).filter((i) => !spans[i].placeholder).sort((x, y) => spans[y][key] - spans[x][key]).slice(0, TABLE_ROWS);
    const { el } = triad;
    const head = (label, k) => el("th", { scope: "col" }, el("button", { type: "button", className: "sort", "aria-pressed": String(k === by), onclick: () => spanTable(k) }, label + (k === by ? " ▼" : "")));
    const t = el("table", { id: "spans-by" , "data-by": by },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Service"), el("th", { scope: "col" }, "Operation"), head("Self time", "self"), head("Duration", "duration"), el("th", { scope: "col" }, "Starts at"))),
      el("tbody", {}, order.map((i) => {
        const sp = spans[i];
        // A row is a control: focusable, and Enter or Space selects it.
        return el("tr", { onclick: () => select(i, true), tabindex: "0", className: "selectable", dataset: { span: sp.span_id },
          onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(i, true); } } },
          el("td", {}, sp.service), el("td", {}, sp.name), el("td", {}, fmtDur(sp.self_ns)), el("td", {}, fmtDur(sp.duration_ns)), el("td", {}, "+" + fmtDur(sp.offset_ns)));
      })));
    box.replaceChildren(t, el("p", { className: "hint" }, spans.length > TABLE_ROWS ? "The top " + TABLE_ROWS + " of " + view.summary.spans + " spans." : ""));
  }

  function renderSummary() {
    const s = view.summary;
    const parts = [s.spans + " spans", s.services.length + " services", "languages: " + (s.languages.join(", ") || "unknown"), fmtDur(s.duration_ns)];
    if (s.errors) parts.push(s.errors + " errors");
    if (s.orphans) parts.push(s.orphans + " orphans under " + s.missing_parents + " missing parents");
    if (s.roots > 1) parts.push(s.roots + " roots");
    if (s.duplicates) parts.push(s.duplicates + " duplicates dropped");
    if (s.skew_adjusted) parts.push(s.skew_adjusted + " spans skew-adjusted");
    $("summary").textContent = "Trace " + s.trace_id + " — " + parts.join(" · ");
    if (s.partial) $("summary").textContent += " — " + s.status;
    legend.replaceChildren();
    const keys = colorBy.value === "service" ? s.services : s.languages;
    for (const k of keys) {
      const item = document.createElement("span");
      item.className = "key";
      const sw = document.createElement("i");
      sw.style.background = colorBy.value === "service" ? hashColor(k) : (LANG[k] || hashColor(k));
      item.append(sw, document.createTextNode(k));
      legend.append(item);
    }
  }

  // layout computes the visible spans (not under a collapsed one) and
  // their rows: each depth gets as many rows (lanes) as its spans overlap
  // (parallel calls), up to MAX_LANES, so siblings never hide each other.
  const MAX_LANES = 16;
  let rowOf = [];
  function layout() {
    visible = [];
    const byDepth = [];
    let skipBelow = Infinity;
    for (let i = 0; i < spans.length; i++) {
      const sp = spans[i];
      if (sp.depth > skipBelow) continue;
      skipBelow = Infinity;
      visible.push(i);
      (byDepth[sp.depth] ||= []).push(i);
      if (collapsed.has(i)) skipBelow = sp.depth;
    }
    rows = [];
    rowOf = new Array(spans.length).fill(-1);
    for (const list of byDepth) {
      if (!list) continue;
      list.sort((a, b) => spans[a].offset_ns - spans[b].offset_ns);
      const ends = []; // per lane, where its last span ends
      const base = rows.length;
      for (const i of list) {
        const sp = spans[i];
        let lane = ends.findIndex((e) => e <= sp.offset_ns);
        if (lane < 0) lane = ends.length < MAX_LANES ? ends.length : MAX_LANES - 1;
        ends[lane] = Math.max(ends[lane] || 0, sp.offset_ns + sp.duration_ns);
        rowOf[i] = base + lane;
        (rows[base + lane] ||= []).push(i);
      }
    }
    const h = Math.max(1, rows.length) * ROW + 4;
    sized(canvas, canvas.parentElement.clientWidth, h);
    canvas.style.height = h + "px";
  }

  // sized gives canvas c w × h CSS pixels at the screen's density and
  // returns its cleared context, drawing in CSS pixels.
  function sized(c, w, h) {
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.floor(w * dpr);
    c.height = Math.floor(h * dpr);
    c.style.width = w + "px";
    const cx = c.getContext("2d");
    cx.setTransform(dpr, 0, 0, dpr, 0, 0);
    cx.clearRect(0, 0, w, h);
    return cx;
  }

  function xOf(ns, w) { return ((ns - win.start) / win.dur) * w; }

  // drawRuler marks the visible window's time with ticks at 1, 2 or 5 ×
  // a power of ten, and says which part of the trace is shown.
  function drawRuler() {
    if (!ruler) return;
    const w = canvas.clientWidth, h = 22, rc = sized(ruler, w, h);
    rc.font = "11px system-ui, sans-serif";
    rc.fillStyle = "#5f6368";
    rc.strokeStyle = "#9aa0a6";
    rc.textBaseline = "top";
    const raw = win.dur / Math.max(1, Math.floor(w / 90));
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
    let ticks = 0;
    for (let t = Math.ceil(win.start / step) * step; t <= win.start + win.dur; t += step) {
      const x = Math.round(xOf(t, w)) + 0.5;
      rc.beginPath();
      rc.moveTo(x, h - 7);
      rc.lineTo(x, h);
      rc.stroke();
      rc.fillText("+" + fmtDur(Math.round(t)), Math.min(x + 2, w - 50), 2);
      ticks++;
    }
    const total = Math.max(1, view.summary.duration_ns);
    const end = Math.min(total, win.start + win.dur);
    ruler.dataset.start = String(Math.round(win.start));
    ruler.dataset.end = String(Math.round(win.start + win.dur));
    ruler.dataset.ticks = String(ticks);
    windowLabel.textContent = (win.start <= 0 && win.dur >= total ? "Whole trace: " : "Zoomed: ") + "+" + fmtDur(Math.max(0, Math.round(win.start))) +
      " to +" + fmtDur(Math.round(end)) + " of " + fmtDur(total) + " (" + (100 * Math.min(1, win.dur / total)).toFixed(1) + "% shown)";
  }

  // drawMinimap shows the whole trace, a pixel column per time slice
  // shaded by how many spans run in it, and the visible window as a box.
  let density = null; // per column, for the current trace and width
  function drawMinimap() {
    if (!minimap) return;
    const w = canvas.clientWidth, h = 40, mc = sized(minimap, w, h);
    const total = Math.max(1, view.summary.duration_ns);
    if (!density || density.w !== w || density.view !== view) {
      const cols = new Float64Array(w + 1);
      for (const sp of spans) {
        if (sp.placeholder) continue;
        const a = Math.floor((sp.offset_ns / total) * w), b = Math.ceil(((sp.offset_ns + sp.duration_ns) / total) * w);
        cols[Math.max(0, a)] += 1;
        cols[Math.min(w, Math.max(a + 1, b))] -= 1;
      }
      let run = 0, max = 1;
      for (let x = 0; x <= w; x++) { run += cols[x]; cols[x] = run; max = Math.max(max, run); }
      density = { w, view, cols, max };
    }
    mc.fillStyle = "#1a73e8";
    for (let x = 0; x < w; x++) {
      const v = density.cols[x] / density.max;
      if (v > 0) mc.fillRect(x, h - 2 - v * (h - 6), 1, v * (h - 6));
    }
    const x0 = (win.start / total) * w, x1 = ((win.start + win.dur) / total) * w;
    mc.fillStyle = "rgba(32,33,36,0.12)";
    mc.fillRect(x0, 0, Math.max(2, x1 - x0), h);
    mc.strokeStyle = "#202124";
    mc.lineWidth = 1;
    mc.strokeRect(x0 + 0.5, 0.5, Math.max(2, x1 - x0) - 1, h - 1);
    minimap.dataset.window = Math.round(x0) + "-" + Math.round(x1);
  }
  if (minimap) {
    // Dragging moves the window (its width kept); a click centres it.
    let dragging = false;
    const moveTo = (ev) => {
      const r = minimap.getBoundingClientRect(), total = Math.max(1, view.summary.duration_ns);
      const centre = ((ev.clientX - r.left) / r.width) * total;
      win.start = Math.min(Math.max(0, centre - win.dur / 2), Math.max(0, total - win.dur));
      draw();
    };
    minimap.addEventListener("mousedown", (ev) => { if (!view) return; dragging = true; moveTo(ev); });
    // From the keyboard: ← and → move the window by a tenth of its width.
    minimap.tabIndex = 0;
    minimap.addEventListener("keydown", (ev) => {
      if (!view || (ev.key !== "ArrowLeft" && ev.key !== "ArrowRight")) return;
      ev.preventDefault();
      const total = Math.max(1, view.summary.duration_ns), step = win.dur / 10 * (ev.key === "ArrowLeft" ? -1 : 1);
      win.start = Math.min(Math.max(0, win.start + step), Math.max(0, total - win.dur));
      draw();
    });
    window.addEventListener("mousemove", (ev) => { if (dragging) moveTo(ev); });
    window.addEventListener("mouseup", () => { dragging = false; });
  }

  function draw() {
    drawRuler();
    drawMinimap();
    const w = canvas.clientWidth;
    ctx.clearRect(0, 0, w, canvas.clientHeight);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (const i of visible) {
      const sp = spans[i];
      let x0 = xOf(sp.offset_ns, w), x1 = xOf(sp.offset_ns + sp.duration_ns, w);
      if (x1 < 0 || x0 > w) continue;
      x0 = Math.max(x0, -1);
      x1 = Math.min(x1, w + 1);
      const bw = Math.max(1, x1 - x0), y = rowOf[i] * ROW + 2;
      ctx.fillStyle = colorOf(sp);
      ctx.fillRect(x0, y, bw, ROW - 3);
      if (sp.status_code === 2) {
        ctx.strokeStyle = "#b3261e";
        ctx.lineWidth = 2;
        ctx.strokeRect(x0 + 1, y + 1, bw - 2, ROW - 5);
      }
      if (sp.critical && !sp.placeholder) {
        ctx.fillStyle = "#202124";
        ctx.fillRect(x0, y + ROW - 5, bw, 2);
      }
      if (i === selected || i === hover) {
        ctx.strokeStyle = i === selected ? "#1a73e8" : "#202124";
        ctx.lineWidth = 2;
        ctx.strokeRect(x0, y, bw, ROW - 3);
      }
      if (bw > 40) {
        const label = (collapsed.has(i) ? "▸ " : "") + (sp.placeholder ? sp.name : sp.service + " " + sp.name) + (sp.skew_ns ? " ~" : "");
        ctx.save();
        ctx.beginPath();
        ctx.rect(x0, y, bw, ROW - 3);
        ctx.clip();
        ctx.fillStyle = sp.language === "python" || sp.language === "javascript" || sp.placeholder ? "#1f1f1f" : "#fff";
        ctx.fillText(label, Math.max(x0, 0) + 4, y + (ROW - 3) / 2);
        ctx.restore();
      }
    }
  }

  function spanAt(px, py) {
    const row = rows[Math.floor((py - 2) / ROW)];
    if (!row) return -1;
    const w = canvas.clientWidth;
    const ns = win.start + (px / w) * win.dur;
    const slack = (3 / w) * win.dur; // a few pixels, so 1-px spans can be hit
    let best = -1;
    for (const i of row) {
      const sp = spans[i];
      if (sp.offset_ns - slack <= ns && ns <= sp.offset_ns + sp.duration_ns + slack) best = i;
      if (sp.offset_ns - slack > ns) break;
    }
    return best;
  }

  function showTooltip(i, ev) {
    if (i < 0) { tooltip.hidden = true; return; }
    const sp = spans[i];
    tooltip.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = sp.placeholder ? sp.name : sp.service + " · " + sp.name;
    const lines = [
      sp.placeholder ? "span never received (" + (sp.span_id || "trace") + ")" : "language: " + (sp.language || "unknown") + (sp.language_from ? " (" + sp.language_from + ")" : ""),
      "duration " + fmtDur(sp.duration_ns) + " at +" + fmtDur(sp.offset_ns),
    ];
    if (sp.status_code === 2) lines.push("ERROR " + (sp.status_message || ""));
    if (sp.critical && !sp.placeholder) lines.push("on the critical path");
    if (sp.orphan) lines.push("orphan: its parent never arrived");
    if (sp.skew_ns) lines.push("moved " + fmtDur(Math.abs(sp.skew_ns)) + (sp.skew_ns < 0 ? " earlier" : " later") + " by skew adjustment");
    tooltip.append(title);
    for (const l of lines) {
      const d = document.createElement("div");
      d.textContent = l;
      tooltip.append(d);
    }
    tooltip.hidden = false;
    const r = canvas.getBoundingClientRect();
    tooltip.style.left = Math.min(ev.clientX - r.left + 12, r.width - 260) + "px";
    tooltip.style.top = ev.clientY - r.top + 16 + "px";
  }

  // A span's details: a small table, or past VIRTUAL rows a virtualised
  // list (fixed-height rows, only those in view are in the DOM), so a span
  // with thousands of attributes or events (limits raised in
  // trace.limits) costs a screenful of elements. Long values are folded to
  // FOLD characters with a "show all" button either way.
  const VIRTUAL = 50, VROW = 22, VSHOWN = 16;

  function fold(text, full) {
    // full(text): where the whole value goes when asked for.
    const frag = document.createDocumentFragment();
    if (text.length <= FOLD) { frag.append(text); return frag; }
    frag.append(text.slice(0, FOLD) + "… ");
    const more = document.createElement("button");
    more.type = "button";
    more.className = "show-all";
    more.textContent = "show all (" + text.length + " characters)";
    more.addEventListener("click", () => full(text));
    frag.append(more);
    return frag;
  }

  function valueText(v) { return typeof v === "string" ? v : JSON.stringify(v); }

  // cell fills a value's cell: a function makes its own elements (a link),
  // anything else is text, folded.
  function cell(c, v, full) {
    if (typeof v === "function") c.append(v());
    else c.append(fold(valueText(v), full));
  }

  // details(title, rows): rows are [key, value] pairs, in order.
  function details(title, rows) {
    if (!rows.length) return null;
    const box = document.createElement("div");
    const h = document.createElement("h3");
    h.textContent = rows.length > VIRTUAL ? title + " (" + rows.length + ")" : title;
    box.append(h);
    if (rows.length <= VIRTUAL) {
      const t = document.createElement("table");
      for (const [k, v] of rows) {
        const tr = document.createElement("tr");
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = k;
        const td = document.createElement("td");
        cell(td, v, (text) => { td.textContent = text; });
        tr.append(th, td);
        t.append(tr);
      }
      box.append(t);
      return box;
    }
    // Virtualised: one line per row, the whole value shown below on demand.
    const list = document.createElement("div");
    list.className = "vlist";
    list.tabIndex = 0;
    list.setAttribute("role", "table");
    list.setAttribute("aria-rowcount", String(rows.length));
    list.dataset.rows = String(rows.length);
    const height = VSHOWN * VROW;
    list.style.height = height + "px";
    const inner = document.createElement("div");
    inner.style.height = rows.length * VROW + "px";
    list.append(inner);
    const full = document.createElement("pre");
    full.className = "vfull";
    full.hidden = true;
    // Rows still in view keep their elements (a button being clicked is
    // not replaced under the pointer); the others are dropped or made.
    const drawn = new Map();
    const render = () => {
      const first = Math.max(0, Math.floor(list.scrollTop / VROW) - 4);
      const last = Math.min(rows.length, Math.ceil((list.scrollTop + height) / VROW) + 4);
      for (const [i, row] of drawn) if (i < first || i >= last) { row.remove(); drawn.delete(i); }
      for (let i = first; i < last; i++) {
        if (drawn.has(i)) continue;
        const [k, v] = rows[i];
        const row = document.createElement("div");
        row.className = "vrow";
        row.setAttribute("role", "row");
        row.setAttribute("aria-rowindex", String(i + 1));
        row.style.top = i * VROW + "px";
        const kc = document.createElement("span");
        kc.className = "vkey";
        kc.textContent = k;
        kc.title = k;
        const vc = document.createElement("span");
        vc.className = "vval";
        row.append(kc, vc);
        if (typeof v === "function") vc.append(v());
        else {
          // One line, cut by the row's width; the whole value shows below
          // the list on "show all" (long values) or a click on the row.
          const text = valueText(v);
          const showFull = () => { full.textContent = k + " = " + text; full.hidden = false; };
          vc.textContent = text.length > FOLD ? text.slice(0, FOLD) + "…" : text;
          vc.title = "click (or Enter) to show the whole value";
          vc.tabIndex = 0;
          vc.addEventListener("click", showFull);
          vc.addEventListener("keydown", (e) => { if (e.key === "Enter") showFull(); });
          if (text.length > FOLD) {
            const more = document.createElement("button");
            more.type = "button";
            more.className = "show-all";
            more.textContent = "show all (" + text.length + " characters)";
            more.addEventListener("click", showFull);
            row.append(more);
          }
        }
        inner.append(row);
        drawn.set(i, row);
      }
    };
    let queued = false;
    list.addEventListener("scroll", () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => { queued = false; render(); });
    });
    render();
    box.append(list, full);
    return box;
  }

  function entries(obj) {
    return Object.keys(obj || {}).sort().map((k) => [k, obj[k]]);
  }

  async function showLean(i) {
    // A large trace's spans past trace.max_detail_spans come without their
    // attributes, events and links: read them now, once.
    const sp = spans[i];
    detail.replaceChildren(document.createTextNode("Loading the span's details…"));
    try {
      const one = await triad.api("GET", "/api/v1/traces/" + encodeURIComponent(view.summary.trace_id) + "/spans/" + encodeURIComponent(sp.span_id));
      const full = one.spans[0];
      Object.assign(sp, { attributes: full.attributes, events: full.events, links: full.links, dropped: full.dropped, resource: full.resource, lean: false });
      Object.assign(view.resources, one.resources || {});
    } catch (e) {
      detail.replaceChildren(document.createTextNode("The span's details could not be read: " + e.message));
      return;
    }
    if (selected === i) showDetail(i);
  }

  function showDetail(i) {
    detail.replaceChildren();
    if (i < 0) return;
    const sp = spans[i];
    if (sp.lean) { showLean(i); return; }
    const h = document.createElement("h3");
    h.textContent = sp.placeholder ? sp.name : sp.service + " · " + sp.name;
    const facts = {
      "span id": sp.span_id || "—", "parent span id": sp.parent_span_id || "—", language: (sp.language || "unknown") + (sp.language_from ? " (" + sp.language_from + ")" : ""),
      duration: fmtDur(sp.duration_ns), "starts at": "+" + fmtDur(sp.offset_ns), status: ["unset", "ok", "error"][sp.status_code] + (sp.status_message ? ": " + sp.status_message : ""),
    };
    if (sp.scope) facts.scope = sp.scope.name + (sp.scope.version ? " " + sp.scope.version : "");
    if (sp.dropped) facts.dropped = sp.dropped.attributes + " attributes, " + sp.dropped.events + " events, " + sp.dropped.links + " links (over the sender's or triad's limits)";
    detail.append(h);
    // Stored content someone else wrote in a shape triad cannot read is
    // named, with an excerpt, rather than shown as if it were attributes.
    if (sp.garbled) {
      const g = details("Could not be read", entries(sp.garbled));
      g.classList.add("garbled");
      detail.append(g);
    }
    for (const part of [details("Span", Object.entries(facts)), details("Attributes", entries(sp.attributes)), details("Resource", entries(view.resources[sp.resource]))]) if (part) detail.append(part);
    if (sp.events && sp.events.length) {
      const at = view.summary.start_unix_nano + sp.offset_ns;
      detail.append(details("Events", sp.events.map((e) => (e && typeof e === "object" ? ["+" + fmtDur(Math.max(0, (Number(e.time_unix_nano) || at) - at)) + " " + e.name, e.attributes || {}] : ["(not an event)", e]))));
    }
    if (sp.links && sp.links.length) {
      // Each link opens the linked trace with the linked span selected.
      detail.append(details("Links", sp.links.map((l, n) => ["link " + (n + 1), !(l && typeof l === "object") ? l : () => {
        const frag = document.createDocumentFragment();
        const a = document.createElement("a");
        a.href = "#" + l.trace_id + "/" + l.span_id;
        a.textContent = l.trace_id + " / " + l.span_id;
        frag.append(a);
        if (l.attributes && Object.keys(l.attributes).length) frag.append(" " + JSON.stringify(l.attributes));
        return frag;
      }])));
    }
  }

  function select(i, zoom) {
    selected = i;
    if (zoom && i >= 0) {
      const sp = spans[i];
      const pad = sp.duration_ns * 0.02;
      win = { start: sp.offset_ns - pad, dur: Math.max(1, sp.duration_ns + 2 * pad) };
    }
    showDetail(i);
    draw();
  }
  function toggle(i) {
    if (i < 0 || !spans.some((s) => s.parent === i)) return;
    if (collapsed.has(i)) collapsed.delete(i); else collapsed.add(i);
    layout();
    draw();
  }
  function resetZoom() {
    win = { start: 0, dur: Math.max(1, view.summary.duration_ns) };
    draw();
  }

  if (form) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      load(idInput.value.trim().toLowerCase());
    });
  }
  colorBy.addEventListener("change", () => { if (view) { renderSummary(); draw(); } });
  canvas.addEventListener("mousemove", (e) => {
    const r = canvas.getBoundingClientRect();
    const i = spanAt(e.clientX - r.left, e.clientY - r.top);
    if (i !== hover) { hover = i; draw(); }
    showTooltip(i, e);
  });
  canvas.addEventListener("mouseleave", () => { hover = -1; tooltip.hidden = true; draw(); });
  canvas.addEventListener("click", (e) => {
    const r = canvas.getBoundingClientRect();
    const i = spanAt(e.clientX - r.left, e.clientY - r.top);
    if (e.shiftKey) toggle(i); else select(i, i >= 0);
  });
  canvas.addEventListener("dblclick", resetZoom);
  canvas.addEventListener("keydown", (e) => {
    if (!view) return;
    const sp = spans[selected];
    let next = -1;
    switch (e.key) {
      case "Escape": resetZoom(); return;
      case "+": case "-": { // zoom in or out around the window's centre
        const total = Math.max(1, view.summary.duration_ns), centre = win.start + win.dur / 2;
        win.dur = Math.min(total, Math.max(1, win.dur * (e.key === "+" ? 0.5 : 2)));
        win.start = Math.min(Math.max(0, centre - win.dur / 2), Math.max(0, total - win.dur));
        e.preventDefault();
        draw();
        return;
      }
      case "c": toggle(selected); return;
      case "Enter": select(selected, true); return;
      case "ArrowUp": next = sp ? sp.parent : 0; break;
      case "ArrowDown": next = sp ? spans.findIndex((s) => s.parent === selected) : 0; if (collapsed.has(selected)) next = -1; break;
      case "ArrowLeft": case "ArrowRight": {
        const row = sp ? rows[rowOf[selected]] : rows[0];
        const at = row.indexOf(selected);
        next = row[at + (e.key === "ArrowLeft" ? -1 : 1)] ?? -1;
        break;
      }
      default: return;
    }
    e.preventDefault();
    if (next >= 0) select(next, false);
  });
  window.addEventListener("resize", () => { if (view) { layout(); draw(); } });
  if (embedded) show(JSON.parse(embedded.textContent));
  else if (form && typeof triad !== "undefined") triad.start("Traces", () => { if (idInput.value) load(idInput.value); searchForm(); serviceGraph(); });

  // The service graph: services of recent spans in columns by call depth,
  // coloured by language, each edge labelled with its calls and error
  // rate. Drawn as SVG from GET /api/v1/services/graph.
  async function serviceGraph() {
    const svg = $("graph"), st = $("graph-status");
    if (!svg) return;
    let g;
    try {
      g = await triad.api("GET", "/api/v1/services/graph");
    } catch (e) {
      st.textContent = "The service graph could not be read: " + e.message;
      return;
    }
    const NS = "http://www.w3.org/2000/svg";
    const mk = (tag, attrs, text) => {
      const e = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
      if (text !== undefined) e.textContent = text;
      return e;
    };
    // Columns: breadth-first from the services nobody calls.
    const called = new Set(g.edges.filter((e) => e.from !== e.to).map((e) => e.to));
    const depth = new Map();
    const queue = g.nodes.filter((n) => !called.has(n.service)).map((n) => n.service);
    // A group of services only called within a cycle starts from the one
    // that calls out most for the calls it receives; repeated until every
    // service has a column.
    const net = new Map(g.nodes.map((n) => [n.service, 0]));
    for (const e of g.edges) { net.set(e.from, net.get(e.from) + e.calls); net.set(e.to, net.get(e.to) - e.calls); }
    const walk = (from) => {
      for (const s of queue.slice(from)) if (!depth.has(s)) depth.set(s, 0);
      for (let q = from; q < queue.length; q++) {
        for (const e of g.edges) {
          if (e.from === queue[q] && !depth.has(e.to)) { depth.set(e.to, depth.get(e.from) + 1); queue.push(e.to); }
        }
      }
    };
    walk(0);
    for (;;) {
      const left = g.nodes.filter((n) => !depth.has(n.service)).sort((a, b) => net.get(b.service) - net.get(a.service));
      if (!left.length) break;
      const from = queue.length;
      queue.push(left[0].service);
      walk(from);
    }
    const cols = [];
    for (const n of g.nodes) (cols[depth.get(n.service)] ||= []).push(n);
    const W = 190, H = 34, GX = 110, GY = 26;
    const pos = new Map();
    cols.forEach((col, c) => col.forEach((n, r) => pos.set(n.service, { x: 70 + c * (W + GX), y: 10 + r * (H + GY) })));
    const width = 80 + cols.length * (W + GX), height = 50 + Math.max(1, ...cols.map((c) => c.length)) * (H + GY);
    svg.replaceChildren();
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    const defs = mk("defs", {});
    const marker = mk("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
    marker.append(mk("path", { d: "M0,0 L10,5 L0,10 z", fill: "#5f6368" }));
    defs.append(marker);
    svg.append(defs);
    for (const e of g.edges) {
      const a = pos.get(e.from), b = pos.get(e.to);
      if (!a || !b) continue;
      const rate = e.calls ? (100 * e.errors) / e.calls : 0;
      const grp = mk("g", { class: "edge", "data-from": e.from, "data-to": e.to, "data-calls": e.calls, "data-errors": e.errors });
      // Forward edges (to a later column) run right to left sides, a little
      // above the middle, labelled above; edges back to an earlier column
      // (the other half of services calling each other) run from the
      // caller's left to the callee's right, below the middle, dipping
      // under, labelled below; within one column, around the right side.
      // So A → B and B → A never share a line or a label.
      const dir = Math.sign(depth.get(e.to) - depth.get(e.from));
      let d, lx, ly;
      if (dir > 0) {
        const x1 = a.x + W, y1 = a.y + H * 0.4, x2 = b.x, y2 = b.y + H * 0.4;
        d = `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}`;
        lx = (x1 + x2) / 2; ly = (y1 + y2) / 2 - 6;
      } else if (dir < 0) {
        const x1 = a.x, y1 = a.y + H * 0.8, x2 = b.x + W, y2 = b.y + H * 0.8;
        d = `M${x1},${y1} C${x1 - GX / 2},${y1 + 22} ${x2 + GX / 2},${y2 + 22} ${x2},${y2}`;
        lx = (x1 + x2) / 2; ly = (y1 + y2) / 2 + 26;
      } else {
        // Within a column: downwards around the right side, upwards
        // around the left.
        const side = a.y < b.y ? 1 : -1, ex = (p) => (side > 0 ? p.x + W : p.x);
        const x1 = ex(a), y1 = a.y + H / 2, x2 = ex(b), y2 = b.y + H / 2;
        d = `M${x1},${y1} C${x1 + side * GX / 2},${y1} ${x2 + side * GX / 2},${y2} ${x2},${y2}`;
        lx = x1 + side * (GX / 2 - 20); ly = (y1 + y2) / 2;
      }
      grp.append(mk("title", {}, e.from + " → " + e.to + ": " + e.calls + " calls, " + e.errors + " with errors"));
      grp.append(mk("path", { d, fill: "none", stroke: rate > 0 ? "#b3261e" : "#5f6368", "stroke-width": 1.5, "marker-end": "url(#arrow)" }));
      grp.append(mk("text", { x: lx, y: ly, "text-anchor": "middle", fill: "#3c4043" }, e.calls + " calls" + (e.errors ? " · " + rate.toFixed(1) + "% errors" : "")));
      svg.append(grp);
    }
    for (const n of g.nodes) {
      const p = pos.get(n.service);
      const grp = mk("g", { class: "node", "data-service": n.service, "data-language": n.language || "" });
      grp.append(mk("rect", { x: p.x, y: p.y, width: W, height: H, rx: 6, fill: LANG[n.language] || hashColor(n.language || "?") }));
      grp.append(mk("text", { x: p.x + 8, y: p.y + H / 2 + 4, fill: n.language === "python" || n.language === "javascript" ? "#1f1f1f" : "#fff" },
        n.service + " · " + (n.language || "unknown")));
      svg.append(grp);
    }
    // Labels of edges that cross the same stretch are moved apart (down,
    // a line at a time) so each count stays readable.
    const placed = [];
    for (const t of svg.querySelectorAll("g.edge text")) {
      for (let tries = 0; tries < 12; tries++) {
        const b = t.getBBox();
        if (!placed.some((p) => b.x < p.x + p.width && p.x < b.x + b.width && b.y < p.y + p.height && p.y < b.y + b.height)) break;
        t.setAttribute("y", Number(t.getAttribute("y")) + b.height + 1);
      }
      placed.push(t.getBBox());
    }
    st.textContent = g.nodes.length ? "From the " + g.spans + " most recent spans of the last 24 h." : "No spans in the last 24 h.";
  }

  // Compare: the shown trace (A) and another (B) side by side by call
  // path; rows only one of them has are tinted.
  const compareForm = $("compare-form");
  if (compareForm) compareForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = $("compare"), other = $("compare-id").value.trim().toLowerCase();
    const { el, api } = triad;
    try {
      const c = await api("GET", "/api/v1/traces/" + view.summary.trace_id + "/compare/" + encodeURIComponent(other));
      const diff = (a, b) => (a && b ? (b >= a ? "+" : "−") + fmtDur(Math.abs(b - a)) : "");
      box.replaceChildren(
        el("p", {}, "A " + fmtDur(c.a.duration_ns) + ", " + c.a.spans + " spans · B " + fmtDur(c.b.duration_ns) + ", " + c.b.spans + " spans · " +
          c.only_a_spans + " spans only in A, " + c.only_b_spans + " only in B"),
        el("table", { id: "compare-table" },
          el("thead", {}, el("tr", {}, ["Position", "A spans", "B spans", "A time", "B time", "B − A"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, c.rows.map((r) => el("tr", { className: r.count_b === 0 ? "only-a" : r.count_a === 0 ? "only-b" : "" },
            el("td", {}, "\u00a0\u00a0".repeat(r.depth) + (r.service ? r.service + " · " : "") + r.name),
            el("td", {}, String(r.count_a)), el("td", {}, String(r.count_b)),
            el("td", {}, r.count_a ? fmtDur(r.duration_a_ns) : "—"), el("td", {}, r.count_b ? fmtDur(r.duration_b_ns) : "—"),
            el("td", {}, diff(r.duration_a_ns, r.duration_b_ns)))))));
    } catch (e) {
      box.replaceChildren(el("p", { className: "error" }, e.message));
    }
  });

  // scatter plots the found traces, duration against start time (as
  // Jaeger's search does): red dots had errors; a dot opens its trace.
  function scatter(found) {
    const svg = $("scatter");
    if (!svg) return;
    svg.hidden = !found.length;
    svg.replaceChildren();
    if (!found.length) return;
    const NS = "http://www.w3.org/2000/svg";
    const w = svg.clientWidth || 800, h = 160, pad = 28;
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    const t0 = Math.min(...found.map((f) => f.start_unix_nano)), t1 = Math.max(...found.map((f) => f.start_unix_nano));
    const dmax = Math.max(1, ...found.map((f) => f.duration_ns));
    const x = (f) => pad + ((f.start_unix_nano - t0) / Math.max(1, t1 - t0)) * (w - 2 * pad);
    const y = (f) => h - pad + 8 - (f.duration_ns / dmax) * (h - 2 * pad);
    const label = (tx, ty, text, anchor) => {
      const t = document.createElementNS(NS, "text");
      for (const [k, v] of Object.entries({ x: tx, y: ty, "text-anchor": anchor, fill: "#5f6368", "font-size": 11 })) t.setAttribute(k, v);
      t.textContent = text;
      svg.append(t);
    };
    label(4, 14, fmtDur(dmax), "start");
    label(4, h - 6, new Date(t0 / 1e6).toLocaleTimeString(), "start");
    label(w - 4, h - 6, new Date(t1 / 1e6).toLocaleTimeString(), "end");
    for (const f of found) {
      const c = document.createElementNS(NS, "circle");
      for (const [k, v] of Object.entries({ cx: x(f), cy: y(f), r: 3 + Math.min(6, Math.log10(f.spans + 1) * 2), fill: f.errors ? "#d93025" : "#1a73e8", "fill-opacity": 0.7, "data-trace": f.trace_id })) c.setAttribute(k, v);
      const title = document.createElementNS(NS, "title");
      title.textContent = f.root_service + " · " + f.root_name + " — " + fmtDur(f.duration_ns) + ", " + f.spans + " spans" + (f.errors ? ", " + f.errors + " errors" : "");
      c.append(title);
      c.setAttribute("tabindex", "0");
      c.setAttribute("role", "link");
      c.setAttribute("aria-label", "trace " + f.trace_id + ": " + title.textContent);
      c.addEventListener("click", () => { location.hash = "#" + f.trace_id; });
      c.addEventListener("keydown", (e) => { if (e.key === "Enter") location.hash = "#" + f.trace_id; });
      svg.append(c);
    }
  }

  // Search: traces with a span matching every filter, newest first; a
  // result loads its timeline.
  function searchForm() {
    const sf = $("search"), found = $("found");
    if (!sf) return;
    const { el, api, table } = triad;
    const svc = $("service"), op = $("operation");
    const fill = (sel, names) => sel.replaceChildren(el("option", { value: "" }, "any"), ...names.map((n) => el("option", { value: n }, n)));
    // The search is a permalink: its fields are the page's query (s.*),
    // restored on arrival, and the filter of the export links.
    const url = new URLSearchParams(location.search);
    for (const [k, v] of url) {
      const f = k.startsWith("s.") && sf.elements[k.slice(2)];
      if (!f || f === svc || f === op) continue;
      if (f.type === "checkbox") f.checked = v === "on";
      else f.value = v;
    }
    const loadOps = () => {
      fill(op, []);
      if (!svc.value) return Promise.resolve();
      return api("GET", "/api/v1/services/" + encodeURIComponent(svc.value) + "/operations?since=168h").then((r) => fill(op, r.operations)).catch(() => {});
    };
    // The dropdowns list what sent spans in the last 7 days.
    const ready = api("GET", "/api/v1/services?since=168h").then(async (r) => {
      fill(svc, r.services);
      if (url.get("s.service")) {
        svc.value = url.get("s.service");
        await loadOps();
        if (url.get("s.operation")) op.value = url.get("s.operation");
      }
    }).catch(() => {});
    svc.addEventListener("change", loadOps);
    sf.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const page = new URLSearchParams();
      for (const [k, v] of new FormData(sf)) if (v) page.set("s." + k, String(v));
      history.replaceState(null, "", "?" + page + location.hash);
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(sf)) {
        if (!v) continue;
        if (k === "since") q.set("from", new Date(Date.now() - Number(v) * 3600e3).toISOString().replace(/\.\d+Z$/, "Z"));
        else if (k === "error") q.set("error", "true");
        else q.set(k, String(v).trim());
      }
      q.set("limit", "50");
      for (const f of ["csv", "ndjson"]) {
        const x = new URLSearchParams(q);
        x.set("format", f);
        $("search-" + f).href = "/api/v1/traces?" + x;
      }
      try {
        const res = await api("GET", "/api/v1/traces?" + q);
        found.replaceChildren(res.traces.length ? table([
          ["Trace", (f) => el("a", { href: "#" + f.trace_id }, f.trace_id)],
          ["Root", (f) => f.root_service + " · " + f.root_name], ["Start", (f) => new Date(f.start_unix_nano / 1e6).toLocaleString()],
          ["Duration", (f) => fmtDur(f.duration_ns)], ["Spans", (f) => String(f.spans)], ["Errors", (f) => String(f.errors)],
          ["Services", (f) => f.services.join(", ")],
        ], res.traces, { id: "found-table" }) : el("p", { className: "empty" }, "No trace matches. Services send spans over OTLP to triad (http://…:4318/v1/traces, gRPC :4317); widen the time or clear the filters."));
        scatter(res.traces);
      } catch (e) {
        found.replaceChildren(el("p", { className: "error" }, e.message));
      }
    });
    // On arrival the page lists the most recent traces (or the search
    // the URL names, once the dropdowns hold its values).
    ready.then(() => sf.requestSubmit());
  }
})();
