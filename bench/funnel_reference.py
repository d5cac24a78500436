"""Plain-Python reference of the default ``purchase`` funnel (README "Semantics", docs/funnels.md).

Written from the definition, not from any engine's code, so that every baseline (and
shopstream) can be checked against it:

- steps: page_view -> product_view -> cart_add -> order_submit -> payment(status=success);
- counted by user; a user enters at a step-1 event; steps happen in order of event time
  (equal timestamps keep their log order; other events may come in between);
- each step counts once per entry; the window (24 h) starts at the entry event and an event
  counts only if ``ts - entry_ts < window`` (docs/funnels.md: before entry + window);
- after the window closes, or after the last step, the next step-1 event starts a new entry;
- the breakdown value (channel) is taken from the entry event (first touch).

Output: ``{(channel, step_index): entries that reached that step}`` over all time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

WINDOW_MS = 24 * 3_600_000

#: (event type, required field values) per step of the default purchase funnel.
PURCHASE_STEPS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("page_view", {}),
    ("product_view", {}),
    ("cart_add", {}),
    ("order_submit", {}),
    ("payment", {"status": "success"}),
)

FUNNEL_TYPES = frozenset(t for t, _ in PURCHASE_STEPS)


def matches(step: int, event: Mapping[str, Any]) -> bool:
    """Whether ``event`` is an occurrence of step ``step`` (0-based)."""
    kind, filters = PURCHASE_STEPS[step]
    return event.get("type") == kind and all(event.get(k) == v for k, v in filters.items())


def reference_funnel(
    events: Iterable[Mapping[str, Any]], window_ms: int = WINDOW_MS
) -> dict[tuple[str, int], int]:
    """Entries reaching each step, per channel of the entry event."""
    per_user: dict[str, list[tuple[int, int, Mapping[str, Any]]]] = defaultdict(list)
    for seq, ev in enumerate(events):
        if ev.get("type") in FUNNEL_TYPES:
            per_user[str(ev["user_id"])].append((int(ev["ts"]), seq, ev))
    out: Counter[tuple[str, int]] = Counter()
    last = len(PURCHASE_STEPS) - 1
    for timeline in per_user.values():
        timeline.sort(key=lambda item: (item[0], item[1]))
        entry_ts: int | None = None
        channel = ""
        reached = -1
        for ts, _, ev in timeline:
            open_entry = (
                entry_ts is not None and reached < last and ts - entry_ts < window_ms
            )
            if open_entry:
                if matches(reached + 1, ev):
                    reached += 1
                    out[(channel, reached)] += 1
                continue
            if matches(0, ev):
                entry_ts, channel, reached = ts, str(ev.get("channel", "")), 0
                out[(channel, 0)] += 1
    return dict(out)


def as_rows(counts: Mapping[tuple[str, int], int]) -> list[list[Any]]:
    """Sorted ``[channel, step, count]`` rows: a JSON-friendly, comparable form."""
    return [[c, s, n] for (c, s), n in sorted(counts.items())]
