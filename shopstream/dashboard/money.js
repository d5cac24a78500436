// shopstream live dashboard, the money row: what a visitor is worth per channel, ROAS per
// campaign against its floor, the SKUs closest to running out and the ones coming back too often.
import { $, clock, count, el, pct, setPanel, sum, table, yuan } from "./draw.js";

export const HOUR = 3600000;
/** ROAS floor of docs/ads.md, used until an alert of the window names the worker's own. */
const ROAS_FLOOR = 3;
const STOCK_SHOWN = 8; // SKUs closest to running out that the panel lists
/** SKUs read for the stock panels: the route's largest page (docs/stock.md). */
export const STOCK_PAGE = 500;

/** How many events of `type` the stats route counted in the window (any channel). */
const counted = (stats, type) => (stats ? sum(stats.totals.counts[type]) : 0);

// ---- traffic value by channel ----

/** Per channel, UV, orders and paid GMV summed over the hour buckets (a visitor counts once
 * per hour), with conversion and UV value as ratios of those sums. */
function channelValue(body) {
  const acc = {};
  for (const b of body.buckets) {
    for (const [ch, m] of Object.entries(b.by || {})) {
      const a = (acc[ch] ||= { uv: 0, orders: 0, paid_gmv: 0 });
      a.uv += m.uv; a.orders += m.orders; a.paid_gmv += m.paid_gmv;
    }
  }
  return Object.entries(acc).map(([channel, a]) => ({ channel, ...a,
    conversion: a.uv ? a.orders / a.uv : null, uvValue: a.uv ? a.paid_gmv / a.uv : null }))
    .sort((x, y) => y.uv - x.uv || (x.channel < y.channel ? -1 : 1));
}

export function renderTraffic(body, stats) {
  if (body === null) {
    $("#traffic").replaceChildren();
    return setPanel("#p-traffic", "na", "not available: this API has no /v1/traffic");
  }
  const rows = channelValue(body);
  table($("#traffic"), ["channel", "UV", "orders", "conversion", "paid GMV", "UV value"], rows.map((r) => ({
    attrs: { "data-channel": r.channel },
    cells: [r.channel, count(r.uv), count(r.orders), pct(r.conversion), yuan(r.paid_gmv),
            r.uvValue === null ? "-" : yuan(Math.round(r.uvValue))],
  })));
  // Traffic is written in the same batch as the stats: page views there and none here means
  // the worker does not run the capability.
  if (!rows.length && counted(stats, "page_view")) {
    return setPanel("#p-traffic", "na", "not available: traffic is not among the worker's agents");
  }
  setPanel("#p-traffic", "ok", rows.length
    ? `hours since ${clock(body.from)}; a visitor counts once per hour` : "no page views in the window");
}

// ---- ROAS by campaign ----

export function renderAds(body, stats) {
  if (body === null) {
    for (const id of ["#campaigns", "#ads-alerts"]) $(id).replaceChildren();
    return setPanel("#p-ads", "na", "not available: this API has no /v1/ads");
  }
  const floor = (body.alerts.find((a) => typeof a.floor === "number") || {}).floor ?? ROAS_FLOOR;
  const groups = body.groups.filter((g) => g.spend || g.paid_gmv);
  const scale = Math.max(floor * 1.5, ...groups.map((g) => g.roas || 0));
  const box = $("#campaigns");
  box.dataset.floor = String(floor);
  box.replaceChildren(...groups.slice(0, 10).map((g) => {
    const fill = el("div", { class: "fill" });
    fill.style.width = ((100 * (g.roas || 0)) / scale).toFixed(1) + "%";
    const mark = el("div", { class: "floor", title: `floor ${floor}` });
    mark.style.left = ((100 * floor) / scale).toFixed(1) + "%";
    const below = g.roas !== null && g.roas < floor;
    return el("div", { class: "camp" + (below ? " below" : ""), "data-campaign": g.campaign,
                       "data-roas": g.roas ?? "", "data-spend": g.spend, "data-gmv": g.paid_gmv }, [
      el("span", { class: "name", title: g.campaign }, g.campaign),
      el("div", { class: "track" }, [fill, mark]),
      el("span", { class: "roas" }, g.roas === null ? "-" : g.roas.toFixed(2)),
      el("span", { class: "money" }, `${yuan(g.spend)} -> ${yuan(g.paid_gmv)}`),
    ]);
  }));
  $("#ads-alerts").replaceChildren(...body.alerts.map((a) => el("li", { class: a.severity || "warning",
    "data-alert": a.alert_id }, [el("span", { class: "when" }, clock(a.minute)),
    `${a.campaign} ROAS ${a.roas.toFixed(2)} under ${a.floor} over the hour to then, ${yuan(a.spend)} spent`])));
  if (!groups.length && counted(stats, "ad_cost")) {
    return setPanel("#p-ads", "na", "not available: ads is not among the worker's agents");
  }
  const judged = body.judged_through === null ? "nothing judged yet" : `judged through ${clock(body.judged_through)}`;
  setPanel("#p-ads", "ok", groups.length ? `floor ${floor}; ${judged}` : "no ad spend in the window");
}

// ---- stock: closest to running out, return-rate outliers ----

/** Why the stock panels have nothing to show, or null when they have. */
function stockMissing(body) {
  if (body === null) return "not available: this API has no /v1/stock";
  return body.total === 0 && body.judged_through === null
    ? "not available: no SKU judged (stock is not among the worker's agents, or no stock_update yet)"
    : null;
}

export function renderStock(body) {
  const missing = stockMissing(body);
  if (missing) {
    $("#stock").replaceChildren();
    return setPanel("#p-stock", "na", missing);
  }
  const cover = (d) => (d === null || d === undefined ? "-" : d.toFixed(1));
  table($("#stock"), ["SKU", "on hand", "days of cover", "state"], body.skus.slice(0, STOCK_SHOWN).map((s) => ({
    attrs: { "data-sku": s.sku, class: s.state },
    cells: [s.sku, count(s.on_hand), cover(s.days_of_cover), s.state],
  })));
  setPanel("#p-stock", "ok", `${count(body.total)} SKUs, judged through ${clock(body.judged_through)}`);
}

/** SKUs whose return rate the judge found too high (above the threshold, with enough sold). */
export function renderReturns(body) {
  const missing = stockMissing(body);
  if (missing) {
    $("#returns").replaceChildren();
    return setPanel("#p-returns", "na", missing);
  }
  const high = body.skus.filter((s) => s.alerts.returns).sort((a, b) => b.return_rate - a.return_rate);
  table($("#returns"), ["SKU", "sold", "returned", "return rate"], high.map((s) => ({
    attrs: { "data-sku": s.sku },
    cells: [s.sku, count(s.sold), count(s.returned), pct(s.return_rate)],
  })));
  const seen = body.total > body.skus.length ? ` among the ${count(body.skus.length)} SKUs of least cover` : "";
  setPanel("#p-returns", "ok", (high.length ? "" : "no SKU above the return-rate threshold") + seen);
}
