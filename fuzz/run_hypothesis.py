"""The long hypothesis run over hostile requests.

    python -m fuzz.run_hypothesis --examples 100000 [--seed N]

Draws cases from every family of fuzz.hostile, answers each under every fuzzing policy
(fuzz.policies) with the invariants checked (fuzz.invariants), and under the built-in policy
with the status the case expects. Prints a progress line every 10,000 examples and, at the end,
one JSON object: examples by family, answers by status for each policy, the slowest answer
(after the retry a call over budget gets, and at the first try), the largest share of its
budget an answer took, the longest garbage-collector pause. Exit status 0: no violation; 1: a
violation, printed after hypothesis has shrunk it.

The examples run in chunks of 10,000, each a fresh hypothesis run: hypothesis keeps what it
learns about every example, and one run of 100,000 grows to 700 MB, whose full collections
stall the process for seconds, in whatever call is being timed.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from hypothesis import given, seed, settings

from allocation.webhook import handle
from fuzz import invariants
from fuzz.bodies import seed_bodies
from fuzz.hostile import Case, check_case, hostile_cases
from fuzz.invariants import InvariantViolation, Tally
from fuzz.policies import POLICIES

CHUNK = 10_000


class GcPauses:
    """The longest collection of the run (gc.callbacks)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.longest = max(self.longest, time.perf_counter() - self._started)
        self.full += info["generation"] == 2


def run(examples: int, random_seed: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run ``examples`` hostile cases; raises InvariantViolation on the (shrunk) first failure."""
    tallies = {name: Tally() for name in POLICIES}
    kinds: Counter[str] = Counter()
    started = time.monotonic()

    def one(case: Case) -> None:
        kinds[case.kind] += 1
        check_case(case, tallies)

    for body in seed_bodies().values():  # warm-up: first imports, the policies' caches
        for policy in POLICIES.values():
            handle(body, policy)
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    try:
        for chunk, first in enumerate(range(0, examples, CHUNK)):
            size = min(CHUNK, examples - first)
            test = settings(settings.get_profile("fuzz-long"), max_examples=size)(
                given(hostile_cases)(one)
            )
            if random_seed is not None:
                test = seed(random_seed + chunk)(test)
            test()
            if progress:
                slowest = max(t.max_seconds for t in tallies.values()) * 1000
                print(
                    f"{sum(kinds.values())} examples, {time.monotonic() - started:.0f} s, "
                    f"slowest {slowest:.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        gc.callbacks.remove(pauses)
    return {
        "examples": sum(kinds.values()),
        "seconds": round(time.monotonic() - started, 1),
        "families": dict(sorted(kinds.items())),
        "policies": {name: tally.summary() for name, tally in tallies.items()},
        "budget": {
            "ratio_to_json_loads": invariants.RATIO_BUDGET,
            "allowance_ms": invariants.ALLOWANCE_SECONDS * 1000,
        },
        "gc": {
            "longest_pause_ms": round(pauses.longest * 1000, 3),
            "full_collections": pauses.full,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run_hypothesis", description=__doc__)
    parser.add_argument("--examples", type=int, default=100_000, help="default 100000")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default random)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    # Refusals are logged at WARNING; only a defect's traceback (ERROR) is worth printing here.
    logging.getLogger("allocation").setLevel(logging.ERROR)
    try:
        summary = run(args.examples, args.seed, progress=not args.quiet)
    except InvariantViolation as violation:
        print(f"INVARIANT VIOLATED: {violation}", file=sys.stderr)
        return 1
    except Exception as failure:  # hypothesis's own, e.g. a failure that did not reproduce
        print(f"FAILED: {type(failure).__name__}: {failure}", file=sys.stderr)
        for inner in getattr(failure, "exceptions", ()):
            print(f"  {type(inner).__name__}: {inner}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
