"""The ``rules`` strategy: first match wins, nested allocations, denials, and load errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from allocation.errors import PolicyError, Problem
from allocation.policy import compile_policy
from allocation.webhook import WebhookResponse, handle
from tests.conftest import call_function, encode, make_request

EU1, EU2, EU3 = "eu-1.azure-devices.net", "eu-2.azure-devices.net", "eu-3.azure-devices.net"
US1, US2 = "us-1.azure-devices.net", "us-2.azure-devices.net"
LINKED = (EU1, EU2, EU3, US1, US2)


def allocate(
    policy: dict[str, Any], registration_id: str = "device-1", **request: Any
) -> WebhookResponse:
    request.setdefault("linked_hubs", LINKED)
    return handle(encode(make_request(registration_id, **request)), compile_policy(policy))


def rules(*rule: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"default": {"strategy": "rules", "rules": list(rule), **options}}


def static(hub: str, **common: Any) -> dict[str, Any]:
    return {"strategy": "static", "hub": hub, **common}


TOASTERS = {"registrationId": {"startsWith": "toaster-"}}


# -- choosing ----------------------------------------------------------------------------------


def test_the_first_rule_that_holds_decides() -> None:
    policy = rules(
        {
            "name": "kettles",
            "when": {"registrationId": {"startsWith": "kettle-"}},
            "then": static(US2),
        },
        {"name": "toasters", "when": TOASTERS, "then": static(EU2)},
        {"name": "everything", "when": {}, "then": static(US1)},
    )

    response = allocate(policy, "toaster-7")

    assert response.body == {"iotHubHostName": EU2}
    assert response.decision is not None
    assert response.decision.path == 'default > rules[1] "toasters" > static'


def test_a_device_no_rule_matches_goes_to_otherwise() -> None:
    policy = rules({"when": TOASTERS, "then": static(EU2)}, otherwise=static(US1))

    response = allocate(policy, "kettle-1")

    assert response.body == {"iotHubHostName": US1}
    assert response.decision is not None
    assert response.decision.path == "default > otherwise > static"


def test_otherwise_defaults_to_weighted_over_the_candidates() -> None:
    policy = rules({"when": TOASTERS, "then": static(EU2)})

    response = allocate(policy, "kettle-1")

    assert response.status == 200
    assert response.body["iotHubHostName"] in LINKED
    assert response.decision is not None
    assert response.decision.path == "default > otherwise > weighted"


def test_no_rules_at_all_is_just_otherwise() -> None:
    assert allocate(rules(otherwise=static(US2))).body == {"iotHubHostName": US2}


def test_an_unnamed_rule_is_named_by_its_index_in_the_trace() -> None:
    policy = rules(
        {"when": {"iotEdge": {"equals": True}}, "then": static(US1)},
        {"when": {}, "then": static(EU1)},
    )

    response = allocate(policy)

    assert response.decision is not None
    assert response.decision.path == "default > rules[1] > static"


def test_rules_can_use_every_kind_of_field_together() -> None:
    policy = rules(
        {
            "name": "edge gateways on new firmware, reprovisioned",
            "when": {
                "iotEdge": {"equals": True},
                "reprovision": {"equals": True},
                "payload.firmware": {"versionGte": "2.1"},
                "currentHub": {"glob": "eu-*"},
            },
            "then": static(US1),
        },
        otherwise=static(EU1),
    )
    base = {"iot_edge": True, "current_hub": EU2, "payload": {"firmware": "2.1.0"}}

    assert allocate(policy, **base).body["iotHubHostName"] == US1
    assert (
        allocate(policy, **{**base, "payload": {"firmware": "2.0.9"}}).body["iotHubHostName"] == EU1
    )
    assert allocate(policy, **{**base, "iot_edge": False}).body["iotHubHostName"] == EU1


# -- deny --------------------------------------------------------------------------------------


def test_deny_answers_403_naming_the_rule() -> None:
    policy = rules(
        {
            "name": "revoked batch",
            "when": {"registrationId": {"glob": "toaster-9??"}},
            "then": "deny",
        }
    )

    response = allocate(policy, "toaster-901")

    assert response.status == 403
    assert response.body == {
        "error": "denied",
        "message": "denied by revoked batch",
        "rule": "revoked batch",
    }
    assert allocate(policy, "toaster-91").status == 200


def test_an_unnamed_deny_rule_is_named_by_its_index() -> None:
    policy = rules(
        {"when": TOASTERS, "then": static(EU1)},
        {"when": {"iotEdge": {"equals": False}}, "then": "deny"},
    )

    response = allocate(policy, "kettle-1")

    assert response.status == 403
    assert response.body["rule"] == "rules[1]"


def test_otherwise_can_deny_every_device_no_rule_allows() -> None:
    policy = rules(
        {
            "name": "known models",
            "when": {"payload.modelId": {"in": ["dtmi:contoso:toaster;1"]}},
            "then": static(EU1),
        },
        otherwise="deny",
    )

    assert allocate(policy, payload={"modelId": "dtmi:contoso:toaster;1"}).status == 200
    response = allocate(policy, payload={"modelId": "dtmi:evil:toaster;1"})
    assert response.status == 403
    assert response.body["rule"] == "otherwise"


def test_a_denial_through_the_azure_function(use_policy: Callable[[Any], None]) -> None:
    use_policy(
        rules({"name": "no edge devices", "when": {"iotEdge": {"equals": True}}, "then": "deny"})
    )

    response = call_function("allocate", encode(make_request(iot_edge=True)))

    assert response.status_code == 403
    assert json.loads(response.get_body()) == {
        "error": "denied",
        "message": "denied by no edge devices",
        "rule": "no edge devices",
    }


def test_a_deny_rule_denies_even_a_device_with_a_current_hub() -> None:
    # Reprovisioning (sticky, never-reprovision) is decided where a hub is chosen; a denial
    # comes first.
    policy = rules({"name": "retired", "when": TOASTERS, "then": "deny"}, sticky=True)

    response = allocate(policy, "toaster-1", current_hub=EU1, update_hub_assignment=False)

    assert response.status == 403
    assert response.body["rule"] == "retired"


# -- nested allocations ------------------------------------------------------------------------

THREE_LEVELS = {
    "default": {
        "strategy": "rules",
        "hubs": ["eu-*", US1],
        "initialTwin": {
            "tags": {"fleet": "contoso", "level": 1},
            "properties": {"desired": {"telemetry": {"interval": 60, "unit": "s"}}},
        },
        "payload": {"level": 1, "region": "any"},
        "rules": [
            {
                "name": "toasters",
                "when": TOASTERS,
                "then": {
                    "strategy": "rules",
                    "hubs": ["*-1.azure-devices.net", EU2],
                    "initialTwin": {"tags": {"kind": "toaster", "level": 2}},
                    "payload": {"level": 2},
                    "rules": [
                        {
                            "name": "eu toasters",
                            "when": {"payload.region": {"equals": "eu"}},
                            "then": {
                                "strategy": "weighted",
                                "hubs": ["eu-*"],
                                "initialTwin": {
                                    "properties": {"desired": {"telemetry": {"interval": 10}}}
                                },
                                "payload": {"level": 3, "region": "eu"},
                            },
                        },
                        {
                            "name": "banned toasters",
                            "when": {"payload.region": {"equals": "cn"}},
                            "then": "deny",
                        },
                    ],
                    "otherwise": {"strategy": "static", "hub": "*", "payload": {"level": "2b"}},
                },
            }
        ],
    }
}


def test_three_levels_narrow_the_hubs_merge_twins_and_trace_the_path() -> None:
    response = allocate(THREE_LEVELS, "toaster-1", payload={"region": "eu"})

    assert response.status == 200
    assert response.decision is not None
    assert (
        response.decision.path
        == 'default > rules[0] "toasters" > rules[0] "eu toasters" > weighted'
    )
    # Level 1 allows eu-* and us-1; level 2 narrows that to *-1 and eu-2; level 3 to eu-*.
    steps = response.decision.steps
    assert [step.eligible for step in steps] == [(EU1, EU2, EU3, US1), (EU1, EU2, US1), (EU1, EU2)]
    assert response.body["iotHubHostName"] in (EU1, EU2)
    # Each level's twin and payload merge over its parent's; the inner one wins.
    assert response.body["initialTwin"] == {
        "tags": {"fleet": "contoso", "level": 2, "kind": "toaster"},
        "properties": {"desired": {"telemetry": {"interval": 10, "unit": "s"}}},
    }
    assert response.body["payload"] == {"level": 3, "region": "eu"}


def test_a_nested_otherwise_only_sees_the_candidates_its_parents_left() -> None:
    # Static "*" takes the first candidate in linkedHubs order: not eu-3 (level 2 drops it),
    # nor us-2 (level 1 drops it).
    response = allocate(THREE_LEVELS, "toaster-1", linked_hubs=(EU3, US2, US1, EU2, EU1))

    assert response.body["iotHubHostName"] == US1
    assert response.body["payload"] == {"level": "2b", "region": "any"}
    assert response.decision is not None
    assert response.decision.path == 'default > rules[0] "toasters" > otherwise > static'


def test_a_deny_deep_inside_names_its_rule() -> None:
    response = allocate(THREE_LEVELS, "toaster-1", payload={"region": "cn"})

    assert response.status == 403
    assert response.body["rule"] == "banned toasters"


def test_a_nested_filter_that_leaves_no_hub_is_503_no_eligible_hub() -> None:
    policy = rules({"when": {}, "then": {"strategy": "weighted", "hubs": ["asia-*"]}})

    response = allocate(policy)

    assert response.status == 503
    assert response.body["error"] == "no_eligible_hub"
    assert response.headers["Retry-After"]


def test_a_nested_filter_cannot_widen_its_parents() -> None:
    policy = {
        "default": {
            "strategy": "rules",
            "hubs": [EU1],
            "rules": [{"when": {}, "then": static(US1, hubs=[US1])}],
        }
    }

    assert allocate(policy).body["error"] == "no_eligible_hub"


def test_a_rule_with_sticky_keeps_a_reprovisioned_device_where_it_is() -> None:
    policy = rules({"when": TOASTERS, "then": {"strategy": "weighted", "sticky": True}})

    for current in LINKED:
        response = allocate(policy, "toaster-1", current_hub=current)
        assert response.body["iotHubHostName"] == current


# -- load errors -------------------------------------------------------------------------------

R0 = "default.rules[0]"

LOAD_ERRORS: list[tuple[str, dict[str, Any], list[Problem]]] = [
    ("rules missing", {"default": {"strategy": "rules"}},
     [Problem("default.rules", "required field is missing")]),
    ("rules not a list", {"default": {"strategy": "rules", "rules": {"when": {}}}},
     [Problem("default.rules", "Input should be a valid list")]),
    ("a rule not an object", rules("deny"),
     [Problem(R0, 'a rule is an object: {"name": .., "when": {..}, "then": {..}}')]),
    ("an unknown rule field", rules({"if": {}, "when": {}, "then": "deny"}),
     [Problem(f"{R0}.if", "unknown field; a rule has name, when and then")]),
    ("when missing", rules({"then": "deny"}), [Problem(f"{R0}.when", "required field is missing")]),
    ("then missing", rules({"when": {}}), [Problem(f"{R0}.then", "required field is missing")]),
    ("then a string", rules({"when": {}, "then": "Deny"}),
     [Problem(f"{R0}.then", 'must be an allocation such as {"strategy": "weighted"}, or "deny"')]),
    ("otherwise a string", rules(otherwise="weighted"),
     [Problem("default.otherwise", 'must be an allocation such as {"strategy": "weighted"}, or "deny"')]),
    ("a name not a string", rules({"name": 7, "when": {}, "then": "deny"}),
     [Problem(f"{R0}.name", "must be a non-empty string")]),
    ("an empty name", rules({"name": "", "when": {}, "then": "deny"}),
     [Problem(f"{R0}.name", "must be a non-empty string")]),
    ("two rules of one name", rules({"name": "a", "when": {}, "then": "deny"}, {"name": "a", "when": {}, "then": "deny"}),
     [Problem("default.rules[1].name", "'a' also names rules[0]; a 403 must name one rule")]),
    ("a name that is another rule's index", rules({"when": {}, "then": "deny"}, {"name": "rules[0]", "when": {}, "then": "deny"}),
     [Problem("default.rules[1].name", "'rules[0]' also names rules[0]; a 403 must name one rule")]),
    ("a rule named otherwise", rules({"name": "otherwise", "when": {}, "then": "deny"}),
     [Problem(f"{R0}.name", "'otherwise' also names the otherwise branch; a 403 must name one rule")]),
    ("a condition problem", rules({"when": {"registrationId": {"gt": 1}}, "then": "deny"}),
     [Problem(f"{R0}.when.registrationId.gt", "'gt' compares numbers; registrationId is a string")]),
    ("a nested allocation problem", rules({"when": {}, "then": {"strategy": "static"}}),
     [Problem(f"{R0}.then.hub", "required field is missing")]),
    ("a nested rules problem", rules({"when": {}, "then": {"strategy": "rules", "rules": [{"when": {"iotEdge": {"equals": 1}}, "then": "deny"}]}}),
     [Problem(f"{R0}.then.rules[0].when.iotEdge.equals", "must be a boolean, not a number")]),
]  # fmt: skip


@pytest.mark.parametrize(("policy", "problems"), [c[1:] for c in LOAD_ERRORS], ids=[c[0] for c in LOAD_ERRORS])  # fmt: skip
def test_load_error(policy: dict[str, Any], problems: list[Problem]) -> None:
    with pytest.raises(PolicyError) as raised:
        compile_policy(policy)
    assert list(raised.value.problems) == problems


def test_one_load_reports_the_problems_of_every_rule() -> None:
    policy = {
        "default": {
            "strategy": "rules",
            "rules": [
                {"when": {"iotEdge": {"startsWith": "x"}}, "then": {"strategy": "nope"}},
                {"name": "ok", "when": {}, "then": {"strategy": "weighted"}},
                {"when": {"payload.v": {"versionGte": "x"}}, "then": {"strategy": "static"}},
                {"when": {}, "then": "allow"},
            ],
            "otherwise": {"strategy": "static", "hub": 5},
        }
    }

    with pytest.raises(PolicyError) as raised:
        compile_policy(policy)

    assert sorted(p.path for p in raised.value.problems) == [
        "default.otherwise.hub",
        "default.rules[0].then.strategy",
        "default.rules[0].when.iotEdge.startsWith",
        "default.rules[2].then.hub",
        'default.rules[2].when["payload.v"].versionGte',
        "default.rules[3].then",
    ]


def test_rules_are_reported_as_a_strategy_the_policy_uses() -> None:
    policy = compile_policy(rules({"when": {}, "then": static(EU1)}))
    assert policy.strategies == {"rules", "static", "weighted"}
