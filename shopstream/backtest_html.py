"""The backtest's HTML report: one self-contained page (inline CSS, SVG charts drawn here, no
script, font or network) from the report's JSON, one config or several side by side, every
number that differs from the first config's marked with the difference. Money in yuan from
integer fen, times in Asia/Shanghai."""

from __future__ import annotations

from html import escape
from importlib import resources
from typing import Any

from shopstream.backtest_cells import Metric, Row, Value, ratio, show, table, union, yuan
from shopstream.backtest_svg import COLOURS, Limit, Series, clock, line_chart

OUTCOMES = ("sent", "capped", "suppressed", "deferred", "budget_exhausted", "failed",
            "ineligible")


def _css() -> str:
    return resources.files("shopstream").joinpath("backtest_report.css").read_text("utf-8")


def _colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def _count(n: int) -> str:
    return f"{n:,}"


def _section(sid: str, title: str, body: str, note: str = "") -> str:
    lead = f'<p class="note">{escape(note)}</p>' if note else ""
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{lead}{body}</section>'


def _log(log: dict[str, Any]) -> str:
    facts = [("File", escape(str(log.get("path", "")))), ("Lines", _count(log["lines"])),
             ("Events", _count(log["events"])), ("Duplicates", _count(log["duplicate"])),
             ("Dead letters", _count(sum(log["dead"].values()))),
             ("From", escape(show(log.get("from_ts"), "time"))),
             ("To", escape(show(log.get("to_ts"), "time")))]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    dead = table("log-dead", ["Reason"], [Metric("Dead letters", "int")], ["log"],
                 [Row((reason,), ((n,),)) for reason, n in sorted(log["dead"].items())])
    return _section("log", "The log", f'<dl class="facts">{dl}</dl>{dead}')


def _configs(configs: list[dict[str, Any]]) -> str:
    items = "".join(
        f'<li><i style="background:{_colour(i)}"></i><b>{escape(str(c["label"]))}</b> '
        f'{escape(str(c.get("config", "")))} <code>sha256 {escape(str(c.get("sha256", "")))}'
        f"</code></li>" for i, c in enumerate(configs))
    return _section("configs", "Configs", f'<ul class="configs">{items}</ul>',
                    "Cells marked in yellow differ from the first config's; the difference "
                    "follows the value." if len(configs) > 1 else "")


def _pushes(configs: list[dict[str, Any]], labels: list[str]) -> str:
    rules = union([list(c["pushes"]) for c in configs])
    rows = [Row((rule,), tuple(tuple(c["pushes"].get(rule, {}).get(o, 0) for c in configs)
                               for o in OUTCOMES)) for rule in rules]
    metrics = [Metric(o.replace("_", " "), "int") for o in OUTCOMES]
    return _section("pushes", "Pushes per rule and outcome",
                    table("pushes-table", ["Rule"], metrics, labels, rows))


def _coupons(configs: list[dict[str, Any]], labels: list[str]) -> str:
    totals = table("coupons-table", ["Coupons"],
                   [Metric("granted", "int"), Metric("face value", "fen")], labels,
                   [Row(("all",), (tuple(c["coupons"]["granted"] for c in configs),
                                   tuple(c["coupons"]["face_value_fen"] for c in configs)))])
    charts = []
    for i, c in enumerate(configs):
        hours = c["coupons"]["by_hour"]
        charts.append(line_chart(f"coupons:{i}", f"{labels[i]}: coupons granted per hour", [
            Series("granted", [(h["hour"], h["granted"]) for h in hours], _colour(i), _count),
            Series("face value", [(h["hour"], h["face_value_fen"]) for h in hours], "#6b7280",
                   yuan, right=True, dashed=True)]))
    return _section("coupons", "Coupons granted and their face value",
                    totals + f'<div class="charts">{"".join(charts)}</div>')


def _budgets(configs: list[dict[str, Any]], labels: list[str]) -> str:
    rules = union([list(c["budgets"]) for c in configs])

    def used(c: dict[str, Any], rule: str) -> int:
        by_hour = c["budgets"].get(rule, {}).get("used_by_hour") or [{"used": 0}]
        return int(by_hour[-1]["used"])

    rows = [Row((rule,), (tuple(c["budgets"].get(rule, {}).get("budget") for c in configs),
                          tuple(used(c, rule) for c in configs))) for rule in rules]
    summary = table("budgets-table", ["Rule"], [Metric("budget (coupons)", "int"),
                                                Metric("used", "int")], labels, rows)
    charts = []
    for rule in rules:
        series = [Series(labels[i], [(h["hour"], h["used"]) for h in
                                     c["budgets"].get(rule, {}).get("used_by_hour", [])],
                         _colour(i), _count) for i, c in enumerate(configs)]
        limits = [Limit(f"{labels[i]} budget", budget, _colour(i)) for i, c in enumerate(configs)
                  if (budget := c["budgets"].get(rule, {}).get("budget")) is not None]
        charts.append(line_chart(f"budget:{rule}", f"{rule}: coupons of the budget used (dotted: "
                                 "the budget)", series, limits))
    return _section("budgets", "Budgets used over time",
                    summary + f'<div class="charts">{"".join(charts)}</div>')


def _stage_rows(prefix: tuple[str, ...], per_config: list[dict[str, int]],
                order: list[str]) -> list[Row]:
    """A funnel's stages in the funnel's order (``order``; JSON objects lose it, the report's
    keys are sorted): users reached and the step conversion (over the stage before)."""
    rows = []
    seen = union([list(s) for s in per_config])
    stages = [s for s in order if s in seen] + [s for s in seen if s not in order]
    for k, stage in enumerate(stages):
        counts = tuple(s.get(stage) for s in per_config)
        steps: tuple[Value, ...] = tuple(
            ratio(s.get(stage, 0), s.get(stages[k - 1], 0)) if k else None for s in per_config)
        rows.append(Row((*prefix, stage), (counts, steps)))
    return rows


def _funnels(configs: list[dict[str, Any]], labels: list[str]) -> str:
    metrics = [Metric("users", "int"), Metric("step conversion", "pct")]
    parts = []
    for name in union([list(c["funnels"]) for c in configs]):
        funnels = [c["funnels"].get(name, {}) for c in configs]
        order = union([list(f.get("stages", [])) for f in funnels])
        parts.append(f"<h3>{escape(name)}</h3>" + table(
            f"funnel:{name}", ["Stage"], metrics, labels,
            _stage_rows((), [f.get("overall", {}) for f in funnels], order)))
        for dim in union([list(f.get("by", {})) for f in funnels]):
            by = [f.get("by", {}).get(dim, {}) for f in funnels]
            rows = [row for value in union([list(b) for b in by])
                    for row in _stage_rows((value,), [b.get(value, {}) for b in by], order)]
            parts.append(f"<details open><summary>{escape(name)} by {escape(dim)}</summary>"
                         + table(f"funnel:{name}:{dim}", [dim, "Stage"], metrics, labels, rows)
                         + "</details>")
    return _section("funnels", "Funnels, overall and per breakdown", "".join(parts))


def _flash_sales(configs: list[dict[str, Any]], labels: list[str]) -> str:
    sales = [c["flash_sales"] for c in configs]
    fields = union([list(f) for s in sales for f in s.values()])
    metrics = [Metric(f, "fen" if f.endswith("_fen") else "time" if f.endswith(("_ms", "_at"))
                      else "int") for f in fields]
    rows = [Row((sale,), tuple(tuple(s.get(sale, {}).get(f) for s in sales) for f in fields))
            for sale in union([list(s) for s in sales])]
    return _section("flash-sales", "Flash-sale outcomes",
                    table("flash-sales-table", ["Sale"], metrics, labels, rows))


def _live(configs: list[dict[str, Any]], labels: list[str]) -> str:
    live = [c["live_followups"] for c in configs]
    rows = [Row(("all rooms",), (tuple(x["total"] for x in live),))]
    rows += [Row((room,), (tuple(x["by_room"].get(room, 0) for x in live),))
             for room in union([sorted(x["by_room"]) for x in live])]
    return _section("live", "Live-room follow-ups",
                    table("live-table", ["Room"], [Metric("follow-ups", "int")], labels, rows))


def _subject(doc: dict[str, Any]) -> str:
    return str(next((doc[k] for k in ("metric", "sku", "campaign") if k in doc), ""))


def _summary(doc: dict[str, Any] | None) -> Value:
    """An alert in a cell: its severity and the value judged."""
    if doc is None:
        return None
    value = next((doc[k] for k in ("value", "roas", "on_hand") if k in doc), None)
    text = str(doc.get("severity", "raised"))
    if isinstance(value, float):
        return f"{text} at {value:.4g}"
    return text if value is None else f"{text} at {value}"


def _anomalies(configs: list[dict[str, Any]], labels: list[str]) -> str:
    by_id = [{str(d.get("alert_id", i)): d for i, d in enumerate(c["anomalies"])}
             for c in configs]
    ids = union([list(b) for b in by_id])
    first = {k: next(b[k] for b in by_id if k in b) for k in ids}
    ids.sort(key=lambda k: (first[k].get("minute", 0), k))
    rows = [Row((show(first[k].get("minute"), "time"), str(first[k].get("type", "")),
                 _subject(first[k])), (tuple(_summary(b.get(k)) for b in by_id),))
            for k in ids]
    return _section("anomalies", "Anomalies raised",
                    table("anomalies-table", ["Minute", "Type", "Of"],
                          [Metric("alert", "text")], labels, rows))


def _gmv(configs: list[dict[str, Any]], labels: list[str], hours: Any) -> str:
    gmv = [c["gmv_after_push"] for c in configs]
    window = gmv[0].get("window_hours", hours)
    rows = [Row(("all rules",), (tuple(g["orders"] for g in gmv),
                                 tuple(g["paid_fen"] for g in gmv)))]
    rows += [Row((rule,), (tuple(g["by_rule"].get(rule, {}).get("orders", 0) for g in gmv),
                           tuple(g["by_rule"].get(rule, {}).get("paid_fen", 0) for g in gmv)))
             for rule in union([list(g["by_rule"]) for g in gmv])]
    label = (f"What the log shows after a push within {window} hours, not a causal estimate")
    notes = "".join(f'<p class="note">{escape(str(labels[i]))}: {escape(str(g["note"]))}</p>'
                    for i, g in enumerate(gmv) if g.get("note"))
    body = (f'<p class="caveat">{escape(label)}</p>'
            + table("gmv-table", ["Rule"], [Metric("orders", "int"), Metric("paid", "fen")],
                    labels, rows) + notes)
    return _section("gmv", "Paid GMV of orders after a push", body)


def render(report: dict[str, Any]) -> str:
    """The report as one HTML page that opens from disk with no network."""
    configs: list[dict[str, Any]] = report["configs"]
    labels = [str(c["label"]) for c in configs]
    log = report["log"]
    span = f"{clock(log['from_ts'])} to {clock(log['to_ts'])}" if log.get("from_ts") else ""
    sections = [_configs(configs), _log(log), _pushes(configs, labels),
                _coupons(configs, labels), _budgets(configs, labels),
                _funnels(configs, labels), _flash_sales(configs, labels),
                _live(configs, labels), _anomalies(configs, labels),
                _gmv(configs, labels, report.get("attribution_hours"))]
    title = "Backtest: " + " vs ".join(labels)
    return ("<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_css()}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>{escape(str(log.get('path', '')))}"
            f" · {escape(span)} (Asia/Shanghai)</p></header><main>{''.join(sections)}</main>"
            "</body></html>\n")
