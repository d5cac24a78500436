"""A TOML capability section read into a frozen msgspec Struct (or frozen dataclass).

The class is the whole rule of its section: its fields are the keys, their defaults the
defaults, and each annotation's msgspec ``Meta`` the bounds. A bad section is refused with the
words every settings error uses: ``<section>.<key>: expected ..., got ...``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar, get_type_hints

import msgspec

from shopstream.core.errors import ConfigError
from shopstream.core.settings_check import mismatch

S = TypeVar("S")


def as_table(name: str, raw: Any) -> Mapping[str, Any]:
    """``raw`` when it is a table; raises ConfigError naming ``name`` otherwise."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected a table, got {raw!r}")
    return raw


def read_section(sections: Mapping[str, Any], name: str, kind: type[S], **given: Any) -> S:
    """``[name]`` as ``kind``; fields in ``given`` come from the caller, not from the table.

    Unknown keys are refused all at once; a bad or missing value by its key, first in field
    order.
    """
    return read_table(name, as_table(name, sections.get(name, {})), kind, **given)


def read_table(name: str, raw: Mapping[str, Any], kind: type[S], **given: Any) -> S:
    """One table, named ``name`` in errors (``cart.steps[0]``), as ``kind``: see read_section."""
    fields = _fields(kind)
    keys = sorted(set(fields) - set(given))
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise ConfigError(f"{name}: unknown keys {unknown}, expected {keys}")
    try:
        return msgspec.convert({**raw, **given}, kind, strict=True)
    except msgspec.ValidationError as err:
        hints = get_type_hints(kind, include_extras=True)
        required = _required(kind)
        for key in fields:
            if (key in raw or key in required) and not _fits(raw.get(key), hints[key]):
                raise ConfigError(f"{name}.{key}: {mismatch(raw.get(key), hints[key])}") from None
        raise ConfigError(f"{name}: {err}") from None


def _fields(kind: type) -> tuple[str, ...]:
    if issubclass(kind, msgspec.Struct):
        return kind.__struct_fields__
    return tuple(f.name for f in dataclasses.fields(kind))  # type: ignore[arg-type]


def _required(kind: type) -> set[str]:
    """Fields without a default: a missing one reads as None in the error."""
    if issubclass(kind, msgspec.Struct):
        return {f.name for f in msgspec.structs.fields(kind) if f.required}
    return {f.name for f in dataclasses.fields(kind)  # type: ignore[arg-type]
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}


def _fits(value: Any, annotation: Any) -> bool:
    try:
        msgspec.convert(value, annotation, strict=True)
    except msgspec.ValidationError:
        return False
    return True
