"""Redis keys of flash sales (``store``, ``agents/flash_sale``).

A sale's keys share the hash tag ``{sale:<id>}`` (one slot per sale, so its Lua scripts work on
Redis Cluster): ``{app}:flash:{sale:<id>}:<part>`` for the parts of ``SaleKeys``. Global indexes:
``{app}:flash:sales`` (set of sale ids), ``{app}:flash:skus`` (hash sku -> latest sale id).
Per partition ``{pN}``, written in the fenced batch: ``flash:links`` (order -> reservation),
``flash:pending`` (transitions to drain), ``flash:counts`` (unreserved orders, claim events),
``flash:flagged`` (capped stream of unreserved orders).
"""

from __future__ import annotations

from typing import NamedTuple

from shopstream.sinks.keys import tag


class SaleKeys(NamedTuple):
    """Redis keys of one sale; all share the hash tag ``{sale:<id>}``."""

    meta: str
    users: str
    reservations: str
    expiry: str
    outbox: str
    rate: str
    guards: str


def sale_keys(app_id: str, sale_id: str) -> SaleKeys:
    base = f"{app_id}:flash:{{sale:{sale_id}}}"
    return SaleKeys(*(f"{base}:{part}" for part in SaleKeys._fields))


def alert_lease_key(app_id: str, sale_id: str) -> str:
    """String: the publisher currently sending this sale's queued alerts (sinks/locks.py)."""
    return f"{app_id}:flash:{{sale:{sale_id}}}:alerts:lease"


def sales_index(app_id: str) -> str:
    """Set of sale ids (read by the worker's expiry timer)."""
    return f"{app_id}:flash:sales"


def sku_index(app_id: str) -> str:
    """Hash sku -> sale id of the latest sale of that SKU."""
    return f"{app_id}:flash:skus"


def links_key(app_id: str, partition: int) -> str:
    """Hash order_id -> reservation_id of orders that carried a valid reservation."""
    return f"{app_id}:{tag(partition)}:flash:links"


def pending_key(app_id: str, partition: int) -> str:
    """List of pending transitions (JSON), written in the fenced batch, drained after it."""
    return f"{app_id}:{tag(partition)}:flash:pending"


def counts_key(app_id: str, partition: int) -> str:
    """Hash ``<counter>|<sale_id>`` -> n: unreserved orders and claim events seen."""
    return f"{app_id}:{tag(partition)}:flash:counts"


def flagged_key(app_id: str, partition: int) -> str:
    """Capped stream of orders flagged as unreserved."""
    return f"{app_id}:{tag(partition)}:flash:flagged"
