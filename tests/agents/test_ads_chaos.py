"""Ad economics with a real worker SIGKILLed mid-stream, then two workers sharing the
partitions: the API still equals the reference and the ROAS alerts reach the ops-alerts topic
with the ids a clean run raises (Redis plus the offset fence is the whole state; one judge at
a time; a kill between send and acknowledgement may repeat an alert, under its same id)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from shopstream.core.settings import Settings
from tests.agents.test_ads_agent import (
    SECTION,
    ads_log,
    alert_records,
    check_api,
    produce,
    ref_alert_ids,
    want_of,
)
from tests.support import Proc, counts, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def test_sigkill_mid_stream_then_two_workers(settings: Settings, start_worker: Callable[..., Proc],
                            tmp_path: Path) -> None:
    settings = dataclasses.replace(settings, batch_max_records=20)
    config = tmp_path / "ads.toml"
    config.write_text("[ads]\n" + "".join(
        f"{k} = {v!r}\n".replace("'", '"') for k, v in SECTION.items()))
    env = {"SHOPSTREAM_AGENTS": "ads", "SHOPSTREAM_CONFIG": str(config)}
    log = ads_log(seed=23)
    distinct = len({e["event_id"] for e in log})
    half = len(log) // 2
    produce(settings, log[:half])
    first = start_worker(settings, **env)
    wait_until(lambda: counts(settings).get("processed", 0) > 2_000, 60, "first batches",
               interval=0.05)
    first.kill()
    assert counts(settings)["processed"] < distinct
    produce(settings, log[half:])
    workers = [start_worker(settings, **env), start_worker(settings, **env)]
    wait_until(lambda: counts(settings).get("processed", 0) >= distinct, 120,
               "all events processed")
    assert counts(settings)["processed"] == distinct
    rows, late = want_of(log, settings.partitions)
    assert check_api(settings, rows, late) > 1_000
    want = ref_alert_ids(rows, log)
    assert want
    wait_until(lambda: sorted({d["alert_id"] for d in alert_records(settings)}) == want, 60,
               "the ROAS alerts")
    for w in workers:
        assert w.popen.poll() is None, w.log_text()[-2000:]
