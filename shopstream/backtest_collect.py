"""What a backtest's namespace holds once its run is over, read back the ways the rest of
shopstream reads it: the pushes and alerts topics (deduplicated by id, as their consumers do),
the reconciliation counters, the relay's push results and budget claims, the workers'
``shopstream_pushes_total``, and funnels and flash sales through the API's own queries."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from shopstream.agents.coupons.rules import parse_config as parse_coupons
from shopstream.agents.flash_sale.agent import read_unreserved
from shopstream.agents.funnel.query import read_funnel
from shopstream.agents.funnel.rules import parse_funnels
from shopstream.backtest_log import LogSummary
from shopstream.backtest_summary import (
    budgets,
    coupons,
    gmv_after_push,
    live_followups,
    push_outcomes,
)
from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.core.timeunits import DAY_MS
from shopstream.kafka_io.consumer import make_consumer
from shopstream.sinks import keys
from shopstream.sinks.coupons.keys import budget_keys, coupon_keys
from shopstream.sinks.flash_sale.store import FlashSales
from shopstream.sinks.redis_state import Redis

#: Longest wait for a topic's end while reading it back.
READ_TIMEOUT_S = 60.0


def read_topic(settings: Settings, topic: str) -> list[bytes]:
    """Every record value now in ``topic`` (none when it does not exist), read without
    committing anything."""
    consumer = make_consumer(settings, "backtest", {"enable.auto.commit": False,
                                                    "enable.partition.eof": True})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return []
        parts = sorted(meta.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[bytes] = []
        eof: set[int] = set()
        deadline = time.monotonic() + READ_TIMEOUT_S
        while len(eof) < len(parts) and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=0.5):
                err = msg.error()
                if err is None:
                    out.append(msg.value() or b"")
                elif err.code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition() or 0)
        return out
    finally:
        consumer.close()


def by_id(values: list[bytes], id_field: str) -> list[dict[str, Any]]:
    """Documents deduplicated by ``id_field`` (a repeat after a crash keeps its id), sorted."""
    docs: dict[str, dict[str, Any]] = {}
    for raw in values:
        doc = codec.loads(raw)
        docs.setdefault(str(doc.get(id_field, "")), doc)
    return [docs[k] for k in sorted(docs)]


def scrape_decisions(ports: list[int]) -> Counter[tuple[str, str]]:
    """``shopstream_pushes_total`` by (rule, result), summed over the workers' /metrics."""
    total: Counter[tuple[str, str]] = Counter()
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name != "shopstream_pushes":
                continue
            for sample in family.samples:
                if sample.name == "shopstream_pushes_total":
                    total[(sample.labels["rule"], sample.labels["result"])] += int(sample.value)
    return total


async def counters(redis: Redis, settings: Settings) -> Counter[str]:
    """Reconciliation counters (in, processed, dead, duplicate, dead:<reason>) over partitions."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(settings.partitions):
            pipe.hgetall(keys.counts(settings.app_id, p))
        rows = await pipe.execute()
    total: Counter[str] = Counter()
    for row in rows:
        for k, v in row.items():
            total[k.decode()] += int(v)
    return total


async def push_results(redis: Redis, settings: Settings) -> dict[str, str]:
    """push id -> its final result, over partitions (today's hash and the previous day's)."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(settings.partitions):
            k = coupon_keys(settings.app_id, p)
            pipe.hgetall(k.push_results_prev)
            pipe.hgetall(k.push_results)
        rows = await pipe.execute()
    return {pid.decode(): r.decode() for row in rows for pid, r in row.items()}


async def claimed_rules(redis: Redis, settings: Settings, rules: list[str]) -> dict[str, str]:
    """push id -> rule, of every push that asked a budget for a coupon."""
    out: dict[str, str] = {}
    for rule in rules:
        claims = cast(dict[bytes, bytes],
                      await redis.hgetall(budget_keys(settings.app_id, rule)[1]))
        out.update((pid.decode(), rule) for pid in claims)
    return out


async def funnels(redis: Redis, settings: Settings, to_ts: int) -> dict[str, Any]:
    """Every funnel's cohort counts per step label, in all and per value of each breakdown,
    over the whole log (day buckets), as ``GET /v1/funnels/{name}?res=day`` reads them."""
    out: dict[str, Any] = {}
    for fd in parse_funnels(settings.sections)[0]:
        by: dict[str, Any] = {}
        overall: dict[str, int] = {}
        late = 0
        for dim in fd.breakdowns:
            body = await read_funnel(redis, settings.app_id, settings.partitions, fd, "cohort",
                                     "d", dim, 0, to_ts + DAY_MS)
            overall = {s["label"]: s["count"] for s in body["total"]["steps"]}
            by[dim] = {row["value"]: {s["label"]: s["count"] for s in row["steps"]}
                       for row in body["breakdown"]}
            late = body["late_events"]
        out[fd.name] = {"overall": overall, "by": by,
                        "stages": [s.label for s in fd.steps], "late_events": late}
    return out


async def flash_sales(redis: Redis, settings: Settings, now: int) -> dict[str, Any]:
    """Each sale in the namespace as ``GET /v1/flash-sales/{id}`` shows it, at ``now`` (the
    log's last event time, so the view does not depend on when the backtest ran)."""
    sales = FlashSales(redis, settings.app_id)
    out: dict[str, Any] = {}
    for sale_id in await sales.sale_ids():
        view = await sales.read(sale_id, now)
        if view is not None:
            view["unreserved_orders"] = await read_unreserved(redis, settings.app_id,
                                                              settings.partitions, sale_id)
            out[sale_id] = view
    return out


async def collect(redis: Redis, settings: Settings, log: LogSummary,
                  decisions: Counter[tuple[str, str]], hours: float,
                  pushes: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """One config's section of the report (without its label, file and digest)."""
    cfg = parse_coupons(settings.sections, settings.zone)
    rules = sorted(cfg.rules)
    rule_of = await claimed_rules(redis, settings, rules)
    rule_of.update((p["push_id"], p["rule"]) for p in pushes)
    counts = await counters(redis, settings)
    end = log.to_ts if log.to_ts is not None else 0
    return {
        "events": {k: counts[k] for k in ("in", "processed", "dead", "duplicate")},
        "dead": {k[5:]: n for k, n in sorted(counts.items()) if k.startswith("dead:")},
        "pushes": push_outcomes(decisions, await push_results(redis, settings), rule_of, rules),
        "pushes_sent": len(pushes),
        "coupons": coupons(pushes),
        "budgets": budgets(pushes, {name: rule.budget for name, rule in cfg.rules.items()}),
        "funnels": await funnels(redis, settings, end),
        "flash_sales": await flash_sales(redis, settings, end),
        "live_followups": live_followups(pushes),
        "anomalies": alerts,
        "gmv_after_push": gmv_after_push(pushes, log.paid, hours),
    }
