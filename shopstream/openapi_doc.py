"""The events' part of the API document (shopstream/openapi.json), generated from the model.

``Event`` and one schema per event type come from the msgspec Structs of
``schemas.events``; the rest of the document is written by hand. ``python -m
shopstream.openapi_doc`` writes them into the file; a test keeps the file in step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from shopstream.schemas.events import Event

#: The document, served as it is by GET /openapi.json.
PATH = Path(__file__).parent / "openapi.json"


def event_schemas() -> dict[str, Any]:
    """``Event`` (a union tagged on ``type``) and the schemas it refers to, by name."""
    (event,), components = msgspec.json.schema_components(
        [Event], ref_template="#/components/schemas/{name}")
    return {"Event": {"description": "One event (README, Semantics).", **event}, **components}


def render(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with its event schemas replaced by the model's (other schemas kept)."""
    generated = event_schemas()
    schemas = doc["components"]["schemas"]
    kept = {k: v for k, v in schemas.items() if k not in generated}
    return {**doc, "components": {**doc["components"], "schemas": {**kept, **generated}}}


def dumps(doc: dict[str, Any]) -> str:
    """The document as the file holds it."""
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    PATH.write_text(dumps(render(json.loads(PATH.read_text()))))


if __name__ == "__main__":
    main()
