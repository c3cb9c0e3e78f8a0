"""Validating parts of a policy with pydantic, reporting problems at their JSON path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from allocation.errors import PolicyError, Problem
from allocation.paths import JsonPath, format_path

ModelT = TypeVar("ModelT", bound=BaseModel)


class Options(BaseModel):
    """Base of every strategy's options: unknown keys are errors, so a typo never goes unseen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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


def parse_options(model: type[ModelT], options: Mapping[str, Any], at: JsonPath) -> ModelT:
    try:
        return model.model_validate(options)
    except ValidationError as error:
        raise PolicyError(problems_from(error, at)) from None
