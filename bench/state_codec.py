"""Per-value cost and size of the users' stored state: the JSON and text written before round
three's compact state, against the packed forms (sinks/coupons/users.py, funnel pack_units).

    python bench/state_codec.py [--values 20000] [--rounds 5]

States are shaped like the bench's (bench/run.py): a new user's guard counters, a cart with its
schedule, live views; funnel progress of one entry, sometimes two. Each round times all values;
the best round is printed, in microseconds per value.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shopstream.agents.funnel.rules import (  # noqa: E402
    Progress,
    decode_units,
    encode_units,
    pack_units,
    unpack_units,
)
from shopstream.core import codec  # noqa: E402
from shopstream.sinks.coupons.users import pack, unpack  # noqa: E402

T0 = 1_796_557_022_491
CHANNELS = ("search", "social", "push", "ads", "live", "direct", "recommend")


def coupon_state(rnd: random.Random) -> dict[str, Any]:
    t = T0 + rnd.randrange(3_600_000)
    st: dict[str, Any] = {"first": t, "day": "2026-12-06", "sent": 1, "last": {"new_user": t}}
    if rnd.random() < 0.3:
        items = {f"sku{rnd.randrange(1000)}": [rnd.randint(1, 3), rnd.randrange(100, 20_000)]
                 for _ in range(rnd.randint(1, 3))}
        st.update(items=items, changed=t + 58, episode=t + 58, step=0)
    if rnd.random() < 0.05:
        st["views"] = {f"room{rnd.randrange(6)}": [t + 10, t + 90_000]}
    return st


def progress(rnd: random.Random) -> dict[str, Progress]:
    t = T0 + rnd.randrange(3_600_000)
    units = {"purchase@f1dab42d": Progress(t, rnd.randint(1, 4), t + rnd.randrange(600_000),
                                           (rnd.choice(CHANNELS),))}
    if rnd.random() < 0.1:
        units["browse@0b1c2d3e|s" + str(rnd.randrange(10**6))] = Progress(t, 1, t, ("web",))
    return units


def best_us(fn: Callable[[Any], Any], values: list[Any], rounds: int) -> float:
    """Results are kept until the round ends, as a batch keeps what it writes until its
    fenced call (a value dropped at once lets the allocator reuse one block, which the
    worker never sees)."""
    times = []
    for _ in range(rounds):
        start = time.thread_time()
        kept = [fn(v) for v in values]
        times.append(time.thread_time() - start)
        del kept
    return min(times) / len(values) * 1e6


def row(name: str, states: list[Any], enc: Callable[[Any], bytes],
        dec: Callable[[bytes], Any], rounds: int) -> None:
    raws = [enc(s) for s in states]
    assert [dec(r) for r in raws] == states
    print(f"{name:<28} {statistics.mean(map(len, raws)):6.1f} B  {max(map(len, raws)):4d} max  "
          f"encode {best_us(enc, states, rounds):5.2f} us  "
          f"decode {best_us(dec, raws, rounds):5.2f} us")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--values", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rnd = random.Random(1)
    states = [coupon_state(rnd) for _ in range(args.values)]
    units = [progress(rnd) for _ in range(args.values)]
    row("cu state, JSON (before)", states, codec.dumps, codec.loads, args.rounds)
    row("cu state, MessagePack", states, pack, unpack, args.rounds)
    row("funnel progress, text", units, lambda u: encode_units(u).encode(), decode_units,
        args.rounds)
    row("funnel progress, compact", units, lambda u: pack_units(u).encode(), unpack_units,
        args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
