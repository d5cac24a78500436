"""Drop repeated event_ids within an event-time horizon, per partition, in bounded memory.

Definition (the reference in tests restates it independently): the partition watermark is the
largest ``ts`` of the valid events seen so far, including the current one. An event is a
duplicate when its ``event_id`` was last seen (duplicate or not) at watermark ``w`` and the
current watermark is at most ``w + horizon``. Decisions depend neither on batch boundaries
nor on sightings older than the horizon, so a worker that rebuilds this state by re-reading
the partition from a point beyond the horizon decides exactly as before.
"""

from __future__ import annotations

from collections import deque

#: Generations per horizon: eviction drops whole generations, so memory overshoots the
#: horizon by at most 1/GENERATIONS of it while a lookup costs at most GENERATIONS + 1 probes.
GENERATIONS = 8


class Deduplicator:
    """Event-id memory of one partition, kept in generations of event time.

    Ids live in the generation of their last sighting. Dropping a whole generation once the
    horizon passed it costs O(1); popping expired ids one by one off the front of one big
    dict made every eviction scan the dict's deleted slots.
    """

    __slots__ = ("horizon_ms", "max_ids", "watermark", "_step", "_current", "_current_start",
                 "_old", "_size")

    def __init__(self, horizon_ms: int, max_ids: int, watermark: int = 0) -> None:
        self.horizon_ms = horizon_ms
        self.max_ids = max_ids
        #: Largest event time seen in the partition.
        self.watermark = watermark
        self._step = max(1, horizon_ms // GENERATIONS)
        self._current: dict[str, int] = {}
        self._current_start = watermark
        #: Closed generations, oldest first: (largest watermark of a sighting in it, ids).
        self._old: deque[tuple[int, dict[str, int]]] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _take(self, event_id: str) -> int | None:
        """Remove ``event_id`` wherever it is; the watermark of its last sighting, if any."""
        seen_at = self._current.pop(event_id, None)
        if seen_at is None:
            for _, ids in reversed(self._old):
                seen_at = ids.pop(event_id, None)
                if seen_at is not None:
                    break
        if seen_at is not None:
            self._size -= 1
        return seen_at

    def is_duplicate(self, event_id: str, ts: int) -> bool:
        """Record the event and say whether it repeats one inside the horizon."""
        if ts > self.watermark:
            self.watermark = ts
            if ts - self._current_start >= self._step:
                if self._current:
                    self._old.append((self._last_in_current(), self._current))
                    self._current = {}
                self._current_start = ts
        seen_at = self._take(event_id)
        # Stored again on every sighting: the horizon slides with the last one.
        self._current[event_id] = self.watermark
        self._size += 1
        if seen_at is not None and self.watermark - seen_at <= self.horizon_ms:
            return True
        if self._size > self.max_ids:
            self._drop_oldest()
        return False

    def _last_in_current(self) -> int:
        # Values are watermarks at insertion, which never decrease: the last one is the largest.
        return next(reversed(self._current.values()))

    def _drop_oldest(self) -> None:
        """Over the cap: forget the oldest sighting."""
        old = self._old
        while old and not old[0][1]:
            old.popleft()
        ids = old[0][1] if old else self._current
        del ids[next(iter(ids))]
        self._size -= 1

    def evict(self) -> None:
        """Forget ids that can no longer be duplicates; memory only, decisions are unchanged."""
        limit = self.watermark - self.horizon_ms
        old = self._old
        while old and old[0][0] < limit:
            self._size -= len(old.popleft()[1])
