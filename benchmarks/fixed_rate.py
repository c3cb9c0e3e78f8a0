"""A fixed-rate HTTP/1.1 load generator on raw sockets, for latency at a given request rate.

wrk cannot hold a rate, and wrk2 (which can) is not packaged by Debian, so the latency at half
of saturation is measured with this. ``python -m benchmarks.fixed_rate --port P --rate R
--seconds S --connections C --request FILE`` sends the raw request in FILE R times a second for
S seconds, spread over C keep-alive connections (request ``k`` is due at ``k / R`` seconds and
goes out on connection ``k mod C``), and prints one JSON line.

Latency runs from the moment a request was *due* to the end of its response, as wrk2 measures
it: a server that stalls delays the requests queued behind the stall on that connection, and
their latency says so (no coordinated omission). ``lateness`` (due to actually sent) is the
generator's own delay, reported so that a saturated generator is visible. Each connection is a
thread with a blocking socket: ``time.sleep`` wakes far more precisely than an event loop's
millisecond timers. Bounded: it stops scheduling after S seconds, and gives outstanding
responses at most 5 s more.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class Exchange:
    """A raw HTTP/1.1 request, and the answer it must get when it is checked."""

    raw: bytes
    expected: tuple[int, bytes] | None = None  # (status, body); None: any answer
    # Other answers that are right too, e.g. the 503 of a store outage.
    also: frozenset[tuple[int, bytes]] = frozenset()


@dataclass(frozen=True)
class Schedule:
    """Request ``k`` is ``plan[k mod len(plan)]``, due at ``start + k / rate``, sent on
    connection ``k mod C``. A rate of 0 is a closed loop: each connection sends its next
    request as soon as its answer is back (that measures saturation)."""

    address: tuple[str, int]
    plan: Sequence[Exchange]
    rate: float
    connections: int
    start: float
    stop: float  # nothing is due from here on


@dataclass
class Connection:
    latencies: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    mismatches: int = 0
    wrong: list[str] = field(default_factory=list)  # the first few, to show


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """Read one response (``Content-Length`` framed) off ``sock``: its status code and body."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    total = end + 4 + length
    while len(buffer) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    body = bytes(buffer[end + 4 : total])
    del buffer[:total]
    return status, body


def _drive(schedule: Schedule, index: int, result: Connection) -> None:
    try:
        sock = socket.create_connection(schedule.address, timeout=DRAIN_SECONDS)
    except OSError as error:
        result.errors.append(f"connect: {error}")
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()
    plan = schedule.plan
    k = index
    with sock:
        while True:
            now = time.perf_counter()
            due = schedule.start + k / schedule.rate if schedule.rate else now
            if due >= schedule.stop:
                return
            if now > schedule.stop + DRAIN_SECONDS:
                result.errors.append("gave up: the server fell more than 5 s behind")
                return
            if due > now:
                time.sleep(due - now)
            exchange = plan[k % len(plan)]
            sent = time.perf_counter()
            try:
                sock.sendall(exchange.raw)
                status, body = read_response(sock, buffer)
            except OSError as error:
                result.errors.append(f"{type(error).__name__}: {error}")
                return
            finished = time.perf_counter()
            result.latencies.append(finished - due)
            result.lateness.append(sent - due)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if (
                exchange.expected is not None
                and (status, body) != exchange.expected
                and (status, body) not in exchange.also
            ):
                result.mismatches += 1
                if len(result.wrong) < 5:
                    result.wrong.append(f"request {k % len(plan)}: {status} {body[:200]!r}")
            k += schedule.connections


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def load(
    port: int, plan: Sequence[Exchange], rate: float, seconds: float, connections: int
) -> dict[str, Any]:
    start = time.perf_counter() + 0.05  # every thread connected and waiting
    schedule = Schedule(("127.0.0.1", port), plan, rate, connections, start, start + seconds)
    results = [Connection() for _ in range(connections)]
    threads = [
        threading.Thread(target=_drive, args=(schedule, i, results[i]), daemon=True)
        for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 2 * DRAIN_SECONDS)
    elapsed = time.perf_counter() - start
    latencies = [x for r in results for x in r.latencies]
    lateness = [x for r in results for x in r.lateness]
    statuses: dict[str, int] = {}
    for r in results:
        for status, count in r.statuses.items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
    return {
        "rate": rate,
        "requests": len(latencies),
        "achieved_rate": len(latencies) / elapsed,
        "statuses": statuses,
        "errors": [e for r in results for e in r.errors],
        "wrong_answers": sum(r.mismatches for r in results),
        "wrong_examples": [w for r in results for w in r.wrong][:5],
        "latency_us": {
            "p50": percentile(latencies, 0.50) * 1e6,
            "p99": percentile(latencies, 0.99) * 1e6,
            "max": max(latencies, default=0.0) * 1e6,
        },
        "lateness_us": {
            "p50": percentile(lateness, 0.50) * 1e6,
            "p99": percentile(lateness, 0.99) * 1e6,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fixed_rate")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--request", type=Path, required=True, help="a raw HTTP/1.1 request")
    args = parser.parse_args()
    plan = [Exchange(args.request.read_bytes())]
    result = load(args.port, plan, args.rate, args.seconds, args.connections)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
