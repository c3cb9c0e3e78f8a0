"""Names and test doubles shared by the device tests (importable, unlike conftest.py)."""

from __future__ import annotations

from collections.abc import Iterable

REGISTRATION_ID = "breakroom499-contoso-tstrsd-007"
HUB_EU = "hub-eu.azure-devices.net"
HUB_US = "hub-us.azure-devices.net"
SEED = 20240705


class FixedProbe:
    """A latency probe that answers from a table and remembers what it was asked."""

    def __init__(self, latencies: dict[str, float]) -> None:
        self.latencies = latencies
        self.asked: list[list[str]] = []

    def measure(self, hosts: Iterable[str]) -> dict[str, float]:
        hosts = list(hosts)
        self.asked.append(hosts)
        return {host: self.latencies[host] for host in hosts if host in self.latencies}
