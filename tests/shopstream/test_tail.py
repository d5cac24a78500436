"""``shopstream tail``: dead letters, alerts and pushes as one readable line each, or JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shopstream.core import codec
from shopstream.kafka_io.producer import RecordProducer
from tests.support import ROOT, settings_env

pytestmark = [pytest.mark.integration]


def _tail(settings, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "shopstream", "tail", *args,
                          "--from-beginning", "--idle-exit", "3"], cwd=ROOT,
                         env=settings_env(settings), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_tail_prints_a_line_per_record_and_json_for_machines(settings):
    producer = RecordProducer(settings)
    producer.produce(settings.dead_letter_topic, b'{"event_id": ', headers=[
        ("reason", b"malformed_json"), ("detail", b"unexpected end"),
        ("source", b"events/3/17/-1")])
    alert = {"type": "flash_sale_sold_out", "alert_id": "s1:sold_out", "sale_id": "s1"}
    producer.produce(settings.alerts_topic, codec.dumps(alert), key=b"s1")
    producer.produce(settings.pushes_topic, codec.dumps(
        {"push_id": "p1", "rule": "new_user", "user_id": "u1", "coupon_fen": 1000}), key=b"u1")
    producer.flush()

    dead = _tail(settings, "dead-letters")
    assert dead == ['events/3/17/-1  malformed_json  unexpected end  {"event_id": ']
    assert _tail(settings, "alerts") == [
        "type=flash_sale_sold_out  alert_id=s1:sold_out  sale_id=s1"]
    pushes = [json.loads(line) for line in _tail(settings, "pushes", "--json")]
    assert len(pushes) == 1 and pushes[0]["value"]["push_id"] == "p1"
    assert pushes[0]["topic"] == settings.pushes_topic and pushes[0]["offset"] == 0


def test_tail_says_on_stderr_what_it_follows_while_waiting(settings):
    out = subprocess.run([sys.executable, "-m", "shopstream", "tail", "alerts", "--idle-exit",
                          "2"], cwd=ROOT, env=settings_env(settings), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        f"shopstream tail: following alerts (topic {settings.alerts_topic}, 1 partition) "
        "from now on; waiting for records (Ctrl-C stops)"]
