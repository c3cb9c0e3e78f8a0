"""Validating parts of a policy with pydantic-core, reporting problems at their JSON path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic_core import CoreSchema, SchemaValidator, ValidationError

from allocation.errors import PolicyError, Problem
from allocation.paths import JsonPath, format_path
from allocation.shapes import json_object
from allocation.suggestions import did_you_mean

# The fields every allocation has, whatever its strategy; the rest are the strategy's options.
COMMON_FIELDS: Final = frozenset({"strategy", "hubs", "initialTwin", "payload", "sticky"})


@dataclass(frozen=True)
class OptionsValidator:
    """A validator that also knows its fields, to suggest one for a misspelt key."""

    validator: SchemaValidator
    fields: tuple[str, ...]

    def validate_python(self, value: Any) -> Any:
        return self.validator.validate_python(value)


def options_validator(title: type, fields: Mapping[str, CoreSchema]) -> OptionsValidator:
    """A strategy's options (or a hub's settings): unknown keys are errors, so a typo never goes
    unseen. ``title`` is the ``TypedDict`` that describes what validation returns."""
    validator = SchemaValidator(json_object(fields, title=title, unknown="forbid"))
    return OptionsValidator(validator, tuple(fields))


def problems_from(error: ValidationError, at: JsonPath, known: Iterable[str] = ()) -> list[Problem]:
    """The problems at their JSON paths; an unknown field suggests the closest of ``known``."""
    known = tuple(known)
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        location = tuple(part for part in detail["loc"] if isinstance(part, (str, int)))
        message = detail["msg"]
        if detail["type"] == "extra_forbidden":
            message = "unknown field"
            if location and isinstance(location[-1], str):
                message += did_you_mean(location[-1], known)
        elif detail["type"] == "missing":
            message = "required field is missing"
        problems.append(Problem(format_path((*at, *location)), message))
    return problems


def parse_options(validator: OptionsValidator, options: Mapping[str, Any], at: JsonPath) -> Any:
    """A strategy's options validated: a ``dict`` of the validator's ``TypedDict``."""
    try:
        return validator.validate_python(options)
    except ValidationError as error:
        known = (*validator.fields, *sorted(COMMON_FIELDS))
        raise PolicyError(problems_from(error, at, known)) from None
