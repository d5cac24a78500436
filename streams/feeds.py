"""One pass over a partition's decoded events: room-wide copies, duplicates, lateness, and
each capability's share by event type, as its ``agents.base.Takes`` says.

Lateness is decided here once for every capability: an event is late when its time is older
than the partition's running watermark minus the allowed lateness, the watermark being the
largest event time the partition has seen (``Deduplicator.watermark``: duplicates move it too,
copies do not, a late event cannot), checked event by event in partition order so that no
result depends on where a batch was cut. A copy of a room-wide event is judged the same way
against the watermark at its place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shopstream.agents.base import Agent, Feed, PartitionBatch, Takes
from shopstream.kafka_io.partitioner import is_copy
from shopstream.schemas.events import EVENT_TYPES, ROOM_WIDE_TYPES, Event
from shopstream.streams.dedup import Deduplicator


@dataclass(slots=True)
class Split:
    """A partition's records sorted out."""

    #: New events (not copies, not duplicates), in partition order: what ``processed`` counts.
    events: list[Event]
    #: Each agent's feed by its name (agents that take the same share the feed).
    feeds: dict[str, Feed]
    copies: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class _Group:
    """Agents with the same ``Takes``: one list of events for all of them."""

    takes: Takes
    names: tuple[str, ...]
    #: Every type, late ones too: the list is ``Split.events`` itself.
    every: bool
    types: frozenset[str]


class Dispatch:
    """Per event type, which agents' lists take it on time and late; built once per worker."""

    def __init__(self, agents: Sequence[Agent[Any, Any]], partitions: int,
                 lateness_ms: int) -> None:
        self.partitions = partitions
        self.lateness_ms = lateness_ms
        by_takes: dict[Takes, list[str]] = {}
        for agent in agents:
            by_takes.setdefault(agent.takes, []).append(agent.name)
        self.groups = [
            _Group(t, tuple(names), t.types is None and not t.on_time,
                   frozenset(EVENT_TYPES) if t.types is None else t.types)
            for t, names in by_takes.items()]
        #: type -> groups with a list of their own that take it on time, and late.
        self.on_time_to: dict[str, tuple[int, ...]] = {}
        self.late_to: dict[str, tuple[int, ...]] = {}
        #: room-wide type -> groups that take its copies.
        self.copy_to: dict[str, tuple[int, ...]] = {}
        for etype in EVENT_TYPES:
            self.on_time_to[etype] = tuple(
                g for g, grp in enumerate(self.groups) if not grp.every and etype in grp.types)
            self.late_to[etype] = tuple(
                g for g in self.on_time_to[etype] if not self.groups[g].takes.on_time)
        #: Agents whose late events are counted: (names, takes).
        self.counted = [(grp.names, grp.takes) for grp in self.groups if grp.takes.on_time]
        self.counted_names = [name for names, _ in self.counted for name in names]
        for etype in ROOM_WIDE_TYPES:
            self.copy_to[etype] = tuple(
                g for g, grp in enumerate(self.groups) if etype in grp.takes.copies)

    def split(self, partition: int, decoded: list[Event], dedup: Deduplicator) -> Split:
        """Sort out ``decoded`` (valid events in partition order), deduplicating them."""
        fresh: list[Event] = []
        lists = [fresh if grp.every else [] for grp in self.groups]
        on_time = _appenders(self.on_time_to, lists)
        late_adds = _appenders(self.late_to, lists)
        copies: list[list[tuple[int, Event]]] = [[] for _ in self.groups]
        late_by_type: dict[str, int] = {}
        wm = dedup.watermark
        low = wm - self.lateness_ms
        n_copies = n_dups = 0
        parts, is_duplicate = self.partitions, dedup.is_duplicate
        for ev in decoded:
            etype, ts = ev.type, ev.ts
            if is_copy(ev, partition, parts):
                # Not counted in, nor deduplicated, nor moving the watermark: the other
                # capabilities see the partition as if the copy were not there.
                n_copies += 1
                for g in self.copy_to[etype]:
                    if ts >= low or not self.groups[g].takes.on_time:
                        copies[g].append((len(lists[g]), ev))
                continue
            # Judged against the watermark before it; the dedup moves it (as ``wm`` here).
            is_late = ts < low
            if ts > wm:
                wm = ts
                low = wm - self.lateness_ms
            if is_duplicate(ev.event_id, ts):
                n_dups += 1
                continue
            fresh.append(ev)
            if is_late:
                late_by_type[etype] = late_by_type.get(etype, 0) + 1
                for add in late_adds.get(etype, ()):
                    add(ev)
                continue
            for add in on_time.get(etype, ()):
                add(ev)
        feeds: dict[str, Feed] = {}
        for g, grp in enumerate(self.groups):
            late = (sum(late_by_type.get(t, 0) for t in grp.types)
                    if grp.takes.on_time and late_by_type else 0)
            feed = Feed(lists[g], copies[g], late)
            for name in grp.names:
                feeds[name] = feed
        return Split(fresh, feeds, n_copies, n_dups)

    def count_late(self, batch: PartitionBatch, app_id: str) -> None:
        """Each on-time capability's late events onto its counter, in the fenced write."""
        for names, takes in self.counted:
            late = batch.feeds[names[0]].late
            if late and takes.late_key is not None:
                batch.ops.incrby(takes.late_key(app_id, batch.partition), late)

    def late_counts(self, batches: Sequence[PartitionBatch]) -> dict[str, int]:
        """Late events per capability name over ``batches`` (for the metric, once landed)."""
        return {name: sum(b.feeds[names[0]].late for b in batches)
                for names, _ in self.counted for name in names}


def _appenders(routes: dict[str, tuple[int, ...]],
               lists: list[list[Event]]) -> dict[str, tuple[Callable[[Event], None], ...]]:
    """Per type, the ``append`` of each list that takes it (types nobody takes left out)."""
    return {etype: tuple(lists[g].append for g in gs) for etype, gs in routes.items() if gs}
