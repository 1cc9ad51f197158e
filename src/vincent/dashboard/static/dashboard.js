/* The dashboard's behaviour: live updates over server-sent events, and the page's actions.
   No polling: everything after the first render arrives on /dashboard/stream. */
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const view = document.getElementById("rules-view");
  const charts = new Map();

  function localTimes(root) {
    for (const node of (root || document).querySelectorAll("[data-ts]")) {
      const when = new Date(node.dataset.ts);
      if (isNaN(when)) continue;
      if (node.dataset.relative) {
        const s = Math.round((when - Date.now()) / 1000);
        node.textContent = s > 0 ? `in ${s >= 120 ? Math.round(s / 60) + " min" : s + " s"}` : "expired";
        node.title = when.toLocaleString();
      } else {
        node.textContent = when.toLocaleString();
      }
    }
  }

  function flash(message, kind) {
    const box = document.getElementById("flash");
    box.textContent = message;
    box.className = "flash " + (kind || "ok");
    box.hidden = false;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    let payload = {};
    try { payload = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok || !payload.success) {
      const error = (payload && payload.error) || {};
      let message = error.message || `HTTP ${response.status}`;
      if (Array.isArray(error.details) && error.details.length) {
        message += ": " + error.details
          .map((issue) => `${(issue.path || []).join(".")} ${issue.message || ""}`.trim())
          .join("; ");
      }
      throw new Error(message);
    }
    return payload.data;
  }

  // ------------------------------------------------------------------ charts

  function chartFor(tokenId, label) {
    let chart = charts.get(tokenId);
    if (chart || !label) return chart;
    const box = document.getElementById("charts");
    if (!box) return undefined;
    box.querySelector(".charts-empty")?.remove();
    const figure = document.createElement("figure");
    figure.className = "card chart";
    figure.dataset.token = tokenId;
    figure.innerHTML = '<figcaption><strong></strong> <span class="legend"></span></figcaption><div class="plot"></div>';
    figure.querySelector("strong").textContent = label;
    box.prepend(figure);
    chart = new window.PriceChart(figure, { tokenId, points: [], rules: [] });
    charts.set(tokenId, chart);
    // The prices seen before this page knew the token: one request, then the stream.
    fetch(`/dashboard/charts/${encodeURIComponent(tokenId)}`, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .then((payload) => { if (payload && payload.success) chart.merge(payload.data); });
    return chart;
  }

  const data = document.getElementById("chart-data");
  if (data) {
    for (const spec of JSON.parse(data.textContent)) {
      const figure = document.querySelector(`figure.chart[data-token="${CSS.escape(spec.tokenId)}"]`);
      if (figure) charts.set(spec.tokenId, new window.PriceChart(figure, spec));
    }
  }

  // ------------------------------------------------------------------ rules table

  // A live update re-renders a row; a trigger the user is typing there is kept (else the
  // form would send the server's value, or the user's edit would silently vanish).
  function keepTyping(existing, row) {
    const typed = existing.querySelector("input[name=triggerPrice]");
    const fresh = row.querySelector("input[name=triggerPrice]");
    if (!typed || !fresh || typed.value === typed.defaultValue) return;
    fresh.value = typed.value;
    if (document.activeElement === typed) {
      queueMicrotask(() => fresh.focus());
    }
  }

  function placeRow(rule) {
    if (!view) return;
    const only = view.dataset.onlyRule;
    if (only && only !== rule.id) return;
    const filter = view.dataset.filter;
    const existing = document.getElementById("rule-" + rule.id);
    const template = document.createElement("template");
    template.innerHTML = rule.html.trim();
    const row = template.content.firstElementChild;
    if (filter && rule.status !== filter) {
      existing?.remove();
      return;
    }
    if (existing) {
      keepTyping(existing, row);
      existing.replaceWith(row);
    } else {
      const table = document.querySelector(`table.rules[data-secret="${CSS.escape(rule.secretId)}"]`);
      if (!table) return;
      table.tBodies[0].prepend(row);
      table.parentElement.querySelector(".empty")?.setAttribute("hidden", "");
    }
    localTimes(row);
  }

  // A trailing stop in a moving market changes every second: its timeline is fetched at most
  // once per TIMELINE_EVERY_MS (the last change always gets its fetch).
  const TIMELINE_EVERY_MS = 3000;
  let timelineDue = 0;
  let timelineTimer = null;

  function refreshTimeline(ruleId) {
    const box = document.getElementById("timeline-box");
    if (!box || box.dataset.rule !== ruleId || timelineTimer) return;
    const wait = Math.max(0, timelineDue - Date.now());
    timelineTimer = setTimeout(() => {
      timelineTimer = null;
      timelineDue = Date.now() + TIMELINE_EVERY_MS;
      fetchTimeline(box, ruleId);
    }, wait);
  }

  async function fetchTimeline(box, ruleId) {
    const response = await fetch(`/dashboard/rules/${encodeURIComponent(ruleId)}/timeline`, { credentials: "same-origin" });
    if (response.ok) {
      box.innerHTML = await response.text();
      localTimes(box);
    }
  }

  function onRule(rule) {
    placeRow(rule);
    const only = view?.dataset.onlyRule;
    const live = rule.status === "ACTIVE" || rule.status === "PENDING_APPROVAL";
    const chart = chartFor(rule.tokenId, (!only && live) || only === rule.id ? rule.label : null);
    if (chart) chart.setRule(rule.line);
    refreshTimeline(rule.id);
  }

  // ------------------------------------------------------------------ actions

  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.move");
    if (!form) return;
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const value = form.elements.triggerPrice.value;
      const result = await post(`/dashboard/rules/${encodeURIComponent(form.dataset.rule)}/trigger`,
        { triggerPrice: value === "" ? null : Number(value) });
      onRuleHtml(result);
      flash(`Trigger moved to ${value}.`);
    } catch (error) {
      flash(error.message, "error");
      button.disabled = false;
    }
  });

  function onRuleHtml(result) {
    const existing = document.getElementById("rule-" + result.id);
    if (!existing) return;
    const template = document.createElement("template");
    template.innerHTML = result.html.trim();
    existing.replaceWith(template.content.firstElementChild);
    localTimes(document.getElementById("rule-" + result.id));
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.cancel, button.approve, button.deny");
    if (!button) return;
    event.preventDefault();
    button.disabled = true;
    try {
      if (button.classList.contains("cancel")) {
        onRuleHtml(await post(`/dashboard/rules/${encodeURIComponent(button.dataset.rule)}/cancel`));
        flash("Rule canceled.");
      } else {
        const verb = button.classList.contains("approve") ? "approve" : "deny";
        const result = await post(`/dashboard/approvals/${encodeURIComponent(button.dataset.approval)}/${verb}`);
        document.getElementById("approval-" + button.dataset.approval)?.remove();
        if (verb === "deny") flash("Denied: the action will not execute.");
        else if (result.result) flash(`Approved and executed: order ${result.result.orderId || "(paper)"}.`);
        else flash(`Approved, but the sell failed: ${result.error.message}`, "error");
      }
    } catch (error) {
      flash(error.message, "error");
      button.disabled = false;
    }
  });

  // ------------------------------------------------------------------ live updates

  const live = document.getElementById("live");
  if (window.EventSource && csrf) {
    // From the entry the page was rendered at: what was published while it loaded comes too.
    const after = document.querySelector('meta[name="stream-after"]')?.content;
    const source = new EventSource("/dashboard/stream" + (after ? `?after=${encodeURIComponent(after)}` : ""));
    source.onopen = () => { live?.classList.add("on"); document.body.dataset.live = "open"; };
    source.onerror = () => { live?.classList.remove("on"); document.body.dataset.live = "closed"; };
    source.addEventListener("price", (event) => {
      const message = JSON.parse(event.data);
      charts.get(message.tokenId)?.addPoint(message.point);
    });
    source.addEventListener("rule", (event) => onRule(JSON.parse(event.data)));
    source.addEventListener("approvals", (event) => {
      const message = JSON.parse(event.data);
      const box = document.getElementById("approvals-box");
      if (!box) return;
      box.innerHTML = message.html;
      const count = document.getElementById("approvals-count");
      if (count) count.textContent = String(message.count);
      localTimes(box);
    });
    source.addEventListener("health", (event) => {
      const box = document.getElementById("health-box");
      if (box) { box.innerHTML = JSON.parse(event.data).html; localTimes(box); }
    });
    source.addEventListener("resync", () => window.location.reload());
  }

  for (const select of document.querySelectorAll("select.autosubmit")) {
    select.addEventListener("change", () => select.form.submit());
  }
  window.addEventListener("resize", () => { for (const chart of charts.values()) chart.schedule(); });
  localTimes(document);
})();
