"""A policy held against the hubs really linked in DPS: every name, glob, tag or region that
matches none of them.

A policy is valid on its own whatever its hub names say; a misspelt one only shows when a device
registers, as a 503. ``validate --linked-hubs`` (or ``--enrollment``) runs this check so the
mistake shows on the operator's machine instead, with the closest real name where there is one.
"""

from __future__ import annotations

from collections.abc import Sequence

from allocation.candidates import (
    Candidate,
    HubSelector,
    NameSelector,
    RegionSelector,
    TagSelector,
    linked_candidates,
)
from allocation.errors import Problem
from allocation.hostnames import host_key
from allocation.paths import format_path
from allocation.policy import Policy
from allocation.strategies.base import Allocation
from allocation.strategies.static import Static
from allocation.suggestions import closest_host, did_you_mean


def unmatched(
    policy: Policy, linked_hubs: Sequence[str], enrollment_id: str | None = None
) -> list[Problem]:
    """What in the policy matches no linked hub, at its JSON path.

    Without ``enrollment_id`` the hubs are all the DPS instance links, and the whole policy is
    checked, its top-level ``hubs`` included. With one, they are that enrollment's hubs, and
    only the allocation that serves it is checked (its nested allocations included): the
    top-level ``hubs`` may list hubs of other enrollments.
    """
    candidates = linked_candidates(linked_hubs, policy.hubs)
    problems: list[Problem] = []
    if enrollment_id is None:
        scope = policy.allocations
        linked = {c.key for c in candidates}
        for name in policy.hubs:
            if name not in linked:
                at = format_path(("hubs", name))
                problems.append(Problem(at, _not_linked(name, candidates)))
    else:
        root = policy.allocation_for(enrollment_id)[1].path
        scope = tuple(a for a in policy.allocations if _within(a.path, root))
    for allocation in scope:
        problems.extend(_allocation_problems(allocation, candidates))
    return problems


def _allocation_problems(allocation: Allocation, candidates: Sequence[Candidate]) -> list[Problem]:
    problems = []
    if allocation.hub_filter is not None:
        for index, selector in enumerate(allocation.hub_filter.selectors):
            if not any(selector.matches(hub) for hub in candidates):
                at = f"{allocation.path}.hubs[{index}]"
                problems.append(Problem(at, _no_match(selector, candidates)))
    strategy = allocation.strategy
    # A templated static hub ('{lookup.inventory.hub}') is known only per device: not checked.
    static_hub = strategy.selector if isinstance(strategy, Static) else None
    if static_hub is not None and not any(static_hub.matches(c) for c in candidates):
        problems.append(Problem(f"{allocation.path}.hub", _no_match(static_hub, candidates)))
    return problems


def _no_match(selector: HubSelector, candidates: Sequence[Candidate]) -> str:
    if isinstance(selector, TagSelector):
        tags = sorted({tag for hub in candidates for tag in hub.settings.tags})
        return f"no linked hub has the tag '{selector.tag}'{did_you_mean(selector.tag, tags)}"
    if isinstance(selector, RegionSelector):
        regions = sorted({hub.region for hub in candidates if hub.region is not None})
        return (
            f"no linked hub is in the region '{selector.region}'"
            f"{did_you_mean(selector.region, regions)}"
        )
    if isinstance(selector, NameSelector) and not any(c in selector.pattern for c in "*?["):
        return _not_linked(selector.pattern, candidates)
    return f"'{selector.describe()}' matches no linked hub"


def _not_linked(name: str, candidates: Sequence[Candidate]) -> str:
    match = closest_host(host_key(name), [hub.name for hub in candidates])
    hint = f" (did you mean '{match}'?)" if match is not None else ""
    return f"'{name}' is not a linked hub{hint}"


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith((f"{root}.", f"{root}["))
