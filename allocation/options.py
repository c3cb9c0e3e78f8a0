"""Validating parts of a policy with pydantic-core, reporting problems at their JSON path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import CoreSchema, SchemaValidator, ValidationError

from allocation.errors import PolicyError, Problem
from allocation.paths import JsonPath, format_path
from allocation.shapes import json_object


def options_validator(title: type, fields: Mapping[str, CoreSchema]) -> SchemaValidator:
    """A strategy's options (or a hub's settings): unknown keys are errors, so a typo never goes
    unseen. ``title`` is the ``TypedDict`` that describes what validation returns."""
    return SchemaValidator(json_object(fields, title=title, unknown="forbid"))


def problems_from(error: ValidationError, at: JsonPath) -> list[Problem]:
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        location = tuple(part for part in detail["loc"] if isinstance(part, (str, int)))
        message = detail["msg"]
        if detail["type"] == "extra_forbidden":
            message = "unknown field"
        elif detail["type"] == "missing":
            message = "required field is missing"
        problems.append(Problem(format_path((*at, *location)), message))
    return problems


def parse_options(validator: SchemaValidator, options: Mapping[str, Any], at: JsonPath) -> Any:
    """The options validated: a ``dict`` of the validator's ``TypedDict``."""
    try:
        return validator.validate_python(options)
    except ValidationError as error:
        raise PolicyError(problems_from(error, at)) from None
