"""Policy version 1: what loads, what is rejected (naming the JSON path), what it means."""

from __future__ import annotations

import json
from typing import Any

import pytest

from allocation.errors import PolicyError
from allocation.policy import compile_policy, default_policy, parse_policy
from allocation.webhook import handle
from tests.conftest import encode, make_request

A, B, C = "hub-a.azure-devices.net", "hub-b.azure-devices.net", "hub-c.azure-devices.net"

INVALID_POLICIES: list[tuple[str, Any, str, str]] = [
    # (case, policy, JSON path named, words the message contains)
    ("not JSON", '{"default": ', "", "not valid JSON"),
    ("not an object", "[]", "", "JSON object"),
    ("a misspelt top-level field", {"defualt": {"strategy": "weighted"}}, "defualt", "unknown"),
    ("sticky not a boolean", {"sticky": "yes"}, "sticky", "boolean"),
    ("weight zero", {"hubs": {A: {"weight": 0}}}, f'hubs["{A}"].weight', "greater than or equal to 1"),
    ("weight over 1000", {"hubs": {A: {"weight": 1001}}}, f'hubs["{A}"].weight', "1000"),
    ("weight a string", {"hubs": {A: {"weight": "2"}}}, f'hubs["{A}"].weight', "integer"),
    ("drain over 100", {"hubs": {A: {"drain": 150}}}, f'hubs["{A}"].drain', "100"),
    ("a tag that is not a string", {"hubs": {A: {"tags": ["eu", 3]}}}, f'hubs["{A}"].tags[1]', "string"),
    ("an unknown hub field", {"hubs": {A: {"wieght": 2}}}, f'hubs["{A}"].wieght', "unknown"),
    ("a hub key that is not a host name", {"hubs": {"not a host": {}}}, 'hubs["not a host"]', "host name"),
    ("the same hub twice", {"hubs": {A: {}, A.upper(): {}}}, f'hubs["{A.upper()}"]', "twice"),
    ("default not an object", {"default": "weighted"}, "default", "object"),
    ("no strategy", {"default": {"hubs": [A]}}, "default.strategy", "required"),
    ("an unknown strategy", {"default": {"strategy": "roundrobin"}}, "default.strategy", "unknown strategy"),
    ("static without a hub", {"default": {"strategy": "static"}}, "default.hub", "missing"),
    ("an unknown option", {"default": {"strategy": "weighted", "kye": "{registrationId}"}}, "default.kye", "unknown"),
    ("a constant weighted key", {"default": {"strategy": "weighted", "key": "site"}}, "default.key", "request field"),
    ("a bad hub selector", {"default": {"strategy": "weighted", "hubs": [A, B, "no spaces allowed"]}},
     "default.hubs[2]", "selector"),
    ("an empty hub filter", {"default": {"strategy": "weighted", "hubs": []}}, "default.hubs", "non-empty"),
    ("a selector of an unknown kind", {"default": {"strategy": "weighted", "hubs": [{"zone": "1"}]}},
     "default.hubs[0]", "selector"),
    ("a payload that is not an object", {"default": {"strategy": "weighted", "payload": "hi"}},
     "default.payload", "object"),
    ("reported properties in the twin",
     {"default": {"strategy": "weighted", "initialTwin": {"properties": {"reported": {}}}}},
     "default.initialTwin.properties.reported", "desired"),
    ("an unknown template field",
     {"default": {"strategy": "weighted", "payload": {"greeting": "hello {deviceName}"}}},
     "default.payload.greeting", "unknown template field"),
    ("an unclosed template",
     {"default": {"strategy": "weighted", "initialTwin": {"tags": {"site": "{payload.site"}}}},
     "default.initialTwin.tags.site", "unclosed"),
    ("an enrollment that is not an allocation", {"enrollments": {"group-1": 5}}, 'enrollments["group-1"]', "object"),
    ("an enrollment listed twice", {"enrollments": {"g": {"strategy": "weighted"}, "G": {"strategy": "weighted"}}},
     "enrollments.G", "twice"),
    ("a sticky override that is not a boolean",
     {"enrollments": {"g": {"strategy": "weighted", "sticky": 1}}}, "enrollments.g.sticky", "true or false"),
    # Python's JSON parser reads these; no answer to DPS can carry them.
    ("NaN in a twin", {"default": {"strategy": "weighted", "initialTwin": {"tags": {"x": float("nan")}}}},
     "default.initialTwin.tags.x", "finite"),
    ("-Infinity in a payload list", {"default": {"strategy": "weighted", "payload": {"x": [1, float("-inf")]}}},
     "default.payload.x[1]", "finite"),
    ("a lone surrogate in a payload", {"default": {"strategy": "weighted", "payload": {"x": "a\ud800"}}},
     "default.payload.x", "lone surrogate"),
    ("a lone surrogate in a tag's name", {"default": {"strategy": "weighted", "initialTwin": {"tags": {"\udc00": "v"}}}},
     'default.initialTwin.tags["\\udc00"]', "lone surrogate"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "policy", "path", "words"), INVALID_POLICIES, ids=[p[0] for p in INVALID_POLICIES]
)
def test_an_invalid_policy_is_rejected_naming_the_json_path(
    case: str, policy: Any, path: str, words: str
) -> None:
    text = policy if isinstance(policy, str) else json.dumps(policy)
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    problems = {p.path: p.message for p in raised.value.problems}
    assert path in problems, problems
    assert words.lower() in problems[path].lower()
    assert f"{path}: " in str(raised.value) or path == ""


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(PolicyError) as raised:
        compile_policy(
            {
                "hubs": {A: {"weight": 0}},
                "default": {"strategy": "nope"},
                "enrollments": {"g": {"strategy": "static"}},
            }
        )
    assert [p.path for p in raised.value.problems] == [
        f'hubs["{A}"].weight',
        "default.strategy",
        "enrollments.g.hub",
    ]


def test_the_built_in_default_is_weighted_over_linked_hubs() -> None:
    policy = default_policy()
    assert policy.strategies == frozenset({"weighted"})
    assert policy.hubs == {}
    assert policy == parse_policy('{"default": {"strategy": "weighted"}}')


def test_an_empty_policy_means_the_default() -> None:
    assert parse_policy("{}").default.strategy.name == "weighted"


def test_schema_reference_is_allowed() -> None:
    parse_policy('{"$schema": "./policy.schema.json", "default": {"strategy": "weighted"}}')


def test_fingerprint_follows_content_not_formatting() -> None:
    compact = parse_policy('{"default":{"strategy":"static","hub":"a.b"}}')
    spaced = parse_policy('{ "default" : { "hub": "a.b", "strategy": "static" } }')
    other = parse_policy('{"default":{"strategy":"static","hub":"a.c"}}')
    assert compact.fingerprint == spaced.fingerprint != other.fingerprint


def allocate(policy: Any, **request: Any) -> dict[str, Any]:
    response = handle(encode(make_request(**request)), compile_policy(policy))
    assert response.status == 200, response.body
    return response.body


def test_enrollments_are_matched_by_group_id_case_insensitively() -> None:
    policy = {
        "default": {"strategy": "static", "hub": A},
        "enrollments": {"Contoso-Toasters": {"strategy": "static", "hub": B}},
    }
    assert (
        allocate(policy, linked_hubs=[A, B], enrollment_group="contoso-toasters")["iotHubHostName"]
        == B
    )
    assert allocate(policy, linked_hubs=[A, B], enrollment_group="other")["iotHubHostName"] == A


def test_an_individual_enrollment_is_matched_by_its_registration_id() -> None:
    policy = {
        "default": {"strategy": "static", "hub": A},
        "enrollments": {"special-device": {"strategy": "static", "hub": B}},
    }
    body = allocate(policy, registration_id="special-device", individual=True, linked_hubs=[A, B])
    assert body["iotHubHostName"] == B


def test_static_takes_the_first_linked_hub_matching_a_glob() -> None:
    policy = {"default": {"strategy": "static", "hub": "*-toasters-*"}}
    linked = ["contoso-heatpumps-1.azure-devices.net", "contoso-toasters-2.azure-devices.net",
              "contoso-toasters-1.azure-devices.net"]  # fmt: skip
    assert allocate(policy, linked_hubs=linked)["iotHubHostName"] == linked[1]


def test_static_with_no_matching_hub_is_a_503_not_a_wrong_hub() -> None:
    response = handle(
        encode(make_request(linked_hubs=[A])),
        compile_policy({"default": {"strategy": "static", "hub": B}}),
    )
    assert response.status == 503
    assert response.body["error"] == "no_eligible_hub"


@pytest.mark.parametrize(
    ("selectors", "allowed"),
    [
        ([B], {B}),
        (["HUB-C.AZURE-DEVICES.NET"], {C}),
        (["hub-[ab].azure-devices.net"], {A, B}),
        ([{"tag": "eu"}], {A, C}),
        ([{"region": "WestEurope"}], {A}),
        ([{"region": "westeurope"}, B], {A, B}),
    ],
)
def test_hub_filters_select_by_name_glob_tag_and_region(
    selectors: list[Any], allowed: set[str]
) -> None:
    policy = {
        "hubs": {
            A: {"region": "westeurope", "tags": ["eu"]},
            B: {"region": "eastus", "tags": ["us"]},
            C: {"region": "northeurope", "tags": ["eu", "spare"]},
            "not-linked.azure-devices.net": {"tags": ["eu"]},
        },
        "default": {"strategy": "weighted", "hubs": selectors},
    }
    chosen = {
        allocate(policy, registration_id=f"dev-{i}", linked_hubs=[A, B, C])["iotHubHostName"]
        for i in range(200)
    }
    assert chosen == allowed


def test_weighted_key_keeps_a_site_together_and_falls_back_to_the_device() -> None:
    policy = {"default": {"strategy": "weighted", "key": "{payload.siteId}"}}
    linked = [A, B, C]
    site_hubs = {
        allocate(policy, registration_id=f"d{i}", linked_hubs=linked, payload={"siteId": "s-17"})[
            "iotHubHostName"
        ]
        for i in range(50)
    }
    assert len(site_hubs) == 1
    siteless = {
        allocate(policy, registration_id=f"d{i}", linked_hubs=linked)["iotHubHostName"]
        for i in range(50)
    }
    assert len(siteless) == 3


def test_twin_and_payload_templates_render_request_values() -> None:
    policy = {
        "hubs": {A: {"region": "westeurope"}},
        "default": {
            "strategy": "static",
            "hub": A,
            "initialTwin": {
                "tags": {"site": "{payload.site.name}", "enrollment": "{enrollmentId}"},
                "properties": {"desired": {"interval": "{payload.interval}", "where": "{hub.region}"}},
            },
            "payload": {"hub": "{hub}", "literal": "{{not a template}}", "missing": "{payload.nope}",
                        "text": "device {registrationId} on {hub}", "mixed": "n={payload.interval}"},
        },
    }  # fmt: skip
    body = allocate(
        policy,
        registration_id="dev-1",
        enrollment_group="fleet",
        linked_hubs=[A],
        payload={"site": {"name": "Lyon"}, "interval": 30},
    )
    assert body["initialTwin"] == {
        "tags": {"site": "Lyon", "enrollment": "fleet"},
        "properties": {"desired": {"interval": 30, "where": "westeurope"}},
    }
    assert body["payload"] == {
        "hub": A,
        "literal": "{not a template}",
        "missing": "",
        "text": f"device dev-1 on {A}",
        "mixed": "n=30",
    }
