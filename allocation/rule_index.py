"""An index over the conditions of one list of rules, so that a request checks only the rules
that can hold for it.

The model is OPA's rule indexing (``ast/index.go``): at load time each rule's condition is
reduced to a *signal*, a set of field tests of which at least one must hold for the condition
to hold; at request time each indexed field is read once, the tests that hold are found by hash
and prefix look-ups, and the rules behind them are the candidates. The candidates are checked
in policy order with their full condition, so the first rule that holds is the one a linear scan
finds: the index only skips rules whose condition cannot hold.

What gives a signal (every other test gives none):

- ``equals`` and ``in`` with a string, boolean or number operand: a hash of the value. Keys
  follow JSON equality as the condition does: ``1`` and ``1.0`` share a key, ``true`` and ``1``
  do not. An array or object operand gives no signal.
- ``startsWith`` and ``endsWith``: the value's prefixes (suffixes) of each length some operand
  has, looked up in a hash of operands: one look-up per distinct operand length.
- ``glob``: its literal prefix (up to the first ``*``, ``?`` or ``[``), as ``startsWith``.
- ``exists: true``.

A field that is absent holds none of these, as in the condition (``exists: false`` is the only
test an absent field passes, and it gives no signal). ``all`` holds only if each part holds, so
any part's signal will do: the most selective is taken. ``any`` holds if one part holds, so its
signal is the union of its parts' signals, and there is none if one part has none. ``not``,
``regex``, ``contains``, number and version comparisons, and ``{}`` give none: such a rule is
*always checked*. The index reads a field's value with the same getter the condition uses,
operands already folded as the condition folds them (``currentHub`` in lower case), so case
rules cannot differ between the two.

A field is keyed by its name: any kind of field a condition can name is indexed with no change
here, except those whose reading has an effect (see :func:`reads_freely`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

from allocation.conditions import (
    AllOf,
    AnyOf,
    Condition,
    EndsWith,
    Equals,
    FieldExists,
    FieldTest,
    Getter,
    Glob,
    JsonEquals,
    JsonOneOf,
    OneOf,
    StartsWith,
)
from allocation.context import MISSING, RequestContext

# Below this many rules a list is checked linearly: the index's fixed cost per request (reading
# each indexed field, the look-ups, sorting the candidates) is then more than the rules it
# skips. Measured by benchmarks/rules_scale.py (the rules strategy's choice for a device no
# rule holds for, one payload.customerId or registrationId prefix rule per customer, loaded
# 2-core machine; BENCHMARKS.md): the index took 1.5-1.9x the linear time at 2 rules,
# 0.83-0.95x at 4, 0.43x at 8, 0.22-0.24x at 16. 8 rather than the break-even of about 4:
# cheaper conditions (a plain registrationId equality) break even later. Tests set it to 1
# (always index) or to a huge number (never: the linear switch).
MIN_RULES: int = 8

# The fields whose reading runs a request (a device inventory lookup): the index reads every
# indexed field of every request, which would run a lookup where linear evaluation, having
# matched an earlier rule, would not have, and an unreachable store could then refuse a device
# linear evaluation allocates.
EFFECTFUL_PREFIXES: Final = ("lookup.",)


def reads_freely(field: str) -> bool:
    """Whether the index may read this field on every request."""
    return not field.startswith(EFFECTFUL_PREFIXES)


# -- signals -------------------------------------------------------------------------------

EXACT: Final = 0
PREFIX: Final = 1
SUFFIX: Final = 2
PRESENT: Final = 3


class Test(NamedTuple):
    """A field test the index can look up: kind EXACT (key), PREFIX or SUFFIX (text), or
    PRESENT (no key)."""

    field: str
    get: Getter
    kind: int
    key: Any


Signal = tuple[Test, ...]  # at least one must hold for the condition to hold


def value_key(value: Any) -> Any:
    """The hash key of a scalar under JSON equality; None for a value with no key.

    A string is its own key; a number is keyed as ``("n", value)`` (``1 == 1.0`` and Python
    hashes them alike), a boolean as ``("b", value)``, so that ``true`` never meets ``1``."""
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    return None


def glob_prefix(pattern: str) -> str:
    """The literal text a glob's matches start with (fnmatch has no escape character)."""
    for at, char in enumerate(pattern):
        if char in "*?[":
            return pattern[:at]
    return pattern


def signal(condition: Condition) -> Signal | None:
    """Field tests of which one holds whenever ``condition`` holds; None if there are none."""
    if isinstance(condition, FieldTest):
        return _field_signal(condition)
    if isinstance(condition, FieldExists):
        if condition.expected and reads_freely(condition.field):
            return (Test(condition.field, condition.get, PRESENT, None),)
        return None
    if isinstance(condition, AllOf):
        parts = [s for s in map(signal, condition.conditions) if s is not None]
        return min(parts, key=_cost) if parts else None
    if isinstance(condition, AnyOf):
        union: list[Test] = []
        for part in condition.conditions:
            found = signal(part)
            if found is None:
                return None
            union.extend(found)
        return tuple(union)
    return None  # Always, Not, and condition kinds this module does not know


def _field_signal(test: FieldTest) -> Signal | None:
    if not reads_freely(test.field):
        return None
    check = test.check
    operands: Iterable[Any]
    if isinstance(check, (Equals, JsonEquals)):
        operands = (check.expected,)
    elif isinstance(check, JsonOneOf):
        operands = check.expected
    elif isinstance(check, OneOf):
        operands = sorted(check.expected, key=repr)  # a frozenset: a stable order
    elif isinstance(check, StartsWith):
        return (Test(test.field, test.get, PREFIX, check.prefix),)
    elif isinstance(check, EndsWith):
        return (Test(test.field, test.get, SUFFIX, check.suffix),)
    elif isinstance(check, Glob):
        return (Test(test.field, test.get, PREFIX, glob_prefix(check.pattern)),)
    else:
        return None
    keys = [value_key(operand) for operand in operands]
    if any(key is None for key in keys):
        return None  # an array or object operand: compared by deep JSON equality, unkeyed
    return tuple(Test(test.field, test.get, EXACT, key) for key in keys)


def _cost(found: Signal) -> int:
    """How many rules a signal is likely to let through, relatively: exact values are the most
    selective, long prefixes next, presence the least."""
    cost = 0
    for test in found:
        if test.kind == EXACT:
            cost += 1
        elif test.kind == PRESENT:
            cost += 1000
        else:
            cost += 2 + max(0, 100 - 10 * len(test.key))
    return cost


# -- the index -----------------------------------------------------------------------------


class _FieldIndex:
    """The tests on one field: positions of the rules behind each."""

    def __init__(self, get: Getter) -> None:
        self.get = get
        self.exact: dict[Any, list[int]] = {}
        self.prefixes: dict[str, list[int]] = {}
        self.suffixes: dict[str, list[int]] = {}
        self.present: list[int] = []
        self.prefix_lengths: tuple[int, ...] = ()
        self.suffix_lengths: tuple[int, ...] = ()

    def add(self, test: Test, position: int) -> None:
        if test.kind == EXACT:
            self.exact.setdefault(test.key, []).append(position)
        elif test.kind == PREFIX:
            self.prefixes.setdefault(test.key, []).append(position)
        elif test.kind == SUFFIX:
            self.suffixes.setdefault(test.key, []).append(position)
        else:
            self.present.append(position)

    def seal(self) -> None:
        self.prefix_lengths = tuple(sorted({len(prefix) for prefix in self.prefixes}))
        self.suffix_lengths = tuple(sorted({len(suffix) for suffix in self.suffixes}))

    def gather(self, value: Any, into: set[int]) -> None:
        """Add the positions of the rules whose test on this field holds for ``value``."""
        into.update(self.present)
        if self.exact:
            key = value_key(value)
            if key is not None:
                into.update(self.exact.get(key, ()))
        if type(value) is not str:
            return
        size = len(value)
        for length in self.prefix_lengths:
            if length > size:
                break
            into.update(self.prefixes.get(value[:length], ()))
        for length in self.suffix_lengths:
            if length > size:
                break
            into.update(self.suffixes.get(value[size - length :], ()))


class RuleIndex:
    """The index of one rules list: :meth:`candidates` in policy order."""

    def __init__(self, conditions: Sequence[Condition]) -> None:
        self.size = len(conditions)
        fields: dict[str, _FieldIndex] = {}
        always: list[int] = []
        for position, condition in enumerate(conditions):
            found = signal(condition)
            if found is None:
                always.append(position)
                continue
            for test in found:
                index = fields.get(test.field)
                if index is None:
                    index = fields[test.field] = _FieldIndex(test.get)
                index.add(test, position)
        for index in fields.values():
            index.seal()
        self.always: tuple[int, ...] = tuple(always)
        self.fields: tuple[_FieldIndex, ...] = tuple(fields.values())

    @property
    def indexed(self) -> int:
        return self.size - len(self.always)

    def candidates(self, context: RequestContext) -> list[int]:
        """The positions of the rules whose condition may hold, in policy order: a superset of
        the rules that hold."""
        found: set[int] = set(self.always)
        for index in self.fields:
            value = index.get(context)
            if value is not MISSING:
                index.gather(value, found)
        return sorted(found)


class IndexStats(NamedTuple):
    """For ``validate --stats``: how one rules list is evaluated."""

    rules: int
    indexed: int  # rules with a signal: checked only when the index names them
    always: int  # rules checked on every request
    uses_index: bool  # False below MIN_RULES: the list is checked linearly


def stats(conditions: Sequence[Condition], index: RuleIndex | None) -> IndexStats:
    built = index if index is not None else RuleIndex(conditions)
    return IndexStats(len(conditions), built.indexed, len(built.always), index is not None)


def build_index(conditions: Sequence[Condition]) -> RuleIndex | None:
    """The index for a rules list, or None where a linear scan is as fast (MIN_RULES) or the
    index would skip nothing."""
    if len(conditions) < MIN_RULES:
        return None
    index = RuleIndex(conditions)
    return index if index.indexed else None
