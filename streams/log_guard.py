"""The state knows its log: partitions whose state was not built from the log being read are
refused until ``shopstream reset --yes`` clears it.

A fence stamped with another log's id (the topic was recreated, or the broker started empty
while Redis kept its state) is OTHER_LOG; a fence beyond the end of the partition's log is
FENCE_AHEAD. Nothing of a refused partition is applied; the last offset left out meanwhile
is kept, so that it is read again once the partition is taken up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container
from typing import NamedTuple

from shopstream.core.errors import ShopstreamError
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.redis_state import FENCE_AHEAD, OTHER_LOG, Fence
from shopstream.streams.records import Record

log = logging.getLogger(__name__)


class Refusal(NamedTuple):
    """A partition whose state does not belong to the log being read."""

    #: The fence as it stood: once it changes (``shopstream reset`` deleted it, or another
    #: writer rewrote it) the partition is taken up again.
    fence: Fence
    #: OTHER_LOG or FENCE_AHEAD.
    reason: str


class LogGuard:
    """Which partitions are refused, and what was left out of them while refused."""

    def __init__(self, metrics: Metrics, topic: str,
                 read_log_id: Callable[[], str | None]) -> None:
        self.metrics = metrics
        self.topic = topic
        #: Partitions whose state is not of their log: refused until the state is reset.
        self.refused: dict[int, Refusal] = {}
        #: Per refused partition, the last offset left out: read again once taken up.
        self.left_out: dict[int, int] = {}
        #: Next offset the broker will write in a partition, when known (the consumer's
        #: high watermark); a fence at or beyond it means the log is not the one the state
        #: was built from.
        self.log_end: Callable[[int], int | None] = lambda _p: None
        #: Id of the log being read (the topic's id), stamped on every fence it moves; None
        #: while unknown or when the broker keeps no topic ids (then no log is checked).
        self.log_id: str | None = None
        #: How to learn it (blocking; run in a thread), asked again whenever a partition's
        #: state is loaded or records at or below a fence arrive (a new log starts at 0).
        self.read_log_id = read_log_id
        self._log_id_read = False

    def refusals(self) -> dict[int, str]:
        """Refused partitions and why (OTHER_LOG, FENCE_AHEAD), for readiness."""
        return {p: refusal.reason for p, refusal in self.refused.items()}

    def forget(self, p: int) -> None:
        """Drop what is known of a partition this worker no longer owns."""
        if self.refused.pop(p, None) is not None:
            self._clear_refusal_gauges(p)
        self.left_out.pop(p, None)

    def hold_back(self, by_part: dict[int, list[Record]]) -> None:
        """Take the refused partitions' records out of the batch, noting the last one."""
        for p in [p for p in by_part if p in self.refused]:
            self.left_out[p] = max(self.left_out.get(p, -1), by_part.pop(p)[-1].offset)

    def check_ahead(self, p: int, recs: list[Record], fence: Fence, first: int) -> None:
        """Refuse a partition whose fence lies beyond its log, ``first`` being the offset of
        the first record beyond the fence. A fence stamped with this log's id proves the log
        reached it, whatever a trailing high watermark says."""
        if fence.offset >= 0 and first == fence.offset + 1 and not fence.proven_by(self.log_id):
            end = self.log_end(p)
            if end is not None and fence.offset >= end > recs[-1].offset:
                self._refuse(p, fence, FENCE_AHEAD, f"state was applied up to offset "
                             f"{fence.offset} but the log ends at {end} (topic recreated, or "
                             "the broker lost its data while Redis kept it)")

    async def check_log(self, by_part: dict[int, list[Record]], fences: dict[int, Fence],
                        known: Container[int]) -> None:
        """Refuse the partitions whose fence was stamped by another log than this one;
        ``known`` holds the partitions whose state this worker has loaded."""
        if not self._log_id_read or any(
                p not in known or recs[0].offset <= fences[p].offset
                for p, recs in by_part.items() if p not in self.refused):
            try:
                self.log_id = await asyncio.to_thread(self.read_log_id)
                self._log_id_read = True
            except ShopstreamError as exc:
                log.warning("the log's id is unknown for now (%s): fences are not checked "
                            "against it in this batch", exc)
        for p in by_part:
            fence = fences[p]
            if p not in self.refused and fence.of_other_log(self.log_id):
                self._refuse(p, fence, OTHER_LOG, f"state was built from another log (topic "
                             f"{self.topic} id {fence.log}, now {self.log_id}: the topic was "
                             "recreated, or the broker started empty while Redis kept its state)")

    def end_refusals(self, fences: dict[int, Fence]) -> list[int]:
        """Take up refused partitions whose fence changed; returns them."""
        ended = [p for p, fence in fences.items()
                 if p in self.refused and fence != self.refused[p].fence]
        for p in ended:
            del self.refused[p]
            self._clear_refusal_gauges(p)
            log.warning("partition %d: its fence changed (state reset?); taken up again from "
                        "offset %d", p, fences[p].offset + 1)
        return ended

    def _refuse(self, p: int, fence: Fence, reason: str, why: str) -> None:
        self.refused[p] = Refusal(fence, reason)
        gauge = self.metrics.log_mismatch if reason == OTHER_LOG else self.metrics.fence_ahead
        gauge.labels(str(p)).set(1)
        log.error("partition %d refused: %s; nothing is applied until `shopstream reset --yes` "
                  "clears this app's state (running workers then start over from the log's "
                  "beginning)", p, why)

    def _clear_refusal_gauges(self, p: int) -> None:
        self.metrics.fence_ahead.labels(str(p)).set(0)
        self.metrics.log_mismatch.labels(str(p)).set(0)
