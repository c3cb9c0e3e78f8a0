"""Round-trip evidence for the allocation's `latency` strategy.

DPS tells the webhook nothing about where a device is, so a device that wants its nearest hub
measures the hubs itself and sends `latencyMs` ({host name: milliseconds}) in its registration
payload. The measurement is the TCP handshake time to the hub's MQTT port (8883), or to 443 where
a firewall only lets HTTPS out: one SYN/SYN-ACK round trip, no TLS and no credentials. The host
name is resolved before the clock starts, so DNS time does not count, and the best of a few
handshakes is kept, because the minimum is the sample least disturbed by queueing.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import Protocol

logger = logging.getLogger(__name__)

Connect = Callable[[tuple[str, int], float], socket.socket]
Resolve = Callable[[str, int], str]

MAX_HOST_NAME = 253


class LatencyProbe(Protocol):
    def measure(self, hosts: Iterable[str]) -> dict[str, float]:
        """Milliseconds to each reachable host; unreachable hosts are left out."""
        ...


def resolve_address(host: str, port: int) -> str:
    return str(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0])


def open_connection(address: tuple[str, int], timeout: float) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


class TcpConnectProbe:
    """Times TCP handshakes. Worst case per call: max_hosts * len(ports) * samples * timeout."""

    def __init__(
        self,
        *,
        ports: tuple[int, ...] = (8883, 443),
        timeout: float = 2.0,
        samples: int = 3,
        max_hosts: int = 10,
        resolve: Resolve = resolve_address,
        connect: Connect = open_connection,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not ports or timeout <= 0 or samples < 1 or max_hosts < 0:
            raise ValueError("TcpConnectProbe needs ports, timeout > 0, samples >= 1")
        self.ports = ports
        self.timeout = timeout
        self.samples = samples
        self.max_hosts = max_hosts
        self._resolve = resolve
        self._connect = connect
        self._timer = timer

    def measure(self, hosts: Iterable[str]) -> dict[str, float]:
        chosen = list(dict.fromkeys(h for h in hosts if 0 < len(h) <= MAX_HOST_NAME))
        latencies: dict[str, float] = {}
        for host in chosen[: self.max_hosts]:
            milliseconds = self._measure_host(host)
            if milliseconds is not None:
                latencies[host] = milliseconds
        return latencies

    def _measure_host(self, host: str) -> float | None:
        for port in self.ports:
            try:
                address = (self._resolve(host, port), port)
                best = min(self._handshake(address) for _ in range(self.samples))
            except OSError as error:  # includes timeouts and resolution failures
                logger.debug("latency probe to %s:%d failed: %s", host, port, error)
                continue
            return round(best * 1000, 1)
        return None

    def _handshake(self, address: tuple[str, int]) -> float:
        started = self._timer()
        connection = self._connect(address, self.timeout)
        elapsed = self._timer() - started
        connection.close()
        return elapsed


class NoProbe:
    """For devices that send no measurements (the strategy then falls back to `region`)."""

    def measure(self, hosts: Iterable[str]) -> dict[str, float]:
        return {}
