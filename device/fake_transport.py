"""An in-memory DPS and IoT Hub behind the `Transport` seam, for tests and fleet simulations.

Nothing here touches the network. Each hub has a *behaviour*: given the (fake) time of a connect
attempt, the error it answers with, or None to accept the device. DPS itself is an `Allocate`
function, so a test can put anything behind it, up to the real allocation webhook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from device.clock import Clock
from device.transport import (
    Assignment,
    HubRejected,
    MethodHandler,
    RegistrationFailed,
    TransportError,
)

Behaviour = Callable[[float], "TransportError | None"]
"""Time of an attempt -> the error to answer it with, or None to accept it."""

Allocate = Callable[[str, Mapping[str, Any], "str | None"], Assignment]
"""(registration ID, registration payload, current hub or None) -> what DPS assigns."""


def healthy(_: float) -> TransportError | None:
    """Accepts every attempt."""
    return None


def failing(*errors: TransportError) -> Behaviour:
    """Answers successive attempts with `errors`, in order, then accepts every attempt."""
    remaining = list(errors)

    def behaviour(_: float) -> TransportError | None:
        return remaining.pop(0) if remaining else None

    return behaviour


def down_until(until: float, error: TransportError) -> Behaviour:
    """Answers `error` to every attempt made before time `until`."""
    return lambda now: error if now < until else None


def gone(message: str = "hub not found") -> Behaviour:
    """The hub was deleted, or no longer knows the device: every attempt is turned away."""
    return lambda _: HubRejected(message)


def assign_to(hub: str, payload: Mapping[str, Any] | None = None) -> Allocate:
    """A DPS whose allocation always answers `hub` (device ID = registration ID, as for groups)."""
    return lambda registration_id, _payload, _current: Assignment(
        hub, registration_id, dict(payload or {})
    )


@dataclass(frozen=True)
class Registration:
    time: float
    registration_id: str
    payload: Mapping[str, Any]
    current_hub: str | None


@dataclass(frozen=True)
class ConnectAttempt:
    time: float
    hub: str
    error: TransportError | None


@dataclass
class FakeSession:
    hub: str
    device_id: str
    handler: MethodHandler | None = None
    closed: bool = False

    def on_direct_method(self, handler: MethodHandler) -> None:
        self.handler = handler

    def invoke(self, name: str, payload: Any = None) -> tuple[int, Any]:
        """Invoke a direct method as the service would."""
        if self.handler is None:
            raise RuntimeError("no direct-method handler is set")
        return self.handler(name, payload)

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeTransport:
    registration_id: str
    clock: Clock
    allocate: Allocate
    hubs: Mapping[str, Behaviour] = field(default_factory=dict)
    """Behaviour of each hub; a hub not listed accepts every device."""
    dps: Behaviour = healthy
    """Errors DPS answers registrations with (only `RegistrationFailed` makes sense)."""
    current_hub: str | None = None
    """The hub DPS's registration record holds for the device (None: never assigned)."""
    registrations: list[Registration] = field(default_factory=list)
    connects: list[ConnectAttempt] = field(default_factory=list)
    sessions: list[FakeSession] = field(default_factory=list)

    def register(self, payload: Mapping[str, Any]) -> Assignment:
        now = self.clock.now()
        self.registrations.append(
            Registration(now, self.registration_id, payload, self.current_hub)
        )
        error = self.dps(now)
        if error is not None:
            raise error if isinstance(error, RegistrationFailed) else RegistrationFailed(str(error))
        assignment = self.allocate(self.registration_id, payload, self.current_hub)
        self.current_hub = assignment.hub
        return assignment

    def connect(self, assignment: Assignment) -> FakeSession:
        now = self.clock.now()
        error = self.hubs.get(assignment.hub, healthy)(now)
        self.connects.append(ConnectAttempt(now, assignment.hub, error))
        if error is not None:
            raise error
        session = FakeSession(assignment.hub, assignment.device_id)
        self.sessions.append(session)
        return session
