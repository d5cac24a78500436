"""Drop repeated event_ids within an event-time horizon, per partition, in bounded memory.

Definition (the reference in tests restates it independently): the partition watermark is the
largest ``ts`` of the valid events seen so far, including the current one. An event is a
duplicate when its ``event_id`` was last seen (duplicate or not) at watermark ``w`` and the
current watermark is at most ``w + horizon``. Decisions depend neither on batch boundaries
nor on sightings older than the horizon, so a worker that rebuilds this state by re-reading
the partition from a point beyond the horizon decides exactly as before.

An id is held in 14 bytes (docs/performance.md, "Compact dedup ids"): an 80-bit digest of
it, the watermark of its last sighting (mod 2**24 ms; 2**32 for horizons of hours or more)
and a tie-breaker among sightings at one watermark, packed into buckets (bytearrays searched
in C) of a linearly growing hash table. The digest is Python's own string hash (SipHash,
keyed per process unless PYTHONHASHSEED is set) of the id and of the id with a suffix: it
never leaves the process, which rebuilds this memory from Kafka when it starts. A new event
is taken for a duplicate by mistake with probability (ids held in its partition) / 2**80:
6e-18 with 7.5 million ids held (100,000 events/s over 8 partitions, 10-minute horizon),
which at that rate is one event in ~50,000 years.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush

#: A sweep of expired ids starts whenever the watermark has moved 1/GENERATIONS of the
#: horizon since the last one, so memory overshoots the horizon by about that much.
GENERATIONS = 8
#: Buckets a sweep goes through per ``evict()`` (~0.4 ms measured): the batch loop calls it
#: once per batch, so a sweep over millions of ids never holds the loop for long.
SWEEP_BUCKETS = 256
#: Horizons must stay below this: watermarks are stored mod 2**32 ms at most, so an id must
#: expire (within the horizon plus two steps) before its age wraps.
MAX_HORIZON_MS = 2**31

#: An entry: digest, watermark mod 2**(8 x its bytes) (little-endian), tie-breaker.
KEY_BYTES = 10
#: Mean entries per bucket before the table grows by one bucket: a lookup scans one
#: bucket (~1.3 KB), and a bucket's own overhead is spread over this many ids.
LOAD = 96
_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


class Deduplicator:
    """Event-id memory of one partition.

    A bucket keeps its entries in sighting order, so what expired is a prefix of each bucket
    and its oldest entry comes first. Over the cap, a heap of the buckets' first entries
    (order << 32 | bucket, order = watermark << 8 | tie-breaker) finds the oldest sighting of
    all; it is built when first needed and may hold stale items, checked when popped.
    """

    __slots__ = ("horizon_ms", "max_ids", "watermark", "_step", "_evicted_at", "_sweep_next",
                 "_wm_bytes", "_wm_mask", "_entry", "_buckets", "_mask", "_split", "_heads", "_tie",
                 "_tie_at", "_size")

    def __init__(self, horizon_ms: int, max_ids: int, watermark: int = 0) -> None:
        if not 0 <= horizon_ms < MAX_HORIZON_MS:
            raise ValueError(f"dedup horizon: expected 0 <= ms < {MAX_HORIZON_MS}, "
                             f"got {horizon_ms}")
        self.horizon_ms = horizon_ms
        self.max_ids = max_ids
        #: Largest event time seen in the partition.
        self.watermark = watermark
        self._step = max(1, horizon_ms // GENERATIONS)
        self._evicted_at = watermark
        #: The next bucket the current sweep looks at; -1 between sweeps.
        self._sweep_next = -1
        # Ages stay under horizon + two steps: 3 bytes hold them up to 4.6 hours.
        self._wm_bytes = 3 if horizon_ms + 2 * self._step < 2**24 else 4
        self._wm_mask = (1 << 8 * self._wm_bytes) - 1
        self._entry = KEY_BYTES + self._wm_bytes + 1
        self._buckets: list[bytearray] = [bytearray()]
        #: Linear hashing: buckets below ``_split`` are addressed by one more bit.
        self._mask = 0
        self._split = 0
        self._heads: list[int] | None = None
        self._tie = 0
        self._tie_at = watermark
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def is_duplicate(self, event_id: str, ts: int) -> bool:
        """Record the event and say whether it repeats one inside the horizon."""
        if ts > self.watermark:
            self.watermark = ts
            if ts - self._evicted_at >= self._step:
                self._start_sweep()
        w = self.watermark
        h = hash(event_id) & _MASK64
        key = (h | (hash(event_id + "\x00") & 0xFFFF) << 64).to_bytes(KEY_BYTES, "little")
        i = h & self._mask
        if i < self._split:
            i = h & (self._mask << 1 | 1)
        bucket = self._buckets[i]
        size = self._entry
        pos = bucket.find(key)
        while pos > 0 and pos % size:
            pos = bucket.find(key, pos + 1)
        age = -1
        if pos >= 0:
            age = (w - int.from_bytes(bucket[pos + KEY_BYTES:pos + size - 1], "little")
                   ) & self._wm_mask
            del bucket[pos:pos + size]
            self._size -= 1
            if pos == 0:
                self._push_head(i)
        # Stored again on every sighting: the horizon slides with the last one.
        if w == self._tie_at:
            self._tie = (self._tie + 1) & 0xFF
        else:
            self._tie_at, self._tie = w, 0
        was_empty = not bucket
        bucket += key
        bucket += (w & self._wm_mask).to_bytes(self._wm_bytes, "little")
        bucket.append(self._tie)
        self._size += 1
        if was_empty:
            self._push_head(i)
        if 0 <= age <= self.horizon_ms:
            return True
        if self._size > self.max_ids:
            self._drop_oldest()
        if self._size > LOAD * len(self._buckets):
            self._grow()
        return False

    def _order(self, bucket: bytearray, off: int) -> int:
        """Sighting order of the entry at ``off``: its watermark, then its tie-breaker."""
        stored = int.from_bytes(bucket[off + KEY_BYTES:off + self._entry - 1], "little")
        seen_at = self.watermark - ((self.watermark - stored) & self._wm_mask)
        return seen_at << 8 | bucket[off + self._entry - 1]

    def _push_head(self, i: int) -> None:
        """Bucket ``i``'s first entry changed: tell the heap, if there is one."""
        heads, bucket = self._heads, self._buckets[i]
        if heads is None or not bucket:
            return
        heappush(heads, self._order(bucket, 0) << 32 | i)
        if len(heads) > 2 * len(self._buckets) + 16:
            self._heads = None  # mostly stale: built again when next needed

    def _drop_oldest(self) -> None:
        """Over the cap: forget the oldest sighting."""
        if self._heads is None:
            self._heads = [self._order(b, 0) << 32 | j for j, b in enumerate(self._buckets) if b]
            heapify(self._heads)
        while True:
            item = heappop(self._heads)
            i = item & _MASK32
            bucket = self._buckets[i]
            if bucket and self._order(bucket, 0) == item >> 32:
                break
        del bucket[:self._entry]
        self._size -= 1
        self._push_head(i)

    def _grow(self) -> None:
        """Split the next bucket in line by one more bit of the digest, keeping order."""
        p = self._split
        bit = self._mask + 1
        low, high = bytearray(), bytearray()
        size = self._entry
        with memoryview(self._buckets[p]) as old:
            for off in range(0, len(old), size):
                entry = old[off:off + size]
                (high if int.from_bytes(entry[:4], "little") & bit else low).extend(entry)
        self._buckets[p] = low
        self._buckets.append(high)
        self._split += 1
        if self._split == bit:
            self._mask, self._split = self._mask << 1 | 1, 0
        self._heads = None

    def _start_sweep(self) -> None:
        """The watermark moved a step: finish the last sweep (rarely still going) and begin
        the next, which ``evict()`` carries on."""
        if self._sweep_next >= 0:
            self._sweep(len(self._buckets))
        self._evicted_at = self.watermark
        self._sweep_next = 0

    def _sweep(self, count: int) -> None:
        """Drop the expired prefix of up to ``count`` buckets, from where the sweep stands."""
        w, horizon, size, wm_mask = self.watermark, self.horizon_ms, self._entry, self._wm_mask
        buckets = self._buckets
        start = self._sweep_next
        end = min(len(buckets), start + count)
        for j in range(start, end):
            bucket = buckets[j]
            off, stop = 0, len(bucket)
            while off < stop and (w - int.from_bytes(
                    bucket[off + KEY_BYTES:off + size - 1], "little")) & wm_mask > horizon:
                off += size
            if off:
                # A copy, not a deletion: a bytearray keeps the room of a deleted prefix.
                buckets[j] = bucket[off:]
                self._size -= off // size
                self._heads = None
        self._sweep_next = end if end < len(buckets) else -1

    def evict(self) -> None:
        """Carry a sweep of expired ids on by SWEEP_BUCKETS buckets, if one is going; memory
        only, decisions are unchanged."""
        if self._sweep_next >= 0:
            self._sweep(SWEEP_BUCKETS)
