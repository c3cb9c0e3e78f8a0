"""Templates in ``initialTwin``, ``payload`` and the weighted strategy's ``key``.

``{registrationId}``, ``{enrollmentId}``, ``{hub}``, ``{hub.region}``, ``{currentHub}`` and
``{payload.<dotted path>}`` are replaced by the request's values, ``{lookup.<name>.<property>}``
by a property of the row a lookup found (allocation.lookups); ``{{`` and ``}}`` are literal
braces. A missing value renders as "". A string that is exactly one template keeps the value's
JSON type (``"{payload.count}"`` renders the number); inside a longer string a non-string value
renders as compact JSON.

Templates are compiled once when the policy loads; rendering walks the compiled form.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from allocation.context import LOOKUP_PREFIX, MISSING, lookup_field_problem
from allocation.errors import PolicyError, Problem
from allocation.paths import JsonPath, format_path

# Resolves a template field name to its value, or MISSING.
Resolve = Callable[[str], Any]

REQUEST_FIELDS: Final = frozenset({"registrationId", "enrollmentId", "currentHub"})
HUB_FIELDS: Final = frozenset({"hub", "hub.region"})
ALL_FIELDS: Final = REQUEST_FIELDS | HUB_FIELDS


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class TemplateString:
    parts: tuple[str | Field, ...]

    def render(self, resolve: Resolve) -> Any:
        if len(self.parts) == 1 and isinstance(self.parts[0], Field):
            value = resolve(self.parts[0].name)
            return "" if value is MISSING else value
        return self.render_text(resolve)

    def render_text(self, resolve: Resolve) -> str:
        if len(self.parts) == 1:  # '{lookup.inventory.hub}', a key: no join needed
            part = self.parts[0]
            return part if isinstance(part, str) else _as_text(resolve(part.name))
        return "".join(
            part if isinstance(part, str) else _as_text(resolve(part.name)) for part in self.parts
        )


def _as_text(value: Any) -> str:
    if value is MISSING:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _is_known(name: str, allowed: Collection[str]) -> bool:
    return name in allowed or (name.startswith("payload.") and len(name) > len("payload."))


def parse_template(
    text: str, at: JsonPath, allowed: Collection[str] = ALL_FIELDS
) -> str | TemplateString:
    """A plain string when ``text`` holds no template, else its compiled form."""
    if "{" not in text and "}" not in text:
        return text
    parts: list[str | Field] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "{}" and text.startswith(char * 2, i):
            literal.append(char)
            i += 2
        elif char == "{":
            end = text.find("}", i)
            if end < 0:
                raise _error(
                    at, f"unclosed '{{' at character {i} (write '{{{{' for a literal brace)"
                )
            name = text[i + 1 : end]
            if name.startswith(LOOKUP_PREFIX):
                problem = lookup_field_problem(name)
                if problem is not None:
                    raise _error(at, problem)
            elif not _is_known(name, allowed):
                raise _error(at, f"unknown template field '{{{name}}}'; known: {_known(allowed)}")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Field(name))
            i = end + 1
        elif char == "}":
            raise _error(at, f"unmatched '}}' at character {i} (write '}}}}' for a literal brace)")
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append("".join(literal))
    if all(isinstance(p, str) for p in parts):
        return "".join(p for p in parts if isinstance(p, str))
    return TemplateString(tuple(parts))


def _known(allowed: Collection[str]) -> str:
    return (
        ", ".join(f"{{{name}}}" for name in sorted(allowed))
        + ", {payload.<path>}, {lookup.<name>.<property>}"
    )


def _error(at: JsonPath, message: str) -> PolicyError:
    return PolicyError([Problem(format_path(at), message)])


@dataclass(frozen=True)
class JsonTemplate:
    """A JSON value whose strings may hold templates."""

    value: Any
    has_fields: bool

    def render(self, resolve: Resolve) -> Any:
        return _render(self.value, resolve) if self.has_fields else self.value


def compile_json(value: Any, at: JsonPath, allowed: Collection[str] = ALL_FIELDS) -> JsonTemplate:
    problems: list[Problem] = []
    compiled = _compile(value, at, allowed, problems)
    if problems:
        raise PolicyError(problems)
    return JsonTemplate(compiled, _has_fields(compiled))


def _compile(value: Any, at: JsonPath, allowed: Collection[str], problems: list[Problem]) -> Any:
    # What is compiled here is sent to DPS: Python's JSON parser reads NaN, Infinity and lone
    # surrogate escapes ("\ud800"), none of which an answer can carry.
    if isinstance(value, str):
        if not _is_unicode(value):
            problems.append(Problem(format_path(at), _NOT_UNICODE))
            return value
        try:
            return parse_template(value, at, allowed)
        except PolicyError as error:
            problems.extend(error.problems)
            return value
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(
            Problem(format_path(at), "must be a finite number (JSON has no NaN or Infinity)")
        )
        return value
    if isinstance(value, Mapping):
        for key in value:
            if isinstance(key, str) and not _is_unicode(key):
                problems.append(Problem(format_path((*at, key)), f"the name {_NOT_UNICODE}"))
        return {k: _compile(v, (*at, k), allowed, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_compile(v, (*at, i), allowed, problems) for i, v in enumerate(value)]
    return value


_NOT_UNICODE: Final = "must be Unicode text: a lone surrogate escape such as \\ud800 is not"


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_fields(value: Any) -> bool:
    if isinstance(value, TemplateString):
        return True
    if isinstance(value, dict):
        return any(_has_fields(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_fields(v) for v in value)
    return False


def _render(value: Any, resolve: Resolve) -> Any:
    if isinstance(value, TemplateString):
        return value.render(resolve)
    if isinstance(value, dict):
        return {k: _render(v, resolve) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, resolve) for v in value]
    return value
