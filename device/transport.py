"""The seam between the boot flow and the Azure IoT services.

The flow (`device.boot`) talks to DPS and IoT Hub only through `Transport`. The real
implementation is `device.azure_transport` (azure-iot-device); tests and fleet simulations use
`device.fake_transport`. Every failure a transport reports is one of the four errors below,
because each one calls for a different reaction from the device (DPS reprovisioning doc,
"Device-side guidance"):

| error                | what happened                              | the device                 |
|----------------------|--------------------------------------------|----------------------------|
| `HubThrottled`       | IoT Hub answered 429                       | retries after Retry-After  |
| `HubUnavailable`     | IoT Hub answered 5xx, or the network failed| retries with back-off      |
| `HubRejected`        | 401/403/404, the hub no longer exists, ... | re-registers through DPS   |
| `RegistrationFailed` | DPS did not assign the device              | retries DPS with back-off  |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

REPROVISION_METHOD = "reprovision"
"""Name of the direct method that makes the device register through DPS again."""

MethodHandler = Callable[[str, Any], tuple[int, Any]]
"""A direct-method handler: (method name, JSON request payload) -> (status, JSON response)."""


@dataclass(frozen=True)
class Assignment:
    """What DPS answered: the hub, the device ID there, and the allocation's `payload`."""

    hub: str
    device_id: str
    payload: Mapping[str, Any] = field(default_factory=dict)


class TransportError(Exception):
    """A DPS or IoT Hub operation failed."""


class HubThrottled(TransportError):
    """IoT Hub answered 429 Too Many Requests."""

    def __init__(self, retry_after: float | None, message: str = "IoT Hub throttled the device"):
        super().__init__(message)
        self.retry_after = retry_after


class HubUnavailable(TransportError):
    """IoT Hub answered 5xx, or the connection could not be made or was dropped."""


class HubRejected(TransportError):
    """IoT Hub refused the device for a reason retrying will not fix (401/403/404, hub gone)."""


class RegistrationFailed(TransportError):
    """DPS did not assign the device (the call failed, or the status was not `assigned`)."""


class HubSession(Protocol):
    """A live connection to the assigned hub."""

    def on_direct_method(self, handler: MethodHandler) -> None:
        """Route every direct method invoked on the device to `handler`."""
        ...

    def close(self) -> None:
        """Disconnect from the hub and release the client."""
        ...


class Transport(Protocol):
    """DPS registration and IoT Hub connection for one device identity."""

    @property
    def registration_id(self) -> str:
        """The registration ID the transport authenticates as."""
        ...

    def register(self, payload: Mapping[str, Any]) -> Assignment:
        """Register through DPS, sending `payload` for the allocation webhook.

        Raises `RegistrationFailed`.
        """
        ...

    def connect(self, assignment: Assignment) -> HubSession:
        """Connect to the assigned hub.

        Raises `HubThrottled`, `HubUnavailable` or `HubRejected`.
        """
        ...
