"""3. The local host under load: ``python -m allocation serve`` on loopback.

Two servers run side by side, each a single uvicorn worker: the real host (``python -m
allocation serve --policy policies/default.json``, a function key in
``ALLOCATION_FUNCTION_KEYS``) and its floor, ``python -m benchmarks.trivial_host``, the same
server stack answering a fixed 200 (see trivial_host.py). Both write their logs to stderr,
which goes to the same kind of file for both. Both get the same request: a captured DPS body
with 10 linked hubs, posted with the key as ``?code=``.

- Saturation: ``wrk -t1 -c<n> -d<s> --latency -s post.lua``. ``n`` is found for each server by
  short probes at 8, 16, 32, 64 and 128 connections: the fewest that give within 3% of the
  most requests/s. (On this VM 8 or 16 connections leave the trivial server idle a third of
  the time, waiting on wake-ups across cores: that is not saturation.) Requests/s, p50, p99,
  and the server's CPU use over the run, which says whether it really was saturated.
- Half of saturation: each server at half its own saturated rate, from benchmarks/fixed_rate.py
  (wrk cannot hold a rate, and Debian has no wrk2), 8 connections. p50 and p99 from when each
  request was due.

The machine has few cores and the load generator shares them with the server: with two or
more, the servers are pinned to CPU 0 and the load generators to CPU 1 (``taskset``), so each
server has a core of its own and they do not take turns on one (BENCHMARKS.md says what
leaving placement to the scheduler changes). Every run has a fixed duration, every process a
timeout, and the servers are stopped (SIGINT, then SIGKILL) however the benchmark ends.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import bodies
from benchmarks.report import Figure, Target, skipped

GROUP = "local-host"
HERE = Path(__file__).resolve().parent
LUA_SCRIPT = HERE / "post.lua"
CONNECTION_CHOICES = (8, 16, 32, 64, 128)
SATURATED_WITHIN = 0.03  # a probe this close to the best rate counts as saturated
HALF_RATE_CONNECTIONS = 8
START_TIMEOUT_SECONDS = 30.0


def find_wrk(quick: bool, install: bool) -> tuple[str | None, str]:
    """wrk's path, installing the Debian package when allowed; else None and the reason."""
    found = shutil.which("wrk")
    if found:
        return found, ""
    if quick or not install:
        why = "quick mode never installs" if quick else "--no-install"
        return None, f"wrk is not installed ({why}; apt-get install wrk)"
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return None, "wrk is not installed and apt-get is unavailable (not root, or not Debian)"
    install_wrk = ["apt-get", "install", "-y", "-q", "wrk"]
    # A fresh image may have no package lists yet: update once, only if the install fails.
    for commands in ([install_wrk], [["apt-get", "update", "-q"], install_wrk]):
        for command in commands:
            print(f"setup: {' '.join(command)}", file=sys.stderr)
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(command, check=False, timeout=300, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found, ""
    return None, "wrk is not installed and apt-get install wrk failed"


def pinned(cpu: int) -> list[str]:
    """A command prefix that runs on one CPU, where there are two to split."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far (user + system), from /proc; 0 elsewhere."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Load:
    """What every load run needs: the tools, the request, and how long to run."""

    wrk_path: str
    env: dict[str, str]  # with BENCH_BODY_FILE and BENCH_FUNCTION_KEY, for post.lua
    work: Path  # a temporary directory
    body: bytes
    key: str
    probe: int  # seconds per probe of a connection count
    seconds: int  # seconds per measured run
    runs: int


@contextlib.contextmanager
def serving(name: str, command: list[str], env: dict[str, str], log: Path) -> Iterator[Server]:
    port = free_port()
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*pinned(0), *command, "--port", str(port)],
            cwd=bodies.ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield Server(name, port, process.pid)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def wait_until_ready(server: Server, body: bytes, key: str, log: Path, expect: int = 200) -> None:
    """Poll until the server answers the benchmark's request (with ``expect``)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            connection.request(
                "POST",
                f"/api/allocate?code={key}",
                body,
                {"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            answer = response.read()
            connection.close()
            if response.status != expect:
                raise RuntimeError(f"{server.name} answered {response.status}: {answer[:300]!r}")
            return
        except OSError:
            if time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{server.name} did not start: {tail}") from None
            time.sleep(0.1)


def wrk(load: Load, server: Server, connections: int, seconds: int) -> dict[str, Any]:
    command = [
        *pinned(1),
        load.wrk_path,
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        f"http://127.0.0.1:{server.port}/api/allocate",
    ]
    cpu_before = server.cpu_seconds()
    done = subprocess.run(
        command, env=load.env, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    cpu = server.cpu_seconds() - cpu_before
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed on {server.name}: {done.stderr.strip()}{done.stdout}")
    result: dict[str, Any] = json.loads(lines[-1])
    errors = result["errors"]
    if errors["status"] or errors["connect"] or errors["timeout"]:
        raise RuntimeError(f"wrk on {server.name}: errors {errors}")
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    # A saturated server keeps its core busy; much less means something else had the core
    # (a busy machine), and the run measured that rather than the server.
    result["server_cpu"] = cpu / (result["duration_us"] / 1e6)
    return result


def fixed_rate(load: Load, server: Server, rate: float) -> dict[str, Any]:
    request_file = load.work / f"{server.name}.http"
    request_file.write_bytes(raw_request(server.port, load.body, load.key))
    command = [
        *pinned(1),
        sys.executable,
        "-m",
        "benchmarks.fixed_rate",
        "--port",
        str(server.port),
        "--rate",
        f"{rate:.1f}",
        "--seconds",
        str(load.seconds),
        "--connections",
        str(HALF_RATE_CONNECTIONS),
        "--request",
        str(request_file),
    ]
    done = subprocess.run(
        command,
        cwd=bodies.ROOT,
        env=load.env,
        capture_output=True,
        text=True,
        timeout=load.seconds + 30,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the fixed-rate generator failed on {server.name}: {done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["errors"] or set(result["statuses"]) != {"200"}:
        raise RuntimeError(
            f"fixed rate on {server.name}: {result['statuses']} {result['errors'][:3]}"
        )
    return result


def raw_request(port: int, body: bytes, key: str) -> bytes:
    head = (
        f"POST /api/allocate?code={key} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def run(quick: bool, install: bool = True) -> list[Figure]:
    wrk_path, reason = find_wrk(quick, install)
    if wrk_path is None:
        return [skipped(GROUP, f"{GROUP}.serve", "python -m allocation serve", "req/s", reason)]
    probe, seconds, runs = (1, 1, 2) if quick else (2, 5, 5)
    key = secrets.token_urlsafe(24)
    body = bodies.default_body()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")}
    env["ALLOCATION_FUNCTION_KEYS"] = key
    commands = {
        "serve": [
            sys.executable,
            "-m",
            "allocation",
            "serve",
            "--policy",
            str(bodies.POLICIES / "default.json"),
        ],
        "trivial": [sys.executable, "-m", "benchmarks.trivial_host"],
    }
    with tempfile.TemporaryDirectory(prefix="bench-local-host-") as temp:
        work = Path(temp)
        (work / "body.json").write_bytes(body)
        load = Load(
            wrk_path,
            {**env, "BENCH_BODY_FILE": str(work / "body.json"), "BENCH_FUNCTION_KEY": key},
            work,
            body,
            key,
            probe,
            seconds,
            runs,
        )
        with contextlib.ExitStack() as stack:
            servers = {}
            for name, command in commands.items():
                log = work / f"{name}.stderr"
                servers[name] = stack.enter_context(serving(name, command, env, log))
                wait_until_ready(servers[name], body, key, log)
            return _measure(servers, load)


def _measure(servers: dict[str, Server], load: Load) -> list[Figure]:
    # The probe doubles as the warm-up: every code path is hot after it.
    connections = {}
    for name, server in servers.items():
        rates = {c: wrk(load, server, c, load.probe)["rate"] for c in CONNECTION_CHOICES}
        best = max(rates.values())
        connections[name] = min(c for c, r in rates.items() if r >= best * (1 - SATURATED_WITHIN))

    # Taking turns, so that drift of the machine hits both servers alike.
    saturated: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    for _ in range(load.runs):
        for name, server in servers.items():
            saturated[name].append(wrk(load, server, connections[name], load.seconds))

    half: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    for _ in range(load.runs):
        for name, server in servers.items():
            half_rate = statistics.median(r["rate"] for r in saturated[name]) / 2
            half[name].append(fixed_rate(load, server, half_rate))
    return _figures(saturated, half, connections)


def _figures(
    saturated: dict[str, list[dict[str, Any]]],
    half: dict[str, list[dict[str, Any]]],
    connections: dict[str, int],
) -> list[Figure]:
    figures: list[Figure] = []
    for name in ("trivial", "serve"):
        base = None if name == "trivial" else "trivial"
        what = "trivial endpoint (fixed 200)" if name == "trivial" else "allocation serve"
        sat, slow = saturated[name], half[name]
        rate = statistics.median(r["rate"] for r in slow)
        lateness = max(r["lateness_us"]["p99"] for r in slow) / 1000
        cpu = [100 * r["server_cpu"] for r in sat]
        suspect = statistics.median(cpu) < 90
        figures += [
            Figure(
                GROUP,
                f"{GROUP}.{name}.saturation.rate",
                f"{what}: saturated, wrk -c{connections[name]}",
                "req/s",
                [r["rate"] for r in sat],
                baseline=base and f"{GROUP}.{base}.saturation.rate",
                target=Target(0.7, ">=") if base else None,
            ),
            Figure(
                GROUP,
                f"{GROUP}.{name}.saturation.cpu",
                f"{what}: saturated, server CPU (of one core)",
                "%",
                cpu,
                note="under 90%: not saturated, or the core was shared; the run is suspect"
                if suspect
                else "",
            ),
            Figure(
                GROUP,
                f"{GROUP}.{name}.saturation.p50",
                f"{what}: saturated, p50",
                "ms",
                [r["latency_us"]["p50"] / 1000 for r in sat],
                baseline=base and f"{GROUP}.{base}.saturation.p50",
            ),
            Figure(
                GROUP,
                f"{GROUP}.{name}.saturation.p99",
                f"{what}: saturated, p99",
                "ms",
                [r["latency_us"]["p99"] / 1000 for r in sat],
                baseline=base and f"{GROUP}.{base}.saturation.p99",
            ),
            Figure(
                GROUP,
                f"{GROUP}.{name}.half.p50",
                f"{what}: half of saturation ({rate:,.0f} req/s), p50",
                "ms",
                [r["latency_us"]["p50"] / 1000 for r in slow],
                baseline=base and f"{GROUP}.{base}.half.p50",
                note=f"fixed-rate generator, {HALF_RATE_CONNECTIONS} connections",
            ),
            Figure(
                GROUP,
                f"{GROUP}.{name}.half.p99",
                f"{what}: half of saturation ({rate:,.0f} req/s), p99",
                "ms",
                [r["latency_us"]["p99"] / 1000 for r in slow],
                baseline=base and f"{GROUP}.{base}.half.p99",
                target=Target(5.0, "<=", "value") if base else None,
                note=f"generator lateness p99 at most {lateness:.2f} ms",
            ),
        ]
    return figures
