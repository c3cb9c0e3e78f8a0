"""``python -m allocation schema``: print the policy's JSON Schema.

The repository keeps the output as ``policy.schema.json`` (``python -m allocation schema >
policy.schema.json``); a test fails when the two differ.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from allocation.cli import EXIT_OK
from allocation.policy_schema import policy_schema


def schema_text() -> str:
    """The schema as the repository keeps it: 2-space indent, a trailing newline."""
    return json.dumps(policy_schema(), indent=2) + "\n"


def register(subcommands: Any) -> None:
    command: argparse.ArgumentParser = subcommands.add_parser(
        "schema",
        help="print the policy's JSON Schema",
        description=(
            "Print the JSON Schema (draft 2020-12) of allocation policies, as kept in "
            "policy.schema.json. Point a policy at it with "
            '"$schema": "./policy.schema.json" and editors validate and complete it.'
        ),
        epilog="exit codes: 0 printed; 2 usage error",
    )
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(schema_text(), end="")
    return EXIT_OK
