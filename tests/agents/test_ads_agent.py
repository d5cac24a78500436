"""Ad economics through real Kafka and Redis (the batch loop over the topic, one run for the
module), answered by the API and compared with the plain-Python reference
(tests/agents/ads_ref.py) bucket by bucket; ROAS alerts on the ops-alerts topic; the route's
errors; an ad_cost posted to the API lands on its campaign's partition."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from shopstream.agents.ads.agent import AdsAgent
from shopstream.agents.ads.rules import alert_id, parse_config
from shopstream.agents.registry import build_agents
from shopstream.api import create_api
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.partitioner import partition_for
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.ads import keys as ak
from shopstream.sinks.redis_state import make_redis
from tests.agents.ads_ref import HOUR, MIN, NAMES, generate, reference, roas_alerts
from tests.support import Infra, counts, process_topic, read_records, run_async, users_by_partition

pytestmark = pytest.mark.integration

SECTION = {"paid_channels": ["ads", "social"], "attribution_window_ms": 30 * MIN,
           "new_buyer_window_ms": 2 * HOUR, "roas_floor": 3.0, "min_spend_fen": 20_000}
LATENESS = 5 * MIN
#: Spend that is not valid: dead-lettered naming the field, nothing else lost.
BAD = [{"event_id": "bad-cost", "type": "ad_cost", "ts": 1_794_326_400_000, "campaign": "c0",
        "channel": "ads", "cost": -5},
       {"event_id": "bad-campaign", "type": "ad_cost", "ts": 1_794_326_400_000,
        "channel": "ads", "cost": 5},
       {"event_id": "bad-keyword", "type": "page_view", "ts": 1_794_326_400_000,
        "user_id": "u1", "page": "p", "campaign": "c0", "keyword": ""}]
RefRows = dict[tuple[int, str, str, str], dict[str, int]]


def ads_log(seed: int) -> list[dict[str, Any]]:
    """A generated log, then one event per partition far past its end, so that every hour
    with data is final for the ROAS judge."""
    log = generate(n_users=2_500, n_campaigns=5, hours=3, seed=seed, late_share=0.02)
    end = max(ev["ts"] for ev in log) + 2 * HOUR
    for i, uid in enumerate(users_by_partition(4, prefix="closer")):
        log.append({"type": "page_view", "event_id": f"closer{i}", "ts": end, "user_id": uid,
                    "page": "p"})
    return log


def produce(settings: Settings, log: list[dict[str, Any]]) -> None:
    prod = EnvelopeProducer(settings, max_events=200)
    for ev in log:
        prod.add(ev)
    prod.flush()


def want_of(log: list[dict[str, Any]], partitions: int) -> tuple[RefRows, int]:
    return reference(log, partitions, LATENESS, set(SECTION["paid_channels"]),
                     SECTION["attribution_window_ms"], SECTION["new_buyer_window_ms"])


def grouped(rows: RefRows, by: str, res_ms: int) -> dict[int, dict[tuple[Any, ...], list[int]]]:
    """The reference summed per bucket and group, as the API groups it."""
    out: dict[int, dict[tuple[Any, ...], list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0] * len(NAMES)))
    for (minute, ch, camp, kw), m in rows.items():
        key = {"channel": (ch,), "campaign": (camp,), "keyword": (camp, kw or None)}[by]
        cell = out[minute // res_ms * res_ms][key]
        for i, name in enumerate(NAMES):
            cell[i] += m[name]
    return {b: {k: v for k, v in g.items() if any(v)} for b, g in out.items()}


async def answer(settings: Settings, **params: str) -> tuple[int, dict[str, Any]]:
    async with TestClient(TestServer(create_api(settings))) as client:
        resp = await client.get("/v1/ads", params=params)
        return resp.status, await resp.json()


def check_api(settings: Settings, rows: RefRows, late: int) -> int:
    """Every bucket and group of the API equals the reference; returns the groups compared."""
    compared = 0
    for by, res, res_ms in (("keyword", "minute", MIN), ("campaign", "hour", HOUR),
                            ("channel", "hour", HOUR)):
        status, body = run_async(answer(settings, by=by, res=res))
        assert status == 200, body
        names = {"channel": ("channel",), "campaign": ("campaign",),
                 "keyword": ("campaign", "keyword")}[by]
        got = {b["start"]: {tuple(g[n] for n in names): [g[k] for k in NAMES]
                            for g in b["groups"]} for b in body["buckets"]}
        want = {b: g for b, g in grouped(rows, by, res_ms).items() if g}
        assert got == want, by
        for b in body["buckets"]:
            for g in b["groups"]:
                spend = g["spend"]
                assert g["roas"] == (g["paid_gmv"] / spend if spend else None)
                assert g["cpc"] == (spend / g["clicks"] if g["clicks"] else None)
                assert g["cac"] == (spend / g["new_buyers"] if g["new_buyers"] else None)
                compared += 1
        assert body["late_events"] == late
    return compared


def final_minute(log: list[dict[str, Any]]) -> int:
    """The last minute the judge can judge: every partition's watermark is the log's last
    event time (the closers), less the allowed lateness."""
    return (max(e["ts"] for e in log) - LATENESS - MIN) // MIN * MIN


def ref_alerts(rows: RefRows, log: list[dict[str, Any]]) -> list[tuple[str, int, int, int]]:
    return roas_alerts(rows, SECTION["roas_floor"], SECTION["min_spend_fen"], final_minute(log))


def ref_alert_ids(rows: RefRows, log: list[dict[str, Any]]) -> list[str]:
    return sorted(alert_id(c, m) for c, m, _, _ in ref_alerts(rows, log))


def alert_records(settings: Settings) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, _, v, _ in read_records(settings, settings.alerts_topic)]


@pytest.fixture(scope="module")
def run(infra: Infra) -> Iterator[tuple[Settings, list[dict[str, Any]], Metrics]]:
    """One pass of the batch loop with the ads agent beside the user-state agents (which must
    pass campaigns' spend by) over the module's log, then the ROAS judge to the end and its
    alerts sent."""
    settings = infra.settings(agents="event_stats,funnel,coupons,live,ops,ads")
    settings = dataclasses.replace(settings, sections={"ads": SECTION})
    log = ads_log(seed=11)
    produce(settings, log[:100] + BAD + log[100:])
    metrics = Metrics()

    async def go() -> None:
        r = make_redis(settings)
        agents = build_agents(settings, r, metrics)
        await process_topic(settings, agents=agents, batch_records=40)
        (ads,) = [a for a in agents if isinstance(a, AdsAgent)]
        while await ads.judge.step():
            pass
        await ads.judge.send_unsent()
        await r.aclose()

    run_async(go())
    yield settings, log, metrics


def test_the_api_equals_the_reference(run: tuple[Settings, list[dict[str, Any]], Metrics]) -> None:
    settings, log, metrics = run
    c = counts(settings)
    assert c["processed"] == len({e["event_id"] for e in log})
    assert c["dead"] == c["dead:invalid_field"] == len(BAD)
    assert c["in"] == c["processed"] + c["dead"] + c["duplicate"]
    dead = {orjson.loads(value)["event_id"]: {k: v.decode() for k, v in headers}
            for _, _, value, headers in read_records(settings, settings.dead_letter_topic)}
    assert {k: (h["reason"], h["detail"].split(":")[0]) for k, h in dead.items()} == {
        "bad-cost": ("invalid_field", "cost"), "bad-campaign": ("invalid_field", "campaign"),
        "bad-keyword": ("invalid_field", "keyword")}
    rows, late = want_of(log, settings.partitions)
    assert late > 20
    assert check_api(settings, rows, late) > 1_000
    spend = sum(m["spend"] for m in rows.values())
    assert sum(s.value for s in metrics.ad_spend.collect()[0].samples
               if s.name.endswith("_total")) == spend


def test_the_counters_give_each_campaigns_roas(
        run: tuple[Settings, list[dict[str, Any]], Metrics]) -> None:
    """The ROAS alert rule (monitoring/alerts.yml) sums spend and attributed paid GMV by
    campaign over channels: those sums equal the reference's."""
    settings, log, metrics = run
    rows, _ = want_of(log, settings.partitions)
    for counter, measure in ((metrics.ad_spend, "spend"), (metrics.ad_paid_gmv, "paid_gmv")):
        got: dict[str, float] = defaultdict(float)
        for sample in counter.collect()[0].samples:
            if sample.name.endswith("_total"):
                got[sample.labels["campaign"]] += sample.value
        want: dict[str, int] = defaultdict(int)
        for (_, _, campaign, _), m in rows.items():
            want[campaign] += m[measure]
        assert {c: v for c, v in got.items() if v} == {c: v for c, v in want.items() if v}
        assert len(want) > 1, measure


def test_roas_alerts_equal_the_reference_and_reach_the_alerts_topic(
        run: tuple[Settings, list[dict[str, Any]], Metrics]) -> None:
    settings, log, _ = run
    rows, _ = want_of(log, settings.partitions)
    want = ref_alerts(rows, log)
    # The campaign whose trailing hour recovers and falls again raises one alert per episode.
    assert want and max(Counter(c for c, _, _, _ in want).values()) >= 2, want
    _, body = run_async(answer(settings))
    got = sorted((a["campaign"], a["minute"], a["spend"], a["paid_gmv"]) for a in body["alerts"])
    assert got == want
    assert sorted(a["alert_id"] for a in body["alerts"]) == ref_alert_ids(rows, log)
    assert all(a["type"] == "ads_roas_low" and a["roas"] < 3 for a in body["alerts"])
    assert body["judged_through"] == final_minute(log) + MIN
    sent = alert_records(settings)
    assert sorted(d["alert_id"] for d in sent) == ref_alert_ids(rows, log)


def test_judging_again_from_scratch_raises_the_same_alerts(
        run: tuple[Settings, list[dict[str, Any]], Metrics]) -> None:
    """A replay's judge (nothing judged, no alert yet) raises the same documents, ids
    included; a judge that has judged everything raises nothing more. Its cost: each minute
    row is read once (the trailing sums live in its state), plus its state once a step."""
    settings, _, _ = run

    async def again() -> tuple[list[Any], list[Any], int, int, int]:
        r = make_redis(settings)
        judge = AdsAgent(settings, parse_config({"ads": SECTION}), r).judge
        first, _ = await judge.store.read(0, 2**53)
        assert not await judge.step()
        await r.delete(ak.alert_state_key(settings.app_id), ak.alerts_key(settings.app_id))
        before = (await r.info("commandstats"))["cmdstat_hgetall"]["calls"]
        steps = 0
        while await judge.step():
            steps += 1
        reads = (await r.info("commandstats"))["cmdstat_hgetall"]["calls"] - before
        rows = sum([await r.zcard(ak.index_key(settings.app_id, p))
                    for p in range(settings.partitions)])
        second, _ = await judge.store.read(0, 2**53)
        await r.delete(ak.unsent_key(settings.app_id))
        await r.aclose()
        return first, second, steps, reads, rows

    first, second, steps, reads, rows = run_async(again())
    assert steps and first and second == first
    assert reads <= rows + steps, (reads, rows, steps)


def test_user_state_is_small_and_expires(run: tuple[Settings, list[dict[str, Any]], Metrics],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    settings, log, _ = run
    r = redis.Redis.from_url(settings.redis_url)
    keys = list(r.scan_iter(match=f"{settings.app_id}:*:ads:u:*", count=1000))
    users = {e["user_id"] for e in log if "user_id" in e}
    total = sum(r.memory_usage(k) or 0 for k in keys)
    ttls = [r.pttl(k) for k in keys[:200]]
    r.close()
    assert keys and all(0 < t <= 2 * HOUR + 24 * HOUR for t in ttls)
    per_active = total / len(users)
    with capsys.disabled():
        print(f"\nads user state: {len(keys)} keys of {len(users)} active users, "
              f"{total / len(keys):.0f} B per key, {per_active:.0f} B per active user")
    assert per_active < 150


def test_bad_parameters_get_json_400s(run: tuple[Settings, list[dict[str, Any]], Metrics]) -> None:
    settings, _, _ = run
    for params, word in (({"by": "sku"}, "by"), ({"res": "week"}, "res"),
                         ({"from": "x"}, "from"), ({"to": str(2**53)}, "to"),
                         ({"from": "10", "to": "5"}, "to")):
        status, body = run_async(answer(settings, **params))
        assert status == 400 and body["error"].startswith(word), (params, body)
    status, body = run_async(answer(settings, **{"from": "-1"}))
    assert (status, body["parameter"], body["min"]) == (400, "from", 0)


def test_an_ad_cost_is_produced_to_its_campaigns_partition(infra: Infra) -> None:
    settings = infra.settings()
    campaigns = [f"c{k}" for k in range(12)]

    async def post() -> None:
        async with TestClient(TestServer(create_api(settings))) as client:
            body = [{"event_id": f"ac{c}", "type": "ad_cost", "ts": 1_794_326_400_000,
                     "campaign": c, "channel": "ads", "cost": 100} for c in campaigns]
            resp = await client.post("/v1/events", json=body)
            assert resp.status == 200, await resp.text()
            bad = await client.post("/v1/events", json={**body[0], "cost": -1})
            assert bad.status == 400 and "cost" in await bad.text()

    asyncio.run(post())
    where: dict[str, int] = {}
    for p, _, value, _ in read_records(settings):
        for ev in orjson.loads(value) if value.startswith(b"[") else [orjson.loads(value)]:
            where[ev["campaign"]] = p
    assert where == {c: partition_for(c, settings.partitions) for c in campaigns}
    assert len(set(where.values())) > 1
