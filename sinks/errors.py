"""Errors of the state layer."""

from __future__ import annotations

from shopstream.core.errors import ShopstreamError


class StaleFenceError(ShopstreamError):
    """Another writer moved a partition's fence: this worker's view of it is outdated.

    Retriable: re-reading the fence and recomputing the batch is always safe.
    """

    retriable = True
