"""``python -m allocation validate [FILE]``: does the policy load, and what is in it.

Without FILE it checks the policy the webhook would load here: ``ALLOCATION_POLICY``, else
``ALLOCATION_POLICY_BLOB``, else ``ALLOCATION_POLICY_FILE``, else the built-in default, after
``local.settings.json``. With ``--stats`` it adds, for each ``rules`` list, how many rules the
rule index (allocation.rule_index) names only when they may hold, and how many it checks for
every device: what a policy author needs to see why a policy is slow.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from allocation import rule_index
from allocation.cli import EXIT_OK
from allocation.cli.settings import apply_local_settings, read_policy
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
            "stderr); 2 usage error, or FILE cannot be read"
        ),
    )
    command.add_argument("file", nargs="?", metavar="FILE", help="the policy file (JSON)")
    command.add_argument(
        "--stats",
        action="store_true",
        help="for each rules list: how many rules are indexed and how many always checked",
    )
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    apply_local_settings()
    loaded = read_policy(args.file)
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
