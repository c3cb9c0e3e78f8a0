"""The strategy protocol: what every strategy, built-in or plug-in, receives and returns.

A strategy is built once, when the policy loads, from its options; it then answers
:meth:`Strategy.choose` for each request with one :data:`Outcome`:

- :class:`Pick`: this candidate hub (it must be one of the candidates it was given);
- :class:`Deny`: refuse the device (HTTP 403);
- :class:`Delegate`: hand the device to a nested allocation (rules, a fallback), whose own hub
  filter, twin, payload and strategy then apply.

Adding a strategy means one new module with a ``build`` function and one line in
``allocation/strategies/__init__.py``.

:class:`Allocation`, the compiled node of a policy, lives here too: an allocation holds a
strategy and a strategy can delegate to an allocation, so the two types are defined together,
below the policy compiler (allocation.policy) that builds them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from allocation.candidates import Candidate, HubFilter
from allocation.context import RequestContext
from allocation.paths import JsonPath
from allocation.templates import JsonTemplate


@dataclass(frozen=True)
class Pick:
    hub: Candidate
    # What decided, for the decision trace (scores, measurements, ...); JSON-serialisable.
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Deny:
    rule: str


@dataclass(frozen=True)
class Delegate:
    allocation: Allocation
    # How the decision reads in the trace, e.g. 'rules[0] "toasters"'.
    step: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


Outcome = Pick | Deny | Delegate


class Strategy(Protocol):
    # The name shown in the decision trace.
    @property
    def name(self) -> str: ...

    # True for a strategy that only routes to nested allocations (rules): sticky and *never
    # reprovision* are decided where a hub is chosen, not where the device is routed.
    @property
    def routes(self) -> bool: ...

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Outcome: ...


@dataclass(frozen=True)
class Allocation:
    """One allocation of the policy: where it sits, which hubs it allows, and how it chooses."""

    path: str  # its JSON path in the policy, e.g. 'enrollments["contoso"].rules[0].then'
    strategy: Strategy
    hub_filter: HubFilter | None
    # Already merged over every enclosing allocation's; None where nothing is configured.
    initial_twin: JsonTemplate | None
    payload: JsonTemplate | None
    # Already resolved: this allocation's own setting, else its parent's, else the policy's.
    sticky: bool
    # The merged raw documents, for nested allocations to merge over.
    raw_initial_twin: Mapping[str, Any] | None = field(default=None, repr=False)
    raw_payload: Mapping[str, Any] | None = field(default=None, repr=False)


# Compiles a nested allocation found in a strategy's options, at its JSON path.
CompileNested = Callable[[Any, JsonPath], Allocation]


class NestedAllocationInvalid(Exception):
    """Raised by CompileNested for a nested allocation with problems.

    The problems are already recorded by the policy compiler: a strategy may catch this to go
    on checking its other options (so one load reports everything), then let it propagate.
    """


class StrategyBuilder(Protocol):
    def __call__(
        self, options: Mapping[str, Any], at: JsonPath, nested: CompileNested
    ) -> Strategy: ...
