"""Numbers at the int64 edges mixed into a normal log, through a real worker: what is out of
range is dead-lettered ``invalid_field``, what is stamped in the future ``future_ts``, the rest
counts exactly, and the worker lives."""

from __future__ import annotations

import json

import pytest

from shopstream.replay import replay_lines
from shopstream.schemas.validate import MAX_TS
from tests.streams.exact import assert_exact, wait_done
from tests.streams.logs import build_log

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

HORIZON_MS = 20_000


def edge_log():
    log = build_log(6_000, seed=5, horizon_ms=HORIZON_MS)
    ts = max(ev["ts"] for ev in log.valid) + 1_000
    base = {"ts": ts, "user_id": "edge-user", "channel": "live"}
    valid = [
        {**base, "event_id": f"max{i}", "type": "payment", "order_id": f"o{i}",
         "amount": 10**12, "status": "success"} for i in range(5)
    ]
    invalid = [
        {**base, "type": "payment", "order_id": "o", "amount": amount, "status": "success"}
        for amount in (10**12 + 1, 2**53, 2**62, 2**63 - 1, 2**63, 2**64 - 1, -(2**63))
    ] + [
        {**base, "type": "cart_add", "sku": "s", "qty": 10**6 + 1, "price": 1},
        {**base, "type": "live_like", "room_id": "r", "count": 2**63},
        {**base, "type": "order_submit", "order_id": "o", "amount": 1,
         "items": [{"sku": "s", "qty": 1, "price": 1}] * 1001},
        {**base, "type": "payment", "order_id": "o", "amount": 1, "status": "success",
         "user_id": "中" * 43},
    ]
    for i, ev in enumerate(invalid):
        ev["event_id"] = f"edge{i}"
    # In the schema's range, but from the future: they would move the watermark to 2099.
    future = [{**base, "event_id": f"future{i}", "user_id": f"future-user{i}", "ts": ts,
               "type": "page_view", "page": "x"}
              for i, ts in enumerate((MAX_TS, 4_070_908_800_000))]
    log.lines += [json.dumps(ev).encode() for ev in valid + invalid + future]
    log.valid += valid
    log.bad["invalid_field"] = log.bad.get("invalid_field", 0) + len(invalid)
    log.bad["future_ts"] = len(future)
    return log, len(invalid)


def test_int64_edges_are_dead_lettered_and_the_rest_is_exact(infra, start_worker, fault_row):
    log, n_invalid = edge_log()
    fault_row.fault, fault_row.events = "inputs at the int64 edges", len(log.lines)
    settings = infra.settings(dedup_horizon_ms=HORIZON_MS)
    replay_lines(settings, log.lines)
    worker = start_worker(settings)
    wait_done(settings, log)
    assert_exact(settings, log)
    assert worker.popen.poll() is None
    fault_row.checks += [f"{n_invalid} out-of-range events dead-lettered invalid_field",
                         "2 events from the future dead-lettered future_ts",
                         "five 10**12-fen payments counted exactly", "worker alive"]
