"""Shared fixtures: captured DPS requests, request builders, and an isolated policy setting."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from allocation.sources import (
    CHECK_SETTING,
    POLICY_BLOB_SETTING,
    POLICY_FILE_SETTING,
    POLICY_SETTING,
    policy_cache,
)
from fuzz.bodies import request as dps_request
from tests.azurite import AzuriteServer

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE_REQUESTS = sorted(FIXTURES.glob("group-*.json"))


def load_sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def make_request(
    registration_id: str = "device-1",
    linked_hubs: Sequence[str] = ("hub-a.azure-devices.net", "hub-b.azure-devices.net"),
    *,
    enrollment_group: str = "fleet",
    individual: bool = False,
    current_hub: str | None = None,
    payload: Any = None,
    update_hub_assignment: bool | None = None,
    migrate_device_data: bool | None = None,
    attestation: str = "symmetricKey",
    iot_edge: bool = False,
) -> dict[str, Any]:
    """A DPS allocation request shaped like the captured ones (fuzz.bodies.request), with the
    reprovision policy's two flags as arguments; an individual enrollment is the device's own."""
    flags = {"updateHubAssignment": update_hub_assignment, "migrateDeviceData": migrate_device_data}
    policy = {name: value for name, value in flags.items() if value is not None}
    return dps_request(
        registration_id,
        linked_hubs,
        individual=individual,
        enrollment_id=registration_id if individual else enrollment_group,
        current_hub=current_hub,
        payload=payload,
        reprovision_policy=policy or None,
        iot_edge=iot_edge,
        attestation=attestation,
    )


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


# Every setting that chooses the policy or its store, cleared for each test.
POLICY_SETTINGS = (
    POLICY_SETTING,
    POLICY_BLOB_SETTING,
    POLICY_FILE_SETTING,
    CHECK_SETTING,
    "ALLOCATION_STORAGE",
    "ALLOCATION_STORAGE__blobServiceUri",
    "ALLOCATION_STORAGE__tableServiceUri",
    "ALLOCATION_STORAGE__clientId",
)


@pytest.fixture(autouse=True)
def isolated_policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts on the built-in policy, whatever the machine's environment says."""
    for setting in POLICY_SETTINGS:
        monkeypatch.delenv(setting, raising=False)
    policy_cache.clear()
    yield
    policy_cache.clear()


@pytest.fixture
def use_policy(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], None]:
    """Install a policy (a dict, or raw text) as the ALLOCATION_POLICY app setting."""

    def install(policy: Any) -> None:
        text = policy if isinstance(policy, str) else json.dumps(policy)
        monkeypatch.setenv(POLICY_SETTING, text)
        policy_cache.clear()

    return install


@functools.cache
def _app_functions() -> dict[str, Any]:
    # get_functions() builds the functions; the SDK refuses to build them twice.
    from function_app import app

    return {f.get_function_name(): f for f in app.get_functions()}


def function(name: str) -> Any:
    """The function as the Functions host indexes it (metadata and user function)."""
    return _app_functions()[name]


def call_function(name: str, body: bytes = b"", method: str = "POST") -> func.HttpResponse:
    """Invoke a function of the app the way the Functions host does, with a real HttpRequest."""
    route = function(name).get_trigger().route
    request = func.HttpRequest(
        method=method,
        url=f"https://example.azurewebsites.net/api/{route}",
        headers={"Content-Type": "application/json"},
        params={},
        body=body,
    )
    response: func.HttpResponse = function(name).get_user_function()(request)
    return response


# -- the command line ----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m allocation ARGS`` at the repository root.

    The policy settings are set (empty unless ``env`` says otherwise) so that a developer's
    local.settings.json, which the commands read, never changes what a test sees.
    """
    environment = {**os.environ, **dict.fromkeys(POLICY_SETTINGS, ""), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "allocation", *args],
        cwd=ROOT,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr


def write_policy(directory: Path, policy: Any, name: str = "policy.json") -> Path:
    path = directory / name
    path.write_text(policy if isinstance(policy, str) else json.dumps(policy), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """One Azurite for the session, in memory; tests keep to their own containers and tables."""
    server = AzuriteServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def storage_setting(monkeypatch: pytest.MonkeyPatch, azurite: AzuriteServer) -> str:
    """ALLOCATION_STORAGE set to the session's Azurite, as a developer's local.settings.json
    would set it; returns the connection string."""
    monkeypatch.setenv("ALLOCATION_STORAGE", azurite.connection_string)
    return azurite.connection_string
