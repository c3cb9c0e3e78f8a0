"""The real transport's translation of azure-iot-device, against a stand-in for the SDK.

The stand-in copies the parts of azure-iot-device 2.14 that `device.azure_transport` uses (names,
signatures, the exception hierarchy of `azure.iot.device.exceptions`, and `response_payload` being
the DPS payload re-encoded as JSON), so the tests run without the SDK installed.
"""

from __future__ import annotations

import importlib
import json
import socket
import sys
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from device.transport import Assignment, HubRejected, HubUnavailable, RegistrationFailed

HUB = "hub-eu.azure-devices.net"


class ClientError(Exception):
    pass


class ConnectionFailedError(ClientError):
    pass


class ConnectionDroppedError(ClientError):
    pass


class CredentialError(ClientError):
    pass


class OperationTimeout(Exception):
    pass


class RegistrationState:
    def __init__(self, device_id: str | None, assigned_hub: str | None, payload: Any) -> None:
        self.device_id = device_id
        self.assigned_hub = assigned_hub
        self._payload = payload

    @property
    def response_payload(self) -> str:
        return json.dumps(self._payload, sort_keys=True)


class RegistrationResult:
    def __init__(self, status: str, registration_state: RegistrationState | None) -> None:
        self.status = status
        self.registration_state = registration_state


class ProvisioningDeviceClient:
    instances: ClassVar[list[ProvisioningDeviceClient]] = []
    outcome: ClassVar[RegistrationResult | Exception] = RegistrationResult("assigned", None)

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.provisioning_payload: Any = None

    @classmethod
    def create_from_symmetric_key(
        cls,
        provisioning_host: str,
        registration_id: str,
        id_scope: str,
        symmetric_key: str,
        **kwargs: Any,
    ) -> ProvisioningDeviceClient:
        client = cls(
            provisioning_host=provisioning_host,
            registration_id=registration_id,
            id_scope=id_scope,
            symmetric_key=symmetric_key,
            **kwargs,
        )
        cls.instances.append(client)
        return client

    def register(self) -> RegistrationResult:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class MethodRequest:
    def __init__(self, request_id: str, name: str, payload: Any) -> None:
        self.request_id, self.name, self.payload = request_id, name, payload


class MethodResponse:
    def __init__(self, request_id: str, status: int, payload: Any = None) -> None:
        self.request_id, self.status, self.payload = request_id, status, payload

    @classmethod
    def create_from_method_request(
        cls, method_request: MethodRequest, status: int, payload: Any = None
    ) -> MethodResponse:
        return cls(method_request.request_id, status, payload)


class IoTHubDeviceClient:
    instances: ClassVar[list[IoTHubDeviceClient]] = []
    connect_error: ClassVar[Exception | None] = None

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.on_method_request_received: Any = None
        self.responses: list[MethodResponse] = []
        self.shut_down = False

    @classmethod
    def create_from_symmetric_key(
        cls, symmetric_key: str, hostname: str, device_id: str, **kwargs: Any
    ) -> IoTHubDeviceClient:
        client = cls(symmetric_key=symmetric_key, hostname=hostname, device_id=device_id, **kwargs)
        cls.instances.append(client)
        return client

    def connect(self) -> None:
        if self.connect_error is not None:
            raise self.connect_error

    def send_method_response(self, method_response: MethodResponse) -> None:
        self.responses.append(method_response)

    def shutdown(self) -> None:
        self.shut_down = True


@pytest.fixture
def module(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """`device.azure_transport`, imported against the stand-in SDK."""
    ProvisioningDeviceClient.instances, IoTHubDeviceClient.instances = [], []
    ProvisioningDeviceClient.outcome = RegistrationResult("assigned", None)
    IoTHubDeviceClient.connect_error = None
    exceptions = types.ModuleType("azure.iot.device.exceptions")
    for error in (ClientError, ConnectionFailedError, ConnectionDroppedError, CredentialError):
        setattr(exceptions, error.__name__, error)
    exceptions.OperationTimeout = OperationTimeout  # type: ignore[attr-defined]
    sdk = types.ModuleType("azure.iot.device")
    for name in ("IoTHubDeviceClient", "MethodRequest", "MethodResponse"):
        setattr(sdk, name, globals()[name])
    for name in ("ProvisioningDeviceClient", "RegistrationResult"):
        setattr(sdk, name, globals()[name])
    sdk.exceptions = exceptions  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.iot", types.ModuleType("azure.iot"))
    monkeypatch.setitem(sys.modules, "azure.iot.device", sdk)
    monkeypatch.setitem(sys.modules, "azure.iot.device.exceptions", exceptions)
    monkeypatch.delitem(sys.modules, "device.azure_transport", raising=False)
    yield importlib.import_module("device.azure_transport")
    sys.modules.pop("device.azure_transport", None)


def transport(module: types.ModuleType, **options: Any) -> Any:
    return module.AzureTransport(
        id_scope="0ne00000A0A", registration_id="dev-1", symmetric_key="a2V5", **options
    )


def test_register_sends_the_payload_and_returns_the_assignment(module: types.ModuleType) -> None:
    state = RegistrationState("dev-1", HUB, {"hubs": [HUB]})
    ProvisioningDeviceClient.outcome = RegistrationResult("assigned", state)

    assignment = transport(module).register({"region": "westeurope"})

    assert assignment == Assignment(HUB, "dev-1", {"hubs": [HUB]})
    (client,) = ProvisioningDeviceClient.instances
    assert client.provisioning_payload == {"region": "westeurope"}
    assert client.options == {
        "provisioning_host": "global.azure-devices-provisioning.net",
        "registration_id": "dev-1",
        "id_scope": "0ne00000A0A",
        "symmetric_key": "a2V5",
        "websockets": False,
    }


def test_a_registration_without_payload_gets_an_empty_one(module: types.ModuleType) -> None:
    ProvisioningDeviceClient.outcome = RegistrationResult(
        "assigned", RegistrationState("dev-1", HUB, None)
    )
    assert transport(module).register({}).payload == {}


@pytest.mark.parametrize(
    "outcome",
    [
        RegistrationResult("failed", RegistrationState(None, None, None)),
        RegistrationResult("disabled", None),
        RegistrationResult("assigned", RegistrationState("dev-1", "", None)),
        CredentialError("Credentials invalid, could not connect"),
        ConnectionFailedError("Could not connect to the provisioning server"),
        ClientError("Unexpected failure"),
        OperationTimeout("Could not complete operation before timeout"),
    ],
    ids=["failed", "disabled", "no-hub", "credential", "connection", "client", "timeout"],
)
def test_anything_but_an_assignment_is_a_failed_registration(
    module: types.ModuleType, outcome: RegistrationResult | Exception
) -> None:
    ProvisioningDeviceClient.outcome = outcome
    with pytest.raises(RegistrationFailed):
        transport(module).register({})


def test_connect_opens_a_client_for_the_assigned_hub_and_device(
    module: types.ModuleType,
) -> None:
    transport(module, websockets=True).connect(Assignment(HUB, "dev-1"))

    (client,) = IoTHubDeviceClient.instances
    assert client.options == {
        "symmetric_key": "a2V5",
        "hostname": HUB,
        "device_id": "dev-1",
        "websockets": True,
    }


def caused_by(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (CredentialError("Credentials invalid, could not connect"), HubRejected),
        (ClientError("Error in the IoTHub client due to TLS exchanges."), HubRejected),
        (ConnectionFailedError("Could not connect to IoTHub"), HubUnavailable),
        (ConnectionDroppedError("Lost connection to IoTHub"), HubUnavailable),
        (OperationTimeout("Could not complete operation before timeout"), HubUnavailable),
        (
            caused_by(
                ConnectionFailedError("Could not connect to IoTHub"),
                caused_by(ConnectionFailedError(), socket.gaierror(socket.EAI_NONAME, "unknown")),
            ),
            HubRejected,
        ),
        (
            caused_by(
                ConnectionFailedError("Could not connect to IoTHub"),
                socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
            ),
            HubUnavailable,
        ),
    ],
    ids=[
        "credential",
        "other-client-error",
        "connection-failed",
        "connection-dropped",
        "timeout",
        "hub-name-gone",
        "dns-unreachable",
    ],
)
def test_connect_errors_map_to_what_the_device_must_do(
    module: types.ModuleType, error: Exception, expected: type[Exception]
) -> None:
    IoTHubDeviceClient.connect_error = error

    with pytest.raises(expected) as raised:
        transport(module).connect(Assignment(HUB, "dev-1"))

    assert raised.value.__cause__ is error
    assert IoTHubDeviceClient.instances[0].shut_down


def test_direct_methods_reach_the_handler_and_its_answer_is_sent(
    module: types.ModuleType,
) -> None:
    session = transport(module).connect(Assignment(HUB, "dev-1"))
    session.on_direct_method(lambda name, payload: (202, {"name": name, "payload": payload}))
    (client,) = IoTHubDeviceClient.instances

    client.on_method_request_received(MethodRequest("r-1", "reprovision", {"why": "drain"}))

    (response,) = client.responses
    assert (response.request_id, response.status) == ("r-1", 202)
    assert response.payload == {"name": "reprovision", "payload": {"why": "drain"}}


def test_close_shuts_the_client_down(module: types.ModuleType) -> None:
    transport(module).connect(Assignment(HUB, "dev-1")).close()
    assert IoTHubDeviceClient.instances[0].shut_down


def test_errors_are_described_with_their_causes(module: types.ModuleType) -> None:
    error = caused_by(
        ConnectionFailedError("Could not connect to IoTHub"),
        caused_by(ConnectionFailedError(), ConnectionRefusedError(111, "Connection refused")),
    )
    assert module.describe(error) == (
        "ConnectionFailedError: Could not connect to IoTHub <- ConnectionFailedError"
        " <- ConnectionRefusedError: [Errno 111] Connection refused"
    )
