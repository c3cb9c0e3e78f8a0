"""A policy against the hubs linked in DPS: every name, glob, tag or region that matches none."""

from __future__ import annotations

from allocation.errors import Problem
from allocation.linked_hubs import unmatched
from allocation.policy import compile_policy

EU1, EU2, US1 = (
    "contoso-eu-1.azure-devices.net",
    "contoso-eu-2.azure-devices.net",
    "contoso-us-1.azure-devices.net",
)
LINKED = (EU1, EU2, US1)

POLICY = {
    "hubs": {
        EU1: {"tags": ["eu"], "region": "westeurope"},
        EU2: {"tags": ["eu"], "region": "northeurope"},
        US1: {"tags": ["us"], "region": "eastus"},
    },
    "default": {"strategy": "weighted", "hubs": ["contoso-eu-*", {"tag": "us"}]},
    "enrollments": {
        "toasters": {
            "strategy": "rules",
            "rules": [
                {
                    "when": {"payload.model": {"equals": "t1"}},
                    "then": {"strategy": "static", "hub": EU2},
                }
            ],
            "otherwise": {"strategy": "weighted", "hubs": [{"region": "eastus"}]},
        }
    },
}


def test_a_policy_that_fits_its_linked_hubs_has_no_problem() -> None:
    assert unmatched(compile_policy(POLICY), LINKED) == []


def test_a_misspelt_hub_name_is_reported_with_the_closest_linked_hub() -> None:
    policy = {
        "hubs": {"contoso-eu1.azure-devices.net": {"weight": 2}},
        "default": {"strategy": "weighted", "hubs": ["contoso-us-l.azure-devices.net"]},
        "enrollments": {"t": {"strategy": "static", "hub": "contoso-eu-2.azure-device.net"}},
    }

    assert unmatched(compile_policy(policy), LINKED) == [
        Problem(
            'hubs["contoso-eu1.azure-devices.net"]',
            f"'contoso-eu1.azure-devices.net' is not a linked hub (did you mean '{EU1}'?)",
        ),
        Problem(
            "default.hubs[0]",
            f"'contoso-us-l.azure-devices.net' is not a linked hub (did you mean '{US1}'?)",
        ),
        Problem(
            "enrollments.t.hub",
            f"'contoso-eu-2.azure-device.net' is not a linked hub (did you mean '{EU2}'?)",
        ),
    ]


def test_a_name_close_to_no_linked_hub_gets_no_suggestion() -> None:
    policy = {"default": {"strategy": "static", "hub": "fabrikam-factory.azure-devices.net"}}

    assert unmatched(compile_policy(policy), LINKED) == [
        Problem("default.hub", "'fabrikam-factory.azure-devices.net' is not a linked hub"),
    ]


def test_globs_tags_and_regions_that_match_no_linked_hub_are_reported() -> None:
    policy = {
        "hubs": POLICY["hubs"],
        "default": {
            "strategy": "weighted",
            "hubs": ["*-asia-*", {"tag": "euro"}, {"region": "westeurpe"}, {"tag": "eu"}],
        },
    }

    assert unmatched(compile_policy(policy), LINKED) == [
        Problem("default.hubs[0]", "'*-asia-*' matches no linked hub"),
        Problem("default.hubs[1]", "no linked hub has the tag 'euro' (did you mean 'eu'?)"),
        Problem(
            "default.hubs[2]",
            "no linked hub is in the region 'westeurpe' (did you mean 'westeurope'?)",
        ),
    ]


def test_nested_allocations_are_checked_at_their_own_paths() -> None:
    problems = unmatched(compile_policy(POLICY), (EU1, EU2))

    assert [p.path for p in problems] == [
        f'hubs["{US1}"]',
        "default.hubs[1]",
        "enrollments.toasters.otherwise.hubs[0]",
    ]


def test_an_enrollment_is_checked_only_where_its_allocation_reaches() -> None:
    policy = compile_policy(POLICY)

    toasters = unmatched(policy, (US1,), "Toasters")  # DPS enrollment IDs ignore case
    other = unmatched(policy, (EU1, EU2), "kettles")  # not in the policy: the default

    assert [p.path for p in toasters] == ["enrollments.toasters.rules[0].then.hub"]
    assert [p.path for p in other] == ["default.hubs[1]"]


def test_a_static_hub_named_per_device_is_left_to_the_request() -> None:
    policy = {"default": {"strategy": "static", "hub": "{payload.hub}"}}

    assert unmatched(compile_policy(policy), LINKED) == []
