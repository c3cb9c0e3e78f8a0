"""``rules``: the first rule whose condition holds decides; else ``otherwise``.

Options: ``rules``, a list of ``{"name": .., "when": Condition, "then": Allocation | "deny"}``,
and ``otherwise`` (an Allocation or ``"deny"``, default ``{"strategy": "weighted"}``). A rule's
``then`` is a nested allocation: its hub filter narrows this allocation's candidates, and its
twin and payload merge over this one's (see allocation.policy). ``"deny"`` refuses the device
with a 403 naming the rule: its ``name``, else ``rules[<index>]``; ``otherwise`` is named
``otherwise``. Names must be unique within one list of rules, so a 403 names one rule.

Conditions (allocation.conditions) and nested allocations are compiled when the policy loads;
a request only evaluates conditions, in order, until one holds. A list of
:data:`allocation.rule_index.MIN_RULES` rules or more gets an index (allocation.rule_index)
that names the rules whose condition may hold: only those are evaluated, still in order, so
the rule that decides is the one a linear scan finds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from pydantic_core import core_schema as cs

from allocation.candidates import Candidate
from allocation.conditions import Condition, compile_condition
from allocation.context import RequestContext
from allocation.errors import PolicyError, Problem
from allocation.options import options_validator, parse_options
from allocation.paths import JsonPath, format_path
from allocation.rule_index import IndexStats, RuleIndex, build_index, stats
from allocation.shapes import ANY, optional
from allocation.strategies.base import (
    CompileNested,
    Delegate,
    Deny,
    NestedAllocationInvalid,
    Outcome,
)
from allocation.suggestions import did_you_mean

DENY: Final = "deny"
OTHERWISE: Final = "otherwise"
RULE_FIELDS: Final = frozenset({"name", "when", "then"})


class RulesOptions(TypedDict):
    rules: list[Any]
    otherwise: Any


OPTIONS: Final = options_validator(
    RulesOptions,
    {
        "rules": cs.list_schema(ANY, strict=True),
        "otherwise": optional(ANY, factory=lambda: {"strategy": "weighted"}),
    },
)


@dataclass(frozen=True)
class Rule:
    when: Condition
    # Built once: what choose() returns when the condition holds.
    outcome: Delegate | Deny


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...]
    otherwise: Delegate | Deny
    name: str = "rules"
    routes: bool = True

    # Built from the rules, so it says nothing equality of the rules does not.
    index: RuleIndex | None = field(default=None, compare=False)

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Outcome:
        rules = self.rules
        if self.index is None:
            for rule in rules:
                if rule.when.holds(context):
                    return rule.outcome
            return self.otherwise
        for position in self.index.candidates(context):
            rule = rules[position]
            if rule.when.holds(context):
                return rule.outcome
        return self.otherwise

    def examine(self, context: RequestContext) -> Examination:
        """How :meth:`choose` decides for this request: which rules it evaluated (explain)."""
        positions = range(len(self.rules)) if self.index is None else self.index.candidates(context)
        checked = 0
        for position in positions:
            checked += 1
            if self.rules[position].when.holds(context):
                return Examination(len(self.rules), checked, position + 1 - checked, position)
        return Examination(len(self.rules), checked, len(self.rules) - checked, None)

    def stats(self) -> IndexStats:
        return stats([rule.when for rule in self.rules], self.index)


@dataclass(frozen=True)
class Examination:
    rules: int  # in the list
    checked: int  # conditions evaluated
    skipped: int  # rules before the deciding one (or all, when none held) the index skipped
    matched: int | None  # the position of the rule that held; None: otherwise decided


def build(options: Mapping[str, Any], at: JsonPath, nested: CompileNested) -> Rules:
    parsed: RulesOptions = parse_options(OPTIONS, options, at)
    builder = _Builder(at, nested)
    rules = [builder.rule(raw, index) for index, raw in enumerate(parsed["rules"])]
    otherwise = builder.branch(parsed["otherwise"], (*at, OTHERWISE), OTHERWISE, OTHERWISE)
    if builder.problems:
        raise PolicyError(builder.problems)
    if builder.nested_failure is not None:
        raise builder.nested_failure
    # Without problems, every rule and branch compiled.
    assert otherwise is not None
    compiled = tuple(rule for rule in rules if rule is not None)
    return Rules(compiled, otherwise, index=build_index([rule.when for rule in compiled]))


class _Builder:
    """Compiles the rules of one list, collecting the problems of all of them."""

    def __init__(self, at: JsonPath, nested: CompileNested) -> None:
        self.at = at
        self.nested = nested
        self.problems: list[Problem] = []
        # nested() records a broken allocation's problems with the policy compiler itself and
        # then raises; the builder keeps going, so one load reports every rule's problems.
        self.nested_failure: Exception | None = None
        self.names: dict[str, int] = {OTHERWISE: -1}  # rule name -> index

    def problem(self, at: JsonPath, message: str) -> None:
        self.problems.append(Problem(format_path(at), message))

    def rule(self, raw: Any, index: int) -> Rule | None:
        at: JsonPath = (*self.at, "rules", index)
        if not isinstance(raw, dict):
            self.problem(at, 'a rule is an object: {"name": .., "when": {..}, "then": {..}}')
            return None
        for key in [key for key in raw if key not in RULE_FIELDS]:
            self.problem(
                (*at, key),
                f"unknown field{did_you_mean(key, ('name', 'when', 'then'))}; a rule has name, "
                "when and then",
            )
        for key in ("when", "then"):
            if key not in raw:
                self.problem((*at, key), "required field is missing")

        name = self.name(raw.get("name"), index, at)
        label = f"rules[{index}]"
        if "name" in raw and name != label:
            label += " " + json.dumps(name, ensure_ascii=False)
        when: Condition | None = None
        if "when" in raw:
            try:
                when = compile_condition(raw["when"], (*at, "when"))
            except PolicyError as error:
                self.problems.extend(error.problems)
        outcome = self.branch(raw["then"], (*at, "then"), label, name) if "then" in raw else None
        if when is None or outcome is None:
            return None
        return Rule(when, outcome)

    def name(self, raw: Any, index: int, at: JsonPath) -> str:
        """The rule's name, as a 403 and the trace give it: its own, else ``rules[<index>]``."""
        name = f"rules[{index}]"
        if raw is not None:
            if isinstance(raw, str) and raw:
                name = raw
            else:
                self.problem((*at, "name"), "must be a non-empty string")
        if name in self.names:
            other = self.names[name]
            what = "the otherwise branch" if other < 0 else f"rules[{other}]"
            self.problem((*at, "name"), f"'{name}' also names {what}; a 403 must name one rule")
        else:
            self.names[name] = index
        return name

    def branch(self, raw: Any, at: JsonPath, label: str, rule: str) -> Delegate | Deny | None:
        """``then`` or ``otherwise``: a nested allocation, or a denial."""
        if raw == DENY:
            return Deny(rule)
        if isinstance(raw, str):
            self.problem(at, 'must be an allocation such as {"strategy": "weighted"}, or "deny"')
            return None
        try:
            return Delegate(self.nested(raw, at), label)
        except NestedAllocationInvalid as error:
            self.nested_failure = self.nested_failure or error
            return None
