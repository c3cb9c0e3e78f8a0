"""Drain: phased moves of a fleet off a hub, through the real policy and webhook."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from allocation.candidates import Candidate, HubSettings
from allocation.drain import drain_bucket, is_drained
from allocation.policy import compile_policy
from allocation.webhook import handle
from tests.conftest import make_request

OLD, NEW_1, NEW_2 = (
    "old-hub.azure-devices.net",
    "new-hub-1.azure-devices.net",
    "new-hub-2.azure-devices.net",
)
LINKED = [OLD, NEW_1, NEW_2]
FLEET = [f"meter-{i:05d}" for i in range(20_000)]


def policy_with(drain: Any, weights: tuple[int, int, int] = (1, 1, 3)) -> Any:
    return compile_policy(
        {
            "hubs": {
                OLD: {"weight": weights[0], "drain": drain},
                NEW_1: {"weight": weights[1]},
                NEW_2: {"weight": weights[2]},
            },
            "default": {"strategy": "weighted"},
        }
    )


def allocate_fleet(policy: Any, **request: Any) -> dict[str, str]:
    hubs = {}
    for device in FLEET:
        response = handle(json.dumps(make_request(device, LINKED, **request)).encode(), policy)
        assert response.status == 200
        hubs[device] = response.body["iotHubHostName"]
    return hubs


@pytest.fixture(scope="module")
def undrained() -> dict[str, str]:
    return allocate_fleet(policy_with(0))


def test_drain_zero_moves_nobody(undrained: dict[str, str]) -> None:
    no_entry = compile_policy(
        {"hubs": {NEW_1: {"weight": 1}, NEW_2: {"weight": 3}}, "default": {"strategy": "weighted"}}
    )
    assert allocate_fleet(no_entry) == undrained


def test_raising_drain_only_adds_devices(undrained: dict[str, str]) -> None:
    on_old = {d for d, hub in undrained.items() if hub == OLD}
    at_20 = allocate_fleet(policy_with(20))
    at_50 = allocate_fleet(policy_with(50))
    left_at_20 = {d for d in on_old if at_20[d] != OLD}
    left_at_50 = {d for d in on_old if at_50[d] != OLD}

    assert left_at_20 <= left_at_50
    assert len(left_at_20) / len(on_old) == pytest.approx(0.20, abs=0.02)
    assert len(left_at_50) / len(on_old) == pytest.approx(0.50, abs=0.02)
    # Only devices on the drained hub move, and none moves onto it.
    for phase in (at_20, at_50):
        assert all(phase[d] == undrained[d] for d in FLEET if undrained[d] != OLD)


@pytest.mark.parametrize("drain", [100, True])
def test_full_drain_empties_the_hub(drain: Any, undrained: dict[str, str]) -> None:
    drained = allocate_fleet(policy_with(drain))
    assert OLD not in drained.values()
    assert OLD in undrained.values()


def test_drained_devices_spread_over_the_other_hubs_by_weight(undrained: dict[str, str]) -> None:
    drained = allocate_fleet(policy_with(100, weights=(1, 1, 3)))
    leavers = Counter(drained[d] for d in FLEET if undrained[d] == OLD)
    total = sum(leavers.values())
    assert leavers[NEW_1] / total == pytest.approx(0.25, abs=0.02)
    assert leavers[NEW_2] / total == pytest.approx(0.75, abs=0.02)


def test_new_devices_respect_drain_and_reprovisioned_ones_leave() -> None:
    policy = policy_with(100)
    first = handle(json.dumps(make_request("fresh-device", LINKED)).encode(), policy)
    again = handle(json.dumps(make_request("old-device", LINKED, current_hub=OLD)).encode(), policy)
    assert first.body["iotHubHostName"] != OLD
    assert again.body["iotHubHostName"] != OLD


def test_buckets_are_pinned_so_a_phase_never_reshuffles() -> None:
    assert drain_bucket("device-0001", "hub-a.azure-devices.net") == 25912
    assert drain_bucket("device-0002", "old-hub.azure-devices.net") == 233541
    assert drain_bucket("sensor-ñ", "old-hub.azure-devices.net") == 959753


def test_drain_compares_host_names_case_insensitively() -> None:
    upper = Candidate("OLD-HUB.azure-devices.net", HubSettings(drain=50))
    lower = Candidate(OLD, HubSettings(drain=50))
    assert [is_drained(d, upper) for d in FLEET[:500]] == [
        is_drained(d, lower) for d in FLEET[:500]
    ]


def test_a_hub_drained_for_every_candidate_answers_no_eligible_hub() -> None:
    policy = compile_policy({"hubs": {OLD: {"drain": True}}, "default": {"strategy": "weighted"}})
    response = handle(json.dumps(make_request("d", [OLD])).encode(), policy)
    assert response.status == 503
    assert response.body["error"] == "no_eligible_hub"
    assert response.headers["Retry-After"]
