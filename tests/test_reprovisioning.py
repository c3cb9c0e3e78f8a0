"""Reprovisioning (policy.md, "Reprovisioning"): never / reset / migrate, sticky, drain.

Every combination of the enrollment's reprovision policy, initial vs repeated registration,
sticky on or off, and the state of the device's current hub, checked against the spec's rules.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from allocation import rendezvous
from allocation.candidates import Candidate
from allocation.policy import compile_policy
from allocation.webhook import handle
from tests.conftest import make_request

A, B, CURRENT = "hub-a.azure-devices.net", "hub-b.azure-devices.net", "hub-x.azure-devices.net"

# A device the weighted strategy would place on A, whichever of the hubs are candidates: so a
# device that stays on CURRENT stayed there because of reprovisioning rules, not by chance.
DEVICE = next(
    f"device-{i}"
    for i in itertools.count()
    if rendezvous.choose(f"device-{i}", [Candidate(A), Candidate(B), Candidate(CURRENT)]).name == A
)

REPROVISION_POLICIES = {
    "migrate": (True, True),
    "reset": (True, False),
    "never": (False, False),
    "absent": (None, None),  # DPS's default: reprovision and migrate
}
CURRENT_HUB_STATES = ["linked", "drained", "not linked"]


def policy(sticky: bool, current_state: str) -> Any:
    return compile_policy(
        {
            "sticky": sticky,
            "hubs": {CURRENT: {"drain": current_state == "drained"}},
            "default": {
                "strategy": "weighted",
                "initialTwin": {"tags": {"placedOn": "{hub}"}},
                "payload": {"hub": "{hub}"},
            },
        }
    )


def expected_hub(reprovision_policy: str, sticky: bool, current_state: str, again: bool) -> str:
    update, _ = REPROVISION_POLICIES[reprovision_policy]
    linked = current_state != "not linked"
    if again and update is False and linked:
        return CURRENT  # never reprovision: the device stays where it is
    if again and sticky and current_state == "linked":
        return CURRENT  # sticky: still a candidate and not drained
    return A


def twin_expected(reprovision_policy: str, hub: str, again: bool) -> bool:
    update, migrate = REPROVISION_POLICIES[reprovision_policy]
    if not again:
        return True
    return update is not False and migrate is False and hub != CURRENT


MATRIX = [
    (rp, again, sticky, state)
    for rp in REPROVISION_POLICIES
    for again in (False, True)
    for sticky in (False, True)
    for state in CURRENT_HUB_STATES
]


@pytest.mark.parametrize(
    ("reprovision_policy", "again", "sticky", "current_state"),
    MATRIX,
    ids=[
        f"{rp}-{'reprovision' if again else 'initial'}-{'sticky' if s else 'rerun'}-{st}"
        for rp, again, s, st in MATRIX
    ],
)
def test_reprovisioning_matrix(
    reprovision_policy: str, again: bool, sticky: bool, current_state: str
) -> None:
    update, migrate = REPROVISION_POLICIES[reprovision_policy]
    linked = [A, B] + ([CURRENT] if current_state != "not linked" else [])
    request = make_request(
        DEVICE,
        linked,
        current_hub=CURRENT if again else None,
        update_hub_assignment=update,
        migrate_device_data=migrate,
    )

    response = handle(json.dumps(request).encode(), policy(sticky, current_state))

    assert response.status == 200
    hub = response.body["iotHubHostName"]
    assert hub == expected_hub(reprovision_policy, sticky, current_state, again)
    assert hub in linked
    assert ("initialTwin" in response.body) is twin_expected(reprovision_policy, hub, again)
    assert response.body["payload"] == {"hub": hub}


def test_an_allocation_can_turn_sticky_on_for_the_devices_it_handles() -> None:
    sticky_enrollment = compile_policy(
        {
            "sticky": False,
            "default": {"strategy": "weighted"},
            "enrollments": {"fleet": {"strategy": "weighted", "sticky": True}},
        }
    )
    request = make_request(DEVICE, [A, B, CURRENT], current_hub=CURRENT)
    assert handle(json.dumps(request).encode(), sticky_enrollment).body["iotHubHostName"] == CURRENT

    other = make_request(DEVICE, [A, B, CURRENT], current_hub=CURRENT, enrollment_group="other")
    assert handle(json.dumps(other).encode(), sticky_enrollment).body["iotHubHostName"] == A


def test_a_sticky_device_leaves_a_hub_its_allocation_no_longer_allows() -> None:
    narrowed = compile_policy({"sticky": True, "default": {"strategy": "weighted", "hubs": [A, B]}})
    request = make_request(DEVICE, [A, B, CURRENT], current_hub=CURRENT)
    assert handle(json.dumps(request).encode(), narrowed).body["iotHubHostName"] == A


def test_the_current_hub_is_matched_case_insensitively_and_answered_as_linked() -> None:
    never = compile_policy({"default": {"strategy": "weighted"}})
    request = make_request(
        DEVICE,
        [A, "HUB-X.Azure-Devices.net"],
        current_hub=CURRENT,
        update_hub_assignment=False,
    )
    assert handle(json.dumps(request).encode(), never).body["iotHubHostName"] == (
        "HUB-X.Azure-Devices.net"
    )


def test_a_device_whose_inputs_did_not_change_gets_its_hub_again() -> None:
    default = compile_policy({"default": {"strategy": "weighted"}})
    first = handle(json.dumps(make_request(DEVICE, [A, B, CURRENT])).encode(), default)
    hub = first.body["iotHubHostName"]
    again = handle(
        json.dumps(make_request(DEVICE, [A, B, CURRENT], current_hub=hub)).encode(), default
    )
    assert again.body["iotHubHostName"] == hub
