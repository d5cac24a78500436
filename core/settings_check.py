"""How one settings value is read and checked, with msgspec doing the work.

A field's annotation is the whole rule: its type, and its bounds or pattern as a msgspec
``Meta``. ``loose`` reads an env string or TOML value as the field's type; ``checked`` holds a
value to the full annotation. Either way the error names the key (the env var, the TOML key or
the field) and says what was expected and what was found, the same words for every field.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec

from shopstream.core.errors import ConfigError

_WORDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
#: Env spellings of a boolean, as Unix tools and container platforms write them.
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}


def _parts(annotation: Any) -> tuple[type, msgspec.Meta]:
    """The plain type under ``Annotated[...] | None`` and its Meta (an empty one if none)."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        metas = [m for m in extras if isinstance(m, msgspec.Meta)]
        return base, metas[0] if metas else msgspec.Meta()
    return annotation, msgspec.Meta()


def loose(key: str, raw: Any, annotation: Any) -> Any:
    """An env string or TOML value as the field's plain type (``"16"`` -> 16, ``"on"`` -> True);
    bounds are left to ``checked``."""
    base, _ = _parts(annotation)
    value = raw
    if isinstance(raw, str) and base is not str:
        value = raw.strip()
        if base is bool:
            value = _BOOLEANS.get(value.lower(), raw)
    try:
        return msgspec.convert(value, base, strict=False)
    except msgspec.ValidationError:
        raise ConfigError(f"{key}: expected {_WORDS[base]}, got {raw!r}") from None


def checked(key: str, value: Any, annotation: Any) -> Any:
    """``value`` held to the field's type and bounds (an int is taken for a float)."""
    try:
        return msgspec.convert(value, annotation)
    except msgspec.ValidationError:
        raise ConfigError(f"{key}: {_why(value, annotation)}") from None


def _why(value: Any, annotation: Any) -> str:
    base, meta = _parts(annotation)
    try:
        msgspec.convert(value, base)
    except msgspec.ValidationError:
        return f"expected {_WORDS[base]}, got {value!r}"
    extra = meta.extra or {}
    return f"expected {extra.get('expected') or _bounds(meta)}, got {extra.get('got', repr(value))}"


def mismatch(value: Any, annotation: Any) -> str:
    """``expected an integer 1..200, got 0``: the Meta's ``expected`` and ``got`` notes win
    (``got`` hides a secret)."""
    base, meta = _parts(annotation)
    extra = meta.extra or {}
    want = extra.get("expected") or f"{_WORDS[base]} {_bounds(meta)}".rstrip()
    return f"expected {want}, got {extra.get('got', repr(value))}"


def _bounds(meta: msgspec.Meta) -> str:
    """``>= 1``, ``> 0`` or ``0..65535``, with the Meta's note: the wording of every message."""
    note = f" ({meta.extra['note']})" if meta.extra and "note" in meta.extra else ""
    if meta.ge is not None and meta.le is not None:
        return f"{meta.ge}..{meta.le}{note}"
    limits = ((">=", meta.ge), (">", meta.gt), ("<=", meta.le), ("<", meta.lt))
    return " and ".join(f"{op} {limit}" for op, limit in limits if limit is not None) + note
