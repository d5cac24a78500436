"""The command line's edges: one clear line and a distinct exit status for each kind of
mistake (usage 2, settings 3, port taken 4); simulator ids unique per seed."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from shopstream.simulate import Simulator
from tests.support import ROOT, settings_env

pytestmark = [pytest.mark.integration]


def shopstream(settings, *args: str, env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "shopstream", *args], cwd=ROOT,
                          env={**settings_env(settings), **(env or {})},
                          capture_output=True, text=True, timeout=60)


def test_missing_file_is_one_line_and_status_2(settings):
    out = shopstream(settings, "replay", "/no/such/events.jsonl")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["shopstream replay: no such file: "
                                               "/no/such/events.jsonl"]


def test_usage_and_settings_errors_have_distinct_statuses(settings):
    assert shopstream(settings, "no-such-command").returncode == 2
    bad = shopstream(settings, "config", env={"SHOPSTREAM_PARTITIONS": "many"})
    assert bad.returncode == 3
    assert "SHOPSTREAM_PARTITIONS: expected an integer, got 'many'" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("command", ["worker", "api"])
def test_a_taken_port_is_one_line_and_status_4(settings, command):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        flag = "--web-port" if command == "worker" else "--port"
        out = shopstream(settings, command, flag, port)
    assert out.returncode == 4
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("shopstream")]
    assert len(lines) == 1 and "is taken" in lines[0] and "0 for a free one" in lines[0]
    assert "Traceback" not in out.stderr


def test_simulator_event_ids_are_unique_per_seed():
    def ids(seed: int) -> list[str]:
        return [e["event_id"] for e in Simulator(users=200, rate=500, seed=seed).events(5_000)]

    one, two = ids(1), ids(2)
    assert len(set(one)) == len(one) >= 5_000 and len(set(two)) == len(two) >= 5_000
    assert not set(one) & set(two)
