"""``python -m allocation``: the local host and the operator's tools, on the core entry point.

Each command lives in its own module with ``register(subcommands)``, which adds its parser and
sets ``run``, a function of the parsed arguments that returns the exit code. Errors go to
stderr as one readable message, never a traceback.

Exit codes: 0 success; 1 the thing checked is bad (an invalid policy, a request that is not
allocated); 2 usage errors and files that cannot be read; publish adds 3, a lost race.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Final

COMMANDS: Final = ("serve", "explain", "validate", "simulate", "schema", "publish", "inventory")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


class CommandError(Exception):
    """A failure to report on stderr as one line, with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m allocation",
        description="DPS custom allocation webhook: local host and policy tools.",
    )
    subcommands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"allocation.cli.{name}").register(subcommands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    return code
