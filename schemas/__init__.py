"""Event types and their validation."""

from schemas.events import CHANNELS, EVENT_TYPES, Kind
from schemas.validate import FieldError, validate_event

__all__ = ["CHANNELS", "EVENT_TYPES", "FieldError", "Kind", "validate_event"]
