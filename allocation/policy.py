"""The allocation policy, version 1 (see the README's policy reference): parsing and compiling.

A policy document is validated completely when it loads, and every problem is reported with the
JSON path of the offending value. What comes out is a :class:`Policy` of compiled
:class:`Allocation` nodes: templates parsed, strategies built, nested allocations' twins and
payloads already merged over their parents'. Requests then only walk that tree.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypedDict

from pydantic_core import ValidationError
from pydantic_core import core_schema as cs

from allocation import strategies
from allocation.candidates import (
    Candidate,
    CandidateCache,
    HubFilter,
    HubSelector,
    HubSettings,
    NameSelector,
    RegionSelector,
    TagSelector,
)
from allocation.context import DECLARED_LOOKUPS
from allocation.errors import PolicyError, Problem
from allocation.hostnames import host_key, is_host_name
from allocation.limits import MAX_RENDERED_BYTES
from allocation.options import COMMON_FIELDS, options_validator, problems_from
from allocation.paths import JsonPath, format_path
from allocation.shapes import STRING, nullable, optional
from allocation.strategies.base import Allocation, NestedAllocationInvalid, Strategy
from allocation.strategies.plugins import ENTRY_POINT_GROUP
from allocation.suggestions import did_you_mean
from allocation.templates import JsonTemplate, compile_json

if TYPE_CHECKING:
    from allocation.lookups import Lookups, RowStore

DEFAULT_POLICY_TEXT: Final = '{"default": {"strategy": "weighted"}}'


@dataclass(frozen=True)
class Policy:
    hubs: Mapping[str, HubSettings]  # keyed by lower-case host name
    default: Allocation
    enrollments: Mapping[str, Allocation]  # keyed by lower-case enrollment ID
    sticky: bool
    fingerprint: str  # identifies the policy's content without revealing it
    strategies: frozenset[str]  # every strategy name the policy uses
    # Every allocation, nested ones included, in document order: for checks over the whole
    # tree (validate --linked-hubs) that requests never need.
    allocations: tuple[Allocation, ...] = field(default=(), repr=False, compare=False)
    # The policy's lookups, with their caches; None when it declares none.
    lookups: Lookups | None = field(default=None, compare=False)
    _candidates: CandidateCache = field(init=False, repr=False, compare=False)
    # Whether any hub drains: most policies have none, and their requests skip drain entirely.
    drains: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_candidates", CandidateCache(self.hubs))
        object.__setattr__(self, "drains", any(hub.drain for hub in self.hubs.values()))

    def candidates(self, linked_hubs: tuple[str, ...]) -> tuple[Candidate, ...]:
        """The request's linked hubs as candidates, with this policy's settings for each."""
        return self._candidates(linked_hubs)

    def allocation_for(self, enrollment_id: str) -> tuple[str, Allocation]:
        """The allocation for an enrollment, and how the trace names the choice."""
        allocation = self.enrollments.get(enrollment_id.lower())
        if allocation is None:
            return "default", self.default
        return allocation.path, allocation

    def with_lookup_stores(self, stores: Mapping[str, RowStore]) -> Policy:
        """This policy with some lookups reading another store (a CSV file, offline)."""
        if self.lookups is None:
            return self
        return dataclasses.replace(self, lookups=self.lookups.with_stores(stores))


# -- the document's fixed parts, validated by pydantic-core ---------------------------------


class HubDocument(TypedDict):
    weight: int
    region: str | None
    tags: list[str]
    drain: float


def _drain_true_is_everything(value: Any) -> Any:
    if value is True:
        return 100.0
    if value is False:
        return 0.0
    if isinstance(value, int):
        return float(value)
    return value


HUB: Final = options_validator(
    HubDocument,
    {
        "weight": optional(cs.int_schema(strict=True, ge=1, le=1000), 1),
        "region": optional(nullable(cs.str_schema(strict=True, min_length=1))),
        "tags": optional(cs.list_schema(STRING, strict=True), factory=list),
        "drain": optional(
            cs.no_info_before_validator_function(
                _drain_true_is_everything, cs.float_schema(strict=True, ge=0, le=100)
            ),
            0.0,
        ),
    },
)


TOP_LEVEL_FIELDS: Final = frozenset(
    {"$schema", "hubs", "default", "enrollments", "sticky", "lookups"}
)


# -- compiling -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parent:
    raw_initial_twin: Mapping[str, Any] | None
    raw_payload: Mapping[str, Any] | None
    sticky: bool


class _Compiler:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.strategies: set[str] = set()
        # Keyed by the order allocations start compiling in, i.e. document order (a nested
        # allocation finishes before the one that holds it).
        self.compiled: dict[int, Allocation] = {}
        self._started = 0

    def allocation(self, raw: Any, at: JsonPath, parent: _Parent) -> Allocation | None:
        """Compile one allocation; on problems, record them and return None."""
        order = self._started
        self._started += 1
        if not isinstance(raw, dict):
            self._problem(
                at, 'must be an object with a \'strategy\', e.g. {"strategy": "weighted"}'
            )
            return None
        before = len(self.problems)
        name = raw.get("strategy")
        if not isinstance(name, str):
            self._problem(
                (*at, "strategy"), "required: the name of a strategy (static, weighted, ...)"
            )
            return None

        hub_filter = self._hub_filter(raw.get("hubs"), (*at, "hubs")) if "hubs" in raw else None
        sticky = raw.get("sticky", parent.sticky)
        if not isinstance(sticky, bool):
            self._problem((*at, "sticky"), "must be true or false")
            sticky = parent.sticky
        raw_twin = self._initial_twin(raw.get("initialTwin"), at) if "initialTwin" in raw else None
        raw_payload = self._payload(raw.get("payload"), at) if "payload" in raw else None
        merged_twin = _merge_optional(parent.raw_initial_twin, raw_twin)
        merged_payload = _merge_optional(parent.raw_payload, raw_payload)
        twin = self._template(merged_twin, (*at, "initialTwin"))
        payload = self._template(merged_payload, (*at, "payload"))

        here = _Parent(merged_twin, merged_payload, sticky)
        strategy = self._strategy(name, raw, at, here)
        if strategy is None or len(self.problems) > before:
            return None
        allocation = Allocation(
            path=format_path(at),
            strategy=strategy,
            hub_filter=hub_filter,
            initial_twin=twin,
            payload=payload,
            sticky=sticky,
            raw_initial_twin=merged_twin,
            raw_payload=merged_payload,
        )
        self.compiled[order] = allocation
        return allocation

    def _strategy(
        self, name: str, raw: dict[str, Any], at: JsonPath, here: _Parent
    ) -> Strategy | None:
        builder = strategies.builder_for(name)
        if builder is None:
            known = ", ".join(sorted(strategies.BUILTIN))
            self._problem(
                (*at, "strategy"),
                f"unknown strategy '{name}'{did_you_mean(name, strategies.BUILTIN)}; built in: "
                f"{known}; a plug-in is named "
                f"'package.module:Name' or registered under '{ENTRY_POINT_GROUP}'",
            )
            return None
        self.strategies.add(name)
        options = {k: v for k, v in raw.items() if k not in COMMON_FIELDS}

        def nested(value: Any, nested_at: JsonPath) -> Allocation:
            compiled = self.allocation(value, nested_at, here)
            if compiled is None:
                # Its problems are recorded already; the policy as a whole is rejected.
                raise NestedAllocationInvalid
            return compiled

        try:
            return builder(options, at, nested)
        except PolicyError as error:
            self.problems.extend(error.problems)
        except NestedAllocationInvalid:
            pass
        return None

    def _hub_filter(self, raw: Any, at: JsonPath) -> HubFilter | None:
        if not isinstance(raw, list) or not raw:
            self._problem(at, "must be a non-empty list of hub selectors")
            return None
        selectors: list[HubSelector] = []
        for index, item in enumerate(raw):
            selector = _selector(item)
            if selector is None:
                self._problem(
                    (*at, index),
                    "a hub selector is a host name, a glob such as '*-eu-*', "
                    '{"tag": "..."} or {"region": "..."}',
                )
            else:
                selectors.append(selector)
        return HubFilter(tuple(selectors))

    def _initial_twin(self, raw: Any, at: JsonPath) -> dict[str, Any] | None:
        twin_at = (*at, "initialTwin")
        if not isinstance(raw, dict):
            self._problem(
                twin_at, 'must be an object: {"tags": {...}, "properties": {"desired": {...}}}'
            )
            return None
        for key, value in raw.items():
            if key == "tags":
                if not isinstance(value, dict):
                    self._problem((*twin_at, "tags"), "must be an object")
            elif key == "properties":
                if not isinstance(value, dict):
                    self._problem((*twin_at, "properties"), 'must be an object: {"desired": {...}}')
                    continue
                for inner, inner_value in value.items():
                    if inner != "desired":
                        self._problem(
                            (*twin_at, "properties", inner),
                            "only desired properties can be set (DPS ignores anything else)",
                        )
                    elif not isinstance(inner_value, dict):
                        self._problem((*twin_at, "properties", "desired"), "must be an object")
            else:
                self._problem(
                    (*twin_at, key),
                    f"unknown field{did_you_mean(key, ('tags', 'properties'))}; an initial twin "
                    "has 'tags' and 'properties'",
                )
        return raw

    def _payload(self, raw: Any, at: JsonPath) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            # DPS returns only a JSON object to the device.
            self._problem((*at, "payload"), "must be a JSON object")
            return None
        return raw

    def _template(self, raw: Mapping[str, Any] | None, at: JsonPath) -> JsonTemplate | None:
        if raw is None:
            return None
        size = len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False))
        if size > MAX_RENDERED_BYTES:
            self._problem(at, f"is {size} bytes as JSON; at most {MAX_RENDERED_BYTES}")
            return None
        try:
            return compile_json(raw, at)
        except PolicyError as error:
            self.problems.extend(p for p in error.problems if p not in self.problems)
            return None

    def _problem(self, at: JsonPath, message: str) -> None:
        self.problems.append(Problem(format_path(at), message))


def _selector(item: Any) -> HubSelector | None:
    if isinstance(item, str):
        return NameSelector(item) if _is_name_pattern(item) else None
    if isinstance(item, dict) and len(item) == 1:
        ((kind, value),) = item.items()
        if isinstance(value, str) and value:
            if kind == "tag":
                return TagSelector(value)
            if kind == "region":
                return RegionSelector(value)
    return None


def _is_name_pattern(text: str) -> bool:
    if is_host_name(text):
        return True
    # A glob: a host name with *, ? or [...] in it.
    plain = text.replace("*", "a").replace("?", "a")
    plain = "".join("a" if c in "[]!" else c for c in plain)
    return any(c in text for c in "*?[") and is_host_name(plain)


def _merge_optional(
    parent: Mapping[str, Any] | None, child: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    if child is None:
        return None if parent is None else dict(parent)
    if parent is None:
        return dict(child)
    return deep_merge(parent, child)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``: objects merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in over.items():
        inner = merged.get(key)
        if isinstance(inner, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(inner, value)
        else:
            merged[key] = value
    return merged


def parse_policy(text: str) -> Policy:
    """Parse and compile a policy document; raises :class:`PolicyError` naming every problem."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyError(
            [
                Problem(
                    "", f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
                )
            ]
        ) from None
    except (ValueError, RecursionError) as error:
        raise PolicyError([Problem("", f"not valid JSON: {error}")]) from None
    return compile_policy(raw, text)


def compile_policy(raw: Any, text: str | None = None) -> Policy:
    if not isinstance(raw, dict):
        raise PolicyError([Problem("", "a policy must be a JSON object")])
    # Fields naming a lookup are checked against the declared names while the allocations
    # compile (allocation.context.lookup_field_problem).
    declared = DECLARED_LOOKUPS.set(_lookup_names(raw.get("lookups")))
    try:
        return _compile_policy(raw)
    finally:
        DECLARED_LOOKUPS.reset(declared)


def _compile_policy(raw: dict[str, Any]) -> Policy:
    compiler = _Compiler()
    lookups: Lookups | None = None
    if "lookups" in raw:
        # Loaded by a policy with lookups only: it builds a validator, 1.4 ms of a cold start.
        from allocation.lookups import compile_lookups  # noqa: PLC0415

        try:
            lookups = compile_lookups(raw["lookups"])
        except PolicyError as error:
            compiler.problems.extend(error.problems)
    for key in raw:
        if key not in TOP_LEVEL_FIELDS:
            known = ", ".join(sorted(TOP_LEVEL_FIELDS))
            compiler._problem(
                (key,), f"unknown field{did_you_mean(key, TOP_LEVEL_FIELDS)}; a policy has {known}"
            )
    schema = raw.get("$schema")
    if schema is not None and not isinstance(schema, str):
        compiler._problem(("$schema",), "must be a string")
    sticky = raw.get("sticky", False)
    if not isinstance(sticky, bool):
        compiler._problem(("sticky",), "must be a boolean (true or false)")
        sticky = False
    hubs = _hubs(raw.get("hubs", {}), compiler)

    root = _Parent(None, None, sticky)
    default = compiler.allocation(raw.get("default", {"strategy": "weighted"}), ("default",), root)
    enrollments: dict[str, Allocation] = {}
    raw_enrollments = raw.get("enrollments", {})
    if not isinstance(raw_enrollments, dict):
        compiler._problem(("enrollments",), "must be an object: enrollment ID -> allocation")
        raw_enrollments = {}
    for enrollment_id, raw_allocation in raw_enrollments.items():
        at: JsonPath = ("enrollments", enrollment_id)
        if not enrollment_id:
            compiler._problem(at, "an enrollment ID cannot be empty")
            continue
        if enrollment_id.lower() in enrollments:
            compiler._problem(at, "listed twice (enrollment IDs are case-insensitive in DPS)")
            continue
        compiled = compiler.allocation(raw_allocation, at, root)
        if compiled is not None:
            enrollments[enrollment_id.lower()] = compiled

    if compiler.problems or default is None:
        raise PolicyError(compiler.problems)
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return Policy(
        hubs=hubs,
        default=default,
        enrollments=enrollments,
        sticky=sticky,
        fingerprint=hashlib.sha256(canonical.encode()).hexdigest()[:16],
        strategies=frozenset(compiler.strategies),
        allocations=tuple(compiler.compiled[order] for order in sorted(compiler.compiled)),
        lookups=lookups,
    )


def _lookup_names(raw: Any) -> frozenset[str]:
    """The names a ``lookups`` section declares, for fields to be checked against while the
    rest of the policy compiles, even when a lookup itself has problems."""
    if not isinstance(raw, dict):
        return frozenset()
    return frozenset(
        name for name in raw if isinstance(name, str) and name.isascii() and name.isidentifier()
    )


def _hubs(raw: Any, compiler: _Compiler) -> dict[str, HubSettings]:
    if not isinstance(raw, dict):
        compiler._problem(("hubs",), "must be an object: host name -> hub")
        return {}
    hubs: dict[str, HubSettings] = {}
    for name, raw_hub in raw.items():
        at: JsonPath = ("hubs", name)
        if not is_host_name(name):
            compiler._problem(at, "must be an IoT hub host name such as 'my-hub.azure-devices.net'")
            continue
        if host_key(name) in hubs:
            compiler._problem(at, "listed twice (host names are case-insensitive)")
            continue
        if not isinstance(raw_hub, dict):
            compiler._problem(at, 'must be an object, e.g. {"weight": 2, "region": "westeurope"}')
            continue
        try:
            hub: HubDocument = HUB.validate_python(raw_hub)
        except ValidationError as error:
            compiler.problems.extend(problems_from(error, at, HUB.fields))
            continue
        hubs[host_key(name)] = HubSettings(
            hub["weight"], hub["region"], frozenset(hub["tags"]), hub["drain"]
        )
    return hubs


@functools.cache
def default_policy() -> Policy:
    """The built-in policy: DPS's evenly weighted distribution over linkedHubs, every weight 1."""
    return parse_policy(DEFAULT_POLICY_TEXT)
