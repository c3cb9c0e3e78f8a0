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
import tempfile
import time
from pathlib import Path

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


# -- a fleet re-registering through five phases ---------------------------------------------

DRAINS = (0, 5, 25, 50, 100)

# Runs the command in this process and prints its peak resident memory (KiB) last on stderr.
_PEAK = (
    "import atexit, resource, runpy, sys; "
    "atexit.register(lambda: print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
    "file=sys.stderr)); sys.argv = ['allocation', *sys.argv[1:]]; "
    "runpy.run_module('allocation', run_name='__main__')"
)


def _phase_files(directory: Path) -> list[str]:
    """The five phases: the first hub drained at 0, 5, 25, 50 then 100 %, sticky."""
    files = []
    for drain in DRAINS:
        path = directory / f"drain-{drain:03d}.json"
        policy = {"hubs": {bodies.HUBS[0]: {"drain": drain}}, "sticky": True}
        path.write_text(json.dumps(policy), encoding="utf-8")
        files.append(str(path))
    return files


def _peak_kib(arguments: list[str]) -> int:
    _, stderr = _timed_stderr([sys.executable, "-c", _PEAK, *arguments])
    return int(stderr.strip().splitlines()[-1])


def _timed_stderr(command: list[str]) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")}
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=bodies.ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:4])} failed: {done.stderr.strip()[-2000:]}")
    return time.perf_counter() - started, done.stderr


def run_phases(quick: bool) -> list[Figure]:
    """Five phases re-registering a seeded fleet, against the five phases' first
    registrations (five plain simulate runs); peak memory of seeded and CSV fleets."""
    devices = 2_000 if quick else 1_000_000
    runs = 3 if quick else 1
    hubs = ",".join(bodies.HUBS)
    with tempfile.TemporaryDirectory() as directory:
        phases = _phase_files(Path(directory))
        start = str(bodies.POLICIES / "default.json")
        fleet = ["simulate", "--from", start, "--phases", *phases, "--hubs", hubs, "--json"]
        first = [["simulate", "--policy", p, "--hubs", hubs, "--json"] for p in phases]
        times: dict[str, list[float]] = {"first": [], "phases": []}
        for _ in range(runs):
            total = 0.0
            for command in first:
                seconds, _ = _timed([sys.executable, "-m", "allocation", *command,
                                     "--devices", str(devices)])  # fmt: skip
                total += seconds
            times["first"].append(total)
            seconds, _ = _timed([sys.executable, "-m", "allocation", *fleet,
                                 "--devices", str(devices)])  # fmt: skip
            times["phases"].append(seconds)

        small, large = (1_000, 4_000) if quick else (100_000, 400_000)
        seeded = [_peak_kib([*fleet, "--devices", str(n)]) for n in (small, large)]
        csv_rows = []
        for n in (small, large):
            path = Path(directory) / f"fleet-{n}.csv"
            with path.open("w", encoding="utf-8") as file:
                for number in range(n):
                    file.write(f"meter-{number:07d},fleet,{bodies.HUBS[number % 10]}\n")
            command = ["simulate", "--fleet", str(path), "--phases", *phases, "--hubs", hubs]
            csv_rows.append(_peak_kib([*command, "--json"]))
    per_device_seeded = (seeded[1] - seeded[0]) * 1024 / (large - small)
    per_device_csv = (csv_rows[1] - csv_rows[0]) * 1024 / (large - small)
    label = f"{devices:,} devices, 10 hubs, 5 phases"
    return [
        Figure(GROUP, f"{GROUP}.first-registrations",
               f"floor: simulate each of the 5 phases' first registrations, {label}", "s",
               times["first"]),
        Figure(
            GROUP, f"{GROUP}.phases", f"simulate --phases, the fleet re-registering, {label}",
            "s", times["phases"], baseline=f"{GROUP}.first-registrations", target=Target(3.0),
            note=(
                f"peak memory, seeded fleet: {seeded[0] / 1024:.1f} MiB at {small:,} devices, "
                f"{seeded[1] / 1024:.1f} MiB at {large:,} ({per_device_seeded:.1f} bytes per "
                f"device); CSV fleet: {csv_rows[0] / 1024:.1f} / {csv_rows[1] / 1024:.1f} MiB "
                f"({per_device_csv:.1f} bytes per device beyond the file)"
            ),
        ),
    ]  # fmt: skip


def _check_same_counts(simulated: str, bare: str) -> None:
    document = json.loads(simulated)
    placed = {entry["hub"]: entry["devices"] for entry in document["hubs"]}
    expected = json.loads(bare)
    if placed != expected:
        raise RuntimeError(f"simulate placed {placed}, the bare loop {expected}")
