"""What a batch counts: its reconciliation counters (in = processed + dead + duplicate) and
its dead letters go into the partition's fenced call, and the same counts to Prometheus."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from shopstream.agents.base import PartitionBatch
from shopstream.core import codec
from shopstream.kafka_io.envelope import DeadLetter, Reason
from shopstream.monitoring.metrics import KNOWN_CHANNELS, KNOWN_TYPES, Metrics, bounded
from shopstream.sinks import keys

#: Dead letters kept in Redis per partition for operators (the topic keeps all of them).
DEAD_LETTER_STREAM_LEN = 10_000
#: Event-to-state latency is observed for one event in this many (cost stays negligible).
LAG_SAMPLE_EVERY = 16


def record_counts(
    batch: PartitionBatch, app_id: str, counts: Counter[str], dead: list[DeadLetter]
) -> None:
    """Add the batch's counters and its first dead letters to its ops."""
    key = keys.counts(app_id, batch.partition)
    for name, n in counts.items():
        if n:
            batch.ops.hincrby(key, name, n)
    stream = keys.dead_letters(app_id, batch.partition)
    for d in dead[:100]:
        batch.ops.xadd_capped(stream, DEAD_LETTER_STREAM_LEN, "dl", codec.dumps({
            "reason": d.reason.value, "detail": d.detail,
            "source": d.source,
            "original": d.original[:2048].decode("utf-8", "replace"),
        }))


class BatchMetrics:
    """The batch loop's Prometheus counters, each label's child looked up once."""

    def __init__(self, metrics: Metrics, counted_names: Iterable[str]) -> None:
        self.metrics = metrics
        self._processed = metrics.events.labels("processed")
        self._dead = metrics.events.labels("dead")
        self._dups = metrics.events.labels("duplicate")
        self._by_type = {
            (t, c): metrics.events_by_type.labels(t, c)
            for t in sorted(KNOWN_TYPES) for c in sorted(KNOWN_CHANNELS)
        }
        for reason in Reason:  # every reason's counter exists from 0, so a first one shows
            metrics.dead_letters.labels(reason.value)
        self._late = {name: metrics.events_late.labels(name) for name in counted_names}

    def observe(self, batch: PartitionBatch, counts: Counter[str], now_ms: float) -> None:
        """The batch's counts by outcome, type and channel, and a sample of its events'
        event-to-state latency."""
        self._processed.inc(counts["processed"])
        self._dead.inc(counts["dead"])
        self._dups.inc(counts["duplicate"])
        for name, n in counts.items():
            if name.startswith("dead:"):
                self.metrics.dead_letters.labels(name[5:]).inc(n)
        per = Counter((ev.type, ev.channel or "other") for ev in batch.events)
        for (etype, channel), n in per.items():
            self._by_type[(etype, bounded(channel, KNOWN_CHANNELS))].inc(n)
        observe = self.metrics.lag_seconds.observe
        for ev in batch.events[::LAG_SAMPLE_EVERY]:
            observe(max(0.0, (now_ms - ev.ts) / 1000))

    def count_late(self, late_counts: dict[str, int]) -> None:
        """Late events per counted name, as the batch's dispatch counted them."""
        for name, late in late_counts.items():
            self._late[name].inc(late)
