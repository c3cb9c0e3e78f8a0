"""``python -m allocation`` (installed: ``dps-allocation``): the local host and the operator's
tools, on the core entry point.

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
from pathlib import Path
from typing import Final

COMMANDS: Final = ("serve", "explain", "validate", "simulate", "schema", "publish", "inventory")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

# The console script that `pip install -e .` puts on PATH (pyproject.toml, [project.scripts]).
SCRIPT: Final = "dps-allocation"


class CommandError(Exception):
    """A failure to report on stderr as one line, with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=SCRIPT if Path(sys.argv[0]).stem == SCRIPT else "python -m allocation",
        description="DPS custom allocation webhook: local host and policy tools.",
    )
    subcommands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"allocation.cli.{name}").register(subcommands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    try:
        top = parser()
    except ModuleNotFoundError as error:
        return _missing_dependency(error)
    args = top.parse_args(argv)
    try:
        code: int = args.run(args)
    except ModuleNotFoundError as error:
        return _missing_dependency(error)
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


def _missing_dependency(error: ModuleNotFoundError) -> int:
    """A dependency that is not installed, said in one line with the command that installs it.

    Run by a Python outside the project's virtual environment, the first import of pydantic-core
    (say) fails; a traceback would hide the one thing to do.
    """
    missing = (error.name or "").partition(".")[0]
    if not missing or missing == "allocation":
        raise error  # the package itself is broken: the traceback is the useful answer
    requirements = Path(__file__).resolve().parents[2] / "requirements-local.txt"
    print(
        f"error: the module '{missing}' is not installed for {sys.executable}: activate the "
        "project's virtual environment, or install the dependencies into this one: "
        f"python -m pip install -r {requirements}",
        file=sys.stderr,
    )
    return EXIT_USAGE
