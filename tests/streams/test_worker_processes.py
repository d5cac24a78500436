"""`shopstream worker --processes 2`: two processes of one consumer group share the partitions,
and together their numbers equal the reference exactly."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from shopstream.replay import replay_lines
from tests.streams.exact import assert_exact, wait_done
from tests.streams.logs import build_log
from tests.support import new_port, wait_until

pytestmark = [pytest.mark.integration]

HORIZON_MS = 20_000


def _owned(port: int) -> list[int] | None:
    """Partitions the first process owns, from its /readyz (None until it answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return list(json.loads(resp.read())["partitions"])
    except urllib.error.HTTPError as exc:
        return list(json.loads(exc.read()).get("partitions", []))
    except OSError:
        return None


def test_two_worker_processes_share_partitions_and_stay_exact(infra, spawn):
    settings = infra.settings(dedup_horizon_ms=HORIZON_MS)
    log = build_log(30_000, seed=5, horizon_ms=HORIZON_MS)
    port = new_port()
    worker = spawn(settings, "worker", "--web-port", str(port), "--processes", "2")
    # Once both joined the group, the first holds some partitions, not all.
    wait_until(lambda: (p := _owned(port)) and 0 < len(p) < settings.partitions, 180,
               "partitions shared by two processes")
    replay_lines(settings, log.lines)
    wait_done(settings, log)
    assert_exact(settings, log)
    assert 0 < len(_owned(port) or []) < settings.partitions
    assert worker.popen.poll() is None
