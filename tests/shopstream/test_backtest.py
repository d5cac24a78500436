"""``shopstream backtest`` as an operator runs it: nothing leaves the sandbox, the same log and
config give the same bytes, invalid lines are reported and invalid configs refused before
anything runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from confluent_kafka.admin import AdminClient

from shopstream.backtest_collect import read_topic
from shopstream.core.settings import load_settings
from shopstream.core.timeunits import HOUR_MS
from shopstream.kafka_io.client_config import librdkafka_config
from shopstream.simulate import DOUBLE_11_MS, Incident
from tests.shopstream.backtest_support import (
    SECRET,
    Receiver,
    backtest,
    pushes_file,
    report,
    simulated,
    write_config,
    write_log,
)
from tests.support import Infra

pytestmark = pytest.mark.integration

#: Judged on a short log: an orders drop at minute 12 is an anomaly.
ANOMALIES = {"window": 10, "min_history": 5, "min_volume": 3, "threshold": 3.0}


def _daytime_log(path: Path, minutes: int) -> str:
    """Simulated traffic from 09:00 in Shanghai (pushes are sent, not deferred to 08:00), with
    orders dropping and payments failing from minute 12 for 5 minutes."""
    events = simulated([{"users": 3000, "rate": 15, "seed": 5, "count": 15 * 60 * minutes,
                         "start_ms": DOUBLE_11_MS + 9 * HOUR_MS,
                         "incidents": (Incident("orders-drop", 12, 5),
                                       Incident("payment-failures", 12, 5))}])
    return write_log(path, events)


class Sandbox:
    """One config with a webhook and an ops webhook to a loopback receiver, production names
    for its app id and topics, backtested twice on the test servers."""

    def __init__(self, infra: Infra, root: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.production = {"app_id": f"prod{suffix}", "events_topic": f"prod-events-{suffix}",
                           "dead_letter_topic": f"prod-dead-{suffix}",
                           "alerts_topic": f"prod-alerts-{suffix}",
                           "pushes_topic": f"prod-pushes-{suffix}",
                           "customer_events_topic": f"prod-customer-{suffix}"}
        self.receiver = Receiver()
        self.infra = infra
        self.log = _daytime_log(root / "log.jsonl", 20)
        self.config = write_config(
            root / f"live{suffix}.toml",
            {"anomalies": ANOMALIES,
             "webhook": {"url": f"{self.receiver.url}/hook", "secret": SECRET},
             "ops_webhook": {"url": f"{self.receiver.url}/ops", "secret": SECRET}},
            broker=infra.broker, redis_url=infra.redis_url, partitions=4, **self.production)
        self.label = f"live{suffix}"
        self.outs = [root / "first", root / "second"]
        self.runs = [backtest(self.log, [self.config], out) for out in self.outs]


@pytest.fixture(scope="module")
def sandbox(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(infra, tmp_path_factory.mktemp("sandbox"))
    yield box
    box.receiver.stop()


def test_nothing_leaves_the_sandbox(sandbox: Sandbox) -> None:
    for run in sandbox.runs:
        assert run.returncode == 0, run.stderr
    body = report(sandbox.outs[0])["configs"][0]
    # Both webhooks had something to send: pushes were sent and an anomaly raised.
    assert sum(r["sent"] for r in body["pushes"].values()) > 1_000
    assert len(pushes_file(sandbox.outs[0], sandbox.label)) == body["pushes_sent"] > 1_000
    assert [a["metric"] for a in body["anomalies"]] == ["orders"]
    assert sandbox.receiver.requests == []
    # The production names stay untouched: no record in their topics, no key in Redis.
    s = load_settings(env={}, broker=sandbox.infra.broker, redis_url=sandbox.infra.redis_url)
    topics = AdminClient(librdkafka_config(s)).list_topics(timeout=10).topics
    for name, topic in sandbox.production.items():
        if name != "app_id":
            assert topic not in topics or read_topic(s, topic) == [], topic
    r = redis.Redis.from_url(sandbox.infra.redis_url)
    assert list(r.scan_iter(match=f"{sandbox.production['app_id']}:*", count=1000)) == []
    r.close()


def test_the_same_log_and_config_give_the_same_bytes(sandbox: Sandbox) -> None:
    first, second = ((out / "report.json").read_bytes() for out in sandbox.outs)
    assert first == second
    name = f"pushes-{sandbox.label}.jsonl"
    assert (sandbox.outs[0] / name).read_bytes() == (sandbox.outs[1] / name).read_bytes()
    # The second run had a namespace of its own (the first still holds the first one).
    spaces = [orjson.loads((out / "timings.json").read_bytes())[sandbox.label]["namespace"]
              for out in sandbox.outs]
    assert spaces[1] == f"{spaces[0]}-2"
    assert b"total_s" not in first and b"namespace" not in first


#: Lines no event can be made of, and the reason each is dead-lettered for.
INVALID = [(b"{not json", "malformed_json"), (b'"a scalar"', "not_an_object"),
           (b"42", "not_an_object"),
           (b'{"event_id":"x1","type":"teleport","ts":1794358800000,"user_id":"u2"}',
            "unknown_type"),
           (b'{"event_id":"x2","type":"page_view","ts":-5,"user_id":"u3","page":"home"}',
            "invalid_field")]


def test_invalid_lines_are_reported_and_the_report_still_made(tmp_path: Path) -> None:
    """On the embedded infra (the config names no servers). A valid event stamped years ahead
    is applied, not refused: a backtest has no bound on future timestamps."""
    events = simulated([{"users": 500, "rate": 5, "seed": 9, "count": 3_000,
                         "start_ms": DOUBLE_11_MS + 9 * HOUR_MS}])
    future = {"event_id": "future-1", "type": "page_view", "ts": 4_102_444_800_000,
              "user_id": "u7", "page": "home"}
    log = write_log(tmp_path / "log.jsonl", [*events, future], [line for line, _ in INVALID])
    config = write_config(tmp_path / "plain.toml", {})
    run = backtest(log, [config], tmp_path / "out")
    assert run.returncode == 0, run.stderr
    got: dict[str, Any] = report(tmp_path / "out")
    dead: dict[str, int] = {}
    for _, reason in INVALID:
        dead[reason] = dead.get(reason, 0) + 1
    assert got["log"]["lines"] == len(events) + 1 + len(INVALID)
    assert got["log"]["events"] == got["log"]["processed"] == len(events) + 1
    assert got["log"]["dead"] == dead
    assert got["log"]["to_ts"] == future["ts"]
    assert got["configs"][0]["events"] == {"in": got["log"]["lines"],
                                           "processed": len(events) + 1,
                                           "dead": len(INVALID), "duplicate": 0}
    assert got["configs"][0]["funnels"]["purchase"]["overall"]["page_view"] > 0


def test_an_invalid_config_names_the_key_and_nothing_runs(infra: Infra, tmp_path: Path) -> None:
    """The valid config comes first: it is not run either, every config is checked before."""
    suffix = uuid.uuid4().hex[:8]
    log = write_log(tmp_path / "log.jsonl", simulated([{"users": 50, "rate": 5, "seed": 2,
                                                        "count": 100}]))
    good = write_config(tmp_path / f"good{suffix}.toml", {}, broker=infra.broker,
                        redis_url=infra.redis_url)
    bad = write_config(tmp_path / f"bad{suffix}.toml",
                       {"cart": {"steps": [{"after_min": 60}, {"after_min": 30}]}},
                       broker=infra.broker, redis_url=infra.redis_url)
    run = backtest(log, [good, bad], tmp_path / "out")
    assert run.returncode == 3
    assert "cart.steps[1].after_min" in run.stderr and f"bad{suffix}.toml" in run.stderr
    assert not (tmp_path / "out").exists()
    s = load_settings(env={}, broker=infra.broker, redis_url=infra.redis_url)
    topics = AdminClient(librdkafka_config(s)).list_topics(timeout=10).topics
    assert [t for t in topics if suffix in t] == []
    r = redis.Redis.from_url(infra.redis_url)
    assert list(r.scan_iter(match=f"bt-good{suffix}-*", count=1000)) == []
    r.close()
