"""Room-wide events (live_start, live_end) reach every partition as copies, counted apart:
``in = processed + dead + duplicate`` still holds per event sent, an invalid one is
dead-lettered once, and the other agents never see a copy."""

from __future__ import annotations

import dataclasses

import pytest

from shopstream.agents.event_stats.agent import read_stats
from shopstream.agents.live.query import read_room
from shopstream.agents.registry import build_agents
from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.replay import replay_lines
from shopstream.sinks.redis_state import make_redis
from tests.support import counts, process_topic, read_records

pytestmark = pytest.mark.integration

T0 = 1_795_400_000_000


async def test_copies_reach_every_partition_and_are_counted_apart(settings: Settings) -> None:
    s = dataclasses.replace(settings, agents="event_stats,live")
    lines = [
        {"event_id": "start", "type": "live_start", "ts": T0, "user_id": "host", "room_id": "r"},
        {"event_id": "bad", "type": "live_end", "ts": T0 + 1, "user_id": "host"},  # no room_id
        *({"event_id": f"j{i}", "type": "live_join", "ts": T0 + 10 + i, "user_id": f"u{i}",
           "room_id": "r"} for i in range(40)),
        {"event_id": "end", "type": "live_end", "ts": T0 + 100, "user_id": "host", "room_id": "r"},
    ]
    sent = replay_lines(s, [codec.dumps(e) for e in lines])
    assert sent == len(lines)
    # The valid room-wide events are on every partition; the invalid one only on its user's.
    values = [v for _, _, v, _ in read_records(s)]
    assert sum(v.count(b'"event_id":"start"') for v in values) == s.partitions
    assert sum(v.count(b'"event_id":"bad"') for v in values) == 1
    r = make_redis(s)
    await process_topic(s, agents=build_agents(s, r))
    c = counts(s)
    assert c["in"] == len(lines)
    assert c["in"] == c["processed"] + c["dead"] + c.get("duplicate", 0)
    assert c["dead"] == 1
    assert c["copies"] == 2 * (s.partitions - 1)
    # Stats count each room-wide event once; the live_end closed every partition's views.
    stats = await read_stats(r, s.app_id, s.partitions, 0, 2**62)
    assert stats["totals"]["counts"]["live_start"] == {"other": 1}
    assert stats["totals"]["counts"]["live_end"] == {"other": 1}
    room = await read_room(r, s.app_id, s.partitions, "r", 0, 2**62, "m", s.zone)
    assert room is not None
    assert room["viewers_now"] == 0 and room["unique_viewers"] == 40
    assert room["totals"]["views_closed"] == 40
    await r.aclose()
