"""``python -m allocation validate [FILE]``: does the policy load, and what is in it.

Without FILE it checks the policy the webhook would load here: ``ALLOCATION_POLICY``, else
``ALLOCATION_POLICY_BLOB``, else ``ALLOCATION_POLICY_FILE``, else the built-in default, after
``local.settings.json``. With ``--stats`` it adds, for each ``rules`` list, how many rules the
rule index (allocation.rule_index) names only when they may hold, and how many it checks for
every device: what a policy author needs to see why a policy is slow.

With ``--linked-hubs`` or ``--enrollment`` it also holds the policy against the hubs linked in
DPS (:mod:`allocation.linked_hubs`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from allocation import rule_index
from allocation.cli import EXIT_FAILED, EXIT_OK, CommandError
from allocation.cli.settings import apply_local_settings, read_policy
from allocation.hostnames import is_host_name
from allocation.linked_hubs import unmatched
from allocation.policy import Policy
from allocation.sources import POLICY_SETTING, LoadedPolicy
from allocation.strategies.base import Allocation, Delegate
from allocation.strategies.rules import Rules


def register(subcommands: Any) -> None:
    command: argparse.ArgumentParser = subcommands.add_parser(
        "validate",
        help="check a policy and summarise it",
        description=(
            "Load a policy as the webhook would and print a one-line summary, or every problem "
            "with its JSON path. Without FILE: the policy of this host's settings "
            f"({POLICY_SETTING}, ALLOCATION_POLICY_BLOB, ALLOCATION_POLICY_FILE, "
            "local.settings.json, else the "
            "built-in default)."
        ),
        epilog=(
            "exit codes: 0 the policy is valid; 1 it is not (every problem is listed on "
            "stderr), or it names hubs, tags or regions that no linked hub matches; 2 usage "
            "error, or FILE cannot be read"
        ),
    )
    command.add_argument("file", nargs="?", metavar="FILE", help="the policy file (JSON)")
    command.add_argument(
        "--stats",
        action="store_true",
        help="for each rules list: how many rules are indexed and how many always checked",
    )
    command.add_argument(
        "--linked-hubs",
        metavar="H1,H2,...",
        help=(
            "the host names of the IoT hubs linked in DPS: report every hub name, glob, tag or "
            "region of the policy that matches none of them"
        ),
    )
    command.add_argument(
        "--enrollment",
        metavar="FILE",
        help=(
            "an enrollment as 'az iot dps enrollment-group show' (or 'enrollment show') prints "
            "it: check the allocation that serves it against its iotHubs (or --linked-hubs, "
            "for an enrollment that lists none and so may use every linked hub)"
        ),
    )
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    apply_local_settings()
    linked_hubs = _host_names(args.linked_hubs) if args.linked_hubs is not None else None
    enrollment = _read_enrollment(args.enrollment) if args.enrollment is not None else None
    loaded = read_policy(args.file)
    if linked_hubs is not None or enrollment is not None:
        _check_linked_hubs(loaded, linked_hubs, enrollment, named=args.file is not None)
    print(summary(loaded, named=args.file is not None))
    if args.stats:
        print(stats(loaded.policy))
    return EXIT_OK


def stats(policy: Policy) -> str:
    """One line per rules list: how the rule index evaluates it."""
    lines = []
    for allocation, strategy in rules_lists(policy):
        counts = strategy.stats()
        if counts.uses_index:
            how = (
                f"{counts.indexed} indexed (checked only when the index names them), "
                f"{counts.always} always checked"
            )
        elif counts.rules < rule_index.MIN_RULES:
            how = f"checked in order (no index below {rule_index.MIN_RULES} rules)"
        else:
            how = "checked in order (no rule has a condition the index can use)"
        lines.append(f"  {allocation.path}: {_count(counts.rules, 'rule')}, {how}")
    if not lines:
        return "rules lists: none"
    return "rules lists:\n" + "\n".join(lines)


def rules_lists(policy: Policy) -> Iterator[tuple[Allocation, Rules]]:
    """Every allocation of the policy whose strategy is rules, in document order."""
    pending = [policy.default, *policy.enrollments.values()]
    while pending:
        allocation = pending.pop(0)
        strategy = allocation.strategy
        nested: list[Allocation] = []
        if isinstance(strategy, Rules):
            yield allocation, strategy
            outcomes = [rule.outcome for rule in strategy.rules] + [strategy.otherwise]
            nested = [o.allocation for o in outcomes if isinstance(o, Delegate)]
        fallback = getattr(strategy, "fallback", None)  # latency's
        if isinstance(fallback, Allocation):
            nested.append(fallback)
        pending[:0] = nested


class Enrollment:
    """What validate reads from an exported enrollment: its ID, hubs and allocation policy."""

    def __init__(self, path: str, document: dict[str, Any]) -> None:
        self.path = path
        identifier = document.get("enrollmentGroupId", document.get("registrationId"))
        if not isinstance(identifier, str) or not identifier:
            raise CommandError(
                f"{path}: not an enrollment: no 'enrollmentGroupId' (or 'registrationId' of an "
                "individual enrollment); export one with 'az iot dps enrollment-group show'"
            )
        self.id = identifier
        hubs = document.get("iotHubs")
        if hubs is None and isinstance(document.get("iotHubHostName"), str):
            hubs = [document["iotHubHostName"]]  # the older, single-hub field
        if hubs is not None and (
            not isinstance(hubs, list) or not all(isinstance(h, str) for h in hubs)
        ):
            raise CommandError(f"{path}: 'iotHubs' must be a list of host names")
        self.hubs: list[str] = hubs or []
        policy = document.get("allocationPolicy")
        self.allocation_policy = policy if isinstance(policy, str) else None


def _host_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise CommandError(
            "--linked-hubs: give at least one host name, e.g. my-hub.azure-devices.net"
        )
    for name in names:
        if not is_host_name(name):
            raise CommandError(
                f"--linked-hubs: '{name}' is not a host name such as my-hub.azure-devices.net"
            )
    return names


def _read_enrollment(path: str) -> Enrollment:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read the enrollment file {path}: {error}") from None
    except ValueError as error:
        raise CommandError(f"the enrollment file {path} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise CommandError(f"{path}: an enrollment is a JSON object")
    return Enrollment(path, document)


def _check_linked_hubs(
    loaded: LoadedPolicy,
    linked_hubs: list[str] | None,
    enrollment: Enrollment | None,
    named: bool,
) -> None:
    """Raise CommandError (exit 1) listing what matches no linked hub, if anything does."""
    hubs = linked_hubs if linked_hubs is not None else enrollment.hubs if enrollment else []
    if not hubs:
        raise CommandError(
            f"{enrollment.path if enrollment else '--enrollment'}: the enrollment lists no "
            "iotHubs, so it may use every hub linked to the DPS instance: name them with "
            "--linked-hubs"
        )
    scope = enrollment.id if enrollment is not None else None
    problems = [str(p) for p in unmatched(loaded.policy, hubs, scope)]
    if enrollment is not None and enrollment.allocation_policy not in (None, "custom"):
        problems.insert(
            0,
            f"{enrollment.path}: allocationPolicy is '{enrollment.allocation_policy}': DPS "
            "calls the webhook only for an enrollment whose allocationPolicy is 'custom'",
        )
    if problems:
        origin = loaded.location if named else describe_source(loaded)
        against = f"enrollment '{enrollment.id}'" if enrollment else "the linked hubs"
        lines = "\n".join(f"  {problem}" for problem in problems)
        raise CommandError(
            f"policy {origin} names hubs, tags or regions that no linked hub matches ({against}: "
            f"{', '.join(hubs)}):\n{lines}",
            EXIT_FAILED,
        )


def summary(loaded: LoadedPolicy, named: bool) -> str:
    """One line: what the policy holds and its fingerprint; where it came from, unless the
    user named the file."""
    policy = loaded.policy
    origin = "" if named else f"{describe_source(loaded)}, "
    lookups = (
        ""
        if policy.lookups is None
        else ", lookups: "
        + ", ".join(
            f"{name} (table {spec.table})" for name, spec in sorted(policy.lookups.specs.items())
        )
    )
    return (
        f"policy ok: {_count(len(policy.hubs), 'hub')}, "
        f"{_count(len(policy.enrollments), 'enrollment')}, "
        f"strategies: {', '.join(sorted(policy.strategies))}{lookups} "
        f"({origin}fingerprint {policy.fingerprint})"
    )


def describe_source(loaded: LoadedPolicy) -> str:
    """Where a policy came from, as the tools say it: 'file policy.json', ..."""
    if loaded.source == "file":
        return f"file {loaded.location}"
    if loaded.source == "blob":
        return f"blob {loaded.location}"
    if loaded.source == "setting":
        return f"app setting {POLICY_SETTING}"
    return "built-in default"


def source_document(loaded: LoadedPolicy) -> dict[str, Any]:
    """The same, and the fingerprint, for JSON output."""
    return {
        "source": loaded.source,
        "location": loaded.location,
        "fingerprint": loaded.policy.fingerprint,
    }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
