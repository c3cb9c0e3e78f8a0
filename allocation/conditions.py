"""Conditions of the ``rules`` strategy (policy.md, "Conditions"), compiled once at load time.

A condition is an object whose keys are fields (``registrationId``, ``payload.modelId``, ...),
each with an object of operator → operand, or the combinators ``all``, ``any`` and ``not``.
Several keys, and several operators under one key, must all hold; ``{}`` always holds. ``all``
and ``any`` take non-empty lists of conditions, ``not`` one condition.

:func:`compile_condition` turns the JSON into a small tree of predicates with
``holds(context)``, checking every operator against its field's type, so that a policy either
loads with conditions that cannot fail at run time, or is rejected naming the JSON path of each
problem. Choices the policy language leaves to us:

- Types. ``registrationId``, ``enrollmentId``, ``enrollmentType``, ``attestation`` and
  ``currentHub`` are strings; ``iotEdge`` and ``reprovision`` booleans. Comparing one with an
  operator of another type (``gt`` on a string, ``startsWith`` on a boolean) is a load error.
  ``payload.<path>`` holds whatever JSON the device sent, so every operator is allowed there
  and a value of the wrong type (a number for ``startsWith``, a string for ``gt``) is simply
  false. JSON ``null`` in the payload counts as absent. ``lookup.<name>.<property>`` (a row's
  property, allocation.lookups) is typed the same way; ``lookup.<name>`` is the row itself, so
  ``{"lookup.inventory": {"exists": false}}`` holds for a device the table does not list.
- Absent fields (``attestation``, ``currentHub`` on first assignment, a payload path the device
  did not send) make every operator false except ``exists: false``.
- ``equals`` and ``in`` use JSON equality: ``1 == 1.0``, but ``true`` is not ``1``. On a payload
  value, ``contains`` means a substring of a string, or an element of a list. ``in`` takes a
  non-empty list; ``null`` is no operand (a null value is absent: use ``exists: false``).
  ``enrollmentType`` compares with ``"group"`` or ``"individual"`` only.
- ``currentHub`` compares case-insensitively, as host names do (``regex`` included); every other
  string comparison is case-sensitive.
- ``glob`` has :func:`fnmatch.fnmatchcase` semantics (``*``, ``?``, ``[seq]``, ``[!seq]``) and
  must match the whole value; a value longer than :data:`MAX_REGEX_INPUT` characters never
  matches.
- ``regex`` uses RE2 (linear-time: no backreferences or lookaround, which are load errors) and
  *search* semantics: it holds when the pattern matches anywhere in the value; anchor it with
  ``^...$`` to match the whole value. As a second guard a value longer than
  :data:`MAX_REGEX_INPUT` characters never matches.
- ``gt``, ``gte``, ``lt``, ``lte`` compare numbers (booleans are not numbers).
- ``versionGte``, ``versionLt`` compare dotted numeric versions (``12.0.2.5``) part by part as
  integers, missing parts counting as 0 (``12`` equals ``12.0``). A device value that is not
  such a version (``v12``, ``12.0-beta``) is false; a JSON integer counts as a one-part version.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple, Protocol

from allocation.context import (
    FIELD_GETTERS,
    LOOKUP_PREFIX,
    MISSING,
    LookupField,
    PayloadPath,
    RequestContext,
    lookup_field_problem,
)
from allocation.errors import PolicyError, Problem
from allocation.hostnames import host_key
from allocation.paths import JsonPath, format_path
from allocation.suggestions import did_you_mean

# The longest string a regex is run against; longer values never match. RE2 is linear-time
# already; the bound keeps even that linear cost small for a device-controlled string.
MAX_REGEX_INPUT: Final = 4096

# The longest text read as a version, so a device cannot make us parse a huge integer.
MAX_VERSION_LENGTH: Final = 64

PAYLOAD_PREFIX: Final = "payload."

OPERATORS: Final = (
    "equals",
    "in",
    "startsWith",
    "endsWith",
    "contains",
    "glob",
    "regex",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "versionGte",
    "versionLt",
)

Value = Any  # a field's value: a JSON value, or MISSING
Getter = Callable[[RequestContext], Value]


class Condition(Protocol):
    def holds(self, context: RequestContext) -> bool: ...


class Check(Protocol):
    """One operator with its operand, applied to a field's value (never MISSING)."""

    def check(self, value: Value) -> bool: ...


# -- fields ------------------------------------------------------------------------------------


class FieldType(NamedTuple):
    name: str  # as messages say it: "a string", "a boolean", "any JSON value"
    operators: frozenset[str]


_STRING_OPERATORS: Final = frozenset(OPERATORS) - {"gt", "gte", "lt", "lte"}
STRING: Final = FieldType("a string", _STRING_OPERATORS)
BOOLEAN: Final = FieldType("a boolean", frozenset({"equals", "in", "exists"}))
JSON: Final = FieldType("any JSON value", frozenset(OPERATORS))


class FieldSpec(NamedTuple):
    type: FieldType
    get: Getter
    # Host names compare case-insensitively: the getter returns the lower-cased value, and
    # operands are lower-cased when the condition compiles.
    host_name: bool = False
    choices: tuple[str, ...] = ()  # the only values equals/in may name, when there are few


def _current_hub(context: RequestContext) -> Value:
    hub = context.current_hub
    return MISSING if hub is None else host_key(hub)


FIELDS: Final[Mapping[str, FieldSpec]] = {
    "registrationId": FieldSpec(STRING, FIELD_GETTERS["registrationId"]),
    "enrollmentId": FieldSpec(STRING, FIELD_GETTERS["enrollmentId"]),
    "enrollmentType": FieldSpec(
        STRING, FIELD_GETTERS["enrollmentType"], choices=("group", "individual")
    ),
    "attestation": FieldSpec(STRING, FIELD_GETTERS["attestation"]),
    "iotEdge": FieldSpec(BOOLEAN, FIELD_GETTERS["iotEdge"]),
    "reprovision": FieldSpec(BOOLEAN, FIELD_GETTERS["reprovision"]),
    # Lower-cased, unlike the template field: host names compare case-insensitively.
    "currentHub": FieldSpec(STRING, _current_hub, host_name=True),
}

FIELD_LIST: Final = ", ".join([*FIELDS, "payload.<dotted path>", "lookup.<name>.<property>"])


# -- predicates --------------------------------------------------------------------------------
# NamedTuples rather than frozen dataclasses: a policy naming ``rules`` loads this module on a
# cold start, and a NamedTuple class takes 0.05 ms to define where a frozen dataclass takes
# 0.35 ms (it compiles six methods); for twenty classes that is 6 ms of the first request.


class Always(NamedTuple):
    def holds(self, context: RequestContext) -> bool:
        return True


class AllOf(NamedTuple):
    conditions: tuple[Condition, ...]

    def holds(self, context: RequestContext) -> bool:
        # A loop, not all(): no generator per evaluation on the request path.
        for condition in self.conditions:  # noqa: SIM110
            if not condition.holds(context):
                return False
        return True


class AnyOf(NamedTuple):
    conditions: tuple[Condition, ...]

    def holds(self, context: RequestContext) -> bool:
        for condition in self.conditions:  # noqa: SIM110
            if condition.holds(context):
                return True
        return False


class Not(NamedTuple):
    condition: Condition

    def holds(self, context: RequestContext) -> bool:
        return not self.condition.holds(context)


class FieldTest(NamedTuple):
    """One operator on one field; false when the field is absent."""

    field: str
    get: Getter
    check: Check

    def holds(self, context: RequestContext) -> bool:
        value = self.get(context)
        return value is not MISSING and self.check.check(value)


class FieldExists(NamedTuple):
    field: str
    get: Getter
    expected: bool

    def holds(self, context: RequestContext) -> bool:
        return (self.get(context) is not MISSING) is self.expected


class Equals(NamedTuple):
    """Equality of values whose type the field guarantees (strings, booleans)."""

    expected: str | bool

    def check(self, value: Value) -> bool:
        return bool(value == self.expected)


class OneOf(NamedTuple):
    expected: frozenset[str | bool]

    def check(self, value: Value) -> bool:
        return value in self.expected


class JsonEquals(NamedTuple):
    expected: Any

    def check(self, value: Value) -> bool:
        return json_equal(value, self.expected)


class JsonOneOf(NamedTuple):
    expected: tuple[Any, ...]

    def check(self, value: Value) -> bool:
        return any(json_equal(value, item) for item in self.expected)


class StartsWith(NamedTuple):
    prefix: str

    def check(self, value: Value) -> bool:
        return isinstance(value, str) and value.startswith(self.prefix)


class EndsWith(NamedTuple):
    suffix: str

    def check(self, value: Value) -> bool:
        return isinstance(value, str) and value.endswith(self.suffix)


class Contains(NamedTuple):
    """A substring of a string value; on a payload list, an element (JSON equality)."""

    part: Any

    def check(self, value: Value) -> bool:
        if isinstance(value, str):
            return isinstance(self.part, str) and self.part in value
        if isinstance(value, list):
            return any(json_equal(item, self.part) for item in value)
        return False


class Glob(NamedTuple):
    pattern: str
    # fnmatch's own translation, compiled once; since Python 3.9 it cannot backtrack
    # catastrophically (bpo-40480).
    match: Callable[[str], object]

    def check(self, value: Value) -> bool:
        # Matching is linear, but Python's re took 3 ms on a 96 KiB registration ID: the same
        # bound as a regex's input.
        return (
            isinstance(value, str)
            and len(value) <= MAX_REGEX_INPUT
            and self.match(value) is not None
        )


class Regex(NamedTuple):
    pattern: str
    compiled: Any  # an RE2 regular expression (google-re2 ships no type hints)

    def check(self, value: Value) -> bool:
        if not isinstance(value, str) or len(value) > MAX_REGEX_INPUT:
            return False
        # Encoded by hand so a lone surrogate (valid in JSON text, not in UTF-8) cannot raise.
        return self.compiled.search(value.encode("utf-8", "surrogatepass")) is not None


class Compare(NamedTuple):
    name: str
    compare: Callable[[Any, Any], bool]
    bound: int | float

    def check(self, value: Value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return self.compare(value, self.bound)


class Version(NamedTuple):
    name: str
    compare: Callable[[Any, Any], bool]
    bound: tuple[int, ...]  # trailing zeros removed

    def check(self, value: Value) -> bool:
        version = parse_version(value)
        return version is not None and self.compare(version, self.bound)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ``==``, ``true`` is not ``1`` (at any depth)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[key], b[key]) for key in a)
    return False


def parse_version(value: Any) -> tuple[int, ...] | None:
    """``"12.0.2.5"`` as ``(12, 0, 2, 5)``, trailing zeros removed so ``12`` equals ``12.0``;
    None when the value is not a dotted numeric version."""
    if isinstance(value, str):
        return _parse_version_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return _without_trailing_zeros((value,))
    return None


# A fleet reports few distinct versions, and a policy may compare one with many rules.
@functools.lru_cache(maxsize=1024)
def _parse_version_text(text: str) -> tuple[int, ...] | None:
    if len(text) > MAX_VERSION_LENGTH or not text.isascii():
        return None
    parts = text.split(".")
    if not all(part.isdigit() for part in parts):  # ASCII digits only: isascii() above
        return None
    return _without_trailing_zeros(tuple(map(int, parts)))


def _without_trailing_zeros(parts: tuple[int, ...]) -> tuple[int, ...]:
    end = len(parts)
    while end and parts[end - 1] == 0:
        end -= 1
    return parts[:end]


_COMPARISONS: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "versionGte": operator.ge,
    "versionLt": operator.lt,
}


# -- compiling ---------------------------------------------------------------------------------

_EXAMPLE: Final = '{"registrationId": {"startsWith": "toaster-"}}'


def compile_condition(raw: Any, at: JsonPath) -> Condition:
    """Compile a condition found at ``at``; raises :class:`PolicyError` naming every problem."""
    problems: list[Problem] = []
    condition = _Compiler(problems).condition(raw, at)
    if problems:
        raise PolicyError(problems)
    return condition


class _Compiler:
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems

    def problem(self, at: JsonPath, message: str) -> None:
        self.problems.append(Problem(format_path(at), message))

    def condition(self, raw: Any, at: JsonPath) -> Condition:
        if not isinstance(raw, dict):
            self.problem(at, f"a condition must be an object, e.g. {_EXAMPLE}")
            return Always()
        parts: list[Condition] = []
        for key, value in raw.items():
            parts.extend(self.part(key, value, (*at, key)))
        if not parts:
            return Always()
        if len(parts) == 1:
            return parts[0]
        return AllOf(tuple(parts))

    def part(self, key: str, value: Any, at: JsonPath) -> list[Condition]:
        """One key of a condition object; a field with several operators gives several."""
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                self.problem(at, f"'{key}' takes a non-empty list of conditions")
                return []
            conditions = tuple(self.condition(item, (*at, i)) for i, item in enumerate(value))
            if len(conditions) == 1:
                return [conditions[0]]
            return [AllOf(conditions) if key == "all" else AnyOf(conditions)]
        if key == "not":
            return [Not(self.condition(value, at))]
        spec = self.field(key, at)
        if spec is None:
            return []
        return self.field_tests(key, spec, value, at)

    def field(self, key: str, at: JsonPath) -> FieldSpec | None:
        spec = FIELDS.get(key)
        if spec is not None:
            return spec
        if key == "payload" or key.startswith(PAYLOAD_PREFIX):
            path = key[len(PAYLOAD_PREFIX) :]
            if path and all(path.split(".")):
                return FieldSpec(JSON, PayloadPath.parse(path))
            self.problem(at, "a payload field names a dotted path, e.g. 'payload.modelId'")
            return None
        if key.startswith(LOOKUP_PREFIX):
            # A row's properties are whatever the table holds: any JSON value, like a payload's.
            problem = lookup_field_problem(key)
            reader = LookupField.parse(key)
            if problem is not None or reader is None:
                self.problem(at, problem or "not a lookup field")
                return None
            return FieldSpec(JSON, reader)
        self.problem(
            at,
            f"unknown field{did_you_mean(key, [*FIELDS, 'all', 'any', 'not'])}; "
            f"fields: {FIELD_LIST} (and all, any, not)",
        )
        return None

    def field_tests(self, key: str, spec: FieldSpec, raw: Any, at: JsonPath) -> list[Condition]:
        if not isinstance(raw, dict) or not raw:
            self.problem(at, 'must be an object of operator → operand, e.g. {"equals": ...}')
            return []
        tests: list[Condition] = []
        for name, operand in raw.items():
            if name == "exists":
                if isinstance(operand, bool):
                    tests.append(FieldExists(key, spec.get, operand))
                else:
                    self.problem(
                        (*at, name), f"'exists' takes true or false, not {_describe(operand)}"
                    )
                continue
            check = self.check(key, spec, name, operand, (*at, name))
            if check is not None:
                tests.append(FieldTest(key, spec.get, check))
        return tests

    def check(
        self, key: str, spec: FieldSpec, name: str, operand: Any, at: JsonPath
    ) -> Check | None:
        if name not in OPERATORS:
            self.problem(
                at,
                f"unknown operator{did_you_mean(name, OPERATORS)}; "
                f"operators: {', '.join(OPERATORS)}",
            )
            return None
        if name not in spec.type.operators:
            self.problem(at, f"'{name}' {_compares(name)}; {key} is {spec.type.name}")
            return None
        builder = _BUILDERS[name]
        try:
            return builder(spec, operand if name == "regex" else _folded(spec, operand))
        except _BadOperand as bad:
            self.problem((*at, *bad.where), bad.message)
            return None


def _compares(name: str) -> str:
    if name in ("gt", "gte", "lt", "lte"):
        return "compares numbers"
    if name in ("versionGte", "versionLt"):
        return "compares versions"
    return "compares strings"


def _folded(spec: FieldSpec, operand: Any) -> Any:
    """Host-name operands in the lower case the field's values are read in."""
    if not spec.host_name:
        return operand
    if isinstance(operand, str):
        return host_key(operand)
    if isinstance(operand, list):
        return [host_key(item) if isinstance(item, str) else item for item in operand]
    return operand


class _BadOperand(Exception):
    def __init__(self, message: str, where: JsonPath = ()) -> None:
        super().__init__(message)
        self.message = message
        self.where = where  # inside the operand, e.g. (2,) for the third item of 'in'


# -- one builder per operator: checks the operand, returns the check ---------------------------


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _scalar(spec: FieldSpec, operand: Any, where: JsonPath = ()) -> Any:
    """An operand that equals, in or contains may compare the field's values with."""
    if spec.type is JSON:
        if operand is None:
            raise _BadOperand(
                'cannot be null: a null payload value counts as absent (use {"exists": false})',
                where,
            )
        return operand
    wanted = str if spec.type is STRING else bool
    if not isinstance(operand, wanted):
        raise _BadOperand(f"must be {spec.type.name}, not {_describe(operand)}", where)
    if spec.choices and operand not in spec.choices:
        raise _BadOperand("must be " + " or ".join(f"'{choice}'" for choice in spec.choices), where)
    return operand


def _equals(spec: FieldSpec, operand: Any) -> Check:
    value = _scalar(spec, operand)
    return JsonEquals(value) if spec.type is JSON else Equals(value)


def _in(spec: FieldSpec, operand: Any) -> Check:
    if not isinstance(operand, list) or not operand:
        raise _BadOperand("'in' takes a non-empty list of values")
    values = [_scalar(spec, item, (i,)) for i, item in enumerate(operand)]
    if spec.type is JSON:
        return JsonOneOf(tuple(values))
    return OneOf(frozenset(values))


def _text(name: str, operand: Any) -> str:
    if not isinstance(operand, str):
        raise _BadOperand(f"'{name}' takes a string, not {_describe(operand)}")
    return operand


def _starts_with(spec: FieldSpec, operand: Any) -> Check:
    return StartsWith(_text("startsWith", operand))


def _ends_with(spec: FieldSpec, operand: Any) -> Check:
    return EndsWith(_text("endsWith", operand))


def _contains(spec: FieldSpec, operand: Any) -> Check:
    if spec.type is JSON:
        # A substring of a string, or an element of a list.
        return Contains(_scalar(spec, operand))
    return Contains(_text("contains", operand))


def _glob(spec: FieldSpec, operand: Any) -> Check:
    pattern = _text("glob", operand)
    return Glob(pattern, re.compile(fnmatch.translate(pattern)).match)


@functools.cache
def _re2_options(case_sensitive: bool) -> Any:
    import re2  # noqa: PLC0415 - loaded by the first 'regex', not by every cold start

    options = re2.Options()
    options.log_errors = False  # the load error says it; RE2 need not log to stderr too
    options.never_capture = True  # we only ask whether it matches
    options.case_sensitive = case_sensitive
    return options


def _regex(spec: FieldSpec, operand: Any) -> Check:
    import re2  # noqa: PLC0415 - see _re2_options

    pattern = _text("regex", operand)
    try:
        compiled = re2.compile(pattern.encode("utf-8"), _re2_options(not spec.host_name))
    except UnicodeEncodeError:
        raise _BadOperand("the pattern is not valid Unicode text") from None
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise _BadOperand(
            f"not a valid RE2 regular expression ({reason}); RE2 has no backreferences or "
            "lookaround, which could make matching a device's string slow"
        ) from None
    return Regex(pattern, compiled)


def _number(name: str) -> Callable[[FieldSpec, Any], Check]:
    def build(spec: FieldSpec, operand: Any) -> Check:
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise _BadOperand(f"'{name}' takes a number, not {_describe(operand)}")
        if not math.isfinite(operand):
            raise _BadOperand(f"'{name}' takes a finite number")
        return Compare(name, _COMPARISONS[name], operand)

    return build


def _version(name: str) -> Callable[[FieldSpec, Any], Check]:
    def build(spec: FieldSpec, operand: Any) -> Check:
        version = parse_version(operand) if isinstance(operand, str) else None
        if version is None:
            raise _BadOperand(
                f"'{name}' takes a dotted numeric version such as \"12.0.2\", "
                f"not {_describe(operand) if not isinstance(operand, str) else repr(operand)}"
            )
        return Version(name, _COMPARISONS[name], version)

    return build


_BUILDERS: Final[Mapping[str, Callable[[FieldSpec, Any], Check]]] = {
    "equals": _equals,
    "in": _in,
    "startsWith": _starts_with,
    "endsWith": _ends_with,
    "contains": _contains,
    "glob": _glob,
    "regex": _regex,
    "gt": _number("gt"),
    "gte": _number("gte"),
    "lt": _number("lt"),
    "lte": _number("lte"),
    "versionGte": _version("versionGte"),
    "versionLt": _version("versionLt"),
}
