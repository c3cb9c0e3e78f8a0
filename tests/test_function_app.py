"""The Azure Function as the Functions host sees it: metadata, and real requests through it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from tests.conftest import SAMPLE_REQUESTS, call_function, encode, function, make_request


def test_allocate_is_a_post_only_function_behind_a_function_key() -> None:
    trigger = function("allocate").get_trigger()
    assert trigger.route == "allocate"
    assert trigger.methods == [func.HttpMethod.POST]
    assert trigger.auth_level == func.AuthLevel.FUNCTION
    bindings = json.loads(function("allocate").get_function_json())["bindings"]
    assert bindings[0] == {
        "direction": "IN",
        "type": "httpTrigger",
        "name": "req",
        "methods": ["POST"],
        "authLevel": "FUNCTION",
        "route": "allocate",
    }


def test_health_is_an_anonymous_get() -> None:
    trigger = function("health").get_trigger()
    assert trigger.route == "health"
    assert trigger.methods == [func.HttpMethod.GET]
    assert trigger.auth_level == func.AuthLevel.ANONYMOUS


def test_the_app_defaults_to_function_keys() -> None:
    from function_app import app

    assert app.auth_level == func.AuthLevel.FUNCTION


@pytest.mark.parametrize("sample", SAMPLE_REQUESTS, ids=lambda p: p.stem)
def test_every_captured_dps_request_is_allocated_to_a_linked_hub(sample: Path) -> None:
    request = json.loads(sample.read_text())
    response = call_function("allocate", sample.read_bytes())

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = json.loads(response.get_body())
    assert body["iotHubHostName"] in request["linkedHubs"]


@pytest.mark.parametrize("sample", SAMPLE_REQUESTS, ids=lambda p: p.stem)
def test_initial_twin_only_where_dps_applies_it(
    sample: Path, use_policy: Callable[[Any], None]
) -> None:
    use_policy(
        {
            "default": {
                "strategy": "weighted",
                "initialTwin": {"tags": {"fleet": "{enrollmentId}"}},
                "payload": {"hub": "{hub}"},
            }
        }
    )
    request = json.loads(sample.read_text())
    body = json.loads(call_function("allocate", sample.read_bytes()).get_body())

    # None of the captured reprovisioning requests is "reset to initial state", so DPS applies
    # the twin on initial assignment only; the payload always goes back to the device.
    reprovision = "currentIotHubHostName" in request["deviceRuntimeContext"]
    assert ("initialTwin" in body) is not reprovision
    assert body["payload"] == {"hub": body["iotHubHostName"]}
    if not reprovision:
        assert body["initialTwin"] == {
            "tags": {"fleet": request["enrollmentGroup"]["enrollmentGroupId"]}
        }


def test_a_reprovisioned_device_under_reset_gets_the_twin_when_its_hub_changes(
    use_policy: Callable[[Any], None],
) -> None:
    use_policy(
        {
            "hubs": {"old.azure-devices.net": {"drain": True}},
            "default": {"strategy": "weighted", "initialTwin": {"tags": {"moved": True}}},
        }
    )
    request = make_request(
        linked_hubs=["old.azure-devices.net", "new.azure-devices.net"],
        current_hub="old.azure-devices.net",
        update_hub_assignment=True,
        migrate_device_data=False,
    )
    body = json.loads(call_function("allocate", encode(request)).get_body())
    assert body == {
        "iotHubHostName": "new.azure-devices.net",
        "initialTwin": {"tags": {"moved": True}},
    }


def test_errors_are_json_with_the_specified_status() -> None:
    response = call_function("allocate", b"this is not json")
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert json.loads(response.get_body())["error"] == "invalid_request"


def test_health_reports_the_policy_without_its_content(use_policy: Callable[[Any], None]) -> None:
    use_policy(
        {
            "hubs": {"secret-hub.azure-devices.net": {"weight": 2}},
            "default": {"strategy": "weighted", "payload": {"token": "s3cr3t"}},
        }
    )
    response = call_function("health", method="GET")
    assert response.status_code == 200
    body = json.loads(response.get_body())
    assert body["status"] == "ok"
    assert body["policy"]["source"] == "setting"
    assert body["policy"]["hubs"] == 1
    assert len(body["policy"]["fingerprint"]) == 16
    text = response.get_body().decode()
    assert "s3cr3t" not in text and "secret-hub" not in text


def test_health_on_the_built_in_policy() -> None:
    body = json.loads(call_function("health", method="GET").get_body())
    assert body["policy"]["source"] == "default"
    assert body["policy"]["strategies"] == ["weighted"]


def test_health_and_allocate_answer_503_with_retry_after_on_a_broken_policy(
    use_policy: Callable[[Any], None],
) -> None:
    use_policy({"default": {"strategy": "no-such-strategy"}})

    health = call_function("health", method="GET")
    assert health.status_code == 503
    assert health.headers["Retry-After"].isdigit()
    body = json.loads(health.get_body())
    assert body["status"] == "unavailable"
    assert body["error"] == "policy_unavailable"
    assert body["reason"] == "policy_invalid"
    assert "strateg" not in health.get_body().decode()  # the full reason is only logged

    allocate = call_function("allocate", encode(make_request()))
    assert allocate.status_code == 503
    assert allocate.headers["Retry-After"].isdigit()
    assert json.loads(allocate.get_body())["error"] == "policy_unavailable"
