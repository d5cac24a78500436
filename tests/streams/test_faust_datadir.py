"""A worker keeps Faust's data directory under the state dir, never in the working directory."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.support import ROOT, wait_until

pytestmark = [pytest.mark.integration]


def _healthy(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return json.loads(resp.read())["status"] == "ok"
    except OSError:
        return False


def test_a_worker_leaves_no_data_folder_in_the_repository(settings, start_worker):
    before = set(ROOT.glob("*-data"))
    worker = start_worker(settings)
    wait_until(lambda: _healthy(worker.args[-1]), 90, "worker healthy")
    assert set(ROOT.glob("*-data")) == before
    assert (Path(settings.state_dir) / "faust" / settings.app_id).is_dir()
