// scaleforge dashboard: server-sent events in, plain SVG charts out. No dependencies.
"use strict";
const COLORS = ["#1f6feb", "#d6336c", "#2f9e44", "#f08c00", "#7048e8", "#0c8599"];
const EMPTY = {
  cache: "no cache activity yet", tasks: "no tasks yet", queue: "no workers yet",
  requests: "no requests yet", latency: "no requests yet", batch: "no batches yet", system: "sampling…",
  workloads: "no workload or job activity yet",
};

function fmt(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (unit === "%") return v.toFixed(v < 10 ? 1 : 0) + "%";
  if (unit === "ratio") return (100 * v).toFixed(1) + "%";
  if (unit === "s") {
    if (v < 1e-3) return (v * 1e6).toFixed(0) + " µs";
    if (v < 1) return (v * 1e3).toFixed(v < 0.01 ? 2 : 0) + " ms";
    return v.toFixed(2) + " s";
  }
  if (unit === "bytes") {
    const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0;
    while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
    return v.toFixed(i ? 1 : 0) + " " + u[i];
  }
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
  return v.toFixed(a >= 10 ? 1 : 2);
}

function el(tag, attrs, text) {
  const ns = ["svg", "polyline", "line", "text", "rect", "path"].includes(tag) ? "http://www.w3.org/2000/svg" : null;
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function setCard(id, value, sub, severity) {
  const card = document.getElementById(id);
  const big = card.querySelector(".big");
  if (value === null || value === undefined) {
    big.textContent = big.dataset.empty || "–";
    big.classList.add("empty");
  } else {
    big.textContent = value;
    big.classList.remove("empty");
  }
  card.querySelector(".sub").textContent = sub || "";
  card.classList.remove("warning", "critical");
  if (severity) card.classList.add(severity);
}

function renderCards(s) {
  const f = s.figures || {};
  const sev = {};
  for (const a of s.alerts || []) {
    if (sev[a.metric] !== "critical") sev[a.metric] = a.severity;
  }
  const tiers = Object.keys(f).filter((k) => k.startsWith("cache_hit_rate:")).map(
    (k) => k.split(":")[1] + " " + fmt(f[k], "ratio"));
  setCard("card-cache", f.cache_hit_rate == null ? null : fmt(f.cache_hit_rate, "ratio"),
    f.cache_hit_rate == null ? "" : tiers.join(" · ") + " · " + fmt(f.cache_lookups_total) + " lookups");
  setCard("card-tasks", f.tasks_per_s == null ? null : fmt(f.tasks_per_s),
    f.tasks_completed_total == null ? "" : fmt(f.tasks_completed_total) + " done" + (f.executor ? " · " + f.executor : ""));
  const hasW = f.workers != null || f.queue_depth != null;
  setCard("card-workers", hasW ? fmt(f.workers ?? 0) + " · " + fmt(f.queue_depth ?? 0) : null,
    hasW ? "workers · queued tasks" : "");
  setCard("card-requests", f.requests_per_s == null ? null : fmt(f.requests_per_s),
    f.requests_total == null ? "" : fmt(f.requests_total) + " total" + (f.error_rate ? " · errors " + fmt(f.error_rate, "ratio") : ""),
    sev.error_rate);
  setCard("card-latency", f.latency_p99_s == null ? null : fmt(f.latency_p99_s, "s"),
    f.latency_p50_s == null ? "" : "p50 " + fmt(f.latency_p50_s, "s") + " · p95 " + fmt(f.latency_p95_s, "s"), sev.latency_p99_s);
  setCard("card-cpu", f.cpu_percent == null ? null : fmt(f.cpu_percent, "%"),
    f.memory_percent == null ? "" : "memory " + fmt(f.memory_percent, "%") +
      (f.process_memory_bytes == null ? "" : " · process tree " + fmt(f.process_memory_bytes, "bytes")),
    sev.cpu_percent === "critical" || sev.memory_percent === "critical" ? "critical" : (sev.cpu_percent || sev.memory_percent));
  setCard("card-gpu", f.gpu_utilization_percent == null ? null : fmt(f.gpu_utilization_percent, "%"),
    f.gpu_utilization_percent == null ? "CPU only" : "mean utilisation");
  const alerts = s.alerts || [];
  const crit = alerts.filter((a) => a.severity === "critical").length;
  setCard("card-alerts", String(alerts.length), alerts.length ? crit + " critical · " + (alerts.length - crit) + " warning" : "all clear",
    crit ? "critical" : (alerts.length ? "warning" : null));
}

function renderList(id, items, render, emptyText) {
  const ul = document.getElementById(id);
  ul.replaceChildren();
  if (!items.length) { ul.appendChild(el("li", { class: "empty" }, emptyText)); return; }
  for (const item of items) ul.appendChild(render(item));
}

function alertItem(a) {
  const li = el("li", { class: "alert " + a.severity, "data-rule": a.rule });
  li.appendChild(el("span", { class: "sev " + a.severity }, a.severity));
  li.appendChild(document.createTextNode(a.message));
  li.appendChild(el("div", { class: "evidence" }, "since " + new Date(a.since * 1000).toLocaleTimeString()));
  return li;
}

function recItem(r) {
  const li = el("li", { class: "rec", "data-rule": r.rule });
  li.appendChild(el("span", { class: "sev " + r.severity }, r.severity));
  li.appendChild(el("strong", {}, r.title));
  li.appendChild(el("div", {}, r.detail));
  const ev = Object.entries(r.evidence || {}).map(([k, v]) => k + "=" + (typeof v === "number" ? fmt(v) : v));
  li.appendChild(el("div", { class: "evidence" }, "evidence: " + ev.join(", ")));
  return li;
}

function anomalyItem(a) {
  return el("li", {}, new Date(a.time * 1000).toLocaleTimeString() + " — " + a.figure + " = " + fmt(a.value) +
    " (expected about " + fmt(a.baseline) + ")");
}

function drawChart(id, chart) {
  let box = document.getElementById("chart-" + id);
  if (!box) {
    box = el("div", { class: "chart", id: "chart-" + id });
    box.appendChild(el("h2", {}, chart.title));
    box.appendChild(el("svg", { role: "img", "aria-label": chart.title }));
    box.appendChild(el("div", { class: "legend" }));
    document.getElementById("charts").appendChild(box);
  }
  const svg = box.querySelector("svg");
  const legend = box.querySelector(".legend");
  svg.replaceChildren(); legend.replaceChildren();
  const names = Object.keys(chart.series).filter((n) => chart.series[n].length > 0).sort();
  const W = Math.max(200, Math.round(svg.getBoundingClientRect().width) || 600), H = 160, L = 56, R = 8, T = 8, B = 18;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const pts = names.flatMap((n) => chart.series[n]);
  if (pts.length < 2) {
    svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "nodata" }, EMPTY[id] || "no data yet"));
    box.dataset.points = "0";
    return;
  }
  let t0 = Math.min(...pts.map((p) => p[0])), t1 = Math.max(...pts.map((p) => p[0]));
  let y0 = Math.min(0, ...pts.map((p) => p[1])), y1 = Math.max(...pts.map((p) => p[1]));
  if (chart.unit === "ratio") { y0 = 0; y1 = Math.max(1, y1); }
  if (chart.unit === "%") { y0 = 0; y1 = Math.max(100, y1); }
  if (y1 <= y0) y1 = y0 + 1;
  if (t1 <= t0) t1 = t0 + 1;
  const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
  const y = (v) => T + (H - T - B) * (1 - (v - y0) / (y1 - y0));
  for (const v of [y0, (y0 + y1) / 2, y1]) {
    svg.appendChild(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "axis" }));
    svg.appendChild(el("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end", class: "tick" }, fmt(v, chart.unit)));
  }
  const secs = Math.round(t1 - t0);
  svg.appendChild(el("text", { x: L, y: H - 4, class: "tick" }, "-" + secs + " s"));
  svg.appendChild(el("text", { x: W - R, y: H - 4, "text-anchor": "end", class: "tick" }, "now"));
  let nonzero = 0;
  names.forEach((n, i) => {
    const s = chart.series[n];
    nonzero += s.filter((p) => p[1] !== 0).length;
    const color = COLORS[i % COLORS.length];
    svg.appendChild(el("polyline", {
      points: s.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" "),
      fill: "none", stroke: color, "stroke-width": 2, "stroke-linejoin": "round", "data-series": n,
    }));
    const last = s[s.length - 1][1];
    const item = el("span", {}); item.appendChild(el("i", { style: "background:" + color }));
    item.appendChild(document.createTextNode(n + " " + fmt(last, chart.unit)));
    legend.appendChild(item);
  });
  box.dataset.points = String(nonzero);
}

function render(s) {
  renderCards(s);
  renderList("alerts", s.alerts || [], alertItem, "No active alerts.");
  renderList("recs", s.recommendations || [], recItem, "Nothing to recommend yet.");
  renderList("anomalies", (s.anomalies || []).slice(0, 8), anomalyItem, "None detected.");
  for (const [id, chart] of Object.entries(s.charts || {})) drawChart(id, chart);
  document.getElementById("updated").textContent = "updated " + new Date(s.time * 1000).toLocaleTimeString();
  const src = document.getElementById("sources");
  src.replaceChildren();
  for (const x of s.sources || []) {
    src.appendChild(el("span", { class: x.up ? "up" : "down", title: x.error || "" }, (x.up ? "● " : "○ ") + x.name + "  "));
  }
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

function setConn(state, text) {
  const c = document.getElementById("conn");
  c.className = "conn conn-" + state; c.textContent = text;
}

function start() {
  fetch("/api/snapshot").then((r) => r.json()).then(render).catch(() => {});
  if (!window.EventSource) { setInterval(() => fetch("/api/snapshot").then((r) => r.json()).then(render), 2000); return; }
  const es = new EventSource("/api/stream");
  es.onopen = () => setConn("live", "live");
  es.onerror = () => setConn("down", "reconnecting…");
  es.onmessage = (ev) => { setConn("live", "live"); render(JSON.parse(ev.data)); };
}
start();
