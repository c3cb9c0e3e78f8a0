"""``simulate --from OLD --phases DIR``: a seeded fleet of 100,000 devices off a drained hub.

The example's phases raise the legacy hub's drain 0 -> 5 -> 25 -> 50 -> 100. The whole fleet
starts on the legacy hub (examples/03-phased-migration/before.json) and every device
re-registers at every step, as after a firmware push.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.policy import compile_policy
from allocation.simulation.fleet import FleetDevice, seeded_ids
from allocation.simulation.reregister import Registrar
from allocation.simulation.walk import Walk
from tests.conftest import ROOT, run_cli

EXAMPLE = ROOT / "examples" / "03-phased-migration"
LEGACY = "contoso-legacy-hub.azure-devices.net"
NEW = ["contoso-meters-1.azure-devices.net", "contoso-meters-2.azure-devices.net"]
HUBS = ",".join([LEGACY, *NEW])
FLEET = 100_000
DRAINS = [0, 5, 25, 50, 100]


def phases(reprovision: str, *extra: str) -> dict[str, Any]:
    result = run_cli(
        "simulate",
        "--from", str(EXAMPLE / "before.json"),
        "--phases", str(EXAMPLE / "phases"),
        "--devices", str(FLEET),
        "--hubs", HUBS,
        "--reprovision", reprovision,
        "--json",
        *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture(scope="module")
def reset() -> dict[str, Any]:
    return phases("reset")


def after(step: dict[str, Any], hub: str) -> int:
    return next(int(row["after"]) for row in step["hubs"] if row["hub"] == hub)


def test_the_phases_run_in_natural_order(reset: dict[str, Any]) -> None:
    drains = [
        next(r["drain"] for r in step["hubs"] if r["hub"] == LEGACY) for step in reset["steps"]
    ]
    assert drains == DRAINS
    assert reset["start"]["hubs"] == {LEGACY: FLEET, NEW[0]: 0, NEW[1]: 0}


def test_each_phase_moves_the_share_its_drain_delta_predicts(reset: dict[str, Any]) -> None:
    for (previous, drain), step in zip(pairwise([0, *DRAINS]), reset["steps"], strict=True):
        assert step["moved"] / FLEET == pytest.approx((drain - previous) / 100, abs=0.01)
        # Every move leaves the legacy hub: the new hubs' devices stay put.
        assert set(step["movedFrom"]) <= {LEGACY}
        assert step["registrations"] == FLEET


def test_no_device_moves_twice(reset: dict[str, Any]) -> None:
    assert [step["movedTwice"] for step in reset["steps"]] == [0] * len(DRAINS)
    assert reset["movedTwice"] == 0
    assert sum(step["moved"] for step in reset["steps"]) == FLEET


def test_after_the_last_phase_the_drained_hub_is_empty(reset: dict[str, Any]) -> None:
    last = reset["steps"][-1]
    assert after(last, LEGACY) == 0
    assert after(last, NEW[0]) + after(last, NEW[1]) == FLEET
    assert last["refused"] == {"denied": 0, "no_eligible_hub": 0}


def test_expected_shares_follow_the_candidates_each_device_had(reset: dict[str, Any]) -> None:
    # Sticky devices can only stay; drained ones spread evenly over the two new hubs. So the
    # legacy hub expects exactly what stayed on it, and the new hubs split the rest.
    for step in reset["steps"]:
        rows = {row["hub"]: row for row in step["hubs"]}
        assert rows[LEGACY]["expectedShare"] == pytest.approx(rows[LEGACY]["share"])
        for hub in NEW:
            assert rows[hub]["expectedShare"] == pytest.approx(rows[hub]["share"], abs=0.005)


def test_quota_time_is_the_registrations_at_the_dps_rate(reset: dict[str, Any]) -> None:
    assert reset["dps"]["registrationsPerMinutePerUnit"] == 1000
    for step in reset["steps"]:
        dps = step["dps"]
        assert dps["minutesAtQuota"] == FLEET / 1000
        assert dps["onlyMoved"]["minutesAtQuota"] == step["moved"] / 1000


def test_under_never_reprovision_nothing_moves() -> None:
    document = phases("never")
    for step in document["steps"]:
        assert step["moved"] == 0
        assert step["stayed"]["neverReprovision"] == FLEET
        assert after(step, LEGACY) == FLEET


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(0, 100), min_size=1, max_size=5).map(sorted),
    st.sampled_from(["reset", "migrate"]),
)
def test_raising_a_drain_never_moves_a_device_twice(drains: list[float], reprovision: Any) -> None:
    # Any increasing sequence of drains, the new hubs weighted 1 and 2: the walk counts each
    # device's moves, and a second one would show in movedTwice.
    hubs = [LEGACY, *NEW]
    policies = [
        compile_policy({"hubs": {LEGACY: {"drain": drain}, NEW[1]: {"weight": 2}}, "sticky": True})
        for drain in drains
    ]
    walk = Walk([Registrar(p, hubs, reprovision) for p in policies], hubs, 100.0)
    for registration_id in seeded_ids(3, 300):
        walk.device(FleetDevice(registration_id, "fleet", None, None), LEGACY, exact=False)
    assert [counts.moved_twice for counts in walk.steps] == [0] * len(drains)
    left = sum(n for (before, after, _), n in walk.steps[-1].transitions.items() if after == LEGACY)
    if drains[-1] == 100:
        assert left == 0


def test_the_reference_client_against_the_quota() -> None:
    # The fleet-reboot test's numbers: 10,000 devices, 1,000 registrations a minute, spread
    # over 900 s by the reference client.
    result = run_cli(
        "simulate", "--from", str(EXAMPLE / "before.json"), "--devices", "10000",
        "--policy", str(EXAMPLE / "phases" / "drain-100.json"), "--hubs", HUBS,
        "--device-behaviour", "reference", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    reference = json.loads(result.stdout)["steps"][0]["reference"]
    assert reference["retry"] == {"floorSeconds": 5, "capSeconds": 300, "spreadSeconds": 900}
    away = reference["turnedAway"]
    assert away["dpsCalls"] == 10_000 and away["refused"] == 0
    assert away["peakPerMinute"] < 1000
    assert 14 <= away["minutes"] <= 15
    # Asked to reprovision, the same fleet calls DPS at once: refused calls are retried with
    # back-off, and it takes longer than the quota alone would.
    asked = reference["askedToReprovision"]
    assert asked["refused"] > 0
    assert asked["minutes"] > 10
