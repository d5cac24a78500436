"""Errors of the worker layer."""

from __future__ import annotations

from shopstream.core.errors import ShopstreamError


class RebuildError(ShopstreamError):
    """Re-reading a partition to rebuild deduplication failed; reading again may succeed."""

    retriable = True
