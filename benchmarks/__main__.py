"""``python -m benchmarks``: every benchmark, each figure against a floor measured in the same run.

Prints one Markdown table (median, min and max over repeated runs after warm-up, the ratio to
the baseline, the target and whether it is met) and, with ``--json FILE``, writes the same as
JSON. ``--quick`` runs each benchmark briefly, to prove it still runs (CI); its figures are
too short to judge, so quick mode shows the targets without judging them. Benchmarks are not
tests: a missed target is reported, and the exit code stays 0; only a benchmark that breaks
exits 1.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Final

from benchmarks import cold_start, in_process, local_host, lookups, rules_scale, simulation
from benchmarks.report import Figure, Report, skipped

BENCHMARKS: Final[dict[str, Callable[[argparse.Namespace], list[Figure]]]] = {
    "in-process": lambda args: in_process.run(args.quick),
    "cold-start": lambda args: cold_start.run(args.quick),
    "local-host": lambda args: local_host.run(args.quick, install=args.install),
    "simulation": lambda args: simulation.run(args.quick) + simulation.run_phases(args.quick),
    "rules-scale": lambda args: rules_scale.run(args.quick),
    "lookups": lambda args: lookups.run(args.quick),
}


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure the webhook against floors measured in the same run (BENCHMARKS.md).",
    )
    command.add_argument(
        "--quick", action="store_true", help="short runs that only prove the benchmarks run (CI)"
    )
    command.add_argument(
        "--only",
        metavar="NAMES",
        type=_names,
        default=list(BENCHMARKS),
        help=f"comma-separated, of: {', '.join(BENCHMARKS)} (default: all)",
    )
    command.add_argument("--json", metavar="FILE", type=Path, help="also write the figures here")
    command.add_argument(
        "--no-install",
        dest="install",
        action="store_false",
        help="never apt-get install wrk (the local-host benchmark is then skipped without it)",
    )
    return command


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown or not names:
        choices = ", ".join(BENCHMARKS)
        raise argparse.ArgumentTypeError(
            f"unknown benchmark {', '.join(unknown) or '(none)'}; choose from {choices}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    report = Report("quick" if args.quick else "full", command)
    broken = False
    for name in args.only:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            report.add(BENCHMARKS[name](args))
        except Exception as error:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            report.add([skipped(name, f"{name}.failed", name, "s", f"FAILED: {error}")])
            broken = True
        print(f"  {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    report.finish()
    print(report.table())
    if report.notes():
        print("\nnotes:\n" + report.notes())
    if args.quick:
        print("\nquick mode: runs too short to judge; targets are shown, not judged.")
    elif report.missed:
        print("\nmissed: " + "; ".join(f"{f.label} ({f.id})" for f in report.missed))
    if args.json is not None:
        report.write_json(args.json)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
