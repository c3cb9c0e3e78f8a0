"""The strategy protocol: what every strategy, built-in or plug-in, receives and returns.

A strategy is built once, when the policy loads, from its options; it then answers
:meth:`Strategy.choose` for each request with one :data:`Outcome`:

- :class:`Pick`: this candidate hub (it must be one of the candidates it was given);
- :class:`Deny`: refuse the device (HTTP 403);
- :class:`Delegate`: hand the device to a nested allocation (rules, a fallback), whose own hub
  filter, twin, payload and strategy then apply.

Adding a strategy means one new module with a ``build`` function and one line in
``allocation/strategies/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from allocation.candidates import Candidate
from allocation.context import RequestContext
from allocation.paths import JsonPath

if TYPE_CHECKING:
    from allocation.policy import Allocation


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


# Compiles a nested allocation found in a strategy's options, at its JSON path.
CompileNested = Callable[[Any, JsonPath], "Allocation"]


class NestedAllocationInvalid(Exception):
    """Raised by CompileNested for a nested allocation with problems.

    The problems are already recorded by the policy compiler: a strategy may catch this to go
    on checking its other options (so one load reports everything), then let it propagate.
    """


class StrategyBuilder(Protocol):
    def __call__(
        self, options: Mapping[str, Any], at: JsonPath, nested: CompileNested
    ) -> Strategy: ...
