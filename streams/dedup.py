"""Drop repeated event_ids within an event-time horizon, per partition, in bounded memory.

Definition (the reference in tests restates it independently): the partition watermark is the
largest ``ts`` of the valid events seen so far, including the current one. An event is a
duplicate when its ``event_id`` was last seen (duplicate or not) at watermark ``w`` and the
current watermark is at most ``w + horizon``. Decisions depend neither on batch boundaries
nor on sightings older than the horizon, so a worker that rebuilds this state by re-reading
the partition from a point beyond the horizon decides exactly as before.
"""

from __future__ import annotations


class Deduplicator:
    """Event-id memory of one partition."""

    __slots__ = ("horizon_ms", "max_ids", "watermark", "_seen")

    def __init__(self, horizon_ms: int, max_ids: int, watermark: int = 0) -> None:
        self.horizon_ms = horizon_ms
        self.max_ids = max_ids
        #: Largest event time seen in the partition.
        self.watermark = watermark
        # Insertion order is watermark order, so eviction pops from the front.
        self._seen: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def is_duplicate(self, event_id: str, ts: int) -> bool:
        """Record the event and say whether it repeats one inside the horizon."""
        if ts > self.watermark:
            self.watermark = ts
        seen_at = self._seen.pop(event_id, None)
        # Re-inserted at the end on every sighting: the horizon slides with the last one.
        self._seen[event_id] = self.watermark
        if seen_at is not None and self.watermark - seen_at <= self.horizon_ms:
            return True
        if len(self._seen) > self.max_ids:
            self._seen.pop(next(iter(self._seen)))
        return False

    def evict(self) -> None:
        """Forget ids that can no longer be duplicates; memory only, decisions are unchanged."""
        limit = self.watermark - self.horizon_ms
        seen = self._seen
        while seen:
            first = next(iter(seen))
            if seen[first] >= limit:
                break
            del seen[first]
