"""Request bodies as msgspec Structs, decoded and checked in one pass, like events.

Only a body the decoder refuses is looked at field by field, to name every bad one (the
``expected`` of each field is its ``Meta`` description); rules between fields are the body's
``problems``. Ids are bounded in UTF-8 bytes (``Kind.STR``), measured after decoding.
"""

from __future__ import annotations

import typing
from typing import Any, TypeVar

import msgspec
from msgspec import Meta, Struct
from msgspec.structs import fields

from shopstream.core import codec
from shopstream.schemas.decode import DecodeFailed, needs_byte_check
from shopstream.schemas.events import MAX_ID_BYTES, Kind
from shopstream.schemas.validate import FieldError


class Body(Struct, forbid_unknown_fields=True, frozen=True):
    """A request body; unknown fields are refused."""

    def problems(self) -> list[FieldError]:
        """Rules between fields, checked once every field is valid."""
        return []


B = TypeVar("B", bound=Body)


def show(value: Any) -> str:
    """What was found, as the answers print it."""
    return repr(value)[:80]


def _meta(hint: Any) -> tuple[str, bool]:
    """(expected, bounded in bytes?) of a field's annotation, through ``X | UnsetType``."""
    for arg in (hint, *typing.get_args(hint)):
        extra = getattr(arg, "__metadata__", ())
        metas = [m for m in extra if isinstance(m, Meta) and m.description]
        if metas:
            return str(metas[0].description), Kind.STR in extra
    raise TypeError(f"field type {hint!r} has no description")


def _fits(value: Any) -> bool:
    return type(value) is not str or len(value.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES


def field_problems(cls: type[Body], doc: dict[str, Any]) -> list[FieldError]:
    """Every bad field of a decoded JSON object, in field order, then unknown ones."""
    errors: list[FieldError] = []
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in fields(cls):
        expected, in_bytes = _meta(hints[f.name])
        if f.name not in doc:
            if f.required:
                errors.append(FieldError(f.name, expected, "missing"))
            continue
        value = doc[f.name]
        try:
            msgspec.convert(value, f.type)
        except msgspec.ValidationError:
            errors.append(FieldError(f.name, expected, show(value)))
            continue
        if in_bytes and not _fits(value):
            errors.append(FieldError(f.name, expected, show(value)))
    known = set(cls.__struct_fields__)
    return errors + [FieldError(k, "no such field", show(v)) for k, v in doc.items()
                     if k not in known]


class NotAnObject(ValueError):
    """The body is JSON, but not an object."""


def parse_body(cls: type[B], raw: bytes) -> B | list[FieldError]:
    """The body, or every problem found; raises codec.DecodeError (not JSON) or
    NotAnObject."""
    try:
        body = msgspec.json.decode(raw, type=cls)
    except DecodeFailed:
        doc = codec.loads(raw)
        if type(doc) is not dict:
            raise NotAnObject(type(doc).__name__) from None
        errors = field_problems(cls, doc)
        if errors:
            return errors
        body = msgspec.convert(doc, cls)
    else:
        if needs_byte_check(raw) and (errors := field_problems(cls, msgspec.to_builtins(body))):
            return errors
    return body.problems() or body


