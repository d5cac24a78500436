"""Traffic value's pure rules over a generated log of 100,000+ events, equal bucket by bucket to
the plain-Python reference (tests/agents/traffic_ref.py); the users' state goes through its
encoding between batches and is pruned at each batch's horizon, as the agent does."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import orjson

from shopstream.agents.lateness import DEFAULT_LATENESS_MS
from shopstream.agents.traffic.rules import (
    MEASURES,
    TRAFFIC_TYPES,
    TrafficShard,
    UserTraffic,
    decode_user,
    encode_user,
)
from shopstream.core.timeunits import HOUR_MS
from shopstream.kafka_io.partitioner import partition_for
from shopstream.schemas.decode import decode_event
from tests.agents.traffic_ref import DISORDER, MIN, ZONE, generate, traffic_reference

RES = {"m": "minute", "h": "hour", "d": "day"}


def run_rules(log: list[dict[str, Any]], partitions: int, batch: int) -> dict[tuple, int]:
    """Rows summed over partitions, each partition's events in log order, in batches."""
    streams: dict[int, list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for ev in log:
        if ev["event_id"] not in seen:
            seen.add(ev["event_id"])
            streams[partition_for(ev["user_id"], partitions)].append(ev)
    rows: Counter[tuple] = Counter()
    for stream in streams.values():
        store: dict[str, bytes] = {}
        wm = 0
        for i in range(0, len(stream), batch):
            chunk = [decode_event(orjson.dumps(e)) for e in stream[i:i + batch]]
            chunk = [e for e in chunk if e.type in TRAFFIC_TYPES]
            assert all(e.ts >= wm - DEFAULT_LATENESS_MS for e in chunk)
            users = {e.user_id: decode_user(store.get(e.user_id)) for e in chunk}
            shard = TrafficShard(users, ZONE, wm - DEFAULT_LATENESS_MS)
            shard.run(chunk)
            for uid, user in shard.users.items():
                store[uid] = encode_user(user)
            for (res, start, fld), n in shard.changes().items():
                measure, _, dim = fld.partition("|")
                rows[(RES[res], start, dim, MEASURES[measure])] += n
            wm = max(wm, *(e.ts for e in chunk))
    return {k: n for k, n in rows.items() if n}


def test_rules_equal_reference_on_100k_events() -> None:
    log = generate(n_events=100_000, n_users=4_000, seed=5, span_ms=6 * 60 * MIN)
    assert len(log) >= 100_000
    want = {(res, start, dim, m): n
            for (res, start, dim), row in traffic_reference(log).items()
            for m, n in row.items() if n}
    got = run_rules(log, partitions=4, batch=700)
    assert got == want
    # The log has every case the definitions name.
    assert {dim for (_, _, dim, _) in want} >= {"*", "c:other", "c:search", "k:brand-x"}
    assert len({start for (res, start, _, _) in want if res == "day"}) == 2
    assert sum(n for (res, _, dim, m), n in want.items()
               if (res, dim, m) == ("day", "*", "bounces")) > 1_000


def test_batch_boundaries_change_nothing() -> None:
    """A replay or a recovery cuts the log into other batches: the rows are the same."""
    log = generate(n_events=20_000, n_users=800, seed=8, span_ms=2 * 60 * MIN)
    assert run_rules(log, partitions=3, batch=37) == run_rules(log, partitions=3, batch=5_000)


def test_pruned_state_stays_small() -> None:
    """After the horizon passes, a user's state holds no session or bucket it cannot reach."""
    log = generate(n_events=2_000, n_users=50, seed=9, span_ms=60 * MIN)
    events = [decode_event(orjson.dumps(e)) for e in log if e["type"] in TRAFFIC_TYPES]
    shard = TrafficShard({}, ZONE, 0)
    shard.run(events)
    assert any(len(u.seen) > 3 for u in shard.users.values())
    end = max(e.ts for e in events) + DISORDER
    later = TrafficShard({u: decode_user(encode_user(s)) for u, s in shard.users.items()}, ZONE,
                         end + HOUR_MS)
    for user in later.users.values():
        assert user.session is None
        assert all(res == "d" for res, _ in user.seen)
    assert decode_user(encode_user(UserTraffic())) == UserTraffic()


def test_a_user_with_many_campaigns_round_trips() -> None:
    """Campaign bits beyond 63 (a JSON integer's reach here) still encode."""
    user = UserTraffic(seen={("d", 0): {"c:search", *(f"k:c{i}" for i in range(70))},
                             ("m", 60_000): {"c:ads", "k:c3"}})
    assert decode_user(encode_user(user)) == user
