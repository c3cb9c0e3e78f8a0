from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from device.latency_probe import NoProbe, TcpConnectProbe


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A TCP port on the loopback interface that accepts connections."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_reachable_host_is_measured_in_milliseconds(listening_port: int) -> None:
    probe = TcpConnectProbe(ports=(listening_port,), timeout=1.0)
    latencies = probe.measure(["127.0.0.1"])
    assert list(latencies) == ["127.0.0.1"]
    assert 0 <= latencies["127.0.0.1"] < 1000


def test_the_next_port_is_tried_when_the_first_refuses(
    listening_port: int, closed_port: int
) -> None:
    probe = TcpConnectProbe(ports=(closed_port, listening_port), timeout=1.0)
    assert list(probe.measure(["127.0.0.1"])) == ["127.0.0.1"]


def test_an_unreachable_host_is_left_out(closed_port: int) -> None:
    probe = TcpConnectProbe(ports=(closed_port,), timeout=1.0)
    assert probe.measure(["127.0.0.1"]) == {}


class ScriptedNetwork:
    """Resolution, connections and a timer under the test's control."""

    def __init__(self, handshakes: dict[str, list[float]]) -> None:
        self.handshakes = handshakes
        self.now = 0.0
        self.timeouts: list[float] = []
        self.connected: list[tuple[str, int]] = []

    def resolve(self, host: str, port: int) -> str:
        if host not in self.handshakes:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return host

    def connect(self, address: tuple[str, int], timeout: float) -> socket.socket:
        self.timeouts.append(timeout)
        self.connected.append(address)
        samples = self.handshakes[address[0]]
        if not samples:
            raise TimeoutError("timed out")
        self.now += samples.pop(0)
        left, right = socket.socketpair()
        right.close()
        return left

    def timer(self) -> float:
        return self.now


def test_the_best_of_several_handshakes_is_kept() -> None:
    network = ScriptedNetwork({"hub-eu": [0.0450, 0.0212, 0.0300]})
    probe = TcpConnectProbe(
        samples=3, resolve=network.resolve, connect=network.connect, timer=network.timer
    )
    assert probe.measure(["hub-eu"]) == {"hub-eu": 21.2}


def test_each_connection_attempt_is_bounded_by_the_timeout() -> None:
    network = ScriptedNetwork({"hub-slow": []})
    probe = TcpConnectProbe(
        ports=(8883, 443), timeout=0.75, resolve=network.resolve, connect=network.connect
    )
    assert probe.measure(["hub-slow"]) == {}
    assert network.connected == [("hub-slow", 8883), ("hub-slow", 443)]
    assert network.timeouts == [0.75, 0.75]


def test_names_that_do_not_resolve_are_left_out() -> None:
    network = ScriptedNetwork({"hub-us": [0.080]})
    probe = TcpConnectProbe(
        samples=1, resolve=network.resolve, connect=network.connect, timer=network.timer
    )
    assert probe.measure(["deleted-hub", "hub-us"]) == {"hub-us": 80.0}


def test_duplicates_empty_names_and_hosts_past_the_limit_are_not_probed() -> None:
    hosts = ["", "a" * 254, "hub-1", "hub-1", "hub-2", "hub-3"]
    network = ScriptedNetwork({h: [0.01] for h in ("hub-1", "hub-2", "hub-3")})
    probe = TcpConnectProbe(
        samples=1,
        max_hosts=2,
        resolve=network.resolve,
        connect=network.connect,
        timer=network.timer,
    )
    assert probe.measure(hosts) == {"hub-1": 10.0, "hub-2": 10.0}


@pytest.mark.parametrize(
    "options", [{"ports": ()}, {"timeout": 0}, {"samples": 0}, {"max_hosts": -1}]
)
def test_a_probe_that_could_not_measure_is_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="TcpConnectProbe needs"):
        TcpConnectProbe(**options)  # type: ignore[arg-type]


def test_no_probe_measures_nothing() -> None:
    assert NoProbe().measure(["hub-eu"]) == {}
