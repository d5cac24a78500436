"""10,000 rooms on air: the worker's Prometheus series stay bounded (top rooms, and the other
rooms' viewers)."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import generate_latest

from shopstream.agents.live.agent import LiveRooms
from shopstream.agents.registry import build_agents
from shopstream.core.settings import Settings
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.redis_state import make_redis
from tests.agents.test_live_ops import produce
from tests.support import process_topic

pytestmark = pytest.mark.integration

T0 = 1_795_300_000_000


async def test_ten_thousand_rooms_keep_the_series_bounded(settings: Settings) -> None:
    settings = dataclasses.replace(settings, agents="live")
    log = []
    for k in range(10_000):
        log.append({"event_id": f"s{k}", "type": "live_start", "ts": T0 + k, "user_id": f"h{k}",
                    "room_id": f"room{k}"})
        for j in range(k % 7):
            log.append({"event_id": f"j{k}-{j}", "type": "live_join", "ts": T0 + k + j,
                        "user_id": f"u{k}-{j}", "room_id": f"room{k}"})
    produce(settings, log)
    metrics = Metrics()
    r = make_redis(settings)
    agents = build_agents(settings, r, metrics)
    await process_topic(settings, agents=agents, batch_records=200)
    live = next(a for a in agents if isinstance(a, LiveRooms))
    await live.tick(T0 + 10_000_000)
    await r.aclose()
    text = generate_latest(metrics.registry).decode()
    viewers = [ln for ln in text.splitlines() if ln.startswith("shopstream_live_room_viewers{")]
    top = live.cfg.top_rooms
    assert len(viewers) == top + 1  # the top rooms and other
    rooms_series = [ln for ln in text.splitlines() if '{room="' in ln]
    assert len(rooms_series) == 3 * top + 1
    assert metrics.registry.get_sample_value("shopstream_live_rooms_on_air") == 10_000
    total = sum(float(ln.rsplit(" ", 1)[1]) for ln in viewers)
    assert total == sum(k % 7 for k in range(10_000))  # nothing lost in the folding
    # The labelled rooms are the most watched ones (6 viewers: k % 7 == 6).
    assert {ln.rsplit(" ", 1)[1] for ln in viewers if 'room="other"' not in ln} == {"6.0"}
