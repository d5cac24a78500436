// shopstream live dashboard, drawing: DOM and SVG made by hand (text only through
// textContent, so nothing the API returns is ever parsed as markup), number formats and
// the per-minute charts.

export const MINUTE = 60000;
const SVG_NS = "http://www.w3.org/2000/svg";
const num = new Intl.NumberFormat("en-US");
const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

export const $ = (sel) => document.querySelector(sel);

/** An HTML element (or SVG element when ns is given) with attributes and children. */
export function el(tag, attrs = {}, kids = [], ns = null) {
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, v);
  for (const kid of [].concat(kids)) if (kid !== null && kid !== undefined) node.append(kid);
  return node;
}
const svg = (tag, attrs, kids) => el(tag, attrs, kids, SVG_NS);

export const yuan = (fen) => (fen === null || fen === undefined ? "-" : "¥" + money.format(fen / 100));
export const pct = (r) => (r === null || r === undefined ? "-" : (r * 100).toFixed(1) + "%");
export const count = (n) => (n === null || n === undefined ? "-" : num.format(n));
export const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
export const sum = (obj) => Object.values(obj || {}).reduce((a, b) => a + b, 0);

export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return s + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

/** The smallest 1, 2, 2.5 or 5 times a power of ten at or above v: round axis labels. */
function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].find((m) => m * p >= v) * p;
}


export function setTile(id, value, text, cls = "") {
  const tile = $(id);
  tile.dataset.value = value === null || value === undefined ? "" : String(value);
  const v = tile.querySelector(".value");
  v.textContent = text;
  v.className = "value " + cls;
}

export function setPanel(id, panelState, note = "") {
  const panel = $(id);
  panel.dataset.state = panelState;
  panel.querySelector(".note").textContent = note;
}

export function table(node, head, rows) {
  node.replaceChildren(el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", r.attrs || {}, r.cells.map((c) => el("td", {}, c))))));
}

// ---- charts ----

/** Axes of a per-minute chart: y gridlines with labels, a few time labels along x. */
function frame(plot, minutes, max, fmt) {
  const w = plot.clientWidth || 600;
  const h = plot.clientHeight || 200;
  const pad = { l: 56, r: 8, t: 8, b: 20 };
  const x = (i) => pad.l + (i / Math.max(1, minutes.length)) * (w - pad.l - pad.r);
  const y = (v) => h - pad.b - (v / max) * (h - pad.t - pad.b);
  const nodes = [];
  for (const frac of [0, 0.5, 1]) {
    nodes.push(svg("line", { class: "grid-line", x1: pad.l, x2: w - pad.r, y1: y(max * frac), y2: y(max * frac) }));
    nodes.push(svg("text", { x: pad.l - 6, y: y(max * frac) + 4, "text-anchor": "end" }, fmt(max * frac)));
  }
  const ticks = Math.max(1, Math.min(6, minutes.length, Math.floor(w / 110)));
  for (let k = 0; k < ticks; k++) {
    const i = Math.round((k / ticks) * (minutes.length - 1));
    nodes.push(svg("text", { x: x(i), y: h - 4, "text-anchor": k ? "middle" : "start" }, clock(minutes[i])));
  }
  plot.setAttribute("viewBox", `0 0 ${w} ${h}`);
  return { x, y, nodes, step: (w - pad.l - pad.r) / Math.max(1, minutes.length), base: h - pad.b };
}

export function renderGmv(f) {
  const plot = $("#chart-gmv");
  const vals = f.minutes.map((m) => f.series.get(m).gmv);
  const { x, y, nodes, step, base } = frame(plot, f.minutes, niceMax(Math.max(100, ...vals) * 1.05),
    (v) => "¥" + compact.format(v / 100));
  const pts = vals.map((v, i) => `${(x(i) + step / 2).toFixed(1)},${y(v).toFixed(1)}`);
  const first = (x(0) + step / 2).toFixed(1);
  const last = (x(vals.length - 1) + step / 2).toFixed(1);
  nodes.push(svg("path", { class: "area", d: `M${first},${base} L${pts.join(" L")} L${last},${base} Z` }));
  nodes.push(svg("polyline", { class: "line", points: pts.join(" ") }));
  plot.replaceChildren(...nodes);
  setPanel("#p-gmv", "ok", `this minute so far ${yuan(vals[vals.length - 1])}`);
}

export function renderOrders(f) {
  const plot = $("#chart-orders");
  const rows = f.minutes.map((m) => f.series.get(m));
  const max = niceMax(Math.max(4, ...rows.map((r) => Math.max(r.orders, r.paid, r.failed || 0))) * 1.05);
  const { x, y, nodes, step, base } = frame(plot, f.minutes, max, (v) => compact.format(v));
  const bw = Math.max(1, step * 0.7);
  rows.forEach((r, i) => {
    const bar = svg("rect", { class: "bar", x: x(i) + (step - bw) / 2, y: y(r.orders), width: bw,
                              height: base - y(r.orders) },
                    svg("title", {}, `${clock(f.minutes[i])}: ${r.orders} orders, ${r.paid} paid`));
    nodes.push(bar);
    if (r.failed) {
      nodes.push(svg("rect", { class: "bar failed", x: x(i) + (step - bw) / 2, y: y(r.failed),
                               width: bw, height: base - y(r.failed) }));
    }
  });
  const pts = rows.map((r, i) => `${(x(i) + step / 2).toFixed(1)},${y(r.paid).toFixed(1)}`);
  nodes.push(svg("polyline", { class: "line paid", points: pts.join(" ") }));
  plot.replaceChildren(...nodes);
  setPanel("#p-orders", "ok", f.source === "/v1/stats" ? "failed payments per minute need /v1/ops/summary" : "");
}
