"""JSON in one place, with fixed orjson options."""

from typing import Any

import orjson

DecodeError = orjson.JSONDecodeError
#: Raised by ``dumps`` for what JSON cannot hold (nesting deeper than 254 levels, say).
EncodeError = orjson.JSONEncodeError


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes; dict keys keep insertion order so output is deterministic."""
    return orjson.dumps(obj)


def dumps_sorted(obj: Any) -> bytes:
    """JSON with sorted keys, for signatures and ids that must not depend on insertion order."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
