"""A property of the whole engine: any valid policy answers any valid request sensibly.

Policies are built at random from valid parts (static, weighted and rules strategies; hub
filters, drains, nested rules and denials; twins, payloads and sticky), requests at random within
the DPS contract. Whatever the combination, the answer is one of exactly three: 200 with one of
the request's linked hubs, 403 naming a deny rule of the policy, or 503 ``no_eligible_hub``.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from allocation.policy import compile_policy
from allocation.webhook import handle
from tests.conftest import make_request

HOSTS = [
    "eu-1.azure-devices.net",
    "eu-2.azure-devices.net",
    "us-1.azure-devices.net",
    "Us-2.Azure-Devices.net",
    "toasters-eu.azure-devices.net",
]
REGIONS = ["westeurope", "northeurope", "eastus"]
TAGS = ["eu", "us", "toasters", "spare"]
NAMES = ["toasters", "kettles", "edge", "legacy firmware", "banned", 'say "hi"', "ü-rule"]

host_names = st.sampled_from(HOSTS) | st.sampled_from(HOSTS).map(str.upper)
name_patterns = host_names | st.sampled_from(["*", "eu-*", "*-1.azure-devices.net", "US-?.*"])
selectors = (
    name_patterns
    | st.builds(lambda tag: {"tag": tag}, st.sampled_from(TAGS))
    | st.builds(lambda region: {"region": region}, st.sampled_from(REGIONS))
)

hub_settings = st.fixed_dictionaries(
    {},
    optional={
        "weight": st.integers(1, 1000),
        "region": st.sampled_from(REGIONS),
        "tags": st.lists(st.sampled_from(TAGS), max_size=3),
        "drain": st.integers(0, 100) | st.floats(0, 100) | st.just(True),
    },
)

# -- conditions from valid parts ----------------------------------------------------------------

texts = st.text(max_size=12)
strings = st.sampled_from(["toaster-", "dtmi:contoso:", "eu", "1", "", "-007"]) | texts
versions = st.lists(st.integers(0, 20), min_size=1, max_size=4).map(
    lambda parts: ".".join(map(str, parts))
)
numbers = st.integers(-100, 100) | st.floats(-100, 100)
globs = st.sampled_from(["*", "toaster-*", "*-00?", "[a-m]*", "[!x]*", "eu-*"])
regexes = st.sampled_from(["^toaster-[0-9]+$", "[0-9]{3}", "(?i)EU", "(a+)+$", "^$", "é|ü"])
json_scalars = st.booleans() | st.integers(-5, 5) | st.floats(-5, 5) | texts

STRING_FIELDS = ["registrationId", "enrollmentId", "attestation", "currentHub"]
BOOLEAN_FIELDS = ["iotEdge", "reprovision"]
PAYLOAD_FIELDS = ["payload.site", "payload.firmware", "payload.count", "payload.tags",
                  "payload.nested.level", "payload.tags.0"]  # fmt: skip

string_operators = st.one_of(
    st.builds(lambda v: {"equals": v}, strings),
    st.builds(lambda v: {"in": v}, st.lists(strings, min_size=1, max_size=3)),
    st.builds(lambda v: {"startsWith": v}, strings),
    st.builds(lambda v: {"endsWith": v}, strings),
    st.builds(lambda v: {"contains": v}, strings),
    st.builds(lambda v: {"glob": v}, globs),
    st.builds(lambda v: {"regex": v}, regexes),
    st.builds(lambda v: {"exists": v}, st.booleans()),
    st.builds(lambda v: {"versionGte": v}, versions),
    st.builds(lambda v: {"versionLt": v}, versions),
)
boolean_operators = st.one_of(
    st.builds(lambda v: {"equals": v}, st.booleans()),
    st.builds(lambda v: {"in": v}, st.lists(st.booleans(), min_size=1, max_size=2)),
    st.builds(lambda v: {"exists": v}, st.booleans()),
)
payload_operators = st.one_of(
    string_operators,
    st.builds(lambda v: {"equals": v}, json_scalars),
    st.builds(lambda v: {"in": v}, st.lists(json_scalars, min_size=1, max_size=3)),
    st.builds(lambda v: {"contains": v}, json_scalars),
    st.builds(lambda op, v: {op: v}, st.sampled_from(["gt", "gte", "lt", "lte"]), numbers),
)
field_tests = st.one_of(
    st.builds(lambda f, ops: {f: ops}, st.sampled_from(STRING_FIELDS), string_operators),
    st.builds(
        lambda ops: {"enrollmentType": ops},
        st.sampled_from(["group", "individual"]).map(lambda t: {"equals": t}),
    ),
    st.builds(lambda f, ops: {f: ops}, st.sampled_from(BOOLEAN_FIELDS), boolean_operators),
    st.builds(lambda f, ops: {f: ops}, st.sampled_from(PAYLOAD_FIELDS), payload_operators),
)


def _merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        for key, operators in part.items():
            merged.setdefault(key, {}).update(operators)
    return merged


conditions = st.recursive(
    st.lists(field_tests, max_size=3).map(_merged),
    lambda inner: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda item: {"not": item}, inner),
    ),
    max_leaves=6,
)

# -- allocations ---------------------------------------------------------------------------------

templates = st.sampled_from(
    ["{registrationId}", "{hub}", "{hub.region}", "site {payload.site}", "{payload.count}", "x"]
)
common_fields = st.fixed_dictionaries(
    {},
    optional={
        "hubs": st.lists(selectors, min_size=1, max_size=3),
        "initialTwin": st.fixed_dictionaries(
            {}, optional={"tags": st.dictionaries(st.sampled_from(["a", "b"]), templates)}
        ),
        "payload": st.dictionaries(st.sampled_from(["a", "b", "c"]), templates, max_size=2),
        "sticky": st.booleans(),
    },
)


def _with(common: dict[str, Any], allocation: dict[str, Any]) -> dict[str, Any]:
    return {**common, **allocation}


leaf_allocations = st.builds(
    _with,
    common_fields,
    st.one_of(
        st.builds(lambda hub: {"strategy": "static", "hub": hub}, name_patterns),
        st.just({"strategy": "weighted"}),
        st.builds(
            lambda key: {"strategy": "weighted", "key": key},
            st.sampled_from(["{payload.site}", "{enrollmentId}-{registrationId}"]),
        ),
    ),
)


@st.composite
def rules_allocations(draw: st.DrawFn, inner: st.SearchStrategy[Any]) -> dict[str, Any]:
    count = draw(st.integers(0, 4))
    names = draw(st.lists(st.sampled_from(NAMES), min_size=count, max_size=count, unique=True))
    rules = []
    for name in names:
        rule: dict[str, Any] = {"when": draw(conditions), "then": draw(inner | st.just("deny"))}
        if draw(st.booleans()):
            rule["name"] = name  # else it is named rules[<index>]
        rules.append(rule)
    allocation: dict[str, Any] = {"strategy": "rules", "rules": rules}
    if draw(st.booleans()):
        allocation["otherwise"] = draw(inner | st.just("deny"))
    return _with(draw(common_fields), allocation)


allocations = st.recursive(leaf_allocations, rules_allocations, max_leaves=8)

policies = st.fixed_dictionaries(
    {"default": allocations},
    optional={
        "hubs": st.dictionaries(st.sampled_from(HOSTS), hub_settings, max_size=len(HOSTS)),
        "enrollments": st.dictionaries(st.sampled_from(["fleet", "toasters"]), allocations),
        "sticky": st.booleans(),
    },
)


def deny_names(allocation: Any) -> set[str]:
    """The names a 403 may give: every deny rule's, and 'otherwise' where otherwise denies."""
    names: set[str] = set()
    if not isinstance(allocation, dict) or allocation.get("strategy") != "rules":
        return names
    for index, rule in enumerate(allocation["rules"]):
        if rule["then"] == "deny":
            names.add(rule.get("name", f"rules[{index}]"))
        else:
            names |= deny_names(rule["then"])
    otherwise = allocation.get("otherwise")
    if otherwise == "deny":
        names.add("otherwise")
    else:
        names |= deny_names(otherwise)
    return names


# -- requests within the DPS contract ------------------------------------------------------------

payloads = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "site": st.sampled_from(["berlin", "paris"]) | json_scalars,
        "firmware": versions | st.sampled_from(["v1", "1.0-beta", ""]) | json_scalars,
        "count": numbers | json_scalars,
        "tags": st.lists(json_scalars, max_size=3),
        "nested": st.fixed_dictionaries({}, optional={"level": json_scalars}),
        "region": st.sampled_from(REGIONS),
    },
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    linked = draw(st.lists(host_names, min_size=1, max_size=5))
    registration_id = draw(
        st.sampled_from(["toaster-007", "kettle-1", "Toaster-1", "eu-device"])
        | st.text(min_size=1, max_size=40)
    )
    request = make_request(
        registration_id,
        linked,
        individual=draw(st.booleans()),
        enrollment_group=draw(st.sampled_from(["fleet", "toasters", "FLEET", "other"])),
        current_hub=draw(st.none() | st.sampled_from(linked) | host_names),
        payload=draw(payloads),
        update_hub_assignment=draw(st.none() | st.booleans()),
        migrate_device_data=draw(st.none() | st.booleans()),
        attestation=draw(st.sampled_from(["symmetricKey", "x509", "tpm"])),
        iot_edge=draw(st.booleans()),
    )
    if draw(st.booleans()):
        enrollment = request.get("enrollmentGroup") or request["individualEnrollment"]
        del enrollment["attestation"]
    return request


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(policies, requests())
def test_any_valid_policy_answers_any_valid_request_with_a_hub_a_denial_or_no_eligible_hub(
    raw_policy: dict[str, Any], request: dict[str, Any]
) -> None:
    policy = compile_policy(raw_policy)

    response = handle(json.dumps(request).encode(), policy)

    body = response.body
    event(f"status {response.status}")
    if response.status == 200:
        assert body["iotHubHostName"] in request["linkedHubs"]
    elif response.status == 403:
        allocations = [raw_policy["default"], *raw_policy.get("enrollments", {}).values()]
        assert body["error"] == "denied"
        assert body["rule"] in set().union(*map(deny_names, allocations))
    else:
        assert response.status == 503, body
        assert body["error"] == "no_eligible_hub"
