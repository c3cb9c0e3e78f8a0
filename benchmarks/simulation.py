"""4. Simulation: ``python -m allocation simulate`` over N devices and 10 hubs.

Both the command and its floor run as fresh processes, timed from spawn to exit: the command as
an operator runs it (the built-in policy, here as ``policies/default.json``, ``--json`` output),
and the floor, ``python -m benchmarks.bare_loop``, the same number of weighted rendezvous
choices over the same hubs and the same registration IDs with nothing around them (see
bare_loop.py). Both print per-hub counts, which must agree: the simulation places each device
where the bare arithmetic does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from benchmarks import bodies
from benchmarks.report import Figure, Target

GROUP = "simulation"
TIMEOUT_SECONDS = 600


def _timed(command: list[str]) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")}
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=bodies.ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:4])} failed: {done.stderr.strip()[-2000:]}")
    return elapsed, done.stdout


def simulate_command(devices: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "allocation",
        "simulate",
        "--policy",
        str(bodies.POLICIES / "default.json"),
        "--devices",
        str(devices),
        "--hubs",
        ",".join(bodies.HUBS),
        "--json",
    ]


def bare_command(devices: int) -> list[str]:
    hubs = ",".join(bodies.HUBS)
    return [sys.executable, "-m", "benchmarks.bare_loop", "--devices", str(devices), "--hubs", hubs]


def run(quick: bool) -> list[Figure]:
    devices = 20_000 if quick else 1_000_000
    runs = 3 if quick else 5
    simulate, bare = simulate_command(devices), bare_command(devices)
    # Warm-up: bytecode caches written, files in the page cache.
    _timed(simulate_command(1000))
    _timed(bare_command(1000))

    times: dict[str, list[float]] = {"bare": [], "simulate": []}
    outputs: dict[str, str] = {}
    for _ in range(runs):
        for name, command in (("bare", bare), ("simulate", simulate)):
            seconds, outputs[name] = _timed(command)
            times[name].append(seconds)
    _check_same_counts(outputs["simulate"], outputs["bare"])

    label = f"{devices:,} devices, 10 hubs"
    return [
        Figure(
            GROUP,
            f"{GROUP}.bare-loop",
            f"floor: bare rendezvous loop, {label}",
            "s",
            times["bare"],
        ),
        Figure(
            GROUP,
            f"{GROUP}.simulate",
            f"simulate, default policy, {label}",
            "s",
            times["simulate"],
            baseline=f"{GROUP}.bare-loop",
            target=Target(4.0),
            note=f"{devices / min(times['simulate']):,.0f} devices/s at best",
        ),
    ]


def _check_same_counts(simulated: str, bare: str) -> None:
    document = json.loads(simulated)
    placed = {entry["hub"]: entry["devices"] for entry in document["hubs"]}
    expected = json.loads(bare)
    if placed != expected:
        raise RuntimeError(f"simulate placed {placed}, the bare loop {expected}")
