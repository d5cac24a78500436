"""`shopstream api --processes 2`: two processes listen on one port and both answer."""

from __future__ import annotations

import urllib.request

import pytest

from tests.support import new_port, wait_until

pytestmark = pytest.mark.integration


def _start_time(port: int) -> str:
    """The answering process's start time, from its /metrics (one new connection each)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        for line in resp.read().decode().splitlines():
            if line.startswith("process_start_time_seconds "):
                return line.split()[1]
    raise AssertionError("no process_start_time_seconds on /metrics")


def test_two_api_processes_answer_on_one_port(settings, spawn):
    port = new_port()
    proc = spawn(settings, "api", "--port", str(port), "--processes", "2")

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    wait_until(up, 60, "api up")
    seen: set[str] = set()
    # The kernel spreads new connections by their source port: both processes answer soon.
    wait_until(lambda: seen.add(_start_time(port)) or len(seen) >= 2, 60,
               "both processes answering")
    for _ in range(40):
        seen.add(_start_time(port))
    assert len(seen) == 2, seen
    assert proc.popen.poll() is None
