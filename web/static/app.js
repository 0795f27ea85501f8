// Overview: polls /-/ready and renders one row per dependency. Values are set
// with textContent only, so nothing from the server is interpreted as HTML.
"use strict";
(function () {
  const tbody = document.querySelector("#deps tbody");
  const overall = document.getElementById("overall");
  const updated = document.getElementById("updated");

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function render(rep) {
    overall.textContent = rep.status.replace("_", " ");
    overall.className = "badge " + rep.status;
    tbody.replaceChildren();
    for (const name of Object.keys(rep.dependencies).sort()) {
      const d = rep.dependencies[name];
      const tr = document.createElement("tr");
      tr.className = d.status;
      tr.dataset.dependency = name;
      cell(tr, name);
      cell(tr, d.status, "state");
      cell(tr, d.version || "—");
      cell(tr, d.status === "up" ? d.latency_ms.toFixed(1) + " ms" : "—");
      cell(tr, d.since ? new Date(d.since).toLocaleTimeString() : "—");
      cell(tr, d.error || "", "detail");
      tbody.appendChild(tr);
    }
    updated.textContent = "Updated " + new Date().toLocaleTimeString();
  }

  async function tick() {
    try {
      const res = await fetch("/-/ready", { cache: "no-store" });
      render(await res.json());
    } catch (e) {
      overall.textContent = "triad unreachable";
      overall.className = "badge unreachable";
    }
  }
  tick();
  setInterval(tick, 1000);
})();
