"""From a request context and a policy to a decision: the chosen hub and the trace of why.

The walk starts at the enrollment's allocation (or ``default``) with the linked hubs as
candidates. At each allocation its hub filter narrows the candidates, drain removes the hubs the
device must avoid, and its strategy either picks a hub, denies the device, or delegates to a
nested allocation, where the same happens again. Reprovisioning (policy.md, "Reprovisioning") is
decided where a hub would be chosen:

1. *never reprovision* (``updateHubAssignment: false``): the current hub, when it is linked;
2. ``sticky``: the current hub, when it is still a candidate and not drained for this device;
3. otherwise the strategy chooses, as for a new device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from allocation.candidates import Candidate
from allocation.context import RequestContext
from allocation.drain import undrained
from allocation.errors import Denied, NoEligibleHub, PolicyUnavailable
from allocation.policy import Policy
from allocation.strategies.base import Allocation, Delegate, Deny, Pick

Reason = Literal["allocated", "sticky", "never-reprovision"]

NO_EVIDENCE: Mapping[str, Any] = MappingProxyType({})


# NamedTuples: immutable, and made for every request at a third of a frozen dataclass's cost.
class Step(NamedTuple):
    """One allocation the device went through."""

    allocation: str  # JSON path of the allocation in the policy
    strategy: str
    received: tuple[Candidate, ...]  # the candidates as the step received them
    after_filter: tuple[Candidate, ...]  # after its hub filter
    after_drain: tuple[Candidate, ...]  # after drain: what the strategy chose from
    outcome: str  # the hub, 'deny', or the step it delegated to
    evidence: Mapping[str, Any] = NO_EVIDENCE

    @property
    def candidates(self) -> tuple[str, ...]:
        return _names(self.received)

    @property
    def filtered(self) -> tuple[str, ...]:
        return _names(self.after_filter)

    @property
    def eligible(self) -> tuple[str, ...]:
        return _names(self.after_drain)


class Decision(NamedTuple):
    hub: Candidate
    allocation: Allocation  # the allocation that placed the device: its twin and payload apply
    reason: Reason
    steps: tuple[Step, ...]

    @property
    def path(self) -> str:
        """The strategy path, e.g. 'default > rules[0] "toasters" > weighted'."""
        parts = [self.steps[0].allocation] if self.steps else []
        parts.extend(step.outcome for step in self.steps[:-1])
        if self.steps:
            parts.append(self.steps[-1].strategy if self.reason == "allocated" else self.reason)
        return " > ".join(parts)


def decide(policy: Policy, context: RequestContext) -> Decision:
    _, allocation = policy.allocation_for(context.enrollment_id)
    linked = policy.candidates(context.linked_hubs)
    current = _find(linked, context.current_hub_key)
    keep_current = current is not None and not context.update_hub_assignment
    candidates = linked
    steps: list[Step] = []
    while True:
        filtered = allocation.hub_filter.narrow(candidates) if allocation.hub_filter else candidates
        eligible = undrained(context.registration_id, filtered) if policy.drains else filtered
        strategy = allocation.strategy

        seen = (allocation.path, strategy.name, candidates, filtered, eligible)

        if not strategy.routes:
            if keep_current:
                assert current is not None
                steps.append(Step(*seen, current.name, {"reprovisionPolicy": "never"}))
                return Decision(current, allocation, "never-reprovision", tuple(steps))
            sticky = _find(eligible, context.current_hub_key) if allocation.sticky else None
            if sticky is not None:
                steps.append(Step(*seen, sticky.name, {"sticky": True}))
                return Decision(sticky, allocation, "sticky", tuple(steps))
            if not eligible:
                steps.append(Step(*seen, "no eligible hub"))
                raise NoEligibleHub(_why_empty(allocation, candidates, filtered))

        outcome = strategy.choose(context, eligible)
        if isinstance(outcome, Pick):
            if outcome.hub not in eligible:
                # A plug-in (or a bug) must never place a device on a hub it may not use.
                raise PolicyUnavailable(
                    f"strategy '{strategy.name}' at {allocation.path} returned a hub that is "
                    "not one of its candidates",
                    "strategy_failed",
                )
            steps.append(Step(*seen, outcome.hub.name, outcome.evidence))
            return Decision(outcome.hub, allocation, "allocated", tuple(steps))
        if isinstance(outcome, Deny):
            steps.append(Step(*seen, "deny"))
            raise Denied(outcome.rule, [s.outcome for s in steps])
        if isinstance(outcome, Delegate):
            steps.append(Step(*seen, outcome.step, outcome.evidence))
            candidates = eligible
            allocation = outcome.allocation
            continue
        raise PolicyUnavailable(
            f"strategy '{strategy.name}' at {allocation.path} returned {type(outcome).__name__}, "
            "not a hub, a denial or a nested allocation",
            "strategy_failed",
        )


def _find(candidates: Sequence[Candidate], key: str | None) -> Candidate | None:
    if key is None:
        return None
    return next((c for c in candidates if c.key == key), None)


def _names(candidates: Sequence[Candidate]) -> tuple[str, ...]:
    return tuple(c.name for c in candidates)


def _why_empty(
    allocation: Allocation, candidates: Sequence[Candidate], filtered: Sequence[Candidate]
) -> str:
    if not candidates:
        return f"no candidate hubs reach {allocation.path}"
    if not filtered:
        return f"no linked hub matches the hub filter of {allocation.path}"
    return f"every candidate hub of {allocation.path} is drained for this device"
