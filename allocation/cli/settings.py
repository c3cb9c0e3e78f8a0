"""What the command-line tools share: ``local.settings.json``, the ``--policy`` option, and
``--lookup NAME=FILE`` for lookups answered offline."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Final

from allocation.cli import EXIT_FAILED, CommandError
from allocation.errors import PolicyError, PolicyUnavailable
from allocation.inventory import InventoryError, InventoryRows
from allocation.lookups import RowStore
from allocation.policy import Policy, parse_policy
from allocation.sources import APP_ROOT, LoadedPolicy, load_policy

LOCAL_SETTINGS: Final = APP_ROOT / "local.settings.json"


def apply_local_settings(
    path: Path = LOCAL_SETTINGS, environ: MutableMapping[str, str] | None = None
) -> list[str]:
    """Copy ``Values`` of local.settings.json into the environment, as ``func start`` does:
    a variable already set in the environment wins. Returns the names it set."""
    env = os.environ if environ is None else environ
    if not path.is_file():
        return []
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot read {path}: {error}") from None
    values = document.get("Values", {}) if isinstance(document, dict) else {}
    if not isinstance(values, dict):
        raise CommandError(f"{path}: 'Values' must be an object of settings")
    applied = []
    for name, value in values.items():
        if name in env or name.startswith("_comment") or not isinstance(value, (str, int, bool)):
            continue
        env[name] = str(value).lower() if isinstance(value, bool) else str(value)
        applied.append(name)
    return applied


def read_policy(path: str | None) -> LoadedPolicy:
    """The policy in ``path``, or (without one) the policy the webhook would load here.

    An invalid policy raises CommandError with exit code 1 and every problem on its own line.
    """
    if path is None:
        try:
            return load_policy()
        except PolicyUnavailable as error:
            raise CommandError(error.message, EXIT_FAILED) from None
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read the policy file {file}: {error}") from None
    try:
        return LoadedPolicy(parse_policy(text), "file", str(file))
    except PolicyError as error:
        lines = "\n".join(f"  {problem}" for problem in error.problems)
        raise CommandError(f"invalid policy {file}:\n{lines}", EXIT_FAILED) from None


# -- --lookup NAME=FILE: a lookup answered offline from a CSV inventory --------------------------


def add_lookup_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--lookup",
        action="append",
        default=[],
        metavar="NAME=FILE.csv",
        help=(
            "answer the policy's lookup NAME from a CSV inventory (PartitionKey,RowKey,"
            "<property>...) instead of its table; may be repeated"
        ),
    )


def with_offline_lookups(policy: Policy, options: Sequence[str]) -> Policy:
    """``policy`` with the lookups named by ``--lookup NAME=FILE`` read from those files."""
    if not options:
        return policy
    declared = sorted(policy.lookups.specs) if policy.lookups is not None else []
    stores: dict[str, RowStore] = {}
    for option in options:
        name, sep, file = option.partition("=")
        if not sep or not name or not file:
            raise CommandError(
                f"--lookup {option!r}: write NAME=FILE.csv, e.g. inventory=devices.csv"
            )
        if name not in declared:
            raise CommandError(
                f"--lookup {name}: the policy has no lookup '{name}' "
                f"(its lookups: {', '.join(declared) or 'none'})"
            )
        try:
            stores[name] = InventoryRows.from_csv(Path(file))
        except InventoryError as error:
            raise CommandError(str(error)) from None
    return policy.with_lookup_stores(stores)


def offline_lookups(
    loaded: LoadedPolicy, options: Sequence[str], strict: bool = True
) -> LoadedPolicy:
    """The policy with ``--lookup NAME=FILE`` answering its lookups; without ``strict``, a
    lookup the policy does not declare is left out rather than an error (a policy compared
    against may lack the new one's lookups)."""
    if not strict:
        declared = loaded.policy.lookups.specs if loaded.policy.lookups is not None else {}
        options = [option for option in options if option.partition("=")[0] in declared]
    return dataclasses.replace(loaded, policy=with_offline_lookups(loaded.policy, options))
