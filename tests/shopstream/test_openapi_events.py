"""The events' schemas in shopstream/openapi.json are the model's (``schemas.events``)."""

from __future__ import annotations

import json

from shopstream.openapi_doc import PATH, dumps, event_schemas, render
from shopstream.schemas.events import EVENT_TYPES


def test_the_document_holds_the_event_schemas_generated_from_the_model():
    text = PATH.read_text()
    assert text == dumps(render(json.loads(text))), "run: python -m shopstream.openapi_doc"


def test_every_event_type_has_its_schema_with_its_tag():
    schemas = event_schemas()
    tags = {s["properties"]["type"]["enum"][0] for name, s in schemas.items()
            if name not in ("Event", "Item")}
    assert tags == set(EVENT_TYPES)
    assert schemas["Event"]["discriminator"]["propertyName"] == "type"
