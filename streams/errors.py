"""Errors of the worker layer."""

from __future__ import annotations

from shopstream.core.errors import ShopstreamError


class RebuildError(ShopstreamError):
    """Re-reading a partition to rebuild deduplication failed; reading again may succeed."""

    retriable = True


class RedisUnavailable(ShopstreamError):
    """Redis stayed unreachable past ``redis_outage_give_up_s``: the worker exits for its
    supervisor to restart it. Not retriable inside this process."""
