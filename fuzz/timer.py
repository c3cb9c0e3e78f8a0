"""Timing verdicts for the atheris harness, from a process that is not instrumented.

atheris instruments the allocation package for coverage, which makes its Python loops several
times slower: a 10,000-key payload that is answered in 2 ms takes 100 ms instrumented. So the
harness times every call in process, and any call over the budget is timed again here, in a
worker process running the same code uninstrumented (with the same warm-up and one retry as
everywhere else): only that time decides the 50 ms invariant.

Protocol (stdin/stdout of ``python -m fuzz.timer``): the parent writes ``<policy> <length>\\n``
and the body; the worker answers ``<seconds>\\n``, the better of two timed calls.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import IO

from fuzz.invariants import LATENCY_BUDGET_SECONDS, timed
from fuzz.policies import POLICIES

ROOT = Path(__file__).resolve().parents[1]


class UninstrumentedTimer:
    """A worker process, started on first use and ended with the parent."""

    def __init__(self) -> None:
        self._worker: subprocess.Popen[bytes] | None = None

    def seconds(self, policy: str, body: bytes) -> float:
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
        return float(self._worker.stdout.readline())


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    from fuzz.bodies import seed_bodies  # noqa: PLC0415

    for body in seed_bodies().values():  # warm-up
        for policy in POLICIES.values():
            timed(body, policy)
    while header := requests.readline():
        name, length = header.split()
        body = requests.read(int(length))
        policy = POLICIES[name.decode()]
        seconds = timed(body, policy)[1]
        if seconds > LATENCY_BUDGET_SECONDS:
            seconds = min(seconds, timed(body, policy)[1])
        answers.write(f"{seconds!r}\n".encode())
        answers.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
