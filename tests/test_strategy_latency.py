"""The ``latency`` strategy: the candidate with the lowest expected round-trip time.

Each test is a policy an operator could write and the devices it places, through the webhook's
one entry point; the decision trace shows which evidence decided.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from allocation.context import context_from_request
from allocation.decision import decide
from allocation.errors import PolicyError
from allocation.policy import Policy, compile_policy, parse_policy
from allocation.requests import parse_request
from allocation.webhook import WebhookResponse, handle
from tests.conftest import encode, make_request

NE = "contoso-ne.azure-devices.net"  # Dublin
WE = "contoso-we.azure-devices.net"  # Amsterdam
US = "contoso-us.azure-devices.net"  # Virginia
A, B, C = "hub-a.azure-devices.net", "hub-b.azure-devices.net", "hub-c.azure-devices.net"

HUBS = {
    NE: {"region": "northeurope"},
    WE: {"region": "westeurope"},
    US: {"region": "eastus"},
}


def latency_policy(hubs: Mapping[str, Any] = HUBS, **options: Any) -> Policy:
    return compile_policy({"hubs": dict(hubs), "default": {"strategy": "latency", **options}})


def allocate(
    policy: Policy,
    payload: Any,
    linked_hubs: Sequence[str] = (US, NE),
    registration_id: str = "sensor-0001",
) -> WebhookResponse:
    body = encode(make_request(registration_id, linked_hubs, payload=payload))
    response = handle(body, policy)
    assert response.status == 200, response.body
    return response


def hub_of(response: WebhookResponse) -> str:
    hub: str = response.body["iotHubHostName"]
    return hub


def evidence(response: WebhookResponse) -> Mapping[str, Any]:
    assert response.decision is not None
    return response.decision.steps[0].evidence


def path_of(response: WebhookResponse) -> str:
    assert response.decision is not None
    return response.decision.path


# -- location --------------------------------------------------------------------------------


def test_a_device_in_westeurope_goes_to_northeurope_rather_than_eastus() -> None:
    response = allocate(latency_policy(), {"region": "westeurope"}, linked_hubs=(US, NE))

    assert hub_of(response) == NE
    assert path_of(response) == "default > latency"
    assert evidence(response) == {
        "evidence": "region",
        "region": "westeurope",
        # Great-circle estimates: about 750 km to Dublin, 6 500 km to Virginia.
        "latencyMs": {US: pytest.approx(136, abs=5), NE: pytest.approx(16, abs=2)},
        "tied": [NE],
    }


def test_region_names_compare_case_insensitively() -> None:
    response = allocate(latency_policy(), {"region": "WestEurope"})

    assert hub_of(response) == NE
    assert evidence(response)["region"] == "westeurope"


@pytest.mark.parametrize(
    ("where", "hub"),
    [
        pytest.param({"lat": 40.71, "lon": -74.01}, US, id="new-york"),
        pytest.param({"lat": 54.60, "lon": -5.93}, NE, id="belfast"),
        pytest.param({"lat": 52.37, "lon": 4.90, "accuracyM": 30}, WE, id="amsterdam-extra-keys"),
    ],
)
def test_a_device_placed_by_coordinates_goes_to_the_nearest_hub(
    where: dict[str, Any], hub: str
) -> None:
    response = allocate(latency_policy(toleranceMs=0), {"region": where}, linked_hubs=(US, NE, WE))

    assert hub_of(response) == hub
    assert evidence(response)["evidence"] == "coordinates"
    assert evidence(response)["lat"] == where["lat"]
    assert evidence(response)["lon"] == where["lon"]


def test_hubs_in_the_same_region_and_nearby_are_tied_within_the_tolerance() -> None:
    # Amsterdam is 0 ms from itself, Dublin about 16 ms away: with 20 ms of tolerance the two
    # share westeurope's devices, and eastus gets none.
    policy = latency_policy(toleranceMs=20)
    hubs = Counter(
        hub_of(allocate(policy, {"region": "westeurope"}, (US, NE, WE), f"sensor-{n}"))
        for n in range(200)
    )
    assert set(hubs) == {NE, WE}


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("atlantis", id="unknown-region"),
        pytest.param("", id="empty-name"),
        pytest.param(42, id="a-number"),
        pytest.param(["westeurope"], id="a-list"),
        pytest.param({"lat": 91, "lon": 0}, id="latitude-off-the-globe"),
        pytest.param({"lat": 0, "lon": 180.5}, id="longitude-off-the-globe"),
        pytest.param({"lat": "52.37", "lon": "4.90"}, id="coordinates-as-text"),
        pytest.param({"lat": True, "lon": 0}, id="a-boolean"),
        pytest.param({"lat": 52.37}, id="no-longitude"),
        pytest.param({"latitude": 52.37, "longitude": 4.90}, id="other-key-names"),
    ],
)
def test_an_unusable_location_falls_back(location: Any) -> None:
    response = allocate(latency_policy(), {"region": location})

    assert path_of(response) == "default > fallback > weighted"
    assert evidence(response) == {"evidence": "none"}


def test_hubs_without_a_known_region_are_not_chosen_by_location() -> None:
    hubs = {**HUBS, A: {"region": "mars"}}  # B has no entry at all, so no region
    policy = latency_policy(hubs, toleranceMs=1000)
    placed = {
        hub_of(allocate(policy, {"region": "westeurope"}, (A, B, NE), f"sensor-{n}"))
        for n in range(50)
    }
    assert placed == {NE}

    nowhere = allocate(policy, {"region": "westeurope"}, (A, B))
    assert path_of(nowhere) == "default > fallback > weighted"


def test_an_unknown_hub_region_loads_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    policy = latency_policy({**HUBS, A: {"region": "westeurop"}})  # a typo: no load error

    with caplog.at_level(logging.WARNING, logger="allocation"):
        for n in range(3):
            allocate(policy, {"region": "westeurope"}, (A, NE), f"sensor-{n}")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert '"westeurop"' in warnings[0]
    assert "default" in warnings[0]


# -- measurements ----------------------------------------------------------------------------


def test_measurements_beat_location() -> None:
    # In westeurope, but the device measured eastus faster (a VPN exit in Virginia, say).
    payload = {"region": "westeurope", "latencyMs": {US: 12, NE: 80}}
    response = allocate(latency_policy(), payload)

    assert hub_of(response) == US
    assert evidence(response) == {
        "evidence": "measurements",
        "latencyMs": {US: 12.0, NE: 80.0},
        "tied": [US],
    }


def test_measured_host_names_compare_case_insensitively_and_the_linked_name_is_echoed() -> None:
    linked = ("Hub-A.Azure-Devices.net", "hub-b.azure-devices.net")
    payload = {"latencyMs": {"HUB-A.AZURE-DEVICES.NET": 15, "hub-b.azure-devices.net": 90}}
    response = allocate(latency_policy(), payload, linked)

    assert hub_of(response) == "Hub-A.Azure-Devices.net"


def test_measurements_of_hubs_that_are_not_candidates_are_ignored() -> None:
    # C is not linked; A is linked but drained; B is linked but outside the hub filter.
    policy = compile_policy(
        {
            "hubs": {A: {"drain": True}, B: {"tags": ["lab"]}},
            "default": {"strategy": "latency", "hubs": [A, NE, US]},
        }
    )
    payload = {"latencyMs": {C: 1, A: 2, B: 3, NE: 40, US: 90}}
    response = allocate(policy, payload, (A, B, NE, US))

    assert hub_of(response) == NE
    assert evidence(response)["latencyMs"] == {NE: 40.0, US: 90.0}


def test_only_measured_candidates_are_chosen_among() -> None:
    # C was added after the device last measured: it is not chosen on no evidence.
    policy = latency_policy(toleranceMs=1000)
    placed = {
        hub_of(allocate(policy, {"latencyMs": {A: 50, B: 60}}, (A, B, C), f"sensor-{n}"))
        for n in range(100)
    }
    assert placed == {A, B}


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param("5", id="text"),
        pytest.param(True, id="a-boolean"),
        pytest.param(-1, id="negative"),
        pytest.param(None, id="null"),
        pytest.param([5], id="a-list"),
        pytest.param({"avg": 5}, id="an-object"),
    ],
)
def test_an_unusable_measurement_is_ignored(junk: Any) -> None:
    response = allocate(latency_policy(), {"latencyMs": {A: junk, B: 100}}, (A, B))

    assert hub_of(response) == B
    assert evidence(response)["latencyMs"] == {B: 100.0}


def test_junk_measurements_fall_back() -> None:
    policy = latency_policy(fallback={"strategy": "static", "hub": B})
    payload = {"latencyMs": {A: "fast", B: -3, C: True, "elsewhere.azure-devices.net": 1}}
    response = allocate(policy, payload, (A, B, C))

    assert hub_of(response) == B
    assert path_of(response) == "default > fallback > static"
    assert evidence(response) == {"evidence": "none"}


def test_all_nan_measurements_fall_back() -> None:
    # NaN has no JSON form: the webhook refuses a body that holds it, before any strategy runs.
    policy = latency_policy(fallback={"strategy": "static", "hub": B})
    nan_payload = {"latencyMs": {A: math.nan, B: math.nan, C: math.inf}}
    assert handle(encode(make_request(payload=nan_payload)), policy).status == 400

    # A host that builds the request context itself can still hand the strategy NaN.
    request = parse_request(encode(make_request("sensor-0001", (A, B, C))))
    context = context_from_request(request)._replace(payload=nan_payload)
    decision = decide(policy, context)

    assert decision.hub.name == B
    assert decision.path == "default > fallback > static"


def test_a_measurements_value_that_is_not_an_object_counts_as_none() -> None:
    payload = {"latencyMs": [[NE, 10]], "region": "eastus"}
    response = allocate(latency_policy(), payload)

    assert hub_of(response) == US
    assert evidence(response)["evidence"] == "region"


def test_the_spelling_dps_sent_counts_before_other_spellings_of_a_hub() -> None:
    policy = latency_policy(toleranceMs=0)

    exact = allocate(policy, {"latencyMs": {A: 90, A.upper(): 15, B: 40}}, (A, B))
    assert evidence(exact)["latencyMs"] == {A: 90.0, B: 40.0}

    # Without a usable entry spelled as in linkedHubs, the smallest of the other spellings.
    variants = {A: "n/a", A.upper(): 30, A.title(): 15, B: 40}
    assert evidence(allocate(policy, {"latencyMs": variants}, (A, B)))["latencyMs"] == {
        A: 15.0,
        B: 40.0,
    }


def test_the_trace_rounds_to_a_tenth_of_a_millisecond() -> None:
    response = allocate(latency_policy(), {"latencyMs": {A: 12.3456, B: 99.99}}, (A, B))

    assert evidence(response)["latencyMs"] == {A: 12.3, B: 100.0}


# -- ties ------------------------------------------------------------------------------------


def test_ties_within_the_tolerance_are_split_by_weight_over_10000_devices() -> None:
    hubs = {A: {"weight": 1}, B: {"weight": 3}, C: {"weight": 4}}
    policy = latency_policy(hubs)  # toleranceMs 10: A (20) and B (28) tie, C (31) is out
    payload = {"latencyMs": {A: 20, B: 28, C: 31}}

    placed = Counter(
        hub_of(allocate(policy, payload, (A, B, C), f"sensor-{n:05}")) for n in range(10_000)
    )

    assert placed[C] == 0
    assert placed[A] / 10_000 == pytest.approx(0.25, abs=0.02)
    assert placed[B] / 10_000 == pytest.approx(0.75, abs=0.02)
    assert evidence(allocate(policy, payload, (A, B, C)))["tied"] == [A, B]


def test_a_tie_is_the_weighted_strategy_over_the_tied_hubs() -> None:
    hubs = {A: {"weight": 2}, B: {"weight": 5}, C: {}}
    latency = latency_policy(hubs)
    weighted = compile_policy({"hubs": hubs, "default": {"strategy": "weighted"}})
    payload = {"latencyMs": {A: 20, B: 25, C: 300}}

    for n in range(200):
        device = f"sensor-{n}"
        chosen = hub_of(allocate(latency, payload, (A, B, C), device))
        assert chosen == hub_of(allocate(weighted, None, (A, B), device))
        assert chosen == hub_of(allocate(latency, payload, (A, B, C), device))  # stable


def test_with_no_tolerance_only_the_fastest_is_chosen_unless_equal() -> None:
    policy = latency_policy(toleranceMs=0)
    near_miss = {
        hub_of(allocate(policy, {"latencyMs": {A: 20, B: 20.5}}, (A, B), f"d{n}"))
        for n in range(100)
    }
    equal = {
        hub_of(allocate(policy, {"latencyMs": {A: 20, B: 20}}, (A, B), f"d{n}")) for n in range(100)
    }

    assert near_miss == {A}
    assert equal == {A, B}


# -- the operator's table --------------------------------------------------------------------


def test_the_operators_table_replaces_distance_estimates() -> None:
    # Measured by the operator: this fleet's westeurope devices reach Virginia faster.
    policy = latency_policy(regionLatencyMs={"westeurope": {"northeurope": 60, "eastus": 25}})
    response = allocate(policy, {"region": "westeurope"})

    assert hub_of(response) == US
    assert evidence(response) == {
        "evidence": "regionLatencyMs",
        "region": "westeurope",
        "latencyMs": {US: 25.0, NE: 60.0},
        "tied": [US],
    }


def test_the_operators_table_is_symmetric_and_a_region_is_0_ms_from_itself() -> None:
    table = {
        "northeurope": {"westeurope": 15},  # read as westeurope -> northeurope as well
        "eastus": {"westeurope": 80},
        "WestEurope": {"EastUS": 5},  # given in this direction too: this one counts
    }
    policy = latency_policy(regionLatencyMs=table, toleranceMs=0)

    assert evidence(allocate(policy, {"region": "westeurope"}))["latencyMs"] == {US: 5, NE: 15}
    response = allocate(policy, {"region": "westeurope"}, (US, NE, WE))
    assert hub_of(response) == WE
    assert evidence(response)["latencyMs"] == {US: 5, NE: 15, WE: 0}


def test_the_operators_table_may_name_sites_that_are_not_azure_regions() -> None:
    policy = latency_policy(
        regionLatencyMs={"plant-eindhoven": {"westeurope": 4, "northeurope": 22, "eastus": 95}}
    )
    response = allocate(policy, {"region": "Plant-Eindhoven"}, (US, NE, WE))

    assert hub_of(response) == WE
    assert evidence(response)["region"] == "plant-eindhoven"


def test_without_a_row_for_the_device_the_built_in_table_estimates() -> None:
    policy = latency_policy(regionLatencyMs={"eastus": {"northeurope": 70}})

    by_name = allocate(policy, {"region": "westeurope"})
    assert hub_of(by_name) == NE
    assert evidence(by_name)["evidence"] == "region"

    by_point = allocate(policy, {"region": {"lat": 40.71, "lon": -74.01}})
    assert hub_of(by_point) == US
    assert evidence(by_point)["evidence"] == "coordinates"


def test_a_row_that_gives_no_candidate_a_figure_leaves_it_to_the_built_in_table() -> None:
    policy = latency_policy(regionLatencyMs={"westeurope": {"japaneast": 230}})
    response = allocate(policy, {"region": "westeurope"})

    assert hub_of(response) == NE
    assert evidence(response)["evidence"] == "region"


# -- options ---------------------------------------------------------------------------------


def test_evidence_can_be_read_from_other_payload_paths() -> None:
    policy = latency_policy(measurements="payload.net.rttMs", location="payload.site.azureRegion")

    measured = allocate(policy, {"net": {"rttMs": {NE: 30, US: 9}}})
    assert hub_of(measured) == US
    located = allocate(policy, {"site": {"azureRegion": "uksouth"}, "latencyMs": {US: 1}})
    assert hub_of(located) == NE
    assert evidence(located)["evidence"] == "region"


def test_a_device_without_a_payload_gets_the_default_fallback_weighted() -> None:
    response = allocate(latency_policy(), None)

    assert path_of(response) == "default > fallback > weighted"
    assert response.decision is not None
    assert response.decision.steps[1].allocation == "default.fallback"


def test_the_fallback_is_a_full_allocation() -> None:
    policy = compile_policy(
        {
            "hubs": HUBS,
            "default": {
                "strategy": "latency",
                "payload": {"placedBy": "latency", "site": "{payload.site}"},
                "fallback": {
                    "strategy": "weighted",
                    "hubs": [{"region": "northeurope"}],
                    "payload": {"placedBy": "fallback"},
                },
            },
        }
    )
    located = allocate(policy, {"site": "s1", "region": "eastus"}, (US, NE, WE))
    assert hub_of(located) == US
    assert located.body["payload"] == {"placedBy": "latency", "site": "s1"}

    unplaced = allocate(policy, {"site": "s2"}, (US, NE, WE))
    assert hub_of(unplaced) == NE
    assert unplaced.body["payload"] == {"placedBy": "fallback", "site": "s2"}


INVALID_OPTIONS: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, latency options, JSON path named, words the message contains)
    ("measurements outside the payload", {"measurements": "registrationId"}, "default.measurements", "payload"),
    ("measurements the whole payload", {"measurements": "payload"}, "default.measurements", "payload."),
    ("an empty path segment", {"measurements": "payload..latencyMs"}, "default.measurements", "path"),
    ("measurements not text", {"measurements": 5}, "default.measurements", "string"),
    ("location outside the payload", {"location": "region"}, "default.location", "payload"),
    ("location ends with a dot", {"location": "payload.site."}, "default.location", "path"),
    ("negative tolerance", {"toleranceMs": -1}, "default.toleranceMs", "greater than or equal to 0"),
    ("tolerance as text", {"toleranceMs": "10"}, "default.toleranceMs", "number"),
    ("tolerance a boolean", {"toleranceMs": True}, "default.toleranceMs", "number"),
    ("a table that is not an object", {"regionLatencyMs": []}, "default.regionLatencyMs", "dictionary"),
    ("a row that is not an object", {"regionLatencyMs": {"westeurope": 20}},
     "default.regionLatencyMs.westeurope", "dictionary"),
    ("a negative figure", {"regionLatencyMs": {"westeurope": {"eastus": -5}}},
     "default.regionLatencyMs.westeurope.eastus", "greater than or equal to 0"),
    ("a figure as text", {"regionLatencyMs": {"westeurope": {"eastus": "80"}}},
     "default.regionLatencyMs.westeurope.eastus", "number"),
    ("a row listed twice", {"regionLatencyMs": {"westeurope": {}, "WestEurope": {}}},
     "default.regionLatencyMs.WestEurope", "twice"),
    ("a column listed twice", {"regionLatencyMs": {"westeurope": {"eastus": 80, "EASTUS": 81}}},
     "default.regionLatencyMs.westeurope.EASTUS", "twice"),
    ("an empty region name", {"regionLatencyMs": {"": {"eastus": 80}}},
     'default.regionLatencyMs[""]', "region name"),
    ("a misspelt option", {"tolerance": 5}, "default.tolerance", "unknown"),
    ("a fallback that is not an allocation", {"fallback": "weighted"}, "default.fallback", "object"),
    ("a fallback of null", {"fallback": None}, "default.fallback", "object"),
    ("a fallback with an unknown strategy", {"fallback": {"strategy": "nearest"}},
     "default.fallback.strategy", "unknown strategy"),
    ("a fallback with a bad option", {"fallback": {"strategy": "static"}}, "default.fallback.hub", "missing"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "options", "path", "words"), INVALID_OPTIONS, ids=[o[0] for o in INVALID_OPTIONS]
)
def test_invalid_options_are_rejected_naming_the_json_path(
    case: str, options: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        compile_policy({"default": {"strategy": "latency", **options}})
    problems = {p.path: p.message for p in raised.value.problems}
    assert path in problems, problems
    assert words.lower() in problems[path].lower()


def test_a_tolerance_of_nan_or_infinity_is_rejected() -> None:
    # Python's JSON parser reads NaN and Infinity; the policy must not.
    for constant in ("NaN", "Infinity"):
        with pytest.raises(PolicyError) as raised:
            parse_policy(f'{{"default": {{"strategy": "latency", "toleranceMs": {constant}}}}}')
        assert [p.path for p in raised.value.problems] == ["default.toleranceMs"]
        assert "finite" in raised.value.problems[0].message


def test_every_problem_is_reported_at_once_fallback_included() -> None:
    with pytest.raises(PolicyError) as raised:
        compile_policy(
            {
                "enrollments": {
                    "toasters": {
                        "strategy": "latency",
                        "location": "site",
                        "toleranceMs": -2,
                        "fallback": {"strategy": "static"},
                    }
                }
            }
        )
    assert sorted(p.path for p in raised.value.problems) == [
        "enrollments.toasters.fallback.hub",
        "enrollments.toasters.location",
        "enrollments.toasters.toleranceMs",
    ]


def test_a_duplicate_region_is_reported_along_with_type_errors_in_the_table() -> None:
    with pytest.raises(PolicyError) as raised:
        compile_policy(
            {
                "default": {
                    "strategy": "latency",
                    "regionLatencyMs": {"westeurope": {"eastus": "80"}, "WESTEUROPE": {}},
                }
            }
        )
    assert sorted(p.path for p in raised.value.problems) == [
        "default.regionLatencyMs.WESTEUROPE",
        "default.regionLatencyMs.westeurope.eastus",
    ]


def test_a_valid_latency_policy_loads_from_text() -> None:
    policy = parse_policy(
        json.dumps(
            {
                "hubs": HUBS,
                "default": {
                    "strategy": "latency",
                    "measurements": "payload.latencyMs",
                    "location": "payload.region",
                    "regionLatencyMs": {"westeurope": {"northeurope": 18.5, "eastus": 82}},
                    "toleranceMs": 5,
                    "fallback": {"strategy": "weighted", "key": "{payload.siteId}"},
                },
            }
        )
    )
    assert policy.strategies == {"latency", "weighted"}
