"""``python -m allocation explain REQUEST.json``: what the webhook answers, and why.

The request goes through :func:`allocation.webhook.handle`, the entry point every host calls,
so the status and response are exactly the webhook's. The trace comes from the decision behind
a 200: each allocation the device went through, its candidates before and after the hub filter
and drain, and the strategy's evidence. For weighted hashing it adds every eligible hub's weight
and score (:func:`allocation.rendezvous.scores`, the numbers the strategy compared). For each
``rules`` list the device went through (a denied device's too) it says how many rules were
checked and how many the rule index skipped (:meth:`allocation.strategies.rules.Rules.examine`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from allocation import rendezvous
from allocation.candidates import linked_candidates
from allocation.cli import EXIT_FAILED, EXIT_OK, CommandError
from allocation.cli.settings import (
    add_lookup_option,
    apply_local_settings,
    read_policy,
    with_offline_lookups,
)
from allocation.cli.validate import describe_source, source_document
from allocation.context import LookupRows, RequestContext, context_from_request
from allocation.decision import Decision, Step
from allocation.errors import AllocationError
from allocation.hostnames import host_key
from allocation.policy import Policy
from allocation.requests import parse_request
from allocation.response import twin_applies
from allocation.simulation.text import aligned
from allocation.sources import LoadedPolicy
from allocation.strategies.base import Delegate, Outcome
from allocation.strategies.rules import Rules
from allocation.webhook import WebhookResponse, handle


def register(subcommands: Any) -> None:
    command: argparse.ArgumentParser = subcommands.add_parser(
        "explain",
        help="show what the webhook answers to a request, and why",
        description=(
            "Run a DPS allocation request (a JSON file as DPS posts it, such as "
            "tests/fixtures/group-symmetric-key-initial.json) through the webhook and print "
            "the status, the response and the decision trace: the enrollment matched, the "
            "rule path, the candidate hubs before and after hub filters and drain, the "
            "strategy's evidence (weights and scores, latency figures), and whether DPS "
            "applies the initialTwin."
        ),
        epilog=(
            "exit codes: 0 the webhook answers 200; 1 it answers anything else (400, 403, "
            "413, 503), or the policy is invalid; 2 usage error, or a file cannot be read"
        ),
    )
    command.add_argument(
        "request", metavar="REQUEST.json", help="the request body; '-' reads standard input"
    )
    command.add_argument(
        "--policy",
        metavar="FILE",
        help="the policy file (default: the policy of this host's settings)",
    )
    add_lookup_option(command)
    command.add_argument("--json", action="store_true", help="print one JSON document")
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    apply_local_settings()
    body = read_request(args.request)
    loaded = read_policy(args.policy)
    offline = with_offline_lookups(loaded.policy, args.lookup)
    response = handle(body, offline, log=_no_line)
    explanation = explain(
        body, response, loaded, frozenset(o.partition("=")[0] for o in args.lookup)
    )
    if args.json:
        print(json.dumps(explanation, indent=2))
    else:
        print(render_text(explanation, response, loaded))
    return EXIT_OK if response.status == 200 else EXIT_FAILED


def read_request(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as error:
        raise CommandError(
            f"cannot read the request file {name}: {error.strerror or error}"
        ) from None


def _no_line(level: int, line: str) -> None:
    # handle() logs one line per answer; the explanation says all of it, and more. Strategies
    # log on their own loggers (a latency hub region missing from the table), and a defect's
    # traceback goes to the "allocation" logger itself: those still show.
    return None


# -- the explanation, as one JSON-serialisable document -------------------------------------


def explain(
    body: bytes,
    response: WebhookResponse,
    loaded: LoadedPolicy,
    offline: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    policy = loaded.policy
    context = _context(body)
    decision = response.decision
    explanation: dict[str, Any] = {
        "status": response.status,
        "response": response.body,
        "policy": source_document(loaded),
    }
    if "Retry-After" in response.headers:
        explanation["retryAfter"] = int(response.headers["Retry-After"])
    if context is not None:
        matched, _ = policy.allocation_for(context.enrollment_id)
        explanation["device"] = {
            "registrationId": context.registration_id,
            "enrollment": context.enrollment_id,
            "enrollmentType": context.enrollment_type,
            "allocation": matched,
            "reprovision": context.reprovision,
            "currentHub": context.current_hub,
        }
    if decision is not None:
        explanation["hub"] = decision.hub.name
        explanation["path"] = decision.path
        explanation["reason"] = decision.reason
    trace = [] if decision is None or context is None else _trace(decision, context, policy)
    explanation["trace"] = trace
    explanation["rules"] = [] if context is None else _rules_lists(context, policy, decision)
    applies, why = _initial_twin(response, context, decision)
    explanation["initialTwin"] = {"applies": applies, "why": why}
    if response.lookups is not None and response.lookups.outcomes:
        explanation["lookups"] = _lookups(response.lookups, offline)
    return explanation


def _lookups(session: LookupRows, offline: frozenset[str]) -> dict[str, Any]:
    """What each lookup that ran found, and whether the store or the cache answered."""
    return {
        name: {
            "outcome": outcome,
            "from": "cache"
            if outcome.startswith("cached")
            else ("file" if name in offline else "store"),
            "row": session.rows.get(name),
        }
        for name, outcome in session.outcomes.items()
    }


def _answered_by(outcome: str, offline: bool) -> str:
    if outcome.startswith("cached"):
        return "cache"
    return "file" if offline else "store"


def _context(body: bytes) -> RequestContext | None:
    """The request as the policy saw it; None for a body the webhook refused to read."""
    try:
        return context_from_request(parse_request(body))
    except AllocationError:
        return None


def _trace(decision: Decision, context: RequestContext, policy: Policy) -> list[dict[str, Any]]:
    trace = []
    for step in decision.steps:
        hubs = linked_candidates(step.candidates, policy.hubs)
        entry: dict[str, Any] = {
            "allocation": step.allocation,
            "strategy": step.strategy,
            "candidates": list(step.candidates),
            "filtered": list(step.filtered),
            "eligible": list(step.eligible),
            "outcome": step.outcome,
            "evidence": dict(step.evidence),
            "hubs": {hub.name: {"weight": hub.weight, "drain": hub.settings.drain} for hub in hubs},
        }
        hashed = _hashed(step, context)
        if hashed is not None:
            key, among = hashed
            entry["scores"] = rendezvous.scores(key, [hub for hub in hubs if hub.name in among])
        trace.append(entry)
    return trace


def _rules_lists(
    context: RequestContext, policy: Policy, decision: Decision | None
) -> list[dict[str, Any]]:
    """Each rules list on the device's way, in order: its rules checked, and those skipped.

    The way is walked again from the enrollment's allocation: a rules list chooses from the
    request alone, so it is asked again; another strategy that delegated (latency's fallback)
    is asked again with the candidates its step had. A denied device has no steps: its way
    ends at the first strategy other than rules."""
    # Only the steps that delegated: the last one picked a hub, and need not be asked again.
    steps = {} if decision is None else {step.allocation: step for step in decision.steps[:-1]}
    _, allocation = policy.allocation_for(context.enrollment_id)
    lists: list[dict[str, Any]] = []
    while True:
        strategy = allocation.strategy
        outcome: Outcome
        if isinstance(strategy, Rules):
            seen = strategy.examine(context)
            outcome = (
                strategy.otherwise if seen.matched is None else strategy.rules[seen.matched].outcome
            )
            lists.append(
                {
                    "allocation": allocation.path,
                    "rules": seen.rules,
                    "indexed": strategy.index is not None,
                    "checked": seen.checked,
                    "skipped": seen.skipped,
                    "decidedBy": outcome.step if isinstance(outcome, Delegate) else outcome.rule,
                }
            )
        else:
            step = steps.get(allocation.path)
            if step is None:
                break
            outcome = strategy.choose(context, step.after_drain)
        if not isinstance(outcome, Delegate):
            break
        allocation = outcome.allocation
    return lists


def _hashed(step: Step, context: RequestContext) -> tuple[str, Sequence[str]] | None:
    """The key and the hubs weighted rendezvous hashing chose among in this step, if it did."""
    evidence = step.evidence
    if step.strategy == "weighted" and isinstance(evidence.get("key"), str):
        return evidence["key"], step.eligible
    tied = evidence.get("tied")
    if step.strategy == "latency" and isinstance(tied, list) and len(tied) > 1:
        # The latency strategy splits a tie by hashing the registration ID over the tied hubs.
        return context.registration_id, tied
    return None


def _initial_twin(
    response: WebhookResponse, context: RequestContext | None, decision: Decision | None
) -> tuple[bool, str]:
    """Whether the answer carries an initialTwin that DPS applies, and why (not)."""
    if decision is None or context is None:
        return False, f"no hub is assigned (status {response.status}), so there is no twin"
    hub = decision.hub.name
    case = _twin_case(context, hub)
    if not twin_applies(context, hub):
        return False, f"{case}: DPS ignores any initialTwin, so none is returned"
    if decision.allocation.initial_twin is None:
        return False, (
            f"{case}, where DPS would apply one, but {decision.allocation.path} sets no "
            "initialTwin: DPS applies the enrollment's own initial twin"
        )
    return True, f"{case}: DPS applies the initialTwin returned"


def _twin_case(context: RequestContext, hub: str) -> str:
    if not context.reprovision:
        return "initial assignment"
    if not context.update_hub_assignment:
        return "reprovisioning under 'never reprovision'"
    if context.current_hub_key == host_key(hub):
        return "reprovisioning to the device's current hub"
    if context.migrate_device_data:
        return "reprovisioning to a new hub under 'reprovision and migrate current state'"
    return "reprovisioning to a new hub under 'reprovision and reset to initial state'"


# -- text --------------------------------------------------------------------------------------


def render_text(
    explanation: Mapping[str, Any], response: WebhookResponse, loaded: LoadedPolicy
) -> str:
    lines = [f"status {response.status}"]
    if "retryAfter" in explanation:
        lines.append(f"Retry-After: {explanation['retryAfter']}")
    lines.append(json.dumps(response.body, indent=2))
    lines.append("")
    lines.append(
        f"policy       {describe_source(loaded)} (fingerprint {loaded.policy.fingerprint})"
    )
    device = explanation.get("device")
    if device is not None:
        lines.append(
            f"device       {_quote(device['registrationId'])}, {device['enrollmentType']} "
            f"enrollment {_quote(device['enrollment'])}: "
            + (
                "not listed in enrollments, so default"
                if device["allocation"] == "default"
                else device["allocation"]
            )
        )
        lines.append(
            f"             reprovisioning from {device['currentHub']}"
            if device["reprovision"]
            else "             initial assignment"
        )
    if "path" in explanation:
        lines.append(
            f"decision     {explanation['path']} -> {explanation['hub']} ({explanation['reason']})"
        )
    for name, found in explanation.get("lookups", {}).items():
        row = found["row"]
        lines.append(
            f"lookup       {name}: {found['outcome']} (from the {found['from']}): "
            + ("no row" if row is None else json.dumps(row, ensure_ascii=False))
        )
    if response.status == 403:
        lines.append(f"denied by    {response.body.get('rule')}")
    for listed in explanation["rules"]:
        lines.append(f"rules        {_rules_text(listed)}")
    for number, step in enumerate(explanation["trace"], 1):
        lines.append("")
        lines.extend(_step_text(number, step))
    twin = explanation["initialTwin"]
    lines.append("")
    lines.append(f"initialTwin  {'applied' if twin['applies'] else 'not applied'}: {twin['why']}")
    return "\n".join(lines)


def _rules_text(listed: Mapping[str, Any]) -> str:
    how = (
        f"the index skipped {listed['skipped']}, {listed['checked']} checked"
        if listed["indexed"]
        else f"no index, {listed['checked']} checked in order"
    )
    return (
        f"{listed['allocation']}: {_count(listed['rules'], 'rule')}, {how}; "
        f"decided by {listed['decidedBy']}"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _step_text(number: int, step: Mapping[str, Any]) -> list[str]:
    evidence = dict(step["evidence"])
    lines = [
        f"{number}. {step['allocation']}: {step['strategy']} -> {step['outcome']}",
        f"   candidates {len(step['candidates'])}, after hub filter {len(step['filtered'])}, "
        f"after drain {len(step['eligible'])}",
    ]
    scores: Mapping[str, float] = step.get("scores", {})
    latency: Mapping[str, float] = evidence.pop("latencyMs", {})
    tied = evidence.pop("tied", None)
    if "key" in evidence and scores:
        lines.append(f"   hashed key {_quote(evidence.pop('key'))}")
    elif scores:
        lines.append("   the tie is split by weighted hashing of the registration ID")
    # Where reprovisioning kept the device's hub, the strategy did not run (allocation.decision).
    if evidence.pop("sticky", None) is True:
        lines.append("   kept the current hub: sticky, and it is still a candidate, not drained")
    if evidence.pop("reprovisionPolicy", None) == "never":
        lines.append("   kept the current hub: the enrollment says never reprovision")
    kind = evidence.pop("evidence", None)
    if kind is not None or evidence:
        described = ", ".join(f"{name} {_quote(value)}" for name, value in evidence.items())
        if kind is None:
            lines.append(f"   evidence: {described}")
        else:
            lines.append(f"   evidence: {kind}" + (f" ({described})" if described else ""))

    header = ["hub", "weight", "drain", "status"]
    if latency:
        header.append("ms")
    if scores:
        header.append("score")
    rows = [header]
    for hub in step["candidates"]:
        settings = step["hubs"][hub]
        row = [
            hub,
            str(settings["weight"]),
            f"{settings['drain']:g}%" if settings["drain"] else "",
            _status(hub, step),
        ]
        if latency:
            ms = latency.get(hub)
            row.append("" if ms is None else f"{ms:.1f}")
        if scores:
            score = scores.get(hub)
            row.append("" if score is None else f"{score:.6f}")
        if hub == step["outcome"]:
            row.append("<- chosen")
        elif tied is not None and hub in tied:
            row.append("tied")
        rows.append(row)
    numbers = {header.index(name) for name in ("weight", "drain", "ms", "score") if name in header}
    left = set(range(len(header) + 1)) - numbers
    lines.extend("   " + line for line in aligned(rows, left))
    return lines


def _status(hub: str, step: Mapping[str, Any]) -> str:
    if hub not in step["filtered"]:
        return "filtered out"
    if hub not in step["eligible"]:
        return "drained"
    return "eligible"


def _quote(value: Any) -> str:
    # ASCII escapes: a device-controlled string may hold anything, even a lone surrogate.
    return json.dumps(value)
