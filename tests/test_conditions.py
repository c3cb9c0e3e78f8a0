"""Conditions of the ``rules`` strategy: every field and operator, as a policy states them.

Each example is a policy with one rule: a device whose request satisfies the rule's ``when`` goes
to hub B, any other device to hub A (``otherwise``), so a case reads "this condition, this
request: does the rule match".
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from allocation import conditions
from allocation.context import context_from_request
from allocation.decision import decide
from allocation.errors import PolicyError, Problem
from allocation.policy import compile_policy
from allocation.requests import parse_request
from allocation.webhook import handle
from tests.conftest import encode, make_request

HUB_A = "hub-a.azure-devices.net"
HUB_B = "hub-b.azure-devices.net"


def rules_policy(when: Any) -> dict[str, Any]:
    rule = {"name": "matched", "when": when, "then": {"strategy": "static", "hub": HUB_B}}
    return {
        "default": {
            "strategy": "rules",
            "rules": [rule],
            "otherwise": {"strategy": "static", "hub": HUB_A},
        }
    }


def matches(when: Any, request: dict[str, Any]) -> bool:
    response = handle(encode(request), compile_policy(rules_policy(when)))
    assert response.status == 200, response.body
    return bool(response.body["iotHubHostName"] == HUB_B)


def load_problems(when: Any) -> list[Problem]:
    with pytest.raises(PolicyError) as raised:
        compile_policy(rules_policy(when))
    return list(raised.value.problems)


def without_attestation() -> dict[str, Any]:
    request = make_request()
    del request["enrollmentGroup"]["attestation"]
    return request


DEVICE = make_request("toaster-007", enrollment_group="kitchen")
INDIVIDUAL = make_request("sensor-1", individual=True)
EDGE = make_request("gateway-1", iot_edge=True, attestation="x509")
REPROVISIONED = make_request("toaster-007", current_hub="Hub-A.azure-devices.net")
PAYLOAD = make_request(
    payload={
        "modelId": "dtmi:contoso:toaster;1",
        "firmware": "12.0.2",
        "count": 1,
        "ratio": 0.5,
        "enabled": True,
        "site": {"id": "berlin-1", "floor": 3},
        "sensors": ["temp", "humidity"],
        "flags": [1, True],
        "nothing": None,
    }
)

# (condition, request, whether the rule matches)
CASES: list[tuple[str, Any, dict[str, Any], bool]] = [
    # registrationId: a string, always present, compared case-sensitively
    ("equals", {"registrationId": {"equals": "toaster-007"}}, DEVICE, True),
    ("equals other", {"registrationId": {"equals": "toaster-008"}}, DEVICE, False),
    ("equals is case-sensitive", {"registrationId": {"equals": "Toaster-007"}}, DEVICE, False),
    ("in", {"registrationId": {"in": ["kettle-1", "toaster-007"]}}, DEVICE, True),
    ("in none", {"registrationId": {"in": ["kettle-1", "toaster-7"]}}, DEVICE, False),
    ("startsWith", {"registrationId": {"startsWith": "toaster-"}}, DEVICE, True),
    ("startsWith other", {"registrationId": {"startsWith": "kettle-"}}, DEVICE, False),
    ("endsWith", {"registrationId": {"endsWith": "-007"}}, DEVICE, True),
    ("endsWith other", {"registrationId": {"endsWith": "-008"}}, DEVICE, False),
    ("contains", {"registrationId": {"contains": "aste"}}, DEVICE, True),
    ("contains other", {"registrationId": {"contains": "ettl"}}, DEVICE, False),
    ("glob *", {"registrationId": {"glob": "toaster-*"}}, DEVICE, True),
    ("glob ? is one character", {"registrationId": {"glob": "toaster-??"}}, DEVICE, False),
    ("glob [seq]", {"registrationId": {"glob": "[kt]oaster-00[0-9]"}}, DEVICE, True),
    ("glob [!seq]", {"registrationId": {"glob": "[!t]oaster-*"}}, DEVICE, False),
    ("glob matches the whole value", {"registrationId": {"glob": "toaster"}}, DEVICE, False),
    ("glob is case-sensitive", {"registrationId": {"glob": "TOASTER-*"}}, DEVICE, False),
    ("regex", {"registrationId": {"regex": "^toaster-[0-9]{3}$"}}, DEVICE, True),
    ("regex other", {"registrationId": {"regex": "^toaster-[0-9]{2}$"}}, DEVICE, False),
    ("regex searches anywhere", {"registrationId": {"regex": "[0-9]{3}"}}, DEVICE, True),
    ("regex is case-sensitive", {"registrationId": {"regex": "TOASTER"}}, DEVICE, False),
    ("regex (?i) flag", {"registrationId": {"regex": "(?i)TOASTER"}}, DEVICE, True),
    ("exists", {"registrationId": {"exists": True}}, DEVICE, True),
    ("exists false", {"registrationId": {"exists": False}}, DEVICE, False),
    ("version of a string", {"registrationId": {"versionGte": "1"}}, DEVICE, False),
    # enrollmentId: the group ID, or the registration ID of an individual enrollment
    ("group", {"enrollmentId": {"equals": "kitchen"}}, DEVICE, True),
    ("group other", {"enrollmentId": {"equals": "garage"}}, DEVICE, False),
    ("individual", {"enrollmentId": {"equals": "sensor-1"}}, INDIVIDUAL, True),
    ("individual other", {"enrollmentId": {"startsWith": "kitchen"}}, INDIVIDUAL, False),
    # enrollmentType: "group" or "individual"
    ("type group", {"enrollmentType": {"equals": "group"}}, DEVICE, True),
    ("type group, individual device", {"enrollmentType": {"equals": "group"}}, INDIVIDUAL, False),
    ("type individual", {"enrollmentType": {"in": ["individual"]}}, INDIVIDUAL, True),
    ("type individual, group device", {"enrollmentType": {"in": ["individual"]}}, DEVICE, False),
    # attestation: a string, absent when DPS does not send it
    ("attestation", {"attestation": {"equals": "x509"}}, EDGE, True),
    ("attestation other", {"attestation": {"equals": "x509"}}, DEVICE, False),
    ("attestation in", {"attestation": {"in": ["tpm", "symmetricKey"]}}, DEVICE, True),
    ("attestation absent", {"attestation": {"equals": "x509"}}, without_attestation(), False),
    ("attestation absent, not", {"not": {"attestation": {"equals": "x509"}}},
     without_attestation(), True),
    ("attestation exists", {"attestation": {"exists": True}}, DEVICE, True),
    ("attestation exists, absent", {"attestation": {"exists": True}}, without_attestation(),
     False),
    ("attestation exists false, absent", {"attestation": {"exists": False}},
     without_attestation(), True),
    # iotEdge: a boolean
    ("iotEdge", {"iotEdge": {"equals": True}}, EDGE, True),
    ("iotEdge other", {"iotEdge": {"equals": True}}, DEVICE, False),
    ("iotEdge false", {"iotEdge": {"equals": False}}, DEVICE, True),
    ("iotEdge in", {"iotEdge": {"in": [True]}}, DEVICE, False),
    ("iotEdge exists", {"iotEdge": {"exists": True}}, DEVICE, True),
    # reprovision: a boolean, true when DPS sends the current hub
    ("reprovision", {"reprovision": {"equals": True}}, REPROVISIONED, True),
    ("reprovision, new device", {"reprovision": {"equals": True}}, DEVICE, False),
    ("first assignment", {"reprovision": {"equals": False}}, DEVICE, True),
    # currentHub: a host name, compared case-insensitively; absent on first assignment
    ("currentHub", {"currentHub": {"equals": "hub-a.azure-devices.net"}}, REPROVISIONED, True),
    ("currentHub other", {"currentHub": {"equals": HUB_B}}, REPROVISIONED, False),
    ("currentHub any case", {"currentHub": {"equals": "HUB-A.Azure-Devices.NET"}},
     REPROVISIONED, True),
    ("currentHub in", {"currentHub": {"in": [HUB_B, "HUB-A.azure-devices.net"]}}, REPROVISIONED,
     True),
    ("currentHub startsWith", {"currentHub": {"startsWith": "HUB-A."}}, REPROVISIONED, True),
    ("currentHub endsWith", {"currentHub": {"endsWith": ".AZURE-DEVICES.NET"}}, REPROVISIONED,
     True),
    ("currentHub contains", {"currentHub": {"contains": "B-A"}}, REPROVISIONED, True),
    ("currentHub glob", {"currentHub": {"glob": "HUB-[AB].*"}}, REPROVISIONED, True),
    ("currentHub glob other", {"currentHub": {"glob": "hub-b.*"}}, REPROVISIONED, False),
    ("currentHub regex", {"currentHub": {"regex": "^HUB-A\\."}}, REPROVISIONED, True),
    ("currentHub regex \\D stays \\D", {"currentHub": {"regex": "^\\D+-a"}}, REPROVISIONED, True),
    ("currentHub absent", {"currentHub": {"glob": "*"}}, DEVICE, False),
    ("currentHub absent, exists false", {"currentHub": {"exists": False}}, DEVICE, True),
    # payload.<path>: whatever JSON the device sent
    ("payload equals", {"payload.modelId": {"equals": "dtmi:contoso:toaster;1"}}, PAYLOAD, True),
    ("payload equals other", {"payload.modelId": {"equals": "dtmi:contoso:kettle;1"}}, PAYLOAD,
     False),
    ("payload nested path", {"payload.site.id": {"equals": "berlin-1"}}, PAYLOAD, True),
    ("payload list index", {"payload.sensors.1": {"equals": "humidity"}}, PAYLOAD, True),
    ("payload list index beyond", {"payload.sensors.2": {"exists": True}}, PAYLOAD, False),
    ("payload number", {"payload.count": {"equals": 1}}, PAYLOAD, True),
    ("payload 1 equals 1.0", {"payload.count": {"equals": 1.0}}, PAYLOAD, True),
    ("payload 1 is not true", {"payload.count": {"equals": True}}, PAYLOAD, False),
    ("payload true is not 1", {"payload.enabled": {"equals": 1}}, PAYLOAD, False),
    ("payload true", {"payload.enabled": {"equals": True}}, PAYLOAD, True),
    ("payload 1 is not '1'", {"payload.count": {"equals": "1"}}, PAYLOAD, False),
    ("payload object", {"payload.site": {"equals": {"floor": 3, "id": "berlin-1"}}}, PAYLOAD,
     True),
    ("payload list", {"payload.flags": {"equals": [1, True]}}, PAYLOAD, True),
    ("payload list, true is not 1 inside", {"payload.flags": {"equals": [True, 1]}}, PAYLOAD,
     False),
    ("payload in", {"payload.site.floor": {"in": [2, 3]}}, PAYLOAD, True),
    ("payload in other", {"payload.site.floor": {"in": [4, "3"]}}, PAYLOAD, False),
    ("payload in, true is not 1", {"payload.count": {"in": [True, "x"]}}, PAYLOAD, False),
    ("payload startsWith", {"payload.modelId": {"startsWith": "dtmi:contoso:"}}, PAYLOAD, True),
    ("payload startsWith a number", {"payload.count": {"startsWith": "1"}}, PAYLOAD, False),
    ("payload endsWith", {"payload.modelId": {"endsWith": ";1"}}, PAYLOAD, True),
    ("payload endsWith an object", {"payload.site": {"endsWith": "}"}}, PAYLOAD, False),
    ("payload contains substring", {"payload.modelId": {"contains": "toaster"}}, PAYLOAD, True),
    ("payload contains element", {"payload.sensors": {"contains": "temp"}}, PAYLOAD, True),
    ("payload contains no element", {"payload.sensors": {"contains": "co2"}}, PAYLOAD, False),
    ("payload contains by JSON equality", {"payload.flags": {"contains": 1}},
     make_request(payload={"flags": [True, "1", 1.0]}), True),
    ("payload contains, true is not 1", {"payload.flags": {"contains": 1}},
     make_request(payload={"flags": [True, "1"]}), False),
    ("payload contains in a number", {"payload.count": {"contains": 1}}, PAYLOAD, False),
    ("payload glob", {"payload.modelId": {"glob": "dtmi:*:toaster;*"}}, PAYLOAD, True),
    ("payload glob a list", {"payload.sensors": {"glob": "*"}}, PAYLOAD, False),
    ("payload regex", {"payload.modelId": {"regex": "^dtmi:[a-z]+:toaster;\\d+$"}}, PAYLOAD,
     True),
    ("payload regex a number", {"payload.count": {"regex": "1"}}, PAYLOAD, False),
    ("payload gt", {"payload.count": {"gt": 0}}, PAYLOAD, True),
    ("payload gt equal", {"payload.count": {"gt": 1}}, PAYLOAD, False),
    ("payload gte equal", {"payload.count": {"gte": 1}}, PAYLOAD, True),
    ("payload gte", {"payload.ratio": {"gte": 0.6}}, PAYLOAD, False),
    ("payload lt", {"payload.ratio": {"lt": 1}}, PAYLOAD, True),
    ("payload lt equal", {"payload.ratio": {"lt": 0.5}}, PAYLOAD, False),
    ("payload lte equal", {"payload.ratio": {"lte": 0.5}}, PAYLOAD, True),
    ("payload lte", {"payload.site.floor": {"lte": 2}}, PAYLOAD, False),
    ("payload gt a string", {"payload.firmware": {"gt": 0}}, PAYLOAD, False),
    ("payload gt a boolean", {"payload.enabled": {"gt": 0}}, PAYLOAD, False),
    ("payload null is absent", {"payload.nothing": {"exists": True}}, PAYLOAD, False),
    ("payload null, exists false", {"payload.nothing": {"exists": False}}, PAYLOAD, True),
    ("payload exists", {"payload.site.id": {"exists": True}}, PAYLOAD, True),
    ("payload no such path", {"payload.site.id.more": {"exists": True}}, PAYLOAD, False),
    ("no payload at all", {"payload.modelId": {"exists": False}}, DEVICE, True),
    # versionGte / versionLt: dotted numeric versions, missing parts count as 0
    ("versionGte", {"payload.firmware": {"versionGte": "12.0"}}, PAYLOAD, True),
    ("versionGte higher", {"payload.firmware": {"versionGte": "12.0.3"}}, PAYLOAD, False),
    ("versionGte equal", {"payload.firmware": {"versionGte": "12.0.2.0"}}, PAYLOAD, True),
    ("versionLt", {"payload.firmware": {"versionLt": "12.1"}}, PAYLOAD, True),
    ("versionLt equal", {"payload.firmware": {"versionLt": "12.0.2"}}, PAYLOAD, False),
    ("versionLt lower", {"payload.firmware": {"versionLt": "9"}}, PAYLOAD, False),
    ("versions compare as numbers", {"payload.v": {"versionGte": "12.9"}},
     make_request(payload={"v": "12.10"}), True),
    ("12 equals 12.0", {"payload.v": {"versionGte": "12.0", "versionLt": "12.0.0.1"}},
     make_request(payload={"v": "12"}), True),
    ("an integer is a version", {"payload.v": {"versionGte": "12"}},
     make_request(payload={"v": 12}), True),
    ("a float is not a version", {"payload.v": {"versionLt": "99"}},
     make_request(payload={"v": 12.5}), False),
    ("v12 is not a version", {"payload.v": {"versionLt": "99"}},
     make_request(payload={"v": "v12"}), False),
    ("12.0-beta is not a version", {"payload.v": {"versionLt": "99"}},
     make_request(payload={"v": "12.0-beta"}), False),
    ("1..2 is not a version", {"payload.v": {"versionLt": "99"}},
     make_request(payload={"v": "1..2"}), False),
    ("non-ASCII digits are not a version", {"payload.v": {"versionLt": "99"}},
     make_request(payload={"v": "١٢"}), False),
    # combining
    ("{} always holds", {}, DEVICE, True),
    ("several keys: all hold", {"registrationId": {"startsWith": "toaster-"},
                                "enrollmentId": {"equals": "kitchen"}}, DEVICE, True),
    ("several keys: one fails", {"registrationId": {"startsWith": "toaster-"},
                                 "enrollmentId": {"equals": "garage"}}, DEVICE, False),
    ("several operators: all hold", {"registrationId": {"startsWith": "toaster", "endsWith": "7"}},
     DEVICE, True),
    ("several operators: one fails", {"registrationId": {"startsWith": "toaster", "endsWith": "8"}},
     DEVICE, False),
    ("all", {"all": [{"registrationId": {"startsWith": "toaster-"}},
                     {"iotEdge": {"equals": False}}]}, DEVICE, True),
    ("all, one fails", {"all": [{"registrationId": {"startsWith": "toaster-"}},
                                {"iotEdge": {"equals": True}}]}, DEVICE, False),
    ("any", {"any": [{"registrationId": {"startsWith": "kettle-"}},
                     {"enrollmentId": {"equals": "kitchen"}}]}, DEVICE, True),
    ("any, none holds", {"any": [{"registrationId": {"startsWith": "kettle-"}},
                                 {"enrollmentId": {"equals": "garage"}}]}, DEVICE, False),
    ("not", {"not": {"registrationId": {"startsWith": "kettle-"}}}, DEVICE, True),
    ("not, holds", {"not": {"registrationId": {"startsWith": "toaster-"}}}, DEVICE, False),
    ("not {}", {"not": {}}, DEVICE, False),
    ("nested", {"any": [{"all": [{"not": {"iotEdge": {"equals": True}}},
                                 {"payload.modelId": {"startsWith": "dtmi:"}}]},
                        {"attestation": {"equals": "tpm"}}]}, PAYLOAD, True),
]  # fmt: skip


@pytest.mark.parametrize(("when", "request_", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_condition(when: Any, request_: dict[str, Any], expected: bool) -> None:
    assert matches(when, request_) is expected


# One valid operand for each operator, to show that an absent field fails every one of them.
OPERANDS: dict[str, Any] = {
    "equals": "x",
    "in": ["x", "y"],
    "startsWith": "",
    "endsWith": "",
    "contains": "",
    "glob": "*",
    "regex": "",
    "exists": True,
    "gt": -1e300,
    "gte": 0,
    "lt": 1e300,
    "lte": 0,
    "versionGte": "0",
    "versionLt": "999",
}


def test_every_operator_is_covered() -> None:
    assert set(OPERANDS) == set(conditions.OPERATORS)


@pytest.mark.parametrize("name", conditions.OPERATORS)
def test_an_absent_field_fails_every_operator(name: str) -> None:
    assert not matches({"payload.missing": {name: OPERANDS[name]}}, PAYLOAD)
    if name in conditions.STRING.operators:
        assert not matches({"currentHub": {name: OPERANDS[name]}}, DEVICE)
        assert not matches({"attestation": {name: OPERANDS[name]}}, without_attestation())


@pytest.mark.parametrize("name", conditions.OPERATORS)
def test_an_absent_field_holds_for_not_and_for_exists_false(name: str) -> None:
    assert matches({"not": {"payload.missing": {name: OPERANDS[name]}}}, PAYLOAD)
    assert matches({"payload.missing": {"exists": False}}, PAYLOAD)


def test_a_lone_surrogate_in_a_device_string_is_just_text() -> None:
    # The webhook refuses such a body (tests/test_webhook.py), but a context can still be built
    # with one (a plug-in, a simulation): a regex must treat it as text, not crash.
    context = context_from_request(parse_request(encode(make_request(payload={"name": "x"}))))
    context = context._replace(payload={"name": "\ud800abc"})
    policy = compile_policy(rules_policy({"payload.name": {"regex": "abc$"}}))
    assert decide(policy, context).hub.name == HUB_B


# -- regexes cannot make a request slow ---------------------------------------------------------

CATASTROPHIC = [
    # (pattern, device string, whether it matches); each would take a backtracking engine
    # (Python's re, PCRE) longer than the age of the universe.
    ("(a+)+$", "a" * 90_000, True),
    ("^(a+)+$", "a" * 89_999 + "!", False),
    ("^(a|aa)+$", "a" * 89_999 + "!", False),
    ("^(a|a?)+b", "a" * 90_000, False),
]


def test_catastrophic_backtracking_patterns_answer_a_90_kb_string_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Lift the input bound, so the 90 KB string really goes through the regex engine: RE2 is
    # linear-time by construction.
    monkeypatch.setattr(conditions, "MAX_REGEX_INPUT", 1_000_000)
    answers = []
    started = time.perf_counter()
    for pattern, text, _ in CATASTROPHIC:
        body = encode(make_request(payload={"serial": text}))
        policy = compile_policy(rules_policy({"payload.serial": {"regex": pattern}}))
        response = handle(body, policy)
        answers.append(response.body["iotHubHostName"] == HUB_B)
    elapsed = time.perf_counter() - started

    assert answers == [expected for _, _, expected in CATASTROPHIC]
    assert elapsed < 1.0


def test_a_regex_never_matches_a_value_longer_than_the_bound() -> None:
    policy = compile_policy(rules_policy({"payload.serial": {"regex": "^(a|aa)+$"}}))

    def hub(serial: str) -> str:
        response = handle(encode(make_request(payload={"serial": serial})), policy)
        return str(response.body["iotHubHostName"])

    assert hub("a" * conditions.MAX_REGEX_INPUT) == HUB_B
    assert hub("a" * (conditions.MAX_REGEX_INPUT + 1)) == HUB_A
    assert hub("a" * 90_000) == HUB_A


# -- load errors --------------------------------------------------------------------------------

AT = "default.rules[0].when"

LOAD_ERRORS: list[tuple[str, Any, str, str]] = [
    ("not an object", ["registrationId"], AT,
     'a condition must be an object, e.g. {"registrationId": {"startsWith": "toaster-"}}'),
    ("unknown field", {"serialNumber": {"equals": "1"}}, f"{AT}.serialNumber",
     "unknown field; fields: registrationId, enrollmentId, enrollmentType, attestation, "
     "iotEdge, reprovision, currentHub, payload.<dotted path>, lookup.<name>.<property> "
     "(and all, any, not)"),
    ("misspelt field", {"registrationID": {"equals": "1"}}, f"{AT}.registrationID",
     "unknown field (did you mean 'registrationId'?); fields: registrationId, enrollmentId, "
     "enrollmentType, attestation, iotEdge, reprovision, currentHub, payload.<dotted path>, "
     "lookup.<name>.<property> (and all, any, not)"),
    ("the whole payload", {"payload": {"exists": True}}, f"{AT}.payload",
     "a payload field names a dotted path, e.g. 'payload.modelId'"),
    ("empty payload path", {"payload.": {"exists": True}}, f'{AT}["payload."]',
     "a payload field names a dotted path, e.g. 'payload.modelId'"),
    ("empty payload path part", {"payload.a..b": {"exists": True}}, f'{AT}["payload.a..b"]',
     "a payload field names a dotted path, e.g. 'payload.modelId'"),
    ("unknown operator", {"registrationId": {"matches": "x"}}, f"{AT}.registrationId.matches",
     "unknown operator; operators: equals, in, startsWith, endsWith, contains, glob, regex, "
     "exists, gt, gte, lt, lte, versionGte, versionLt"),
    ("misspelt operator", {"registrationId": {"startswith": "x"}},
     f"{AT}.registrationId.startswith",
     "unknown operator (did you mean 'startsWith'?); operators: equals, in, startsWith, "
     "endsWith, contains, glob, regex, exists, gt, gte, lt, lte, versionGte, versionLt"),
    ("operators not an object", {"registrationId": "toaster-1"}, f"{AT}.registrationId",
     'must be an object of operator → operand, e.g. {"equals": ...}'),
    ("no operators", {"registrationId": {}}, f"{AT}.registrationId",
     'must be an object of operator → operand, e.g. {"equals": ...}'),
    ("gt on a string", {"registrationId": {"gt": 5}}, f"{AT}.registrationId.gt",
     "'gt' compares numbers; registrationId is a string"),
    ("lte on a host name", {"currentHub": {"lte": 5}}, f"{AT}.currentHub.lte",
     "'lte' compares numbers; currentHub is a string"),
    ("startsWith on a boolean", {"iotEdge": {"startsWith": "t"}}, f"{AT}.iotEdge.startsWith",
     "'startsWith' compares strings; iotEdge is a boolean"),
    ("regex on a boolean", {"reprovision": {"regex": "t"}}, f"{AT}.reprovision.regex",
     "'regex' compares strings; reprovision is a boolean"),
    ("gte on a boolean", {"reprovision": {"gte": 1}}, f"{AT}.reprovision.gte",
     "'gte' compares numbers; reprovision is a boolean"),
    ("versionLt on a boolean", {"iotEdge": {"versionLt": "1"}}, f"{AT}.iotEdge.versionLt",
     "'versionLt' compares versions; iotEdge is a boolean"),
    ("equals a number on a string", {"registrationId": {"equals": 7}},
     f"{AT}.registrationId.equals", "must be a string, not a number"),
    ("equals a string on a boolean", {"iotEdge": {"equals": "true"}}, f"{AT}.iotEdge.equals",
     "must be a boolean, not a string"),
    ("unknown enrollment type", {"enrollmentType": {"equals": "Group"}},
     f"{AT}.enrollmentType.equals", "must be 'group' or 'individual'"),
    ("in not a list", {"registrationId": {"in": "a"}}, f"{AT}.registrationId.in",
     "'in' takes a non-empty list of values"),
    ("in empty", {"registrationId": {"in": []}}, f"{AT}.registrationId.in",
     "'in' takes a non-empty list of values"),
    ("in, an item of the wrong type", {"registrationId": {"in": ["a", None]}},
     f"{AT}.registrationId.in[1]", "must be a string, not null"),
    ("equals null", {"payload.x": {"equals": None}}, f'{AT}["payload.x"].equals',
     'cannot be null: a null payload value counts as absent (use {"exists": false})'),
    ("startsWith a number", {"payload.x": {"startsWith": 1}}, f'{AT}["payload.x"].startsWith',
     "'startsWith' takes a string, not a number"),
    ("contains null", {"payload.x": {"contains": None}}, f'{AT}["payload.x"].contains',
     'cannot be null: a null payload value counts as absent (use {"exists": false})'),
    ("glob a list", {"registrationId": {"glob": ["*"]}}, f"{AT}.registrationId.glob",
     "'glob' takes a string, not an array"),
    ("exists a string", {"payload.x": {"exists": "yes"}}, f'{AT}["payload.x"].exists',
     "'exists' takes true or false, not a string"),
    ("gt a string", {"payload.x": {"gt": "5"}}, f'{AT}["payload.x"].gt',
     "'gt' takes a number, not a string"),
    ("gt a boolean", {"payload.x": {"gt": True}}, f'{AT}["payload.x"].gt',
     "'gt' takes a number, not true"),
    ("lt infinity", {"payload.x": {"lt": float("inf")}}, f'{AT}["payload.x"].lt',
     "'lt' takes a finite number"),
    ("versionGte a number", {"payload.x": {"versionGte": 12}}, f'{AT}["payload.x"].versionGte',
     "'versionGte' takes a dotted numeric version such as \"12.0.2\", not a number"),
    ("versionGte with a v", {"payload.x": {"versionGte": "v12"}},
     f'{AT}["payload.x"].versionGte',
     "'versionGte' takes a dotted numeric version such as \"12.0.2\", not 'v12'"),
    ("regex syntax", {"registrationId": {"regex": "toaster-[0-9"}},
     f"{AT}.registrationId.regex",
     "not a valid RE2 regular expression (missing ]: [0-9); RE2 has no backreferences or "
     "lookaround, which could make matching a device's string slow"),
    ("regex backreference", {"registrationId": {"regex": "(a)\\1"}},
     f"{AT}.registrationId.regex",
     "not a valid RE2 regular expression (invalid escape sequence: \\1); RE2 has no "
     "backreferences or lookaround, which could make matching a device's string slow"),
    ("regex lookahead", {"registrationId": {"regex": "toaster(?!-0)"}},
     f"{AT}.registrationId.regex",
     "not a valid RE2 regular expression (invalid perl operator: (?!); RE2 has no "
     "backreferences or lookaround, which could make matching a device's string slow"),
    ("all not a list", {"all": {"iotEdge": {"equals": True}}}, f"{AT}.all",
     "'all' takes a non-empty list of conditions"),
    ("any empty", {"any": []}, f"{AT}.any", "'any' takes a non-empty list of conditions"),
    ("any item not a condition", {"any": [{}, "x"]}, f"{AT}.any[1]",
     'a condition must be an object, e.g. {"registrationId": {"startsWith": "toaster-"}}'),
    ("not a list", {"not": [{}]}, f"{AT}.not",
     'a condition must be an object, e.g. {"registrationId": {"startsWith": "toaster-"}}'),
    ("deep inside", {"not": {"any": [{"all": [{"iotEdge": {"gt": 1}}]}]}},
     f"{AT}.not.any[0].all[0].iotEdge.gt", "'gt' compares numbers; iotEdge is a boolean"),
]  # fmt: skip


@pytest.mark.parametrize(("when", "path", "message"), [c[1:] for c in LOAD_ERRORS],
                         ids=[c[0] for c in LOAD_ERRORS])  # fmt: skip
def test_load_error(when: Any, path: str, message: str) -> None:
    assert load_problems(when) == [Problem(path, message)]


def test_every_problem_of_a_condition_is_reported_at_once() -> None:
    problems = load_problems(
        {
            "registrationId": {"gt": 1, "startsWith": 2},
            "iotEdge": {"contains": "x"},
            "any": [{"payload.v": {"versionLt": "latest"}}],
        }
    )
    assert [p.path for p in problems] == [
        f"{AT}.registrationId.gt",
        f"{AT}.registrationId.startsWith",
        f"{AT}.iotEdge.contains",
        f'{AT}.any[0]["payload.v"].versionLt',
    ]


def test_a_payload_field_of_the_wrong_type_is_false_at_run_time_not_an_error() -> None:
    when = {"payload.x": {"startsWith": "1", "gt": 0, "versionGte": "1", "regex": "1"}}
    for value in ["1", 1, 1.5, True, [1], {"x": 1}]:
        assert not matches(when, make_request(payload={"x": value}))


def test_conditions_compile_once_into_predicates() -> None:
    condition = conditions.compile_condition(
        {"registrationId": {"startsWith": "toaster-", "endsWith": "-7"}}, ("when",)
    )
    getter = conditions.FIELDS["registrationId"].get
    assert condition == conditions.AllOf(
        (
            conditions.FieldTest("registrationId", getter, conditions.StartsWith("toaster-")),
            conditions.FieldTest("registrationId", getter, conditions.EndsWith("-7")),
        )
    )
