"""A real worker SIGKILLed mid-stream, then two workers finish: the API still equals the
reference bucket by bucket (Redis plus the offset fence is the whole state)."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from shopstream.core.settings import Settings
from tests.agents.funnel_ref import FUNNELS_TOML, generate, reference
from tests.agents.test_funnel_integration import check_api, produce
from tests.support import Proc, counts, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def _toml(funnels: list[dict]) -> str:
    """The test funnels as a TOML file, so the worker reads them like production config."""
    def value(v: object) -> str:
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, int):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        assert isinstance(v, dict)
        return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"

    blocks = ["[[funnels]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in f.items())
              for f in funnels]
    return "\n".join(blocks)


async def test_sigkill_mid_stream_then_two_workers(
    settings: Settings, start_worker: Callable[..., Proc], tmp_path: Path
) -> None:
    config = tmp_path / "funnels.toml"
    config.write_text(_toml(FUNNELS_TOML))
    assert tomllib.loads(config.read_text())["funnels"] == FUNNELS_TOML
    settings = dataclasses.replace(settings, sections={"funnels": FUNNELS_TOML},
                                   batch_max_records=20)
    log = generate(n_users=1_800, seed=11)
    distinct = len({e["event_id"] for e in log})
    half = len(log) // 2
    produce(settings, log[:half])

    env = {"SHOPSTREAM_CONFIG": str(config)}
    first = start_worker(settings, **env)
    wait_until(lambda: counts(settings).get("processed", 0) > 5_000, 60, "first batches",
               interval=0.05)
    first.kill()
    done_before = counts(settings)["processed"]
    assert done_before < distinct
    produce(settings, log[half:])
    workers = [start_worker(settings, **env), start_worker(settings, **env)]
    wait_until(lambda: counts(settings).get("processed", 0) >= distinct, 90,
               "all events processed")
    for w in workers:
        assert w.popen.poll() is None, w.log_text()[-2000:]
    assert counts(settings)["processed"] == distinct

    want, want_late = reference(log, FUNNELS_TOML, settings.partitions)
    assert await check_api(settings, want, want_late) > 100


def test_bad_definition_stops_the_worker_at_start(
    settings: Settings, start_worker: Callable[..., Proc], tmp_path: Path
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[funnels]]\nname = "x"\nsteps = ["page_view", "checkout"]\n')
    worker = start_worker(settings, SHOPSTREAM_CONFIG=str(config))
    assert worker.popen.wait(30) == 3  # invalid settings (README, exit statuses)
    assert "funnels.x.steps[1].type: expected one of" in worker.log_text()
    assert "got 'checkout'" in worker.log_text()
