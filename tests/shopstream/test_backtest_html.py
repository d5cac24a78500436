"""The backtest's HTML report from a report built here with two configs: every section and its
numbers, yuan exact at any size, cells that differ from the first config marked (and no
other), strings from user data escaped, nothing fetched from a network; and in a real headless
Chromium: it renders from a file:// URL with no error, requests nothing beyond its file, and
each chart has one point per data point."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from shopstream.backtest_cells import yuan
from shopstream.backtest_html import OUTCOMES, render
from tests.shopstream.backtest_sample import NASTY, report
from tests.shopstream.test_dashboard_browser import BROWSER_DIR, browser_tools  # noqa: F401

SECTIONS = ("configs", "log", "pushes", "coupons", "budgets", "funnels", "flash-sales", "live",
            "anomalies", "gmv")


class Cells(HTMLParser):
    """Every value cell: (table id, row key, metric, config) -> (marked, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str, str, int], tuple[bool, str]] = {}
        self.table = ""
        self._open: tuple[tuple[str, str, str, int], bool] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id") or ""
        if tag == "td" and "data-key" in a:
            key = (self.table, a["data-key"] or "", a["data-metric"] or "",
                   int(a["data-config"] or 0))
            self._open, self._text = (key, "diff" in (a.get("class") or "").split()), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._open is not None:
            key, marked = self._open
            self.cells[key] = (marked, "".join(self._text))
            self._open = None


def cells(page: str) -> dict[tuple[str, str, str, int], tuple[bool, str]]:
    parser = Cells()
    parser.feed(page)
    return parser.cells


def reference_yuan(fen: int) -> str:
    """Yuan from the decimal value, independently of the report's integer formatting."""
    return ("-" if fen < 0 else "") + f"¥{abs(Decimal(fen) / 100):,.2f}"


@pytest.mark.parametrize("fen", [0, 1, 99, 100, 12_345, -5, -10_001, 10**12, 10**12 + 1,
                                 10**15 - 1, 2**53 + 1, 10**18 + 7])
def test_yuan_is_exact_at_any_size(fen: int) -> None:
    assert yuan(fen) == reference_yuan(fen)


def test_every_section_and_its_numbers() -> None:
    rep = report()
    page = render(rep)
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page
    got = cells(page)
    for i, c in enumerate(rep["configs"]):
        for rule, outcomes in c["pushes"].items():
            for o in OUTCOMES:
                assert got[("pushes-table", rule, o.replace("_", " "), i)][1].startswith(
                    f"{outcomes[o]:,}")
        gmv = c["gmv_after_push"]
        assert got[("gmv-table", "all rules", "paid", i)][1].startswith(
            reference_yuan(gmv["paid_fen"]))
        for rule, v in gmv["by_rule"].items():
            assert got[("gmv-table", rule, "paid", i)][1].startswith(reference_yuan(v["paid_fen"]))
        assert got[("coupons-table", "all", "face value", i)][1].startswith(
            reference_yuan(c["coupons"]["face_value_fen"]))
        overall = c["funnels"]["purchase"]["overall"]
        stages = list(overall)
        for k, stage in enumerate(stages):
            assert got[("funnel:purchase", stage, "users", i)][1].startswith(f"{overall[stage]:,}")
            step = got[("funnel:purchase", stage, "step conversion", i)][1]
            want = "—" if k == 0 else f"{100 * overall[stage] / overall[stages[k - 1]]:.1f}%"
            assert step.startswith(want), (stage, step, want)
        assert got[("live-table", "all rooms", "follow-ups", i)][1].startswith(
            str(c["live_followups"]["total"]))
    # The large sums of the two configs, to the fen, and their difference.
    assert "¥10,000,000,000.01" in page and "¥10,000,000,000.00" in page
    assert got[("gmv-table", "all rules", "paid", 1)] == (True, "¥10,000,000,000.00-¥0.01")
    assert "what the log shows after a push within 24 hours, not a causal estimate" in \
        page.lower()
    log = rep["log"]
    assert f"<dd>{log['lines']:,}</dd>" in page and f"<dd>{log['events']:,}</dd>" in page
    for reason, n in log["dead"].items():
        assert got[("log-dead", reason, "Dead letters", 0)] == (False, f"{n:,}")
    # Shanghai time: 20:00 on 11 November is 12:00 UTC.
    assert "2026-11-11 20:00" in page


def flatten(c: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    """The compared numbers of one config, keyed as the page keys its cells."""
    out: dict[tuple[str, str, str], Any] = {}
    for rule, outcomes in c["pushes"].items():
        for o in OUTCOMES:
            out[("pushes-table", rule, o.replace("_", " "))] = outcomes[o]
    for rule, b in c["budgets"].items():
        out[("budgets-table", rule, "budget (coupons)")] = b["budget"]
        out[("budgets-table", rule, "used")] = b["used_by_hour"][-1]["used"]
    funnel = c["funnels"]["purchase"]
    for stage, n in funnel["overall"].items():
        out[("funnel:purchase", stage, "users")] = n
    for value, stages in funnel["by"]["channel"].items():
        for stage, n in stages.items():
            out[("funnel:purchase:channel", f"{value}|{stage}", "users")] = n
    gmv = c["gmv_after_push"]
    out[("gmv-table", "all rules", "orders")] = gmv["orders"]
    out[("gmv-table", "all rules", "paid")] = gmv["paid_fen"]
    for rule, v in gmv["by_rule"].items():
        out[("gmv-table", rule, "orders")] = v["orders"]
        out[("gmv-table", rule, "paid")] = v["paid_fen"]
    out[("coupons-table", "all", "granted")] = c["coupons"]["granted"]
    out[("coupons-table", "all", "face value")] = c["coupons"]["face_value_fen"]
    return out


def test_cells_that_differ_from_the_first_config_are_marked_and_no_other() -> None:
    rep = report()
    got = cells(render(rep))
    first, second = (flatten(c) for c in rep["configs"])
    differ = {k for k in first if first[k] != second[k]}
    assert differ and len(differ) < len(first)
    for table, key, metric in first:
        assert got[(table, key, metric, 0)][0] is False
        marked, text = got[(table, key, metric, 1)]
        assert marked is ((table, key, metric) in differ), (table, key, metric, text)
    # The difference to the first config follows the value.
    assert got[("pushes-table", "cart_recovery", "sent", 1)] == (True, "130+30")
    assert got[("budgets-table", "cart_recovery", "budget (coupons)", 1)] == (True, "30-20")
    # Every marked cell anywhere differs in its text from the first config's.
    for (table, key, metric, i), (marked, text) in got.items():
        if marked:
            assert i > 0 and not text.startswith(got[(table, key, metric, 0)][1])


def test_one_config_marks_nothing() -> None:
    rep = report()
    rep["configs"] = rep["configs"][1:]
    got = cells(render(rep))
    assert got and not any(marked for marked, _ in got.values())


def test_strings_from_the_report_are_escaped() -> None:
    rep = report()
    c = rep["configs"][1]
    c["label"] = "B<i>"
    c["pushes"][NASTY] = dict.fromkeys(OUTCOMES, 1)
    c["live_followups"]["by_room"][NASTY] = 3
    c["flash_sales"][NASTY] = {"stock": 1}
    c["anomalies"].append({"type": NASTY, "alert_id": NASTY, "sku": NASTY, "minute": 0})
    rep["log"]["path"] = "x\"><script>alert(2)</script>.jsonl"
    rep["log"]["dead"][NASTY] = 1
    page = render(rep)
    assert "<script" not in page.lower() and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "x&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;.jsonl" in page
    assert "B&lt;i&gt;" in page


def test_the_page_references_no_network() -> None:
    rep = report()
    rep["log"]["path"] = "https://example.com/promo.jsonl"  # text, not a reference
    page = render(rep)
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"url\(|@import|<script|<link|<iframe|<img", page, re.I)


def test_a_log_without_events_gives_a_page_of_empty_sections() -> None:
    """A log of invalid lines only: no times, no pushes, no funnels; every section still
    there, saying so, and the dead letters counted."""
    rep = {"log": {"path": "bad.jsonl", "lines": 3, "events": 0, "dead": {"invalid_json": 3},
                   "duplicate": 0, "from_ts": None, "to_ts": None},
           "attribution_hours": 24,
           "configs": [{"label": "a", "config": "a.toml", "sha256": "0" * 64, "pushes": {},
                        "coupons": {"granted": 0, "face_value_fen": 0, "by_hour": []},
                        "budgets": {}, "funnels": {}, "flash_sales": {},
                        "live_followups": {"total": 0, "by_room": {}}, "anomalies": [],
                        "gmv_after_push": {"window_hours": 24, "orders": 0, "paid_fen": 0,
                                           "by_rule": {}, "note": ""}}]}
    page = render(rep)
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page
    assert "coupons granted per hour: no data" in page and "<svg" not in page
    assert cells(page)[("log-dead", "invalid_json", "Dead letters", 0)] == (False, "3")
    assert cells(page)[("gmv-table", "all rules", "paid", 0)] == (False, "¥0.00")


def test_the_input_is_left_unchanged() -> None:
    rep = report()
    before = copy.deepcopy(rep)
    render(rep)
    assert rep == before


def open_in_chromium(path: Path, out: Path | None = None) -> dict[str, Any]:
    args = ["node", "report.mjs", "--file", str(path)] + (["--out", str(out)] if out else [])
    run = subprocess.run(args, cwd=BROWSER_DIR, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def test_the_page_in_chromium_from_disk(browser_tools, tmp_path: Path) -> None:  # noqa: F811
    rep = report()
    # One config's hour has no coupon: its chart has one point fewer than the other's.
    del rep["configs"][1]["coupons"]["by_hour"][2]
    page = tmp_path / "report.html"
    page.write_text(render(rep), encoding="utf-8")
    shown = open_in_chromium(page, tmp_path / "report.png")
    assert shown["errors"] == []
    assert shown["requests"] == [page.as_uri()]
    assert shown["sections"] == list(SECTIONS) and shown["drawn"]
    want: dict[str, dict[str, int]] = {}
    for i, c in enumerate(rep["configs"]):
        n = len(c["coupons"]["by_hour"])
        want[f"coupons:{i}"] = {"granted": n, "face value": n}
    for rule in rep["configs"][0]["budgets"]:
        want[f"budget:{rule}"] = {c["label"]: len(c["budgets"][rule]["used_by_hour"])
                                  for c in rep["configs"]}
    assert shown["charts"] == want
    # The budget of each config that has one, as a level across its rule's chart.
    rep["configs"][1]["budgets"]["cart_recovery"]["budget"] = None
    page.write_text(render(rep), encoding="utf-8")
    assert open_in_chromium(page)["limits"] == {"coupons:0": 0, "coupons:1": 0,
                                                "budget:cart_recovery": 1}
    assert want["coupons:1"]["granted"] == 5
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_funnel_stages_keep_the_funnels_order_in_a_report_read_back_sorted():
    """report.json's keys are sorted (cart_add before page_view): the table follows
    ``stages``, and each step conversion is over the stage before in the funnel."""
    sorted_back = json.loads(json.dumps(report(), sort_keys=True))
    html = render(sorted_back)
    table = html[html.index('id="funnels"'):]
    table = table[:table.index("</table>")]
    at = [table.index(f">{stage}<") for stage in ("page_view", "cart_add", "order_submit",
                                                  "payment")]
    assert at == sorted(at)
    assert "40.0%" in table  # cart_add 400 over page_view 1,000
