// shopstream live dashboard: polls the API's JSON routes every 2 s and redraws each panel,
// without a framework or a build step.
import {
  $, MINUTE, clock, count, duration, el, pct, renderGmv, renderOrders, setPanel, setTile, sum,
  table, yuan,
} from "./draw.js";
import { HOUR, STOCK_PAGE, renderAds, renderReturns, renderStock, renderTraffic } from "./money.js";

const POLL_MS = 2000;
const KEY_STORE = "shopstream.readKey";
const LAG_WARN = 10000; // records behind the log end before the lag is an alert
const LOW_STOCK = 0.1; // share of a sale's units left that counts as low stock
const EPS_SPAN_MS = 10000; // events/s is measured over this span, never over less than 1.5 s
const ROOMS_SHOWN = 20; // rooms on air listed (the most watched); the rest are counted

const state = {
  key: localStorage.getItem(KEY_STORE) || "",
  funnels: null, // definitions from /v1/funnels, read once per key
  samples: [], // [time, events in] of the last EPS_SPAN_MS, for events/s
  eps: null,
  timer: null,
  round: 0, // poll rounds started; a round that a newer one overtook schedules nothing
};

class AuthNeeded extends Error {}

/** GET a JSON route: the body, null on 404 (a route this API does not have), else throws. */
async function get(path) {
  const headers = state.key ? { Authorization: "Bearer " + state.key } : {};
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (resp.status === 401) throw new AuthNeeded(path);
  if (resp.status === 404) return null;
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

// ---- numbers: /v1/ops/summary when the API has it, else /v1/stats ----

/** Totals and per-minute series of the window, in one shape whatever the source. */
function figures(summary, stats, from, to) {
  const minutes = [];
  for (let m = from; m < to; m += MINUTE) minutes.push(m);
  const series = new Map(minutes.map((m) => [m, { gmv: 0, orders: 0, paid: 0, failed: null }]));
  if (summary) {
    for (const b of summary.buckets) {
      const s = series.get(b.start);
      if (s) Object.assign(s, { gmv: b.paid_gmv, orders: b.orders, paid: b.payments.success,
                                failed: b.payments.failed });
    }
    const t = summary.totals;
    return { source: "/v1/ops/summary", minutes, series, gmv: t.paid_gmv, orders: t.orders,
             paid: t.payments.success, success: t.success_ratio, aov: t.aov, by: summary.by };
  }
  for (const row of stats.minutes) {
    const s = series.get(row.minute);
    if (s) Object.assign(s, { gmv: row.gmv, orders: sum(row.counts.order_submit), paid: row.paid });
  }
  const t = stats.totals;
  const payments = sum(t.counts.payment);
  return { source: "/v1/stats", minutes, series, gmv: t.gmv, orders: sum(t.counts.order_submit),
           paid: t.paid, success: payments ? t.paid / payments : null,
           aov: t.paid ? Math.round(t.gmv / t.paid) : null, by: null };
}

function renderKpis(f) {
  setTile("#kpi-gmv", f.gmv, yuan(f.gmv));
  setTile("#kpi-orders", f.orders, count(f.orders));
  setTile("#kpi-paid", f.paid, count(f.paid));
  const cls = f.success !== null && f.success < 0.9 ? "warn" : "";
  setTile("#kpi-success", f.success, pct(f.success), cls);
  setTile("#kpi-aov", f.aov, yuan(f.aov));
  setTile("#kpi-eps", state.eps, state.eps === null ? "-" : count(Math.round(state.eps)));
  setPanel("#p-kpis", "ok", `from ${f.source}, window since ${clock(f.minutes[0])}`);
}

// ---- funnel ----

function fillFunnelSelectors() {
  const nameSel = $("#funnel-name");
  const names = state.funnels.map((f) => f.name);
  if (nameSel.options.length !== names.length) {
    nameSel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  }
  const fd = state.funnels.find((f) => f.name === nameSel.value) || state.funnels[0];
  const bySel = $("#funnel-by");
  if ([...bySel.options].map((o) => o.value).join() !== fd.breakdowns.join()) {
    bySel.replaceChildren(...fd.breakdowns.map((b) => el("option", { value: b }, b)));
  }
  return fd;
}

function renderFunnel(body) {
  const steps = body.total.steps;
  const first = steps.length ? steps[0].count : 0;
  const drop = body.total.biggest_drop;
  $("#funnel-steps").replaceChildren(...steps.map((s) => {
    const isDrop = drop && drop.step === s.step;
    const width = first ? (100 * s.count) / first : 0;
    const fill = el("div", { class: "fill" });
    fill.style.width = width.toFixed(1) + "%";
    const conv = s.step === 1 ? "" : `${pct(s.step_conversion)} of previous`;
    return el("div", { class: "step" + (isDrop ? " drop" : ""), "data-step": s.step, "data-count": s.count }, [
      el("span", { class: "name", title: s.label }, `${s.step}. ${s.label}`),
      el("div", { class: "track" }, [fill, el("span", { class: "conv" }, conv)]),
      el("span", { class: "count" }, count(s.count)),
    ]);
  }));
  $("#funnel-drop").textContent = drop
    ? `Biggest drop: step ${drop.from_step} -> ${drop.step} (${drop.label}), ${pct(drop.step_conversion)} continue, ${count(drop.lost)} lost`
    : "";
  const last = steps.length - 1;
  table($("#funnel-breakdown"), [body.by, "entered", "completed", "conversion"],
    body.breakdown.slice(0, 8).map((b) => ({
      cells: [b.value, count(b.steps[0].count), count(b.steps[last].count),
              pct(b.steps[last].overall_conversion)],
    })));
  setPanel("#p-funnel", "ok", `${body.view} view, ${body.late_events} late events ignored`);
}

// ---- channels ----

function renderChannels(stats, by) {
  const c = stats.totals.counts;
  const names = new Set(Object.values(c).flatMap((perChannel) => Object.keys(perChannel)));
  Object.keys(by || {}).forEach((n) => names.add(n));
  const events = (ch) => Object.values(c).reduce((a, perChannel) => a + (perChannel[ch] || 0), 0);
  const of = (type, ch) => (c[type] || {})[ch] || 0;
  const rows = [...names].sort((a, b) => events(b) - events(a)).map((ch) => {
    const s = (by || {})[ch];
    return { attrs: { "data-channel": ch }, cells: [ch, count(events(ch)), count(of("page_view", ch)),
      count(of("cart_add", ch)), count(of("order_submit", ch)),
      s ? yuan(s.paid_gmv) : "-", s ? pct(s.success_ratio) : "-"] };
  });
  table($("#channels"), ["channel", "events", "views", "carts", "orders", "paid GMV", "success"], rows);
  setPanel("#p-channels", "ok", by ? "" : "GMV and success per channel need /v1/ops/summary");
}

// ---- flash sales ----

function renderSales(body) {
  if (body === null) return setPanel("#p-sales", "na", "not available: this API has no /v1/flash-sales");
  const order = { live: 0, scheduled: 1, ended: 2 };
  const sales = [...body.sales].sort((a, b) => order[a.state] - order[b.state] || b.starts_at - a.starts_at);
  $("#sales").replaceChildren(...sales.slice(0, 12).map((s) => {
    const total = Math.max(1, s.available + s.reserved + s.sold);
    const seg = (cls, n) => {
      const part = el("div", { class: cls, title: `${cls} ${n}` });
      part.style.width = ((100 * n) / total).toFixed(2) + "%";
      return part;
    };
    let eta = "no claims in the last seconds";
    if (s.available === 0) eta = "sold out";
    else if (s.state !== "live") eta = s.state;
    else if (s.estimated_sell_out_at) {
      eta = `sells out in ~${duration(s.estimated_sell_out_at - Date.now())} at ${clock(s.estimated_sell_out_at)} (${s.claim_rate_units_per_s}/s)`;
    }
    return el("div", { class: "sale", "data-sale": s.sale_id, "data-available": s.available,
                       "data-reserved": s.reserved, "data-sold": s.sold }, [
      el("div", { class: "head" }, [
        el("span", {}, [`${s.sale_id} `, el("span", { class: "badge " + s.state }, s.state)]),
        el("span", {}, `${count(s.sold)} sold, ${count(s.reserved)} reserved, ${count(s.available)} left`),
      ]),
      el("div", { class: "bar" }, [seg("sold", s.sold), seg("reserved", s.reserved), seg("available", s.available)]),
      el("div", { class: "eta" }, `${s.sku}: ${eta}`),
    ]);
  }));
  setPanel("#p-sales", "ok", sales.length ? "" : "no flash sales");
}

// ---- live rooms ----

function renderRooms(body) {
  if (body === null) {
    $("#rooms").replaceChildren();
    return setPanel("#p-rooms", "na", "not available: this API has no /v1/live/rooms");
  }
  const rooms = [...body.rooms].sort((a, b) => b.viewers - a.viewers);
  const more = (body.total ?? rooms.length) - rooms.length;
  table($("#rooms"), ["room", "viewers", "comments/min", "room GMV", "on air"], rooms.map((r) => ({
    attrs: { "data-room": r.room_id },
    cells: [r.room_id, count(r.viewers), count(r.comments_per_minute), yuan(r.paid_gmv),
            duration(Date.now() - r.started_at)],
  })));
  setPanel("#p-rooms", "ok", !rooms.length ? "no room on air"
    : more > 0 ? `${count(more)} more on air` : "");
}

// ---- alerts: anomalies, plus what the sales and the pipeline show ----

/** An anomaly's value in its metric's unit: ratios as percentages, GMV in yuan. */
function anomalyValue(metric, v) {
  if (metric === "payment_success_ratio" || metric.startsWith("funnel:")) return pct(v);
  return metric === "paid_gmv" ? yuan(v) : count(Math.round(v));
}

function renderAlerts(anomalies, sales, pipe) {
  const items = [];
  for (const a of (anomalies && anomalies.anomalies) || []) {
    const v = (x) => anomalyValue(a.metric, x);
    items.push({ at: a.minute, severity: a.severity,
                 text: `${a.metric} dropped: ${v(a.value)} vs usual ${v(a.baseline)} (score ${a.score})` });
  }
  for (const s of (sales && sales.sales) || []) {
    if (s.state !== "live") continue;
    const total = s.stock + s.restocked;
    if (s.available === 0) items.push({ at: null, severity: "critical", text: `flash sale ${s.sale_id} sold out` });
    else if (s.available <= total * LOW_STOCK) {
      items.push({ at: null, severity: "warning", text: `flash sale ${s.sale_id} low stock: ${s.available} left` });
    }
  }
  if (pipe) {
    const t = pipe.totals;
    if (t.dead) {
      const why = Object.entries(t.dead_by_reason).map(([r, n]) => `${r} ${n}`).join(", ");
      items.push({ at: null, severity: "warning", text: `${count(t.dead)} dead letters (${why})` });
    }
    if (pipe.remedy) {
      items.push({ at: null, severity: "critical", text: refusedText(pipe) });
    } else if (t.lag !== null && t.lag > LAG_WARN) {
      items.push({ at: null, severity: "warning", text: `consumer lag ${count(t.lag)} records` });
    }
  }
  items.sort((a, b) => (b.at || Infinity) - (a.at || Infinity));
  $("#alerts").replaceChildren(...items.slice(0, 30).map((a) =>
    el("li", { class: a.severity }, [el("span", { class: "when" }, a.at ? clock(a.at) : "now"), a.text])));
  const note = anomalies === null ? "anomaly detection not available: this API has no /v1/ops/anomalies" : "";
  setPanel("#p-alerts", "ok", items.length ? note : ["all quiet", note].filter(Boolean).join("; "));
}

// ---- pipeline ----

/** Why a partition is refused, for people: what happened and what it means. */
const REFUSED = {
  other_log: "state built from another log (topic recreated, or the broker started empty while Redis kept its state)",
  fence_ahead: "state applied beyond the log's end (the broker lost records Redis kept)",
};

/** Refused partitions, why, and the remedy: nothing is applied to them until it is run. */
function refusedText(pipe) {
  const why = [...new Set(pipe.partitions.filter((p) => p.state !== "ok").map((p) => REFUSED[p.state] || p.state))];
  return `${count(pipe.totals.refused)} partition(s) refused, nothing applied: ${why.join("; ")}. Run \`${pipe.remedy}\` to start over from the log`;
}

function renderPipeline(pipe) {
  const t = pipe.totals;
  state.samples = state.samples.filter(([at]) => at >= pipe.now - EPS_SPAN_MS).concat([[pipe.now, t.in]]);
  const [at0, in0] = state.samples[0];
  if (pipe.now - at0 >= 1500) state.eps = ((t.in - in0) * 1000) / (pipe.now - at0);
  setTile("#pipe-eps", state.eps, state.eps === null ? "-" : count(Math.round(state.eps)));
  setTile("#pipe-processed", t.processed, count(t.processed));
  setTile("#pipe-dead", t.dead, count(t.dead), t.dead ? "warn" : "");
  setTile("#pipe-lag", t.lag, t.lag === null ? "unknown" : count(t.lag), t.lag > LAG_WARN || pipe.remedy ? "bad" : "");
  table($("#partitions"), ["partition", "applied", "log end", "lag", "events in", "state"], pipe.partitions.map((p) => ({
    attrs: p.state === "ok" ? {} : { class: "bad" },
    cells: [String(p.partition), count(p.applied_offset), count(p.log_end), count(p.lag), count(p.in),
            p.state === "ok" ? "ok" : `refused: ${p.state.replace("_", " ")}`],
  })));
  if (pipe.remedy) setPanel("#p-pipeline", "error", refusedText(pipe));
  else setPanel("#p-pipeline", "ok", `${count(t.duplicate)} duplicates dropped; topic ${pipe.topic}`);
}

// ---- polling ----

/** One round: every route in parallel; each panel draws from what it needs. */
async function tick() {
  const now = Date.now();
  const windowMin = Number($("#window").value);
  const from = Math.floor(now / MINUTE) * MINUTE - (windowMin - 1) * MINUTE;
  const to = Math.floor(now / MINUTE) * MINUTE + MINUTE;
  const range = `from=${from}&to=${to}`;
  if (!state.funnels) state.funnels = (await get("/v1/funnels")).funnels;
  const fd = state.funnels.length ? fillFunnelSelectors() : null;
  const funnelPath = fd && `/v1/funnels/${encodeURIComponent(fd.name)}?view=flow&res=minute&${range}&by=${encodeURIComponent($("#funnel-by").value)}`;
  const jobs = { summary: get(`/v1/ops/summary?${range}&res=minute`), stats: get(`/v1/stats?${range}`),
                 funnel: fd ? get(funnelPath) : Promise.resolve(null), sales: get("/v1/flash-sales"),
                 rooms: get(`/v1/live/rooms?limit=${ROOMS_SHOWN}`), anomalies: get(`/v1/ops/anomalies?${range}`),
                 pipe: get("/v1/pipeline"),
                 traffic: get(`/v1/traffic?from=${Math.floor(from / HOUR) * HOUR}&to=${to}&res=hour&by=channel`),
                 ads: get(`/v1/ads?${range}&res=hour&by=campaign`), stock: get(`/v1/stock?limit=${STOCK_PAGE}`) };
  const names = Object.keys(jobs);
  const settled = await Promise.allSettled(Object.values(jobs));
  const r = {};
  const errors = {};
  settled.forEach((s, i) => { if (s.status === "fulfilled") r[names[i]] = s.value; else errors[names[i]] = s.reason; });
  if (Object.values(errors).some((e) => e instanceof AuthNeeded)) throw new AuthNeeded();
  const draw = (panel, needs, fn) => {
    const failed = needs.find((n) => errors[n]);
    if (failed) return setPanel(panel, "error", String(errors[failed].message || errors[failed]));
    try { fn(); } catch (e) { setPanel(panel, "error", "cannot draw: " + e.message); }
  };
  // A failing summary route falls back to the stats, as an absent one does.
  const f = errors.stats ? null : figures(errors.summary ? null : r.summary, r.stats, from, to);
  draw("#p-pipeline", ["pipe"], () => renderPipeline(r.pipe));
  draw("#p-kpis", ["stats"], () => renderKpis(f));
  draw("#p-gmv", ["stats"], () => renderGmv(f));
  draw("#p-orders", ["stats"], () => renderOrders(f));
  draw("#p-channels", ["stats"], () => renderChannels(r.stats, f.by));
  draw("#p-funnel", ["funnel"], () => (fd ? renderFunnel(r.funnel) : setPanel("#p-funnel", "na", "no funnel configured")));
  draw("#p-sales", ["sales"], () => renderSales(r.sales));
  draw("#p-rooms", ["rooms"], () => renderRooms(r.rooms));
  draw("#p-alerts", ["anomalies"], () => renderAlerts(r.anomalies, r.sales, r.pipe));
  draw("#p-traffic", ["traffic"], () => renderTraffic(r.traffic, r.stats));
  draw("#p-ads", ["ads"], () => renderAds(r.ads, r.stats));
  draw("#p-stock", ["stock"], () => renderStock(r.stock));
  draw("#p-returns", ["stock"], () => renderReturns(r.stock));
  return Object.keys(errors).length;
}

async function poll() {
  clearTimeout(state.timer);
  const round = ++state.round;
  const status = $("#status");
  try {
    const failed = await tick();
    if (round !== state.round) return;
    document.body.dataset.polls = String(Number(document.body.dataset.polls) + 1);
    status.textContent = `updated ${new Date().toLocaleTimeString()}` + (failed ? `, ${failed} routes failed` : "");
    status.className = "status" + (failed ? " bad" : "");
  } catch (e) {
    if (round !== state.round) return;
    if (e instanceof AuthNeeded) return askKey(state.key ? "the API refused this key" : "");
    status.textContent = "API unreachable: " + e.message;
    status.className = "status bad";
  }
  state.timer = setTimeout(poll, POLL_MS);
}

function askKey(message) {
  clearTimeout(state.timer);
  state.round++;
  document.body.dataset.auth = "needed";
  $("#status").textContent = "read key needed";
  $("#key-error").textContent = message;
  $("#key-dialog").hidden = false;
  $("#key-input").focus();
}

function useKey(key) {
  state.key = key;
  state.funnels = null;
  if (key) localStorage.setItem(KEY_STORE, key);
  else localStorage.removeItem(KEY_STORE);
  $("#key-dialog").hidden = true;
  document.body.dataset.auth = "";
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    useKey($("#key-input").value.trim());
  });
  $("#key-forget").addEventListener("click", () => useKey(""));
  $("#key-cancel").addEventListener("click", () => useKey(state.key));
  $("#key-button").addEventListener("click", () => askKey(""));
  $("#window").addEventListener("change", poll);
  $("#funnel-name").addEventListener("change", poll);
  $("#funnel-by").addEventListener("change", poll);
  let resize = null;
  window.addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(poll, 200); });
  poll();
});
