"""The real `Transport`: azure-iot-device's synchronous clients (MQTT, or MQTT over WebSockets).

This is the only module that imports azure-iot-device (requirements-device.txt); nothing else in
the package needs it. Written against azure-iot-device 2.14:

- `ProvisioningDeviceClient.create_from_symmetric_key(provisioning_host, registration_id,
  id_scope, symmetric_key)`, `.provisioning_payload = {...}`, `.register()` -> RegistrationResult
  with `.status` ("assigned", "failed", ...) and `.registration_state` (`.assigned_hub`,
  `.device_id`, and `.response_payload`: the payload DPS returned, re-encoded as a JSON string).
  A client registers once; a new one is made for each registration. The SDK already retries
  DPS's own 429/5xx answers, honouring their Retry-After.
- `IoTHubDeviceClient.create_from_symmetric_key(symmetric_key, hostname, device_id)`,
  `.connect()`, `.on_method_request_received`, `.send_method_response(MethodResponse)`,
  `.shutdown()`.
- Errors (`azure.iot.device.exceptions`): `CredentialError` when the hub refuses the SAS token
  (MQTT CONNACK 4/5: the device is unknown, disabled, or its key is wrong), `ConnectionFailedError`
  / `ConnectionDroppedError` / `OperationTimeout` for the network and an unavailable hub (CONNACK
  3, "server unavailable", is also how IoT Hub refuses a throttled connect over MQTT), and
  `ClientError` for everything else. MQTT carries no HTTP status and no Retry-After, so over
  this transport a throttled hub looks unavailable and is retried with back-off.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Mapping
from typing import Any

from azure.iot.device import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
    IoTHubDeviceClient,
    MethodRequest,
    MethodResponse,
    ProvisioningDeviceClient,
    RegistrationResult,
)
from azure.iot.device import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
    exceptions as iot_errors,
)

from device.transport import (
    Assignment,
    HubRejected,
    HubUnavailable,
    MethodHandler,
    RegistrationFailed,
)

logger = logging.getLogger(__name__)

DEFAULT_PROVISIONING_HOST = "global.azure-devices-provisioning.net"

# getaddrinfo's answers for a name that does not exist (as opposed to EAI_AGAIN, a resolver that
# cannot be reached): the hub was deleted, so retrying it is pointless.
_NAME_NOT_FOUND = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class AzureTransport:
    def __init__(
        self,
        *,
        id_scope: str,
        registration_id: str,
        symmetric_key: str,
        provisioning_host: str = DEFAULT_PROVISIONING_HOST,
        websockets: bool = False,
    ) -> None:
        """`symmetric_key` is the device's own key (for a group enrollment: the key derived from
        the group key and the registration ID)."""
        self._id_scope = id_scope
        self._registration_id = registration_id
        self._symmetric_key = symmetric_key
        self._provisioning_host = provisioning_host
        self._websockets = websockets

    @property
    def registration_id(self) -> str:
        return self._registration_id

    def register(self, payload: Mapping[str, Any]) -> Assignment:
        client = ProvisioningDeviceClient.create_from_symmetric_key(
            provisioning_host=self._provisioning_host,
            registration_id=self._registration_id,
            id_scope=self._id_scope,
            symmetric_key=self._symmetric_key,
            websockets=self._websockets,
        )
        client.provisioning_payload = dict(payload)
        try:
            result = client.register()
        except (iot_errors.ClientError, iot_errors.OperationTimeout) as error:
            raise RegistrationFailed(describe(error)) from error
        return assignment_from(result)

    def connect(self, assignment: Assignment) -> AzureHubSession:
        client = IoTHubDeviceClient.create_from_symmetric_key(
            symmetric_key=self._symmetric_key,
            hostname=assignment.hub,
            device_id=assignment.device_id,
            websockets=self._websockets,
        )
        try:
            client.connect()
        except (
            iot_errors.ConnectionFailedError,
            iot_errors.ConnectionDroppedError,
            iot_errors.OperationTimeout,
        ) as error:
            _discard(client)
            if host_not_found(error):
                raise HubRejected(
                    f"{assignment.hub} does not resolve: {describe(error)}"
                ) from error
            raise HubUnavailable(describe(error)) from error
        except iot_errors.ClientError as error:  # CredentialError included
            _discard(client)
            raise HubRejected(describe(error)) from error
        return AzureHubSession(client)


class AzureHubSession:
    def __init__(self, client: IoTHubDeviceClient) -> None:
        self._client = client

    def on_direct_method(self, handler: MethodHandler) -> None:
        def respond(request: MethodRequest) -> None:
            status, payload = handler(request.name, request.payload)
            response = MethodResponse.create_from_method_request(request, status, payload)
            self._client.send_method_response(response)

        self._client.on_method_request_received = respond

    def close(self) -> None:
        self._client.shutdown()


def assignment_from(result: RegistrationResult | None) -> Assignment:
    """The assignment in a registration result, or `RegistrationFailed`."""
    status = getattr(result, "status", None)
    state = getattr(result, "registration_state", None)
    if status != "assigned" or state is None:
        raise RegistrationFailed(f"DPS registration ended with status {status!r}")
    hub, device_id = state.assigned_hub, state.device_id
    if not (isinstance(hub, str) and hub and isinstance(device_id, str) and device_id):
        raise RegistrationFailed("DPS assigned the device without a hub or device ID")
    payload = json.loads(state.response_payload)
    return Assignment(hub, device_id, payload if isinstance(payload, dict) else {})


def host_not_found(error: BaseException) -> bool:
    """Whether a DNS lookup in the error's cause chain said the name does not exist."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror) and current.errno in _NAME_NOT_FOUND:
            return True
        current = current.__cause__ or current.__context__
    return False


def describe(error: BaseException) -> str:
    """The error and its causes, since the SDK's outer messages say little."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None and len(parts) < 5:
        parts.append(f"{type(current).__name__}: {current}".rstrip(": "))
        current = current.__cause__
    return " <- ".join(parts)


def _discard(client: IoTHubDeviceClient) -> None:
    with contextlib.suppress(Exception):
        client.shutdown()
