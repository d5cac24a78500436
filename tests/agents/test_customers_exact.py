"""The customer loop through a real broker, Redis and worker processes equals the plain-Python
reference (customers_ref.py) on a generated log of 100 days and 20,000 users
(customers_gen.py): every user's tier, spend, orders, points and forgiven points, the tier
population, every push (id, user, rule, time, coupon) and decision count, the tier_changed
documents, the service task alerts and the refusals. Again with a worker SIGKILLed mid-stream
and two workers finishing, and a replay under another app id gives the same pushes and
alerts, documents and all."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from shopstream.api import create_api
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.partitioner import partition_for
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.keys import tag
from tests.agents.customers_gen import END, SECTIONS, config, generate, with_late
from tests.agents.customers_ref import Result
from tests.support import Infra, Proc, counts, new_port, read_records, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

USERS = 20_000
PARTITIONS = 4
SEED = 29
#: Invalid events among the others: dead-lettered (invalid_field), nothing else changes.
INVALID: list[dict[str, Any]] = [
    {"event_id": "bad-rating", "type": "review", "ts": END - 1, "user_id": "u1",
     "order_id": "u1-o0", "rating": 6},
    {"event_id": "bad-points", "type": "points_redeem", "ts": END - 1, "user_id": "u2",
     "points": 0, "reward": "r"}]
#: Results the worker counts (``sent`` is the relay's).
DECIDED = ("deferred", "capped", "suppressed", "ineligible")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def config_text(sections: dict[str, Any]) -> str:
    """The sections as TOML: one table per section, nested tables inline."""
    return "".join(f"[{name}]\n" + "".join(f"{json.dumps(k)} = {toml_value(v)}\n"
                                           for k, v in table.items())
                   for name, table in sections.items())


@functools.cache
def world() -> tuple[list[dict[str, Any]], Result]:
    """The log in arrival order (invalid events among it) and the reference's result."""
    log, ref = with_late(generate(USERS, PARTITIONS, SEED), PARTITIONS, SEED)
    at = len(log) // 2
    return log[:at] + INVALID + log[at:], ref


def fresh(infra: Infra, **over: Any) -> Settings:
    return infra.settings(customer_events_topic=f"customer-events-{uuid.uuid4().hex[:8]}",
                          partitions=PARTITIONS, **over)


def produce(settings: Settings, log: list[dict[str, Any]]) -> None:
    prod = EnvelopeProducer(settings, max_events=100)
    for ev in log:
        prod.add(ev)
    prod.flush()


class Run:
    """Worker processes of one app over one events topic, with the customer loop's config."""

    def __init__(self, settings: Settings, spawn: Callable[..., Proc], config: Path) -> None:
        self.settings = settings
        self.spawn = spawn
        self.env = {"SHOPSTREAM_AGENTS": "customers", "SHOPSTREAM_CONFIG": str(config),
                    "SHOPSTREAM_CUSTOMER_EVENTS_TOPIC": settings.customer_events_topic}
        self.ports: list[int] = []
        self.procs: list[Proc] = []

    def worker(self) -> Proc:
        self.ports.append(new_port())
        self.procs.append(self.spawn(self.settings, "worker", "--web-port", str(self.ports[-1]),
                                     env=self.env))
        return self.procs[-1]

    def stop(self) -> None:
        """Stop the workers (and their relays), leaving the cores to the checks."""
        for p in self.procs:
            p.ask_to_stop()
        for p in self.procs:
            p.wait_stopped()

    def wait_applied(self, total: int) -> None:
        wait_until(lambda: counts(self.settings).get("in", 0) >= total, 240, "all applied",
                   interval=0.5)

    def wait_sent(self) -> None:
        """Every outbox (pushes, tier changes, alerts) emptied onto its topic."""
        s = self.settings
        r = redis.Redis.from_url(s.redis_url or "")
        keys = [k for p in range(s.partitions) for k in (
            coupon_keys(s.app_id, p).outbox, f"{s.app_id}:{tag(p)}:cs:events",
            f"{s.app_id}:{tag(p)}:cs:alerts")]
        wait_until(lambda: sum(r.hlen(k) for k in keys) == 0, 120, "outboxes drained",
                   interval=0.5)
        r.close()

    def metrics(self) -> tuple[Counter[tuple[str, str]], Counter[str]]:
        """From the (last) worker's /metrics: ``shopstream_pushes_total`` per (rule, result)
        for the decisions, ``shopstream_customer_tier_changes_total`` per tier reached."""
        url = f"http://127.0.0.1:{self.ports[-1]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
            text = resp.read().decode()
        decided: Counter[tuple[str, str]] = Counter()
        reached: Counter[str] = Counter()
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if not s.value:
                    continue
                if s.name == "shopstream_pushes_total" and s.labels["result"] in DECIDED:
                    decided[(s.labels["rule"], s.labels["result"])] += int(s.value)
                if s.name == "shopstream_customer_tier_changes_total":
                    reached[s.labels["to"]] += int(s.value)
        return decided, reached


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "customers.toml"
    path.write_text(config_text(SECTIONS))
    return path


def docs(settings: Settings, topic: str, key: str) -> dict[str, dict[str, Any]]:
    """The documents on ``topic`` deduplicated by ``key``; repeats must be equal."""
    out: dict[str, dict[str, Any]] = {}
    for _, _, value, _ in read_records(settings, topic, timeout_s=30):
        doc = orjson.loads(value)
        assert out.setdefault(doc[key], doc) == doc, doc
    return out


def pushes(settings: Settings) -> dict[str, dict[str, Any]]:
    return docs(settings, settings.pushes_topic, "push_id")


async def _views(settings: Settings, users: list[str]) -> dict[str, tuple[int, Any]]:
    out: dict[str, tuple[int, Any]] = {}
    gate = asyncio.Semaphore(32)
    async with TestClient(TestServer(create_api(settings))) as client:
        async def one(u: str) -> None:
            async with gate:
                resp = await client.get(f"/v1/customers/{u}")
                out[u] = (resp.status, await resp.json())
        await asyncio.gather(*(one(u) for u in users))
        resp = await client.get("/v1/customers/tiers")
        out["/tiers"] = (resp.status, await resp.json())
    return out


def check_state(settings: Settings, log: list[dict[str, Any]], ref: Result) -> None:
    """Every user's view, the population per tier, reconciliation and dead letters."""
    named = {e["user_id"] for e in log if "user_id" in e} | {
        e[k] for e in log if e["type"] == "referral" for k in ("invitee_id", "referrer_id")}
    unknown = sorted(named - set(ref.users))[:50]
    views = asyncio.run(_views(dataclasses.replace(settings, sections=SECTIONS),
                               sorted(ref.users) + unknown))
    got = {u: (b["tier"], b["spend_fen"], b["orders"], b["points"], b["points_forgiven"])
           for u, (status, b) in views.items() if status == 200 and u != "/tiers"}
    wrong = {u: (got.get(u), want) for u, want in ref.users.items() if got.get(u) != want}
    assert not wrong, (len(wrong), sorted(wrong.items())[:10])
    assert any(u.startswith("ghost") for u in unknown)
    assert any(u.startswith("outsider") for u in unknown)
    assert all(views[u][0] == 404 for u in unknown)
    status, body = views["/tiers"]
    assert status == 200 and body["tiers"] == ref.population(t for t, _ in config().tiers)

    c = counts(settings)
    distinct = len({e["event_id"] for e in log})
    assert c["in"] == c["processed"] + c["dead"] + c.get("duplicate", 0)
    assert c["in"] == len(log) and c["processed"] + c["dead"] == distinct
    assert c.get("duplicate", 0) == len(log) - distinct > 0
    want_dead: dict[str, str] = {**ref.refused, **{e["event_id"]: "invalid_field" for e in INVALID}}
    dead = {orjson.loads(v)["event_id"]: next(v for k, v in h if k == "reason").decode()
            for _, _, v, h in read_records(settings, settings.dead_letter_topic, timeout_s=30)}
    assert dead == want_dead
    for reason, n in Counter(want_dead.values()).items():
        assert c[f"dead:{reason}"] == n, reason


def check_out(settings: Settings, ref: Result) -> dict[str, dict[str, Any]]:
    """Pushes, tier changes and alerts on their topics equal the reference's; returns them."""
    got = pushes(settings)
    actual = {(p["push_id"], p["rule"], p["user_id"], p["ts"], p["coupon_fen"])
              for p in got.values()}
    assert len(actual) == len(got)
    missing, extra = ref.pushes - actual, actual - ref.pushes
    assert not missing and not extra, (len(missing), sorted(missing)[:5], len(extra),
                                       sorted(extra)[:5])
    fields = {pid: {k: got[pid].get(k) for k in want} for pid, want in ref.push_docs.items()}
    assert fields == ref.push_docs
    tiers = {k: {f: d[f] for f in ("event_id", "user_id", "from", "to", "spend_fen", "ts")}
             for k, d in docs(settings, settings.customer_events_topic, "event_id").items()}
    assert tiers == ref.tier_docs
    alerts = docs(settings, settings.alerts_topic, "alert_id")
    assert {k: {f: a.get(f) for f in ref.alerts.get(k, a)} for k, a in alerts.items()} == \
        ref.alerts
    return {"pushes": got, "alerts": alerts}


def test_the_reference_log_covers_every_rule() -> None:
    """The generated log is what the comparison needs: many users over 100 days, every rule
    and result, tier moves both ways, forgiven points, escalations, every refusal."""
    log, ref = world()
    assert len({e["user_id"] for e in log if "user_id" in e}) >= USERS
    assert max(e["ts"] for e in log) - min(e["ts"] for e in log) >= 100 * 86_400_000 - 1
    rules = Counter(r for _, r, *_ in ref.pushes)
    assert min(rules.values()) > 100 and len(rules) == 5, rules
    for rule, result in (("review_reminder", "capped"), ("review_reminder", "deferred"),
                         ("review_reminder", "suppressed"), ("repurchase_reminder", "ineligible"),
                         ("repurchase_reminder", "suppressed"), ("dormant_recall", "deferred"),
                         ("service_apology", "deferred"), ("referral_reward", "deferred")):
        assert ref.decisions[(rule, result)] > 20, (rule, result)
    moves = Counter((d["from"], d["to"]) for d in ref.tier_docs.values())
    assert moves[("silver", "new")] > 50 and moves[("new", "silver")] > 50
    assert sum(1 for v in ref.users.values() if v[4] > 0) > 20
    assert Counter(ref.refused.values()).keys() == {"insufficient_points", "unknown_task",
                                                    "self_referral", "already_referred"}
    kinds = Counter(a["kind"] for a in ref.alerts.values())
    assert kinds["service_task_escalated"] > 100, kinds
    # Late: behind the partition's watermark by more than the allowed 5 minutes on arrival.
    marks: dict[int, int] = {}
    late = 0
    for e in log:
        p = partition_for(e.get("user_id") or e.get("invitee_id") or "", PARTITIONS)
        late += e["ts"] < marks.get(p, 0) - 5 * 60_000
        marks[p] = max(marks.get(p, 0), e["ts"])
    assert late > 50, late
    same_ms = Counter((e.get("user_id"), e["ts"]) for e in log)
    assert sum(n > 1 for n in same_ms.values()) > 1_000


@pytest.fixture(scope="module")
def plain(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One worker over the whole log; its outputs, for the replay to compare with."""
    from tests.support import settings_env

    log, ref = world()
    settings = fresh(infra)
    produce(settings, log)
    config = tmp_path_factory.mktemp("customers") / "customers.toml"
    config.write_text(config_text(SECTIONS))

    def spawn(s: Settings, *args: str, env: dict[str, str]) -> Proc:
        return Proc(list(args), {**settings_env(s), **env}, config.parent / f"{args[0]}.log")

    run = Run(settings, spawn, config)
    try:
        run.worker()
        run.wait_applied(len(log))
        run.wait_sent()
        decisions, reached = run.metrics()
    finally:
        run.stop()
    yield {"settings": settings, "decisions": decisions, "reached": reached, "config": config}


def test_one_worker_equals_the_reference(plain: dict[str, Any]) -> None:
    log, ref = world()
    settings = plain["settings"]
    check_state(settings, log, ref)
    check_out(settings, ref)
    assert plain["decisions"] == +ref.decisions
    assert plain["reached"] == Counter(d["to"] for d in ref.tier_docs.values())


def test_sigkill_mid_stream_then_two_workers(infra: Infra, spawn: Callable[..., Proc],
                                             config_file: Path) -> None:
    log, ref = world()
    settings = fresh(infra, batch_max_records=20)
    produce(settings, log)
    run = Run(settings, spawn, config_file)
    first = run.worker()
    wait_until(lambda: counts(settings).get("in", 0) >= len(log) * 0.4, 240, "40% applied",
               interval=0.1)
    first.kill()
    assert counts(settings)["in"] < len(log), "the kill came too late to be mid-stream"
    run.worker()
    run.worker()
    run.wait_applied(len(log))
    run.wait_sent()
    run.stop()
    check_state(settings, log, ref)
    check_out(settings, ref)


def test_a_replay_under_another_app_id_sends_the_same(
        infra: Infra, spawn: Callable[..., Proc], plain: dict[str, Any]) -> None:
    log, ref = world()
    first = plain["settings"]
    settings = fresh(infra, events_topic=first.events_topic)
    run = Run(settings, spawn, plain["config"])
    run.worker()
    run.wait_applied(len(log))
    run.wait_sent()
    run.stop()
    again = check_out(settings, ref)
    before = {"pushes": pushes(first), "alerts": docs(first, first.alerts_topic, "alert_id")}
    assert again == before
