"""The reference device against our real allocation core.

The fake DPS does what DPS does with a custom allocation enrollment: it builds the webhook's
request from what the device sent (registration ID, payload, and the device's current hub when it
has one), calls `allocation.webhook.handle`, and hands the answer back to the device.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from device_doubles import HUB_EU, HUB_US, REGISTRATION_ID, FixedProbe

from allocation.policy import Policy, parse_policy
from allocation.webhook import handle
from device.boot import Device
from device.cache import AssignmentCache
from device.clock import FakeClock
from device.fake_transport import FakeSession, FakeTransport
from device.transport import Assignment, RegistrationFailed

SAMPLE = Path(__file__).parents[1] / "fixtures" / "group-symmetric-key-initial.json"
LINKED_HUBS = [HUB_EU, HUB_US]
REGIONS = {HUB_EU: {"region": "westeurope"}, HUB_US: {"region": "eastus"}}
LATENCY_POLICY = {
    "hubs": REGIONS,
    "default": {"strategy": "latency", "payload": {"hubs": ["{hub}"]}},
}


class WebhookDps:
    """DPS with a custom allocation enrollment whose webhook is our allocation core."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.requests: list[dict[str, Any]] = []

    def __call__(
        self, registration_id: str, payload: Mapping[str, Any], current_hub: str | None
    ) -> Assignment:
        request = copy.deepcopy(json.loads(SAMPLE.read_text(encoding="utf-8")))
        request["enrollmentGroup"]["iotHubs"] = LINKED_HUBS
        request["linkedHubs"] = LINKED_HUBS
        context: dict[str, Any] = {"registrationId": registration_id, "symmetricKey": {}}
        if payload:
            context["payload"] = dict(payload)
        if current_hub is not None:
            context["currentIotHubHostName"] = current_hub
            context["currentDeviceId"] = registration_id
        request["deviceRuntimeContext"] = context
        self.requests.append(request)

        response = handle(json.dumps(request).encode("utf-8"), self.policy)

        if response.status != 200:  # DPS fails the registration (or retries 429/5xx itself)
            raise RegistrationFailed(f"webhook answered {response.status}: {response.body}")
        # Group enrollment: DPS makes the registration ID the device ID.
        return Assignment(
            response.body["iotHubHostName"], registration_id, response.body.get("payload", {})
        )


def fleet_device(
    tmp_path: Path, policy: dict[str, Any], *, region: str, latencies: dict[str, float]
) -> tuple[Device, FakeTransport, WebhookDps]:
    clock = FakeClock()
    dps = WebhookDps(parse_policy(json.dumps(policy)))
    transport = FakeTransport(REGISTRATION_ID, clock, dps)
    cache = AssignmentCache(tmp_path / "assignment.json", REGISTRATION_ID)
    device = Device(
        transport,
        cache,
        region=region,
        probe=FixedProbe(latencies),
        clock=clock,
        rng=random.Random(1),
    )
    return device, transport, dps


@pytest.mark.parametrize(
    ("region", "latencies", "fastest"),
    [
        ("westeurope", {HUB_EU: 140.0, HUB_US: 18.5}, HUB_US),
        ("eastus", {HUB_EU: 9.0, HUB_US: 95.0}, HUB_EU),
    ],
    ids=["eu-device-nearer-us", "us-device-nearer-eu"],
)
def test_a_device_reporting_latency_lands_on_its_fastest_hub(
    tmp_path: Path, region: str, latencies: dict[str, float], fastest: str
) -> None:
    device, transport, dps = fleet_device(
        tmp_path, LATENCY_POLICY, region=region, latencies=latencies
    )
    # An earlier assignment (by region) whose payload listed both hubs to measure.
    previous_hub = HUB_EU if region == "westeurope" else HUB_US
    transport.current_hub = previous_hub
    device.cache.save(Assignment(previous_hub, REGISTRATION_ID, {"hubs": LINKED_HUBS}))

    session = device.reprovision()

    sent = dps.requests[0]["deviceRuntimeContext"]
    assert sent["payload"] == {"region": region, "latencyMs": latencies}
    assert sent["currentIotHubHostName"] == previous_hub
    assert isinstance(session, FakeSession)
    assert session.hub == fastest
    cached = device.cache.load()
    assert cached is not None
    assert cached.assignment == Assignment(fastest, REGISTRATION_ID, {"hubs": [fastest]})


@pytest.mark.parametrize(("region", "hub"), [("westeurope", HUB_EU), ("eastus", HUB_US)])
def test_a_first_boot_without_measurements_lands_by_region(
    tmp_path: Path, region: str, hub: str
) -> None:
    device, _, dps = fleet_device(tmp_path, LATENCY_POLICY, region=region, latencies={})

    session = device.boot()

    assert dps.requests[0]["deviceRuntimeContext"]["payload"] == {"region": region}
    assert "currentIotHubHostName" not in dps.requests[0]["deviceRuntimeContext"]
    assert isinstance(session, FakeSession)
    assert session.hub == hub


def test_measurements_flow_from_one_registration_into_the_next(tmp_path: Path) -> None:
    """The policy lists every hub in its payload; the device measures them before re-registering."""
    policy = {
        **LATENCY_POLICY,
        "default": {"strategy": "latency", "payload": {"hubs": LINKED_HUBS}},
    }
    device, transport, dps = fleet_device(
        tmp_path, policy, region="westeurope", latencies={HUB_EU: 120.0, HUB_US: 22.0}
    )

    first = device.boot()  # nothing measured yet: the region decides
    first.close()
    rebooted = Device(
        transport, device.cache, region="westeurope", probe=device.probe, clock=FakeClock()
    )
    rebooted.boot()  # the cached hub, no DPS call
    second = rebooted.reprovision()  # now with latencyMs to both hubs

    assert isinstance(first, FakeSession)
    assert isinstance(second, FakeSession)
    assert (first.hub, second.hub) == (HUB_EU, HUB_US)
    assert len(dps.requests) == 2
    assert dps.requests[1]["deviceRuntimeContext"]["payload"]["latencyMs"] == {
        HUB_EU: 120.0,
        HUB_US: 22.0,
    }
    assert dps.requests[1]["deviceRuntimeContext"]["currentIotHubHostName"] == HUB_EU
    assert [a.hub for a in transport.connects] == [HUB_EU, HUB_EU, HUB_US]
