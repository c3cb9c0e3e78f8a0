"""JSON shapes checked by pydantic-core: the request DPS sends and the parts of a policy.

The shapes are pydantic-core schemas (``pydantic_core.core_schema``), not pydantic
``BaseModel``s. They validate with the same engine and the same error messages, but defining the
first ``BaseModel`` loads pydantic's model machinery (``pydantic.main`` and its schema
generation), which costs a cold start about a third of what importing the dependencies does;
``import pydantic`` has already loaded pydantic-core. A shape validates into plain ``dict``s,
described for the type checker by a ``TypedDict`` of the same name, and JSON Schema is generated
from it by ``pydantic.json_schema`` when a document is wanted (allocation.openapi).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic_core import CoreSchema
from pydantic_core import core_schema as cs

# Strict: JSON true is a boolean, "true" is not.
STRING: CoreSchema = cs.str_schema(strict=True)
BOOLEAN: CoreSchema = cs.bool_schema(strict=True)
ANY: CoreSchema = cs.any_schema()


def optional(
    schema: CoreSchema,
    default: Any = None,
    *,
    factory: Callable[[], Any] | None = None,
) -> cs.WithDefaultSchema:
    """A field that may be absent, taking ``default`` (or ``factory()``) when it is."""
    if factory is not None:
        return cs.with_default_schema(schema, default_factory=factory)
    return cs.with_default_schema(schema, default=default)


def nullable(schema: CoreSchema) -> CoreSchema:
    """The value, or JSON null."""
    return cs.nullable_schema(schema)


def json_object(
    fields: Mapping[str, CoreSchema],
    *,
    title: type,
    unknown: cs.ExtraBehavior,
    aliases: Mapping[str, list[str]] | None = None,
) -> cs.TypedDictSchema:
    """An object with these fields, keyed as the JSON spells them; a field wrapped in
    :func:`optional` may be absent. ``unknown`` says what other keys do: "ignore" or "forbid".

    ``title`` is the ``TypedDict`` describing the result; it names the shape in JSON Schema.
    ``aliases`` lists other spellings a field is also read from (the first that is present).
    """
    if set(fields) != set(title.__annotations__):
        # A programming error, caught at import: the TypedDict would describe another shape.
        raise TypeError(f"{title.__name__} and its schema name different fields")
    typed_fields = {}
    for name, schema in fields.items():
        spellings: list[list[str | int]] | None = None
        if aliases and name in aliases:
            spellings = [[spelling] for spelling in (name, *aliases[name])]
        typed_fields[name] = cs.typed_dict_field(
            schema, required=schema["type"] != "default", validation_alias=spellings
        )
    return cs.typed_dict_schema(typed_fields, cls=title, ref=title.__name__, extra_behavior=unknown)
