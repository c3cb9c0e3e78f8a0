"""The index over rule conditions: it only ever skips rules that cannot hold.

The property: for random policies of 1 to 300 rules over a small alphabet of values (so that
values collide, prefixes overlap and case differs), with every operator, ``all``, ``any`` and
``not``, and random requests, the indexed policy answers exactly what the same policy checked
rule by rule answers: the same status, body and decision trace.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from allocation import rule_index
from allocation.conditions import Equals, FieldTest, compile_condition
from allocation.context import context_from_request
from allocation.policy import Policy, compile_policy
from allocation.requests import parse_request
from allocation.rule_index import RuleIndex, glob_prefix, value_key
from allocation.strategies.rules import Rules
from allocation.webhook import WebhookResponse, handle
from benchmarks.rules_scale import min_rules
from tests.conftest import encode, make_request

HUBS = ["eu-1.azure-devices.net", "EU-2.azure-devices.net", "us-1.azure-devices.net"]


def indexed_and_linear(policy: Any) -> tuple[Policy, Policy]:
    with min_rules(1):
        indexed = compile_policy(policy)
    with min_rules(10**9):
        linear = compile_policy(policy)
    return indexed, linear


def answer(response: WebhookResponse) -> tuple[Any, ...]:
    decision = response.decision
    trace = None
    if decision is not None:
        trace = (
            decision.hub.name,
            decision.path,
            decision.reason,
            [
                (s.allocation, s.strategy, s.candidates, s.filtered, s.eligible, s.outcome,
                 dict(s.evidence))
                for s in decision.steps
            ],
        )  # fmt: skip
    return response.status, json.dumps(response.body, sort_keys=True), trace


# -- generated policies and requests -------------------------------------------------------

# Few values, overlapping as prefixes and suffixes of each other and differing in case.
WORDS = ["a", "b", "ab", "ba", "aab", "A", "Ab", "", "a-b", "eu-1.azure-devices.net"]
words = st.sampled_from(WORDS)
scalars = words | st.booleans() | st.sampled_from([0, 1, 1.0, 2.5, -1])
payload_values = (
    scalars | st.lists(scalars, max_size=2) | st.dictionaries(words, scalars, max_size=2)
)
globs = st.sampled_from(["a*", "ab?", "*b", "[ab]*", "A*b", "a", "*", "a[", "?"])

STRING_FIELDS = ["registrationId", "enrollmentId", "attestation", "currentHub"]
PAYLOAD_FIELDS = ["payload.k", "payload.n.k", "payload.l.0"]


def _string_ops(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda v: {"equals": v}, values),
        st.builds(lambda v: {"in": v}, st.lists(values, min_size=1, max_size=3)),
        st.builds(lambda v: {"startsWith": v}, words),
        st.builds(lambda v: {"endsWith": v}, words),
        st.builds(lambda v: {"contains": v}, words),
        st.builds(lambda v: {"glob": v}, globs),
        st.builds(lambda v: {"regex": v}, st.sampled_from(["^a", "b$", "A"])),
        st.builds(lambda v: {"exists": v}, st.booleans()),
        st.builds(lambda v: {"versionGte": v}, st.sampled_from(["1", "1.0.1", "2"])),
        st.builds(lambda v: {"versionLt": v}, st.sampled_from(["1", "2.5"])),
    )


payload_ops = st.one_of(
    _string_ops(scalars | st.lists(scalars, max_size=2)),
    st.builds(lambda v: {"contains": v}, scalars),
    st.builds(
        lambda op, v: {op: v}, st.sampled_from(["gt", "gte", "lt", "lte"]), st.sampled_from([0, 1])
    ),
)
field_tests = st.one_of(
    st.builds(lambda f, ops: {f: ops}, st.sampled_from(STRING_FIELDS), _string_ops(words)),
    st.builds(
        lambda t: {"enrollmentType": {"equals": t}}, st.sampled_from(["group", "individual"])
    ),
    st.builds(
        lambda f, ops: {f: ops},
        st.sampled_from(["iotEdge", "reprovision"]),
        st.one_of(
            st.builds(lambda v: {"equals": v}, st.booleans()),
            st.builds(lambda v: {"in": v}, st.lists(st.booleans(), min_size=1, max_size=2)),
            st.builds(lambda v: {"exists": v}, st.booleans()),
        ),
    ),
    st.builds(lambda f, ops: {f: ops}, st.sampled_from(PAYLOAD_FIELDS), payload_ops),
)
conditions = st.recursive(
    field_tests,
    lambda inner: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda item: {"not": item}, inner),
        st.builds(lambda a, b: {**a, **b}, field_tests, field_tests),
    ),
    max_leaves=5,
)
outcomes = st.one_of(
    st.just("deny"),
    st.builds(lambda hub: {"strategy": "static", "hub": hub}, st.sampled_from(HUBS)),
    st.just({"strategy": "weighted"}),
)


@st.composite
def rule_policies(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 300))
    # Two or three parts that must all hold: rules that hold for few devices, so that the
    # rule that decides is often deep in the list, or none is.
    parts = st.lists(conditions, min_size=2, max_size=3).map(lambda ps: {"all": ps})
    whens = draw(st.lists(parts | conditions, min_size=count, max_size=count))
    # {} holds for every device: rare, or every policy would end at its first one.
    for position in draw(st.lists(st.integers(0, count - 1), max_size=2)):
        whens[position] = {}
    rules = [{"when": when, "then": draw(outcomes)} for when in whens]
    return {"default": {"strategy": "rules", "rules": rules, "otherwise": draw(outcomes)}}


requests = st.builds(
    lambda registration, group, individual, hub, payload, edge, attestation: make_request(
        registration,
        HUBS,
        enrollment_group=group,
        individual=individual,
        current_hub=hub,
        payload=payload,
        iot_edge=edge,
        attestation=attestation,
    ),
    st.sampled_from(WORDS[:-3]),
    st.sampled_from(WORDS[:-3]),
    st.booleans(),
    st.none() | st.sampled_from([*HUBS, "EU-1.AZURE-DEVICES.NET"]),
    st.none()
    | st.fixed_dictionaries(
        {},
        optional={
            "k": payload_values,
            "n": st.fixed_dictionaries({}, optional={"k": payload_values}) | scalars,
            "l": st.lists(payload_values, max_size=2),
        },
    ),
    st.booleans(),
    st.sampled_from(["symmetricKey", "x509", "tpm"]),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rule_policies(), st.lists(requests, min_size=1, max_size=25))
def test_the_indexed_policy_answers_exactly_as_the_linear_one(
    policy: dict[str, Any], bodies: list[dict[str, Any]]
) -> None:
    indexed, linear = indexed_and_linear(policy)
    strategy = indexed.default.strategy
    assert isinstance(strategy, Rules)
    if strategy.index is not None:
        event(f"always checked: {'all' if not strategy.index.indexed else 'some'}")
    for body in bodies:
        encoded = encode(body)
        assert answer(handle(encoded, indexed)) == answer(handle(encoded, linear))
        if strategy.index is not None:
            # The first rule that holds is often an early one, which hides a rule the index
            # wrongly skips further down: every rule that holds must be a candidate.
            context = context_from_request(parse_request(encoded))
            found = set(strategy.index.candidates(context))
            holding = {i for i, rule in enumerate(strategy.rules) if rule.when.holds(context)}
            assert holding <= found
            examined = strategy.examine(context)
            event("no rule holds" if examined.matched is None else "a rule holds")
            event(f"rules skipped: {'none' if not examined.skipped else 'some'}")


# -- what the index may skip -----------------------------------------------------------------


def candidates(whens: list[dict[str, Any]], body: dict[str, Any]) -> list[int]:
    index = RuleIndex([compile_condition(when, ("when",)) for when in whens])
    return index.candidates(context_from_request(parse_request(encode(body))))


@given(st.lists(conditions, min_size=1, max_size=30), requests)
@settings(max_examples=200, deadline=None)
def test_every_rule_that_holds_is_a_candidate(
    whens: list[dict[str, Any]], body: dict[str, Any]
) -> None:
    compiled = [compile_condition(when, ("when",)) for when in whens]
    context = context_from_request(parse_request(encode(body)))
    found = RuleIndex(compiled).candidates(context)
    assert found == sorted(set(found))
    holding = [i for i, condition in enumerate(compiled) if condition.holds(context)]
    assert set(holding) <= set(found)


CUSTOMERS = [{"payload.customerId": {"equals": f"c{i}"}} for i in range(100)]


def test_equality_on_a_payload_field_names_only_the_rule_for_that_value() -> None:
    assert candidates(CUSTOMERS, make_request(payload={"customerId": "c42"})) == [42]
    assert candidates(CUSTOMERS, make_request(payload={"customerId": "nobody"})) == []
    assert candidates(CUSTOMERS, make_request()) == []


def test_prefixes_and_suffixes_of_every_length_are_found() -> None:
    whens = [
        {"registrationId": {"startsWith": "toaster-"}},
        {"registrationId": {"startsWith": "toaster-eu-"}},
        {"registrationId": {"endsWith": "-eu-7"}},
        {"registrationId": {"glob": "toast*"}},
        {"registrationId": {"startsWith": "kettle-"}},
    ]
    assert candidates(whens, make_request("toaster-eu-7")) == [0, 1, 2, 3]
    assert candidates(whens, make_request("kettle-1")) == [4]


def test_json_equality_keeps_true_apart_from_1_and_1_with_1_0() -> None:
    whens = [{"payload.v": {"equals": True}}, {"payload.v": {"in": [1, "x"]}}]
    assert candidates(whens, make_request(payload={"v": 1.0})) == [1]
    assert candidates(whens, make_request(payload={"v": True})) == [0]


def test_host_names_are_indexed_in_lower_case_as_they_compare() -> None:
    whens = [{"currentHub": {"equals": "EU-1.azure-devices.net"}}]
    body = make_request(current_hub="eu-1.AZURE-devices.net")
    assert candidates(whens, body) == [0]


def test_any_indexes_each_part_and_not_is_always_checked() -> None:
    whens = [
        {"any": [{"payload.a": {"equals": "x"}}, {"registrationId": {"startsWith": "r-"}}]},
        {"not": {"payload.a": {"equals": "y"}}},
        {"any": [{"payload.a": {"equals": "z"}}, {"registrationId": {"regex": "^r"}}]},
        {"all": [{"registrationId": {"regex": "^q"}}, {"payload.a": {"equals": "q"}}]},
    ]
    index = RuleIndex([compile_condition(when, ("when",)) for when in whens])
    assert index.always == (1, 2)
    assert candidates(whens, make_request("r-1")) == [0, 1, 2]
    assert candidates(whens, make_request("s-1", payload={"a": "q"})) == [1, 2, 3]


def test_glob_prefix_stops_at_the_first_wildcard() -> None:
    assert glob_prefix("toaster-[0-9]*") == "toaster-"
    assert glob_prefix("*-eu") == ""
    assert glob_prefix("exact") == "exact"


def test_value_keys_follow_json_equality() -> None:
    assert value_key(1) == value_key(1.0)
    assert value_key(True) != value_key(1)
    assert value_key("1") != value_key(1)
    assert value_key([1]) is None


@pytest.mark.parametrize("count", [1, rule_index.MIN_RULES - 1])
def test_a_short_list_is_checked_linearly(count: int) -> None:
    rules = [{"when": CUSTOMERS[i], "then": "deny"} for i in range(count)]
    policy = compile_policy({"default": {"strategy": "rules", "rules": rules}})
    strategy = policy.default.strategy
    assert isinstance(strategy, Rules)
    assert strategy.index is None


def test_a_long_list_is_indexed() -> None:
    rules = [{"when": when, "then": "deny"} for when in CUSTOMERS]
    policy = compile_policy({"default": {"strategy": "rules", "rules": rules}})
    strategy = policy.default.strategy
    assert isinstance(strategy, Rules)
    assert strategy.index is not None
    response = handle(encode(make_request(payload={"customerId": "c99"})), policy)
    assert (response.status, response.body["rule"]) == (403, "rules[99]")


def test_a_field_whose_reading_runs_a_lookup_is_never_read_by_the_index() -> None:
    reads: list[str] = []

    def inventory_customer(context: Any) -> Any:
        reads.append(context.registration_id)
        return "c1"

    looked_up = FieldTest("lookup.inventory.customer", inventory_customer, Equals("c1"))
    index = RuleIndex([looked_up] * 10)

    assert index.always == tuple(range(10))
    assert index.candidates(context_from_request(parse_request(encode(make_request())))) == list(
        range(10)
    )
    assert reads == []
