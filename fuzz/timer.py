"""Timing verdicts for the atheris harness, from a process that is not instrumented.

atheris instruments the allocation package for coverage, which makes its Python loops several
times slower: a 10,000-key payload that is answered in 2 ms takes 100 ms instrumented. So the
harness times every call in process, and any call far over its budget is timed again here, in a
worker process running the same code uninstrumented, with its budget measured here too: only
that time decides invariant 4 (fuzz/invariants.py).

Protocol (stdin/stdout of ``python -m fuzz.timer``): the parent writes ``<policy> <length>\\n``
and the body; the worker answers ``<seconds> <budget>\\n`` (fuzz.invariants.best_of: the best
of several calls, and the budget from json.loads timed in turns with them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import IO

from fuzz.invariants import best_of, timed
from fuzz.policies import POLICIES

ROOT = Path(__file__).resolve().parents[1]


class UninstrumentedTimer:
    """A worker process, started on first use and ended with the parent."""

    def __init__(self) -> None:
        self._worker: subprocess.Popen[bytes] | None = None

    def measure(self, policy: str, body: bytes) -> tuple[float, float]:
        """Uninstrumented: the best of several calls, and the body's budget, in seconds."""
        if self._worker is None or self._worker.poll() is not None:
            self._worker = subprocess.Popen(
                [sys.executable, "-m", "fuzz.timer"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        assert self._worker.stdin is not None and self._worker.stdout is not None
        self._worker.stdin.write(f"{policy} {len(body)}\n".encode() + body)
        self._worker.stdin.flush()
        seconds, budget = self._worker.stdout.readline().split()
        return float(seconds), float(budget)


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    from fuzz.bodies import seed_bodies  # noqa: PLC0415

    for body in seed_bodies().values():  # warm-up
        for policy in POLICIES.values():
            timed(body, policy)
    while header := requests.readline():
        name, length = header.split()
        body = requests.read(int(length))
        policy = POLICIES[name.decode()]
        seconds, budget = best_of(body, policy)
        answers.write(f"{seconds!r} {budget!r}\n".encode())
        answers.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
