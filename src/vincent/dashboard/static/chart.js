/* A small SVG price chart for one token: price line, rule triggers, fires. No library. */
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const H = 240, PAD = { l: 48, r: 140, t: 16, b: 24 };
  const MIN_SPAN_MS = 60 * 1000;
  const COLORS = { STOP_LOSS: "#e5484d", TAKE_PROFIT: "#30a46c", TRAILING_STOP: "#f76b15" };
  const SHORT = { STOP_LOSS: "SL", TAKE_PROFIT: "TP", TRAILING_STOP: "TS" };
  const ENDED = { TRIGGERED: "fired", CANCELED: "canceled", EXPIRED: "expired", FAILED: "failed",
    PENDING_APPROVAL: "waiting" };

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function priceOf(point, source) {
    const [, bid, ask, last] = point;
    if (source === "BEST_BID") return bid;
    if (source === "LAST_TRADE") return last;
    return bid === null || ask === null ? null : (bid + ask) / 2;
  }

  function fmtTime(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  }

  // A price holds until the next one: horizontal, then vertical, extended to now.
  function stepPath(points, x, y, t1) {
    let d = `M${x(points[0][0]).toFixed(1)},${y(points[0][1]).toFixed(1)}`;
    for (let i = 1; i < points.length; i++) {
      d += `H${x(points[i][0]).toFixed(1)}V${y(points[i][1]).toFixed(1)}`;
    }
    return d + `H${x(t1).toFixed(1)}`;
  }

  class PriceChart {
    constructor(figure, spec) {
      this.figure = figure;
      this.plot = figure.querySelector(".plot");
      this.legend = figure.querySelector(".legend");
      this.tokenId = spec.tokenId;
      this.points = spec.points || [];
      this.rules = new Map((spec.rules || []).map((r) => [r.id, r]));
      this.pending = false;
      this.render();
    }

    addPoint(point) {
      const last = this.points[this.points.length - 1];
      if (last && Math.floor(last[0] / 1000) === Math.floor(point[0] / 1000)) {
        this.points[this.points.length - 1] = point;
      } else {
        this.points.push(point);
      }
      this.schedule();
    }

    merge(spec) {
      const known = new Set(this.points.map((p) => p[0]));
      this.points = [...spec.points.filter((p) => !known.has(p[0])), ...this.points]
        .sort((a, b) => a[0] - b[0]);
      for (const rule of spec.rules) if (!this.rules.has(rule.id)) this.rules.set(rule.id, rule);
      this.schedule();
    }

    setRule(line) {
      this.rules.set(line.id, line);
      this.schedule();
    }

    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.render(); });
    }

    // The prices the rules watch: live rules' sources first; the first is drawn boldest.
    sources() {
      const rules = [...this.rules.values()];
      const live = rules.filter((r) => r.status === "ACTIVE").map((r) => r.source);
      const found = [...new Set([...live, ...rules.map((r) => r.source)])];
      return found.length ? found : ["MIDPOINT"];
    }

    render() {
      const W = Math.max(360, Math.round(this.plot.clientWidth || 720));
      const now = Date.now();
      const sources = this.sources();
      const series = sources.map((source) => this.points
        .map((p) => [p[0], priceOf(p, source)])
        .filter((p) => p[1] !== null));
      const prices = series[0];
      let t0 = now - MIN_SPAN_MS;
      if (prices.length) t0 = Math.min(t0, prices[0][0]);
      const rules = [...this.rules.values()];
      for (const rule of rules) {
        const start = rule.steps[0][0];
        if (!prices.length || start >= prices[0][0]) t0 = Math.min(t0, start);
      }
      const t1 = now;
      const levels = series.flat().map((p) => p[1]);
      for (const rule of rules) {
        for (const step of rule.steps) levels.push(step[1]);
        for (const fire of rule.fires) levels.push(fire[1]);
      }
      let lo = levels.length ? Math.min(...levels) : 0.4;
      let hi = levels.length ? Math.max(...levels) : 0.6;
      const pad = Math.max(0.02, (hi - lo) * 0.15);
      lo = Math.max(0, lo - pad);
      hi = Math.min(1, hi + pad);
      const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
      const y = (p) => PAD.t + (1 - (p - lo) / (hi - lo)) * (H - PAD.t - PAD.b);

      const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "svg-chart",
        "aria-label": `Price chart of token ${this.tokenId}` });
      for (let i = 0; i <= 4; i++) {
        const p = lo + ((hi - lo) * i) / 4;
        svg.append(el("line", { x1: PAD.l, x2: W - PAD.r, y1: y(p), y2: y(p), class: "grid" }));
        svg.append(el("text", { x: PAD.l - 6, y: y(p) + 4, class: "axis", "text-anchor": "end" }, p.toFixed(3)));
      }
      const ticks = Math.max(1, Math.floor((W - PAD.l - PAD.r) / 110));
      for (let i = 0; i <= ticks; i++) {
        const t = t0 + ((t1 - t0) * i) / ticks;
        svg.append(el("text", { x: x(t), y: H - 6, class: "axis", "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" }, fmtTime(t)));
      }

      for (const rule of rules) {
        const end = rule.endedAt || t1;
        let d = "";
        rule.steps.forEach((step, i) => {
          const next = i + 1 < rule.steps.length ? Math.min(rule.steps[i + 1][0], end) : end;
          const from = Math.max(step[0], t0);
          if (next < t0) return;
          d += `${d ? "L" : "M"}${x(from).toFixed(1)},${y(step[1]).toFixed(1)}H${x(next).toFixed(1)}`;
        });
        const live = rule.status === "ACTIVE";
        if (d) {
          svg.append(el("path", { d, class: "trigger" + (live ? "" : " ended"), stroke: COLORS[rule.type] || "#888",
            "data-rule": rule.id, "data-type": rule.type }));
          const lastLevel = rule.steps[rule.steps.length - 1][1];
          svg.append(el("text", { x: W - PAD.r + 6, y: y(lastLevel) + 4, class: "tag", fill: COLORS[rule.type] || "#888" },
            `${SHORT[rule.type] || rule.type} ${lastLevel.toFixed(3)}${live ? "" : " · " + (ENDED[rule.status] || rule.status.toLowerCase())}`));
        }
        for (const fire of rule.fires) {
          const g = el("g", { class: "fire", "data-rule": rule.id });
          g.append(el("circle", { cx: x(fire[0]), cy: y(fire[1]), r: 6 }));
          g.append(el("text", { x: x(fire[0]), y: y(fire[1]) + 20, "text-anchor": "middle", class: "fire-label" }, "fired " + fire[1].toFixed(3)));
          svg.append(g);
        }
      }

      series.forEach((line, n) => {
        if (n === 0 || !line.length) return;  // secondary sources, drawn under the main one
        svg.append(el("path", { d: stepPath(line, x, y, t1), class: "price alt", "data-source": sources[n] }));
      });
      if (prices.length) {
        svg.append(el("path", { d: stepPath(prices, x, y, t1), class: "price", "data-source": sources[0] }));
        const last = prices[prices.length - 1][1];
        svg.append(el("circle", { cx: x(t1), cy: y(last), r: 3.5, class: "price-dot" }));
        svg.append(el("text", { x: W - PAD.r + 6, y: y(last) + 4, class: "tag price-tag" }, last.toFixed(3)));
        this.figure.dataset.lastPrice = String(last);
      } else {
        svg.append(el("text", { x: W / 2, y: H / 2, class: "axis", "text-anchor": "middle" }, "waiting for prices…"));
      }
      this.figure.dataset.fires = String(rules.reduce((n, r) => n + r.fires.length, 0));
      this.figure.dataset.points = String(prices.length);
      this.plot.replaceChildren(svg);
      if (this.legend) {
        const names = sources.map((s) => s.replace("_", " ").toLowerCase());
        this.legend.textContent = names[0] + " price"
          + (names.length > 1 ? ` (grey: ${names.slice(1).join(", ")})` : "");
      }
    }
  }

  window.PriceChart = PriceChart;
})();
