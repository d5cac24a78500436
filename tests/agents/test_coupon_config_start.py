"""A bad rule configuration stops the worker at start, before it connects to anything."""

import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_worker_refuses_bad_rule_config(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[cart]\nsteps = [{after_min = 60}, {after_min = 30}]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
    # Unreachable servers: the run must end on the config error, not on a connection.
    env.update(SHOPSTREAM_CONFIG=str(cfg), SHOPSTREAM_BROKER="kafka://127.0.0.1:9",
               SHOPSTREAM_REDIS_URL="redis://127.0.0.1:9/0", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "shopstream", "worker"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3  # invalid settings (README, exit statuses)
    assert "cart.steps[1].after_min: expected increasing delays, got 30" in done.stderr
