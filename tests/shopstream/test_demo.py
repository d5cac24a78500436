"""`shopstream demo`: events visible within 30 s, the dashboard URL printed; Ctrl-C leaves no
process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

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


def test_demo_shows_events_and_ctrl_c_cleans_up(tmp_path):
    api_port, web_port = new_port(), new_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
    env.update(SHOPSTREAM_STATE_DIR=str(tmp_path / "state"), SHOPSTREAM_API_PORT=str(api_port),
               SHOPSTREAM_WORKER_WEB_PORT=str(web_port), PYTHONPATH=str(ROOT))
    started = time.monotonic()
    demo = subprocess.Popen([sys.executable, "-m", "shopstream", "demo", "--rate", "500"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        state = wait_until(lambda: (tmp_path / "state" / "infra.json").exists(), 20, "infra up")
        assert state
        pids = json.loads((tmp_path / "state" / "infra.json").read_text())["pids"][1:]
        assert len(pids) == 2 and all(alive(p) for p in pids)

        def events_visible():
            try:
                url = f"http://127.0.0.1:{api_port}/v1/stats"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return json.loads(resp.read())["totals"]["events"]
            except OSError:
                return 0

        wait_until(events_visible, 30, "events visible through the API")
        assert time.monotonic() - started < 30
        demo.send_signal(signal.SIGINT)
        out, _ = demo.communicate(timeout=60)
        assert demo.returncode == 0, out.decode()[-2000:]
        assert b"shopstream demo is running" in out
        assert f"dashboard http://127.0.0.1:{api_port}/\n".encode() in out
        wait_until(lambda: not any(alive(p) for p in pids), 10, "broker and redis gone")
        assert not (tmp_path / "state" / "infra.json").exists()
    finally:
        if demo.poll() is None:
            demo.kill()
