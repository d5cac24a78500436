"""Checks shared by the end-to-end exactness and fault tests: the worker's numbers equal the
plain references of tests/streams/logs.py, counters reconcile, dead letters keep everything."""

from __future__ import annotations

from shopstream.agents.event_stats.agent import read_stats
from shopstream.sinks.redis_state import make_redis
from tests.streams.logs import dedup_reference, stats_reference
from tests.support import counts, read_records, run_async, wait_until


def expectation(log, partitions, horizon_ms):
    kept, dups = dedup_reference(log.valid, partitions, horizon_ms)
    return kept, dups, stats_reference(kept)


def assert_exact(settings, log):
    horizon_ms = settings.dedup_horizon_ms
    kept, dups, ref = expectation(log, settings.partitions, horizon_ms)
    c = counts(settings)
    assert c["in"] == len(log.lines)
    assert c["processed"] == len(kept)
    assert c.get("duplicate", 0) == dups
    assert c.get("dead", 0) == log.bad_total
    assert c["in"] == c["processed"] + c.get("dead", 0) + c.get("duplicate", 0)
    for reason, n in log.bad.items():
        assert c.get(f"dead:{reason}", 0) == n, reason

    async def query():
        r = make_redis(settings)
        try:
            return await read_stats(r, settings.app_id, settings.partitions, 0, 2**62)
        finally:
            await r.aclose()

    got = run_async(query())
    assert {m["minute"]: m for m in got["minutes"]} == ref
    assert got["totals"]["events"] == len(kept)
    assert got["totals"]["gmv"] == sum(m["gmv"] for m in ref.values())

    # Every dead letter is on the topic with its reason; repeats carry the same source.
    dead = {}
    for _, _, value, headers in read_records(settings, settings.dead_letter_topic):
        h = {k: v.decode() for k, v in headers}
        dead[h["source"]] = (h["reason"], value)
    assert len(dead) == log.bad_total
    reasons = {}
    for reason, _ in dead.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    assert reasons == log.bad


def wait_done(settings, log, timeout_s=180):
    wait_until(lambda: counts(settings).get("in", 0) >= len(log.lines), timeout_s,
               "all events applied")
