"""``shopstream replay --wait`` returns once the workers applied everything it sent; progress
is drawn on a terminal only, never into a log or a pipe."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.streams.logs import build_log
from tests.support import ROOT, counts, settings_env

pytestmark = [pytest.mark.integration]


def test_replay_wait_returns_when_everything_is_applied(settings, start_worker, tmp_path):
    log = build_log(3_000, seed=3, oversized=0)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(log.lines) + b"\n")
    start_worker(settings)
    out = subprocess.run([sys.executable, "-m", "shopstream", "replay", str(path), "--wait",
                          "--wait-timeout", "120"], cwd=ROOT, env=settings_env(settings),
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert f"workers applied all {len(log.lines)} events" in out.stderr
    assert counts(settings)["in"] == len(log.lines)
    assert "\r" not in out.stderr and "\x1b" not in out.stderr


def test_replay_wait_without_workers_fails_with_one_line(settings, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(build_log(50, seed=4, oversized=0).lines) + b"\n")
    out = subprocess.run([sys.executable, "-m", "shopstream", "replay", str(path), "--wait",
                          "--wait-timeout", "2"], cwd=ROOT, env=settings_env(settings),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "are workers running?" in out.stderr.splitlines()[-1]
