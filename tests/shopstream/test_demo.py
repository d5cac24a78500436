"""`shopstream demo`: events visible within 30 s, the dashboard URL printed, three flash sales
selling through the API; Ctrl-C stops the traffic at once and leaves no process behind, the
Redis password never printed and no client complaining about the stopped broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, new_port, wait_until

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie is gone for every purpose but its exit status.
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ")[-1][0] != "Z"


@dataclass
class DemoRun:
    api_port: int
    state_dir: Path
    started: float
    events_at: float
    sales: list[dict[str, Any]]
    password: str
    pids: list[int]
    returncode: int
    output: str
    stop_s: float
    #: Events the API counted just before Ctrl-C.
    final_events: int
    #: Visitors (UV) of the first minute of traffic value the API showed.
    visitors: int


def _get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


#: A minute no demo traffic is stamped in: one event posted there in the first run tells
#: whether a later run's numbers still hold the first run's.
MARKER_MINUTE = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def _post_marker(port: int) -> None:
    body = json.dumps({"event_id": "first-run-marker", "type": "page_view", "page": "home",
                       "ts": MARKER_MINUTE + 1_000, "user_id": "marker"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def _marker_events(port: int) -> int | None:
    """Events counted in the marker's minute (None while the API does not answer)."""
    stats = _get(port, f"/v1/stats?from={MARKER_MINUTE}&to={MARKER_MINUTE + 60_000}")
    return None if stats is None else stats["totals"]["events"]


def _selling(port: int) -> list[dict[str, Any]] | None:
    """The sales once there are three, each claimed and one with units sold."""
    sales = (_get(port, "/v1/flash-sales") or {}).get("sales", [])
    if len(sales) == 3 and all(s["claims"]["ok"] > 0 for s in sales) and any(
            s["sold"] > 0 for s in sales):
        return sales
    return None


def _visitors(port: int) -> int:
    """UV of the first minute the traffic capability (on in the demo, opt-in elsewhere) kept."""
    buckets = (_get(port, "/v1/traffic?res=minute") or {}).get("buckets", [])
    return next((b["uv"] for b in buckets if b.get("uv")), 0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    tmp_path = tmp_path_factory.mktemp("demo")
    api_port, web_port = new_port(), new_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
    env.update(SHOPSTREAM_STATE_DIR=str(tmp_path / "state"), SHOPSTREAM_API_PORT=str(api_port),
               SHOPSTREAM_WORKER_WEB_PORT=str(web_port), PYTHONPATH=str(ROOT))
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "shopstream", "demo", "--rate", "500"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        state_file = tmp_path / "state" / "infra.json"
        wait_until(state_file.exists, 20, "infra up")
        state = json.loads(state_file.read_text())
        password = state["redis_url"].split("://:", 1)[1].split("@", 1)[0]
        wait_until(lambda: (_get(api_port, "/v1/stats") or {}).get("totals", {}).get("events"),
                   30, "events visible through the API")
        events_at = time.monotonic()
        _post_marker(api_port)
        wait_until(lambda: _marker_events(api_port) == 1, 30, "the marker event applied")
        sales = wait_until(lambda: _selling(api_port), 60, "three flash sales selling")
        visitors = wait_until(lambda: _visitors(api_port), 60, "the money view's traffic value")
        final = (_get(api_port, "/v1/stats") or {}).get("totals", {}).get("events") or 0
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        yield DemoRun(api_port, tmp_path / "state", started, events_at, sales, password,
                      state["pids"][1:], proc.returncode, out.decode(errors="replace"),
                      time.monotonic() - asked, final, visitors)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_demo_shows_events_and_ctrl_c_cleans_up(demo):
    assert demo.events_at - demo.started < 30
    assert demo.returncode == 0, demo.output[-2000:]
    assert "shopstream demo is running" in demo.output
    assert f"dashboard http://127.0.0.1:{demo.api_port}/\n" in demo.output
    assert len(demo.pids) == 2
    wait_until(lambda: not any(alive(p) for p in demo.pids), 10, "broker and redis gone")
    assert not (demo.state_dir / "infra.json").exists()


def test_demo_sells_three_flash_sales_through_the_api(demo):
    for sale in demo.sales:
        units = sale["available"] + sale["reserved"] + sale["sold"]
        assert units == sale["stock"] + sale["restocked"]
        assert sale["state"] == "live"


def test_demo_never_prints_the_redis_password(demo):
    assert demo.password not in demo.output
    assert "redis     redis://:***@127.0.0.1:" in demo.output


def test_ctrl_c_stops_quietly(demo):
    """The traffic stops first and every client before the broker: no librdkafka line."""
    assert "Connection refused" not in demo.output and "rdkafka" not in demo.output
    stopping = demo.output.index("demo: stopping")
    assert "simulate:" not in demo.output[stopping:]
    assert demo.stop_s < 30


def test_a_second_demo_in_the_same_directory_shows_its_own_numbers(demo):
    """The first run's Redis state never meets the second run's new empty broker: within a
    minute the second run's numbers are its own (not the first run's plus, nor stuck behind
    an old fence) and every partition is applied from its new log."""
    first = demo.final_events
    assert first > 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
    env.update(SHOPSTREAM_STATE_DIR=str(demo.state_dir), SHOPSTREAM_API_PORT=str(demo.api_port),
               SHOPSTREAM_WORKER_WEB_PORT=str(new_port()), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "shopstream", "demo", "--rate", "500"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        api = demo.api_port
        seen = wait_until(lambda: (_get(api, "/v1/stats") or {}).get("totals", {}).get("events"),
                          60, "the second run's events visible through the API")
        assert _marker_events(api) == 0, "the first run's numbers are still there"
        assert seen < first, f"second run starts at {seen} events, the first ended at {first}"

        def applied_from_new_log() -> dict[str, Any] | None:
            pipe = _get(api, "/v1/pipeline") or {}
            parts = pipe.get("partitions") or []
            ok = parts and all(p["state"] == "ok" and p["processed"] > 0
                               and p["log_end"] is not None
                               and p["applied_offset"] < p["log_end"] for p in parts)
            return pipe if ok else None

        pipe = wait_until(applied_from_new_log, 60, "every partition applied from the new log")
        assert pipe["remedy"] is None
        sales = wait_until(lambda: _selling(api), 60, "the second run's flash sales selling")
        assert all(s["restocked"] == 0 for s in sales)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
