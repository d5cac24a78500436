"""Group buys through the real broker and Redis: a worker SIGKILLed mid-stream, then two
workers finishing (each with its relay process); the routes, the pushes on the pushes topic,
the ``group_completed`` documents on the customer-events topic and the dead letters equal the
reference (tests/agents/group_buys_ref.py), and the counts reconcile. A replay of the same log
under another app id pushes the same push ids."""

from __future__ import annotations

import asyncio
import dataclasses
import tomllib
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from shopstream.agents.base import PartitionBatch
from shopstream.agents.group_buys.agent import GroupBuys
from shopstream.agents.group_buys.rules import Decided
from shopstream.agents.registry import push_relay
from shopstream.api import create_api
from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.monitoring.metrics import MAX_SALE_LABELS, Metrics
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.group_buys import keys as gk
from shopstream.sinks.redis_state import make_redis
from tests.agents.group_buys_ref import SECTION, Result, generate, reference
from tests.support import Infra, counts, process_topic, read_records, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def toml(section: dict[str, Any]) -> str:
    lines = ["[group_buys]"] + [f"{k} = {v}" for k, v in section.items() if k != "skus"]
    for sku, table in section["skus"].items():
        lines += [f"[group_buys.skus.{sku}]"] + [f"{k} = {v}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def own_settings(infra: Infra, cfg: Path, **overrides: Any) -> Settings:
    """Fresh topics, the customer-events one too, and the test's ``[group_buys]``."""
    s = infra.settings(customer_events_topic=f"ce-{uuid.uuid4().hex[:8]}", **overrides)
    return dataclasses.replace(s, sections=tomllib.loads(cfg.read_text()))


def pushes_of(s: Settings) -> dict[str, tuple[str, str, int, str, str, int]]:
    """Pushes on the topic by push_id (a crash may publish one again, under its id)."""
    return {x["push_id"]: (x["rule"], x["user_id"], x["ts"], x["group_id"], x["sku"],
                           x["coupon_fen"])
            for x in (codec.loads(v) for _, _, v, _ in read_records(s, s.pushes_topic))}


def want_pushes(want: Result) -> dict[str, tuple[str, str, int, str, str, int]]:
    return {p[0]: (p[1], p[2], p[3], p[4], p[5], p[6]) for p in want.pushes}


async def get(s: Settings, path: str) -> tuple[int, Any]:
    async with TestClient(TestServer(create_api(s))) as client:
        resp = await client.get(path)
        return resp.status, await resp.json()


@pytest.fixture(scope="module")
def world(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = tmp_path_factory.mktemp("gb") / "shopstream.toml"
    cfg.write_text(toml(SECTION))
    s = own_settings(infra, cfg, batch_max_records=4, agents="group_buys")
    log = generate(900, seed=7, users=20_000)
    want = reference(log, s.partitions)
    assert len({pid for pid, *_ in want.pushes}) == len(want.pushes)
    prod = EnvelopeProducer(s, max_events=20)
    for ev in log:
        prod.add(ev)
    prod.flush()
    return {"settings": s, "cfg": cfg, "log": log, "want": want}


def test_sigkill_then_two_workers_equal_the_reference(world: dict[str, Any],
                                                      start_worker) -> None:
    s, log, want = world["settings"], world["log"], world["want"]
    env = {"SHOPSTREAM_CONFIG": str(world["cfg"]), "SHOPSTREAM_AGENTS": "group_buys",
           "SHOPSTREAM_CUSTOMER_EVENTS_TOPIC": s.customer_events_topic}
    worker = start_worker(s, **env)
    wait_until(lambda: counts(s).get("in", 0) >= len(log) * 0.4, 120, "40% applied")
    worker.kill()
    assert counts(s)["in"] < len(log), "kill came too late to be mid-stream"
    start_worker(s, **env)
    start_worker(s, **env)
    r = redis.Redis.from_url(s.redis_url or "")
    wait_until(lambda: counts(s).get("in", 0) >= len(log), 180, "all applied")
    # A relay lease or an unsent document left by the killed worker is taken up by the others.
    wait_until(lambda: sum(r.hlen(coupon_keys(s.app_id, p).outbox) + r.hlen(
        gk.unsent_key(s.app_id, p)) for p in range(s.partitions)) == 0, 90, "outboxes drained")

    c = counts(s)
    assert c["in"] == len(log) == c["processed"] + c.get("dead", 0) + c.get("duplicate", 0)
    refused = Counter(want.refused.values())
    assert {k[5:]: v for k, v in c.items() if k.startswith("dead:")} == refused
    dead = {}
    for _, _, _, headers in read_records(s, s.dead_letter_topic):
        h = {k: v.decode() for k, v in headers}
        dead[h["source"]] = h["reason"]
    assert {src.rsplit("/", 1)[1]: reason for src, reason in dead.items()} == want.refused
    assert all(src.startswith(f"{s.events_topic}/") and "/event/" in src for src in dead)

    assert pushes_of(s) == want_pushes(want)
    docs = {d["event_id"]: d for d in (codec.loads(v) for _, _, v, _ in
                                       read_records(s, s.customer_events_topic))}
    assert docs == want.completed and len(docs) > 100

    status, body = asyncio.run(get(s, "/v1/group-buys"))
    assert status == 200
    assert {x.pop("sku"): x for x in body["skus"]} == want.counts()
    for gid in sorted(want.groups)[:150]:
        status, body = asyncio.run(get(s, f"/v1/group-buys/{gid}"))
        assert status == 200 and body == {"group_id": gid, **want.groups[gid]}, gid
    status, body = asyncio.run(get(s, "/v1/group-buys/never"))
    assert status == 404 and "error" in body
    status, body = asyncio.run(get(s, "/v1/group-buys/" + "g" * 129))
    assert status == 400 and body["error"].startswith("group_id:")


async def test_a_replay_under_another_app_id_pushes_the_same_ids(world: dict[str, Any],
                                                                 infra: Infra) -> None:
    s, want = world["settings"], world["want"]
    replay = own_settings(infra, world["cfg"], events_topic=s.events_topic)
    r = make_redis(replay)
    metrics = Metrics()
    # The inline relay the registry gives group buys when no other capability pushes.
    agent = GroupBuys(replay, r, metrics, push_relay(replay, r, metrics))
    await process_topic(replay, agents=[agent])
    await agent.close()  # the inline relay's scheduled passes finish
    await r.aclose()
    left = redis.Redis.from_url(replay.redis_url or "")
    assert sum(left.hlen(coupon_keys(replay.app_id, p).outbox) + left.hlen(
        gk.unsent_key(replay.app_id, p)) for p in range(replay.partitions)) == 0
    assert pushes_of(replay) == want_pushes(want)
    docs = {codec.loads(v)["event_id"] for _, _, v, _ in
            read_records(replay, replay.customer_events_topic)}
    assert docs == set(want.completed)
    for outcome, status in [("opened", None), ("completed", "completed"),
                            ("expired", "expired")]:
        for sku in {g["sku"] for g in want.groups.values()}:
            n = metrics.registry.get_sample_value(
                "shopstream_group_buys_total", {"sku": sku, "outcome": outcome}) or 0
            assert n == sum(g["sku"] == sku and status in (None, g["status"])
                            for g in want.groups.values()), (sku, outcome)


async def test_skus_past_the_first_fifty_fold_into_other(settings: Settings) -> None:
    r = make_redis(settings)
    metrics = Metrics()
    agent = GroupBuys(settings, r, metrics)
    out = Decided()
    for k in range(MAX_SALE_LABELS + 10):
        out.outcomes[("opened", f"sku{k}")] += 2
    await agent.after_apply([PartitionBatch(0, [])], [out])
    await r.aclose()
    got = {labels["sku"]: v for m in metrics.registry.collect()
           if m.name == "shopstream_group_buys" for name, labels, v, *_ in m.samples
           if name.endswith("_total")}
    assert len(got) == MAX_SALE_LABELS + 1 and got["other"] == 20
    assert sum(got.values()) == 2 * (MAX_SALE_LABELS + 10)
