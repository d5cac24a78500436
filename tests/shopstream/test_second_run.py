"""A second run of the embedded infra in the same directory shows its own numbers: the new
empty broker never meets the previous run's Redis state (fences, counters), so nothing of the
new log is skipped, refused or added on top of the old numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from shopstream.core.settings import infra_state_path
from tests.support import ROOT, Proc, new_port, wait_until

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000)


def _events(path: Path, run: int, n: int) -> int:
    """``n`` page views of 40 users, stamped a little in the past, ids unique to the run."""
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"event_id": f"r{run}-{i}", "type": "page_view", "page": "home",
                                 "ts": NOW_MS - 60_000 + i, "user_id": f"u{i % 40}"}) + "\n")
    return n


def _get(port: int, path: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def _one_run(tmp_path: Path, state: Path, run: int, n: int) -> tuple[dict, dict]:
    """``shopstream infra``, a worker and the API in ``state``; replay ``n`` events; return the
    API's pipeline totals and stats totals once they stop changing (or after a minute)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
    env.update(SHOPSTREAM_STATE_DIR=str(state), PYTHONPATH=str(ROOT))
    infra = subprocess.Popen([sys.executable, "-m", "shopstream", "infra"], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    procs: list[Proc] = []
    try:
        wait_until(lambda: infra_state_path(str(state)).exists(), 20, "infra up")
        api_port = new_port()
        procs.append(Proc(["worker", "--web-port", str(new_port())], env,
                          tmp_path / f"worker-{run}.log"))
        procs.append(Proc(["api", "--port", str(api_port)], env, tmp_path / f"api-{run}.log"))
        wait_until(lambda: _get(api_port, "/v1/pipeline"), 30, "api up")
        file = tmp_path / f"run-{run}.jsonl"
        _events(file, run, n)
        replay = subprocess.run([sys.executable, "-m", "shopstream", "replay", str(file),
                                 "--quiet"], env=env, cwd=ROOT, capture_output=True, timeout=60)
        assert replay.returncode == 0, replay.stderr.decode()

        def settled() -> tuple[dict, dict] | None:
            pipe, stats = _get(api_port, "/v1/pipeline"), _get(api_port, "/v1/stats")
            if pipe and stats and pipe["totals"]["in"] >= n and pipe["totals"]["lag"] == 0:
                return pipe["totals"], stats["totals"]
            return None

        try:
            return wait_until(settled, 60, f"run {run}: {n} events in the API's numbers")
        except AssertionError:
            raise AssertionError(f"run {run}: {_get(api_port, '/v1/pipeline')}\n"
                                 + procs[0].log_text()[-3000:]) from None
    finally:
        for proc in procs:
            proc.stop()
        infra.send_signal(signal.SIGINT)
        infra.wait(30)


def test_a_second_run_in_the_same_directory_shows_only_its_own_events(tmp_path):
    state = tmp_path / "state"
    pipe1, stats1 = _one_run(tmp_path, state, 1, 900)
    assert pipe1["in"] == pipe1["processed"] == 900 and stats1["events"] == 900
    started = time.monotonic()
    pipe2, stats2 = _one_run(tmp_path, state, 2, 300)
    assert pipe2["in"] == pipe2["processed"] == 300, pipe2
    assert stats2["events"] == 300, stats2
    assert time.monotonic() - started < 60
