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


def _get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def _selling(port: int) -> list[dict[str, Any]] | None:
    """The sales once there are three, each claimed and one with units sold."""
    sales = (_get(port, "/v1/flash-sales") or {}).get("sales", [])
    if len(sales) == 3 and all(s["claims"]["ok"] > 0 for s in sales) and any(
            s["sold"] > 0 for s in sales):
        return sales
    return None


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
        sales = wait_until(lambda: _selling(api_port), 60, "three flash sales selling")
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        yield DemoRun(api_port, tmp_path / "state", started, events_at, sales, password,
                      state["pids"][1:], proc.returncode, out.decode(errors="replace"),
                      time.monotonic() - asked)
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
