"""``python -m allocation validate [FILE]``: does the policy load, and what is in it.

Without FILE it checks the policy the webhook would load here: ``ALLOCATION_POLICY``, else
``ALLOCATION_POLICY_FILE``, else the built-in default, after ``local.settings.json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from allocation.cli import EXIT_OK
from allocation.cli.settings import apply_local_settings, read_policy
from allocation.policy_sources import POLICY_SETTING, LoadedPolicy


def register(subcommands: Any) -> None:
    command: argparse.ArgumentParser = subcommands.add_parser(
        "validate",
        help="check a policy and summarise it",
        description=(
            "Load a policy as the webhook would and print a one-line summary, or every problem "
            "with its JSON path. Without FILE: the policy of this host's settings "
            f"({POLICY_SETTING}, ALLOCATION_POLICY_FILE, local.settings.json, else the "
            "built-in default)."
        ),
        epilog=(
            "exit codes: 0 the policy is valid; 1 it is not (every problem is listed on "
            "stderr); 2 usage error, or FILE cannot be read"
        ),
    )
    command.add_argument("file", nargs="?", metavar="FILE", help="the policy file (JSON)")
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    apply_local_settings()
    loaded = read_policy(args.file)
    print(summary(loaded, named=args.file is not None))
    return EXIT_OK


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
