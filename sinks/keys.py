"""Redis key names. Every key of a partition's state carries the hash tag ``{pN}``.

One tag per partition means one Lua call touches one slot, so the same code runs on a single
Redis and on Redis Cluster. This module holds the pipeline's keys; each capability's are in
``sinks/<capability>/keys.py``.
"""

from __future__ import annotations


def tag(partition: int) -> str:
    return f"{{p{partition}}}"


def fence(app_id: str, topic: str, partition: int) -> str:
    """Hash: offset (last applied), wm (watermark after it), log (id of the topic it was
    read from, when the broker keeps topic ids)."""
    return f"{app_id}:{tag(partition)}:fence:{topic}"


def checkpoints(app_id: str, topic: str, partition: int) -> str:
    """Sorted set: member first offset of a batch, score the watermark before it."""
    return f"{app_id}:{tag(partition)}:ckpt:{topic}"


def counts(app_id: str, partition: int) -> str:
    """Hash of reconciliation counters: in, processed, dead, duplicate, per reason."""
    return f"{app_id}:{tag(partition)}:counts"


def dead_letters(app_id: str, partition: int) -> str:
    """Capped stream of recent dead letters, for operators."""
    return f"{app_id}:{tag(partition)}:dead"
