"""The dashboard in a real headless Chromium: a worker and an API on the real broker and
redis-server, a known set of events through POST /v1/events, a flash sale with claims; the page
asks for the read key, then shows the numbers those events imply (computed here from what was
sent), and every panel draws without a script error. The money row (traffic, ads, stock) is fed
events of half an hour ago, made final by a later event on every partition, so that the ROAS
and stock judges have run before the page opens.

Needs Debian's chromium and ``npm ci --prefix tests/browser`` (``make tools`` installs both as
root). Outside CI a missing one skips this test with the reason; under CI it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.shopstream.test_api_events import start_api
from tests.support import ROOT, users_by_partition, wait_until

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_DIR = ROOT / "tests" / "browser"
SCRIPT = BROWSER_DIR / "dashboard.mjs"
CHANNELS = ("search", "ads", "live")
REGIONS = ("east", "north")
MINUTE, HOUR = 60_000, 3_600_000
#: The worker's capabilities: the defaults and the three of the money row.
AGENTS = "event_stats,funnel,inventory,coupons,live,ops,anomalies,traffic,ads,stock"
#: Screenshots of the browser tests land here (git-ignored), for a person to look at.
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture
def browser_tools() -> None:
    """Chromium, node and playwright-core, or a skip (a failure under CI) naming what lacks."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if shutil.which("node") is None:
        missing.append("node (apt-get install nodejs)")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        missing.append("playwright-core (npm ci --prefix tests/browser)")
    if missing:
        message = "browser test needs " + ", ".join(missing) + "; `make tools` installs them"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(message)
        pytest.skip(message)


def call(port: int, method: str, path: str, body: Any = None,
         token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def shop_events(now: int) -> list[dict[str, Any]]:
    """Ten shoppers over three channels who drop off step by step; some payments fail."""
    events: list[dict[str, Any]] = []
    for i in range(10):
        user, ts = f"shopper{i}", now - 150_000 + i * 1_000
        base = {"user_id": user, "channel": CHANNELS[i % 3], "session_id": f"s{i}",
                "region": REGIONS[i % 2]}
        amount = 10_000 * (i + 1) + 99
        steps: list[dict[str, Any]] = [
            {"type": "page_view", "page": "home"},
            {"type": "product_view", "sku": f"sku{i}", "price": amount},
        ]
        if i < 8:
            steps.append({"type": "cart_add", "sku": f"sku{i}", "qty": 1, "price": amount})
        if i < 7:
            steps.append({"type": "order_submit", "order_id": f"o{i}", "amount": amount,
                          "items": [{"sku": f"sku{i}", "qty": 1, "price": amount}]})
        if i < 4 or i == 6:
            steps.append({"type": "payment", "order_id": f"o{i}", "amount": amount,
                          "status": "success"})
        if i in (4, 5):
            steps.append({"type": "payment", "order_id": f"o{i}", "amount": amount,
                          "status": "failed"})
        for n, step in enumerate(steps):
            events.append({**base, **step, "event_id": f"{user}-{n}", "ts": ts + n * 100})
    return events


def room_events(now: int) -> list[dict[str, Any]]:
    """A room on air with four viewers (one joins twice, one leaves) and a few comments, and
    24 rooms on air without viewers (more than the page lists)."""
    events: list[dict[str, Any]] = [{"event_id": "room-start", "type": "live_start",
                                     "ts": now - 120_000, "user_id": "host1", "room_id": "r1"}]
    events += [{"event_id": f"quiet-{k}", "type": "live_start", "ts": now - 110_000,
                "user_id": f"host-q{k}", "room_id": f"q{k:02}"} for k in range(24)]
    for i, (kind, user) in enumerate([("live_join", "fan1"), ("live_join", "fan2"),
                                      ("live_join", "fan1"), ("live_join", "fan3"),
                                      ("live_join", "fan4"), ("live_comment", "fan2"),
                                      ("live_leave", "fan3"), ("live_comment", "fan1")]):
        events.append({"event_id": f"room-{i}", "type": kind, "ts": now - 100_000 + i * 1_000,
                       "user_id": user, "room_id": "r1", "channel": "live"})
    return events


def funnel_counts(definition: dict[str, Any], events: list[dict[str, Any]]) -> list[int]:
    """Users reaching each step, in event-time order (every user enters once here)."""
    reached = [0] * len(definition["steps"])
    by_user: dict[str, list[dict[str, Any]]] = {}
    for ev in events:
        by_user.setdefault(ev["user_id"], []).append(ev)
    for evs in by_user.values():
        k = 0
        for ev in sorted(evs, key=lambda e: e["ts"]):
            step = definition["steps"][k] if k < len(reached) else None
            if step and ev["type"] == step["type"] and all(
                    ev.get(f) == v for f, v in step["where"].items()):
                reached[k] += 1
                k += 1
    return reached


def money_events(t0: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Users' and merchants' events within 4 minutes from ``t0`` (less than the allowed
    lateness: none of them closes a minute alone). Campaign spring: 4 buyers of 2 units of
    sku-a (100,000 fen each) for 100,000 fen of spend, ROAS 4; campaign autumn: 2 buyers of 10
    units of sku-r (50,000 fen each) for 200,000 fen, ROAS 0.5 (an alert); 5 of sku-r's 20 paid
    units come back (25%); four visitors from search buy nothing; stock counts before the sales.
    """
    users: list[dict[str, Any]] = []
    merchant: list[dict[str, Any]] = [
        {"event_id": f"stock-{sku}", "type": "stock_update", "ts": t0, "sku": sku, "qty": qty}
        for sku, qty in (("sku-a", 12), ("sku-b", 0), ("sku-r", 300), ("sku-c", 1000))]
    # The spend comes after the sales: the trailing hour the ROAS judge takes at its minute
    # holds both (an earlier spend would be judged at ROAS 0 first).
    merchant += [{"event_id": f"spend-{c}", "type": "ad_cost", "ts": t0 + 200_000, "campaign": c,
                  "channel": ch, "cost": cost}
                 for c, ch, cost in (("spring", "ads", 100_000), ("autumn", "social", 200_000))]
    buyers = ([("spring", "ads", "sku-a", 2, 50_000)] * 4
              + [("autumn", "social", "sku-r", 10, 5_000)] * 2)
    for i, (campaign, channel, sku, qty, price) in enumerate(buyers):
        user, ts = f"buyer{i}", t0 + 10_000 + i * 1_000
        base = {"user_id": user, "channel": channel, "campaign": campaign,
                "session_id": f"m{i}", "region": REGIONS[i % 2]}
        steps: list[dict[str, Any]] = [
            {"type": "page_view", "page": "landing"},
            {"type": "order_submit", "order_id": f"mo{i}", "amount": qty * price,
             "items": [{"sku": sku, "qty": qty, "price": price}]},
            {"type": "payment", "order_id": f"mo{i}", "amount": qty * price, "status": "success"}]
        users += [{**base, **step, "event_id": f"{user}-{n}", "ts": ts + n * 30_000}
                  for n, step in enumerate(steps)]
    users.append({"event_id": "return-0", "type": "order_return", "ts": t0 + 180_000,
                  "user_id": "buyer4", "order_id": "mo4", "sku": "sku-r", "qty": 5})
    users += [{"event_id": f"visit-{i}", "type": "page_view", "ts": t0 + 5_000 + i * 1_000,
               "user_id": f"visitor{i}", "channel": "search", "page": "home",
               "region": REGIONS[i % 2]} for i in range(4)]
    return users, merchant


def ticks(partitions: int, now: int) -> list[dict[str, Any]]:
    """A stock count on every partition at ``now``: every watermark moves past the money
    events' minutes plus the allowed lateness, so the judges take them."""
    return [{"event_id": f"tick-{sku}", "type": "stock_update", "ts": now, "sku": sku, "qty": 1}
            for sku in users_by_partition(partitions, "tick-sku")]


def channel_value(events: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per channel: visitors counted once per hour (UTC-aligned) of a page view, orders, paid
    GMV (docs/traffic.md, summed over hours as the page does)."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        m = out.setdefault(e.get("channel") or "other", {"visits": set(), "orders": 0, "gmv": 0})
        if e["type"] == "page_view":
            m["visits"].add((e["user_id"], e["ts"] // HOUR))
        m["orders"] += e["type"] == "order_submit"
        if e["type"] == "payment" and e["status"] == "success":
            m["gmv"] += e["amount"]
    return {ch: {"uv": len(m["visits"]), "orders": m["orders"], "paid_gmv": m["gmv"]}
            for ch, m in out.items() if m["visits"]}


def yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


def traffic_row(channel: str, m: dict[str, int]) -> list[str]:
    """A channel's row as the page writes it (ratios of the sums; UV value rounded to fen)."""
    uv = m["uv"]
    return [channel, f"{uv:,}", f"{m['orders']:,}", f"{100 * m['orders'] / uv:.1f}%" if uv else "-",
            yuan(m["paid_gmv"]), yuan(int(m["paid_gmv"] / uv + 0.5)) if uv else "-"]


#: The purchase funnel, broken down by channel (first) and by region; SKUs judged low or
#: overstocked from their first minute (the test's sales span minutes, not the default hour).
FUNNELS_TOML = """
[[funnels]]
name = "purchase"
breakdowns = ["channel", "region"]
steps = ["page_view", "product_view", "cart_add", "order_submit",
         {type = "payment", where = {status = "success"}}]

[stock]
min_history_min = 0
"""


def start(settings, spawn, start_worker, read_key: str, config: Path) -> int:
    config.write_text(FUNNELS_TOML)
    start_worker(settings, SHOPSTREAM_CONFIG=str(config), SHOPSTREAM_AGENTS=AGENTS)
    return start_api(settings, spawn, SHOPSTREAM_READ_KEY=read_key,
                     SHOPSTREAM_CONFIG=str(config), SHOPSTREAM_AGENTS=AGENTS)


def test_the_dashboard_shows_what_the_events_imply(browser_tools, settings, spawn, start_worker,
                                                   tmp_path):
    key = secrets.token_urlsafe(16)
    port = start(settings, spawn, start_worker, key, tmp_path / "funnels.toml")
    now = int(time.time() * 1000)
    # The money events first, half an hour back (final once the later events land).
    money, merchant = money_events(now - 30 * MINUTE)
    past = sorted(money + merchant, key=lambda e: e["ts"])
    status, body = call(port, "POST", "/v1/events", past)
    assert status == 200 and body["accepted"] == len(past), body

    def stats_events() -> int:
        status, body = call(port, "GET", "/v1/stats", token=key)
        assert status == 200, body
        return body["totals"]["events"]
    wait_until(lambda: stats_events() == len(past), 90, "the money events applied", interval=0.5)

    shop, live, tick = shop_events(now), room_events(now), ticks(settings.partitions, now)
    status, body = call(port, "POST", "/v1/events", shop + live + tick)
    assert status == 200 and body["accepted"] == len(shop + live + tick), body
    events, merchant = money + shop, merchant + tick

    sale = {"sale_id": "drop1", "sku": "flash-sku", "stock": 50, "per_user_limit": 5,
            "starts_at": now - 60_000, "ends_at": now + 3_600_000}
    status, body = call(port, "POST", "/v1/flash-sales", sale, token=settings.admin_token)
    assert status == 201, body
    claims = [("fan1", 2), ("fan2", 1), ("fan3", 3)]
    for user, qty in claims:
        status, body = call(port, "POST", "/v1/flash-sales/drop1/claims",
                            {"user_id": user, "qty": qty})
        assert status == 200, body
    # Each claim also travels as an event.
    total_events = len(events) + len(live) + len(merchant) + len(claims)
    wait_until(lambda: stats_events() == total_events, 90, "the worker applied every event",
               interval=0.5)

    # The ads judge answers the end of its last minute, the stock judge its last minute with a
    # stock update, a payment or a return.
    last = {"ads": max(e["ts"] for e in past) // MINUTE * MINUTE + MINUTE,
            "stock": max(e["ts"] for e in past if e["type"] in (
                "stock_update", "payment", "order_return")) // MINUTE * MINUTE}
    seen: dict[str, Any] = {}

    def judged() -> bool:
        """The ROAS and stock judges took the money events' minutes."""
        ads, stock = call(port, "GET", "/v1/ads", token=key), call(port, "GET", "/v1/stock",
                                                                     token=key)
        assert ads[0] == 200 and stock[0] == 200, (ads, stock)
        seen.update(ads=ads[1]["judged_through"], stock=stock[1]["judged_through"],
                    skus=stock[1]["total"])
        return ((seen["ads"] or 0) >= last["ads"] and (seen["stock"] or 0) >= last["stock"]
                and seen["skus"] == 4)
    try:
        wait_until(judged, 90, "the judges took the money events", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {seen}, to judge {last}") from None
    status, funnels = call(port, "GET", "/v1/funnels", token=key)
    assert status == 200

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    run = subprocess.run(
        ["node", str(SCRIPT), "--url", f"http://127.0.0.1:{port}/", "--key", key,
         "--out", str(shot), "--width", "1920", "--height", "1080", "--by", "region"],
        cwd=BROWSER_DIR, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    page = json.loads(run.stdout)

    assert page["errors"] == []
    assert page["askedForKey"] and page["storedKey"] == key
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name, panel in page["panels"].items():
        assert panel["state"] in ("ok", "na"), (name, panel)

    paid = [e for e in events if e["type"] == "payment" and e["status"] == "success"]
    gmv = sum(e["amount"] for e in paid)
    orders = [e for e in events if e["type"] == "order_submit"]
    payments = [e for e in events if e["type"] == "payment"]
    kpis = page["kpis"]
    assert int(kpis["gmv"]["value"]) == gmv
    assert kpis["gmv"]["text"] == f"¥{gmv / 100:,.2f}"
    assert kpis["orders"]["value"] == str(len(orders))
    assert kpis["paid"]["value"] == str(len(paid))
    assert kpis["success"]["text"] == f"{100 * len(paid) / len(payments):.1f}%"
    assert page["gmvPoints"] == 60 and page["orderBars"] >= 60  # one per minute of the hour

    purchase = next(f for f in funnels["funnels"] if f["name"] == page["funnel"]["name"])
    expected = funnel_counts(purchase, events)
    assert [s["count"] for s in page["funnel"]["steps"]] == expected
    assert [s["text"] for s in page["funnel"]["steps"]] == [f"{n:,}" for n in expected]
    assert page["funnel"]["drop"].startswith("Biggest drop")

    # The breakdown switched to region: the table equals the API's answer for that breakdown.
    assert page["funnel"]["by"] == "region"
    status, api = call(port, "GET", "/v1/funnels/purchase?view=flow&by=region", token=key)
    assert status == 200
    assert [row[:3] for row in page["funnel"]["breakdown"]] == [
        [b["value"], f"{b['steps'][0]['count']:,}", f"{b['steps'][-1]['count']:,}"]
        for b in api["breakdown"]]
    assert sorted(row[0] for row in page["funnel"]["breakdown"]) == sorted(REGIONS)

    # Live rooms: the page's room equals the API's (and the viewers the events imply).
    status, rooms = call(port, "GET", "/v1/live/rooms", token=key)
    assert status == 200
    assert rooms["total"] == 25
    assert [(r["room_id"], f"{r['viewers']:,}") for r in rooms["rooms"][:2]] == [
        ("r1", "3"), ("q00", "0")]
    # The page lists the 20 most watched and counts the rest.
    assert [row[:2] for row in page["rooms"]] == [
        [r["room_id"], f"{r['viewers']:,}"] for r in rooms["rooms"][:20]]
    assert page["panels"]["p-rooms"]["note"] == "5 more on air"

    for channel in CHANNELS:
        row = page["channels"][channel]
        of = [e for e in events + live + merchant if e.get("channel") == channel]
        assert row[1] == f"{len(of):,}"
        assert row[4] == str(sum(e["type"] == "order_submit" for e in of))

    reserved = sum(q for _, q in claims)
    assert page["sales"] == [{"id": "drop1", "available": 50 - reserved, "reserved": reserved,
                              "sold": 0, "text": page["sales"][0]["text"]}]
    assert page["pipeline"]["processed"]["value"] == str(total_events)
    assert page["pipeline"]["dead"]["value"] == "0"
    assert page["pipeline"]["lag"]["value"] == "0"  # everything was applied before the page

    # The money row. Traffic value per channel: the route's hours summed, and what the events
    # imply (a visitor counts once per hour).
    for panel in ("p-traffic", "p-ads", "p-stock", "p-returns"):
        assert page["panels"][panel]["state"] == "ok", page["panels"][panel]
    window = f"from={(now - HOUR) // HOUR * HOUR}&to={now + HOUR}&res=hour"
    status, traffic = call(port, "GET", f"/v1/traffic?{window}&by=channel", token=key)
    assert status == 200, traffic
    sums: dict[str, dict[str, int]] = {}
    for b in traffic["buckets"]:
        for ch, m in b["by"].items():
            acc = sums.setdefault(ch, {"uv": 0, "orders": 0, "paid_gmv": 0})
            for k in acc:
                acc[k] += m[k]
    assert {ch: m for ch, m in sums.items() if m["uv"]} == channel_value(events + live)
    assert page["traffic"] == {ch: traffic_row(ch, m) for ch, m in sums.items()}
    # Only autumn's two buyers came from social: each ordered, 100,000 fen paid in all.
    assert page["traffic"]["social"] == ["social", "2", "2", "100.0%", "¥1,000.00", "¥500.00"]

    # ROAS by campaign against the floor, and the alert of autumn's trailing hour.
    status, ads = call(port, "GET", f"/v1/ads?{window}&by=campaign", token=key)
    assert status == 200, ads
    assert [(g["campaign"], g["spend"], g["paid_gmv"]) for g in ads["groups"]] == [
        ("autumn", 200_000, 100_000), ("spring", 100_000, 400_000)]
    assert page["floor"] == "3"
    assert page["campaigns"] == [
        {"campaign": g["campaign"], "spend": str(g["spend"]), "gmv": str(g["paid_gmv"]),
         "roas": f"{g['paid_gmv'] / g['spend']:.2f}", "below": g["paid_gmv"] < 3 * g["spend"]}
        for g in ads["groups"]]
    spent = max(e["ts"] for e in past if e["type"] == "ad_cost") // MINUTE * MINUTE
    assert [(a["campaign"], a["minute"], a["roas"]) for a in ads["alerts"]] == [
        ("autumn", spent, 0.5)]
    assert [a["id"] for a in page["adsAlerts"]] == [ads["alerts"][0]["alert_id"]]
    assert "autumn ROAS 0.50 under 3 over the hour to then, ¥2,000.00 spent" in (
        page["adsAlerts"][0]["text"])

    # Stock: least cover first (out of stock first), on hand = count - paid units; sku-a and
    # sku-r sold at a pace of thousands a day (units over the minutes observed), far above what
    # they hold, so both are low; sku-c sold nothing; sku-r's return rate 5 / 20 is above 15%.
    status, stock = call(port, "GET", "/v1/stock", token=key)
    assert status == 200, stock
    assert [(s["sku"], s["on_hand"], s["state"]) for s in stock["skus"]] == [
        ("sku-b", 0, "out"), ("sku-a", 12 - 8, "low"), ("sku-r", 300 - 20, "low"),
        ("sku-c", 1000, "ok")]
    assert page["stock"] == [
        [s["sku"], f"{s['on_hand']:,}", "-" if s["days_of_cover"] is None
         else f"{s['days_of_cover']:.1f}", s["state"]] for s in stock["skus"]]
    cover = [s["days_of_cover"] for s in stock["skus"]]
    assert cover[0] is None and cover[3] is None and 0 < cover[1] < cover[2] < 1.5
    assert [(s["sku"], s["sold"], s["returned"]) for s in stock["skus"]
            if s["alerts"]["returns"]] == [("sku-r", 20, 5)]
    assert page["returns"] == [["sku-r", "20", "5", "25.0%"]]
