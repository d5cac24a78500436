"""The same batch loop on a real Redis Cluster: one slot per partition call, exact results."""

import pytest
import redis

from shopstream.agents.event_stats.agent import read_stats
from shopstream.replay import replay_lines
from shopstream.sinks import keys
from shopstream.sinks.redis_state import make_redis
from tests.streams.logs import build_log, dedup_reference, stats_reference
from tests.support import process_topic

pytestmark = pytest.mark.integration


async def test_event_stats_exact_on_redis_cluster(infra, redis_cluster_url):
    s = infra.settings(redis_url=redis_cluster_url, redis_cluster=True, dedup_horizon_ms=20_000)
    log = build_log(20_000, seed=11, horizon_ms=20_000)
    replay_lines(s, log.lines)
    await process_topic(s)
    # Redelivery of everything changes nothing: the fences hold.
    await process_topic(s)

    kept, dups = dedup_reference(log.valid, s.partitions, 20_000)
    rc = redis.RedisCluster.from_url(redis_cluster_url)
    total = {}
    for p in range(s.partitions):
        for k, v in rc.hgetall(keys.counts(s.app_id, p)).items():
            total[k.decode()] = total.get(k.decode(), 0) + int(v)
    rc.close()
    assert total["in"] == len(log.lines)
    assert total["processed"] == len(kept)
    assert total.get("duplicate", 0) == dups
    assert total["dead"] == log.bad_total

    r = make_redis(s)
    got = await read_stats(r, s.app_id, s.partitions, 0, 2**62)
    await r.aclose()
    assert {m["minute"]: m for m in got["minutes"]} == stats_reference(kept)
