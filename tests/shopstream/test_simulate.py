"""`shopstream simulate`: --rate 0 is unpaced traffic, not none; a signal stops it at once and
everything it says it sent is in the topic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from shopstream.core import codec
from shopstream.simulate import DOUBLE_11_MS, UNPACED_RATE, Simulator
from shopstream.simulate_customers import CustomerPlan
from tests.support import ROOT, read_records, settings_env, wait_until

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize(("flags", "seconds"), [((), 2), (("--customers",), 60)])
def test_rate_0_with_out_writes_the_unpaced_traffic(tmp_path, flags, seconds):
    out_file = tmp_path / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
    env.update(PYTHONPATH=str(ROOT), SHOPSTREAM_STATE_DIR=str(tmp_path / "state"))
    out = subprocess.run([sys.executable, "-m", "shopstream", "simulate", "--rate", "0",
                          "--duration", str(seconds), "--users", "300", "--seed", "7", *flags,
                          "--out", str(out_file)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    customers = CustomerPlan() if flags else None
    expected = [codec.dumps(ev) for ev in Simulator(300, UNPACED_RATE, 7, DOUBLE_11_MS,
                                                    customers=customers)
                .events(seconds * UNPACED_RATE)]
    assert len(expected) > seconds * UNPACED_RATE
    assert any(codec.loads(line)["type"] == "check_in" for line in expected) == bool(flags)
    assert out_file.read_bytes().splitlines() == expected
    assert f"simulate: wrote {len(expected)} events to {out_file}" in out.stderr


def _event_ids(settings) -> set[str]:
    ids: set[str] = set()
    for _, _, value, _ in read_records(settings):
        doc = codec.loads(value)
        ids.update(ev["event_id"] for ev in (doc if isinstance(doc, list) else [doc]))
    return ids


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_simulator_at_once_with_everything_sent(settings, sig, tmp_path):
    log = tmp_path / "simulate.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "shopstream", "simulate", "--rate", "300",
                                 "--duration", "600", "--users", "500"], cwd=ROOT,
                                env=settings_env(settings), stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: read_records(settings, timeout_s=2), 60, "events in the topic")
        asked = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(30) == 0, log.read_text()
        assert time.monotonic() - asked < 3
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [ln for ln in log.read_text().splitlines() if "stopped after" in ln]
    assert len(lines) == 1, log.read_text()
    sent = int(lines[0].split("stopped after ")[1].split()[0])
    assert sent > 0 and len(_event_ids(settings)) == sent
