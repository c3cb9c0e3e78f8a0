"""Templates in ``initialTwin``, ``payload`` and the weighted strategy's ``key``.

``{registrationId}``, ``{enrollmentId}``, ``{hub}``, ``{hub.region}``, ``{currentHub}`` and
``{payload.<dotted path>}`` are replaced by the request's values, ``{lookup.<name>.<property>}``
by a property of the row a lookup found (allocation.lookups); ``{{`` and ``}}`` are literal
braces. A missing value renders as "". A string that is exactly one template keeps the value's
JSON type (``"{payload.count}"`` renders the number); inside a longer string a non-string value
renders as compact JSON.

Templates are compiled once when the policy loads; rendering walks the compiled form. Rendering
is bounded: it counts the compact JSON it would produce as it goes and stops with
:class:`RenderedTooLarge` as soon as the count crosses the limit, so a policy that repeats a
large device value thousands of times costs no more than the limit, never copies x size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from allocation.context import LOOKUP_PREFIX, MISSING, lookup_field_problem
from allocation.errors import PolicyError, Problem
from allocation.limits import MAX_RENDERED_BYTES
from allocation.paths import JsonPath, format_path

# Resolves a template field name to its value, or MISSING.
Resolve = Callable[[str], Any]

REQUEST_FIELDS: Final = frozenset({"registrationId", "enrollmentId", "currentHub"})
HUB_FIELDS: Final = frozenset({"hub", "hub.region"})
ALL_FIELDS: Final = REQUEST_FIELDS | HUB_FIELDS


# A str as a JSON string without ASCII escapes, as json.dumps(ensure_ascii=False) writes it.
_json_string: Final[Callable[[str], str]] = json.encoder.encode_basestring
_JSON_CONSTANT_SIZES: Final = {True: 4, False: 5, None: 4}


class RenderedTooLarge(Exception):
    """Rendering would produce more than the limit it was given."""


class Budget:
    """What is left of a rendering limit, in characters of compact JSON (or of plain text)."""

    __slots__ = ("left",)

    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise RenderedTooLarge


def spend_json(value: Any, budget: Budget) -> None:
    """Spend the length of ``value`` as compact JSON, ``json.dumps(value, separators=(",",
    ":"), ensure_ascii=False)``, stopping as soon as the budget is crossed: a string longer than
    what is left is refused before it is escaped, and a container after at most as many items as
    there are characters left."""
    if isinstance(value, str):
        if len(value) + 2 > budget.left:  # escapes only add to a string's length
            raise RenderedTooLarge
        budget.spend(len(_json_string(value)))
    elif isinstance(value, dict):
        budget.spend(1 + max(2 * len(value), 1))  # braces, colons, and commas between
        for key, item in value.items():
            spend_json(key, budget)
            spend_json(item, budget)
    elif isinstance(value, list):
        budget.spend(1 + max(len(value), 1))
        for item in value:
            spend_json(item, budget)
    elif value is None or isinstance(value, bool):
        budget.spend(_JSON_CONSTANT_SIZES[value])
    elif isinstance(value, int):
        # Python refuses to write an int of more than 4,300 digits (sys.set_int_max_str_digits)
        # in decimal: its length bounds the digits first.
        if value.bit_length() > 4 * budget.left:
            raise RenderedTooLarge
        budget.spend(len(repr(value)))
    else:
        budget.spend(len(repr(value)))  # a float, as json.dumps writes it


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class TemplateString:
    parts: tuple[str | Field, ...]

    def render(self, resolve: Resolve, budget: Budget) -> Any:
        """The rendered value, its compact JSON spent from ``budget``."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Field):
            value = resolve(self.parts[0].name)
            value = "" if value is MISSING else value
            spend_json(value, budget)
            return value
        text = self.render_text(resolve, budget.left)
        budget.spend(len(_json_string(text)))
        return text

    def render_text(self, resolve: Resolve, limit: int | None = None) -> str:
        """The string, non-string values as compact JSON; RenderedTooLarge past ``limit``
        characters. Without a limit (a host name, a table key: none is nearly that long) the
        text stops before the value that would take it past MAX_RENDERED_BYTES characters, so
        that its cost never grows with how often a template repeats a device's value."""
        budget = Budget(MAX_RENDERED_BYTES if limit is None else limit)
        pieces: list[str] = []
        try:
            for part in self.parts:
                text = (
                    part if isinstance(part, str) else self._field_text(resolve(part.name), budget)
                )
                budget.spend(len(text))
                pieces.append(text)
        except RenderedTooLarge:
            if limit is not None:
                raise
        # '{lookup.inventory.hub}', a key: no join needed.
        return pieces[0] if len(pieces) == 1 else "".join(pieces)

    @staticmethod
    def _field_text(value: Any, budget: Budget) -> str:
        if value is MISSING:
            return ""
        if isinstance(value, str):
            return value
        spend_json(value, Budget(budget.left))  # bounds the work of dumps()
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

    def render(self, resolve: Resolve, limit: int) -> Any:
        """The value with its templates rendered; RenderedTooLarge when its compact JSON would
        be longer than ``limit`` characters. Without templates, the value as the policy has it
        (the policy's own size is checked when it loads)."""
        if not self.has_fields:
            return self.value
        return _render(self.value, resolve, Budget(limit))


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


def _render(value: Any, resolve: Resolve, budget: Budget) -> Any:
    if isinstance(value, TemplateString):
        return value.render(resolve, budget)
    if isinstance(value, dict):
        budget.spend(1 + max(2 * len(value), 1))
        rendered = {}
        for key, item in value.items():
            spend_json(key, budget)
            rendered[key] = _render(item, resolve, budget)
        return rendered
    if isinstance(value, list):
        budget.spend(1 + max(len(value), 1))
        return [_render(item, resolve, budget) for item in value]
    spend_json(value, budget)
    return value
