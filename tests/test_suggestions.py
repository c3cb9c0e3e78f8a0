""" "Did you mean ...?": one implementation, for policy fields and operators, strategies, and the
hub names, tags and regions of validate --linked-hubs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocation.errors import PolicyError
from allocation.policy import compile_policy
from allocation.suggestions import closest, closest_host, did_you_mean


def problems_of(policy: object) -> list[str]:
    with pytest.raises(PolicyError) as raised:
        compile_policy(policy)
    return [str(problem) for problem in raised.value.problems]


def test_a_misspelt_top_level_field_suggests_the_field() -> None:
    assert problems_of({"defualt": {"strategy": "weighted"}, "stikcy": True}) == [
        "defualt: unknown field (did you mean 'default'?); a policy has $schema, default, "
        "enrollments, hubs, lookups, sticky",
        "stikcy: unknown field (did you mean 'sticky'?); a policy has $schema, default, "
        "enrollments, hubs, lookups, sticky",
    ]


def test_misspelt_fields_inside_allocations_hubs_and_rules_suggest_the_field() -> None:
    policy = {
        "hubs": {"hub-a.azure-devices.net": {"wieght": 2}},
        "default": {"strategy": "wieghted"},
        "enrollments": {
            "x": {"strategy": "weighted", "stikcy": True, "kye": "{registrationId}"},
            "y": {
                "strategy": "rules",
                "rules": [{"when": {"payload.model": {"equals": "a"}}, "thne": "deny"}],
                "otherwise": {"strategy": "weighted", "initialTwin": {"tag": {}}},
            },
        },
    }

    problems = problems_of(policy)

    expected = {
        'hubs["hub-a.azure-devices.net"].wieght': "'weight'",
        "default.strategy": "'weighted'",
        "enrollments.x.stikcy": "'sticky'",
        "enrollments.x.kye": "'key'",
        "enrollments.y.rules[0].thne": "'then'",
        "enrollments.y.otherwise.initialTwin.tag": "'tags'",
    }
    for path, suggestion in expected.items():
        assert any(
            p.startswith(f"{path}: ") and f"(did you mean {suggestion}?)" in p for p in problems
        ), (path, problems)


def test_an_unknown_field_close_to_nothing_gets_no_suggestion() -> None:
    assert problems_of({"zzzz": 1}) == [
        "zzzz: unknown field; a policy has $schema, default, enrollments, hubs, lookups, sticky"
    ]


def test_closest_prefers_difflib_then_the_same_name_in_another_case() -> None:
    assert closest("defualt", ["default", "hubs"]) == "default"
    assert closest("Sticky", ["default", "sticky"]) == "sticky"
    assert closest("xyz", ["default"]) is None
    assert did_you_mean("hbus", ["hubs"]) == " (did you mean 'hubs'?)"
    assert did_you_mean("xyz", ["hubs"]) == ""


def test_host_names_are_compared_on_the_hubs_own_name() -> None:
    hubs = ["contoso-eu-1.azure-devices.net", "fabrikam-2.azure-devices.net"]

    # The shared '.azure-devices.net' must not make an unrelated hub look close.
    assert closest_host("northwind.azure-devices.net", hubs) is None
    assert closest_host("contoso-eu1.azure-devices.net", hubs) == hubs[0]
    assert closest_host("fabrikam-2.azure-device.net", hubs) == hubs[1]


@given(st.text(max_size=20), st.lists(st.text(max_size=20), max_size=8))
def test_a_suggestion_is_always_one_of_the_known_names_and_never_the_name_itself(
    name: str, known: list[str]
) -> None:
    match = closest(name, known)
    assert match is None or (match in known and match != name)
