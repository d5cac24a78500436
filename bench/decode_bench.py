"""Decode + validate cost per event (us/event): the worker's one-pass msgspec decode against
the path it replaced (orjson, then a generated straight-line predicate per event type).

Usage: python bench/decode_bench.py [--events 200000] [--envelope 200] [--repeat 7]
Single process, no broker: the simulated promotion log (``bench/workload.py``) is encoded in
envelopes of ``--envelope`` events, as producers send them, and each record is decoded the
way the worker does (``kafka_io.envelope.decode_record`` with the future bound on); the old
path is kept below, in this file only, as it was before the typed model. Reported per event
type (envelopes of that type alone) and for the log's own mix; the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.workload import generate  # noqa: E402
from shopstream.kafka_io.envelope import DeadLetter, decode_record, record_bound  # noqa: E402
from shopstream.schemas.events import (  # noqa: E402
    CHANNELS,
    COMMON_OPTIONAL,
    COMMON_REQUIRED,
    EVENT_TYPES,
    MAX_ID_BYTES,
    MAX_ITEMS,
    MAX_MONEY,
    MAX_QTY,
    MAX_TEXT_BYTES,
    MAX_TS,
    MIN_TS,
    Event,
    Kind,
)
from shopstream.schemas.validate import is_id  # noqa: E402

# --- The old path: orjson, then one generated predicate per type (schemas/validate.py before
# the typed model). Only the valid-event path is kept: that is what the benchmark times.


def _is_text(v: Any) -> bool:
    return (type(v) is str and v != "" and len(v) <= MAX_TEXT_BYTES
            and (v.isascii() or len(v.encode("utf-8", "surrogatepass")) <= MAX_TEXT_BYTES))


def _is_items(v: Any) -> bool:
    if type(v) is not list or not v or len(v) > MAX_ITEMS:
        return False
    for item in v:
        if type(item) is not dict:
            return False
        qty, price = item.get("qty"), item.get("price")
        if not is_id(item.get("sku")):
            return False
        if type(qty) is not int or not 1 <= qty <= MAX_QTY:
            return False
        if type(price) is not int or not 0 <= price <= MAX_MONEY:
            return False
    return True


_EXPR: dict[Kind, str] = {
    Kind.STR: '(type({v}) is str and {v} != "" and len({v}) <= MAX_ID_BYTES'
              ' and ({v}.isascii() or is_id({v})))',
    Kind.TEXT: "_is_text({v})",
    Kind.TS: "(type({v}) is int and MIN_TS <= {v} <= MAX_TS)",
    Kind.MONEY: "(type({v}) is int and 0 <= {v} <= MAX_MONEY)",
    Kind.QTY: "(type({v}) is int and 1 <= {v} <= MAX_QTY)",
    Kind.COUNT: "(type({v}) is int and 0 <= {v} <= MAX_QTY)",
    Kind.CHANNEL: "(type({v}) is str and {v} in _CHANNELS)",
    Kind.PAY_STATUS: '({v} == "success" or {v} == "failed")',
    Kind.ITEMS: "_is_items({v})",
    Kind.RATING: "(type({v}) is int and 1 <= {v} <= 5)",
    Kind.POINTS: "(type({v}) is int and 1 <= {v} <= MAX_MONEY)",
    Kind.GROUP_SIZE: "(type({v}) is int and 2 <= {v} <= 1000)",
    Kind.MINUTES: "(type({v}) is int and 1 <= {v} <= 43200)",
}


def _old_predicate(required: dict[str, Kind],
                   optional: dict[str, Kind]) -> Callable[[dict[str, Any]], bool]:
    terms = []
    fields = [(n, k, False) for n, k in required.items()] + [
        (n, k, True) for n, k in optional.items()]
    for i, (name, kind, opt) in enumerate(fields):
        var = f"x{i}"
        if opt:
            terms.append(f"(({var} := g({name!r})) is None or {_EXPR[kind].format(v=var)})")
        else:
            terms.append(_EXPR[kind].format(v=var).replace(var, f"({var} := g({name!r}))", 1))
    src = "def fast(e):\n    g = e.get\n    return " + " and ".join(terms) + "\n"
    scope: dict[str, Any] = {"MIN_TS": MIN_TS, "MAX_TS": MAX_TS, "_CHANNELS": frozenset(CHANNELS),
                             "_is_items": _is_items, "is_id": is_id, "_is_text": _is_text,
                             "MAX_ID_BYTES": MAX_ID_BYTES, "MAX_MONEY": MAX_MONEY,
                             "MAX_QTY": MAX_QTY}
    exec(compile(src, "<old validate>", "exec"), scope)  # noqa: S102 - source built above
    fast: Callable[[dict[str, Any]], bool] = scope["fast"]
    return fast


_COMMON_REQ = {k: v for k, v in COMMON_REQUIRED.items() if k != "type"}
_OLD: dict[str, Callable[[dict[str, Any]], bool]] = {
    t: _old_predicate({**{k: v for k, v in _COMMON_REQ.items() if k not in opt}, **req},
                      {**{k: v for k, v in COMMON_OPTIONAL.items() if k not in req}, **opt})
    for t, (req, opt) in EVENT_TYPES.items()
}


def old_decode(raw: bytes, events: list[dict[str, Any]], latest: int) -> int:
    """The old worker path for an all-valid envelope: orjson, per item the type's predicate
    and the future bound."""
    doc = orjson.loads(raw)
    for item in doc:
        if type(item) is not dict:
            raise ValueError("the benchmark feeds valid events only")
        etype = item.get("type")
        fast = _OLD.get(etype) if type(etype) is str else None
        if fast is None or not fast(item) or item["ts"] > latest:
            raise ValueError("the benchmark feeds valid events only")
        events.append(item)
    return len(doc)


# --- Timing


def _envelopes(events: list[dict[str, Any]], size: int) -> list[bytes]:
    return [b"[" + b",".join(orjson.dumps(e) for e in events[i:i + size]) + b"]"
            for i in range(0, len(events), size)]


def _best_of(fns: tuple[Callable[[], int], ...], repeat: int) -> list[tuple[float, int]]:
    """Per function, its fastest of ``repeat`` runs (seconds) and the events a run decoded;
    the functions take turns, so a noisy moment hurts them alike."""
    best = [(float("inf"), 0)] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            n = fn()
            best[i] = (min(best[i][0], time.perf_counter() - t0), n)
    return best


def measure(records: list[bytes], repeat: int, now_ms: int) -> tuple[float, float]:
    """(old, new) us/event over ``records``."""
    bound = record_bound(None, 300_000, now_ms)
    assert bound is not None

    # Each record's events are dropped before the next one, as a worker drops a batch's once
    # applied: what is timed is decoding, not a heap growing by the whole log.
    def old() -> int:
        n = 0
        for r in records:
            out: list[dict[str, Any]] = []
            n += old_decode(r, out, bound.latest)
        return n

    def new() -> int:
        n = 0
        dead: list[DeadLetter] = []
        for i, r in enumerate(records):
            out: list[Event] = []
            n += decode_record(r, "t", 0, i, 1 << 20, out, dead, bound)
        if dead:
            raise ValueError(f"the benchmark feeds valid events only: {dead[0].detail}")
        return n

    (t_old, n_old), (t_new, n_new) = _best_of((old, new), repeat)
    assert n_old == n_new
    return t_old / n_old * 1e6, t_new / n_new * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--envelope", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    log = generate(args.events, users=50_000, rate=5_000, seed=42)
    now_ms = max(e["ts"] for e in log)
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in log:
        by_type[ev["type"]].append(ev)
    print(f"{'events':<18}{'n':>9}{'old us/ev':>11}{'new us/ev':>11}{'old/new':>9}")
    rows = [("mix (the log)", log)] + sorted(by_type.items(), key=lambda kv: -len(kv[1]))
    for name, evs in rows:
        old_us, new_us = measure(_envelopes(evs, args.envelope), args.repeat, now_ms)
        print(f"{name:<18}{len(evs):>9}{old_us:>11.3f}{new_us:>11.3f}{old_us / new_us:>8.2f}x")


if __name__ == "__main__":
    main()
