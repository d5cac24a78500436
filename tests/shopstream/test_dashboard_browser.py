"""The dashboard in a real headless Chromium: a worker and an API on the real broker and
redis-server, a known set of events through POST /v1/events, a flash sale with claims; the page
asks for the read key, then shows the numbers those events imply (computed here from what was
sent), and every panel draws without a script error.

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
from tests.support import ROOT, wait_until

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_DIR = ROOT / "tests" / "browser"
SCRIPT = BROWSER_DIR / "dashboard.mjs"
CHANNELS = ("search", "ads", "live")
REGIONS = ("east", "north")
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


#: The purchase funnel, broken down by channel (first) and by region.
FUNNELS_TOML = """
[[funnels]]
name = "purchase"
breakdowns = ["channel", "region"]
steps = ["page_view", "product_view", "cart_add", "order_submit",
         {type = "payment", where = {status = "success"}}]
"""


def start(settings, spawn, start_worker, read_key: str, config: Path) -> int:
    config.write_text(FUNNELS_TOML)
    start_worker(settings, SHOPSTREAM_CONFIG=str(config))
    return start_api(settings, spawn, SHOPSTREAM_READ_KEY=read_key,
                     SHOPSTREAM_CONFIG=str(config))


def test_the_dashboard_shows_what_the_events_imply(browser_tools, settings, spawn, start_worker,
                                                   tmp_path):
    key = secrets.token_urlsafe(16)
    port = start(settings, spawn, start_worker, key, tmp_path / "funnels.toml")
    now = int(time.time() * 1000)
    events = shop_events(now)
    live = room_events(now)
    status, body = call(port, "POST", "/v1/events", events + live)
    assert status == 200 and body["accepted"] == len(events + live), body

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
    total_events = len(events) + len(live) + len(claims)

    def applied() -> int:
        status, body = call(port, "GET", "/v1/stats", token=key)
        assert status == 200, body
        return body["totals"]["events"] == total_events
    wait_until(applied, 90, "the worker applied every event", interval=0.5)
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
        of = [e for e in events + live if e.get("channel") == channel]
        assert row[1] == f"{len(of):,}"
        assert row[4] == str(sum(e["type"] == "order_submit" for e in of))

    reserved = sum(q for _, q in claims)
    assert page["sales"] == [{"id": "drop1", "available": 50 - reserved, "reserved": reserved,
                              "sold": 0, "text": page["sales"][0]["text"]}]
    assert page["pipeline"]["processed"]["value"] == str(total_events)
    assert page["pipeline"]["dead"]["value"] == "0"
    assert page["pipeline"]["lag"]["value"] == "0"  # everything was applied before the page
