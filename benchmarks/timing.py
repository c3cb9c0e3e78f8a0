"""Repeated timing of small callables: warm-up, then batches sized to a fixed duration."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def loops_for(call: Callable[[], object], seconds: float) -> int:
    """How many calls take about ``seconds`` (after a first, warming call)."""
    call()
    loops = 1
    while True:
        elapsed = batch(call, loops)
        if elapsed * loops >= seconds / 4 or loops >= 1 << 24:
            return max(1, int(loops * seconds / max(elapsed * loops, 1e-9)))
        loops *= 4


def batch(call: Callable[[], object], loops: int) -> float:
    """Seconds per call over ``loops`` calls."""
    started = time.perf_counter()
    for _ in range(loops):
        call()
    return (time.perf_counter() - started) / loops


def interleaved(
    calls: Mapping[str, Callable[[], object]], runs: int, seconds: float
) -> dict[str, list[float]]:
    """Seconds per call of each callable, ``runs`` times, the callables taking turns.

    Taking turns spreads any drift of the machine (frequency, a neighbour's load) evenly over
    a figure and its baseline. One untimed batch of each warms caches first.
    """
    loops = {name: loops_for(call, seconds) for name, call in calls.items()}
    for name, call in calls.items():
        batch(call, loops[name])
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            samples[name].append(batch(call, loops[name]))
    return samples
