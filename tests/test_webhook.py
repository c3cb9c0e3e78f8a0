"""The core entry point: status codes and JSON errors for every kind of body, and its logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_REGISTRATION_ID_LENGTH
from allocation.policy import compile_policy, default_policy, parse_policy
from allocation.webhook import handle
from tests.conftest import encode, load_sample, make_request

VALID = make_request()


def with_(path: str, value: Any) -> bytes:
    """VALID with the value at a dotted path replaced (or removed, for ...)."""
    document = json.loads(json.dumps(VALID))
    *parents, last = path.split(".")
    target = document
    for part in parents:
        target = target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return encode(document)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"x": value}
    return value


BAD_BODIES: list[tuple[str, bytes, int, str | None]] = [
    # (case, body, status, a JSON path the error details must name)
    ("empty body", b"", 400, None),
    ("not JSON", b"hello", 400, None),
    ("truncated JSON", encode(VALID)[:-5], 400, None),
    ("trailing garbage", encode(VALID) + b"}", 400, None),
    ("not UTF-8", b'{"linkedHubs": ["\xff"]}', 400, None),
    ("JSON array", b"[]", 400, None),
    ("JSON string", b'"allocate me"', 400, None),
    ("JSON number", b"42", 400, None),
    ("JSON null", b"null", 400, None),
    ("empty object", b"{}", 400, "linkedHubs"),
    ("linkedHubs missing", with_("linkedHubs", ...), 400, "linkedHubs"),
    ("linkedHubs empty", with_("linkedHubs", []), 400, "linkedHubs"),
    ("linkedHubs a string", with_("linkedHubs", "hub-a.azure-devices.net"), 400, "linkedHubs"),
    ("linkedHubs holds a number", with_("linkedHubs", [42]), 400, "linkedHubs[0]"),
    ("linkedHubs holds null", with_("linkedHubs", [None]), 400, "linkedHubs[0]"),
    ("linkedHubs holds an empty name", with_("linkedHubs", [""]), 400, "linkedHubs[0]"),
    ("linkedHubs holds a URL", with_("linkedHubs", ["https://hub.azure-devices.net/"]), 400,
     "linkedHubs[0]"),
    ("linkedHubs holds spaces", with_("linkedHubs", [" hub-a.azure-devices.net"]), 400,
     "linkedHubs[0]"),
    ("deviceRuntimeContext missing", with_("deviceRuntimeContext", ...), 400,
     "deviceRuntimeContext"),
    ("deviceRuntimeContext a string", with_("deviceRuntimeContext", "x"), 400,
     "deviceRuntimeContext"),
    ("registrationId missing", with_("deviceRuntimeContext.registrationId", ...), 400,
     "deviceRuntimeContext.registrationId"),
    ("registrationId a number", with_("deviceRuntimeContext.registrationId", 123), 400,
     "deviceRuntimeContext.registrationId"),
    ("registrationId empty", with_("deviceRuntimeContext.registrationId", ""), 400,
     "deviceRuntimeContext.registrationId"),
    ("registrationId null", with_("deviceRuntimeContext.registrationId", None), 400,
     "deviceRuntimeContext.registrationId"),
    ("current hub a number", with_("deviceRuntimeContext.currentIotHubHostName", 7), 400,
     "deviceRuntimeContext.currentIotHubHostName"),
    ("no enrollment", with_("enrollmentGroup", ...), 400, None),
    ("two enrollments", encode({**VALID, "individualEnrollment": {"registrationId": "d"}}), 400,
     None),
    ("enrollment group ID a number", with_("enrollmentGroup.enrollmentGroupId", 5), 400,
     "enrollmentGroup.enrollmentGroupId"),
    ("updateHubAssignment a string",
     with_("enrollmentGroup.reprovisionPolicy", {"updateHubAssignment": "yes"}), 400,
     "enrollmentGroup.reprovisionPolicy.updateHubAssignment"),
    ("iotEdge a string", with_("enrollmentGroup.capabilities", {"iotEdge": "true"}), 400,
     "enrollmentGroup.capabilities.iotEdge"),
    ("NaN in the payload", encode(VALID).replace(b'"symmetricKey": {}', b'"payload": {"t": NaN}'),
     400, None),
    ("a 5000-digit number", with_("deviceRuntimeContext.payload", 0).replace(
        b'"payload": 0', b'"payload": ' + b"9" * 5000), 400, None),
    ("payload nested past the limit", with_("deviceRuntimeContext.payload", nested(MAX_JSON_DEPTH)),
     400, None),
    ("nesting that would exhaust the parser", b"[" * 45_000 + b"]" * 45_000, 400, None),
    ("over 96 KiB", with_("deviceRuntimeContext.payload", {"pad": "x" * MAX_BODY_BYTES}), 413,
     None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "body", "status", "path"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
def test_malformed_bodies_get_the_specified_status_and_a_json_error(
    case: str, body: bytes, status: int, path: str | None
) -> None:
    response = handle(body)

    assert response.status == status
    decoded = json.loads(response.body_bytes())
    assert decoded["error"] == {400: "invalid_request", 413: "too_large"}[status]
    assert decoded["message"]
    if status == 400:
        assert isinstance(decoded["details"], list)
    if path is not None:
        assert path in [detail["path"] for detail in decoded["details"]]


def test_the_malformed_body_table_is_broad() -> None:
    assert len(BAD_BODIES) >= 25


@pytest.mark.parametrize(
    "body", [b"", b" \r\n\t ", b"\xef\xbb\xbf"], ids=["none", "whitespace", "bom"]
)
def test_an_empty_body_is_refused_as_empty(body: bytes) -> None:
    """What `curl --data @missing-file` sends: the parser's "EOF while parsing a value" told
    the operator nothing."""
    response = handle(body)

    assert response.status == 400
    decoded = json.loads(response.body_bytes())
    assert decoded["error"] == "invalid_request"
    assert decoded["message"].startswith("the request body is empty")


def test_a_body_of_exactly_96_kib_is_accepted() -> None:
    body = encode(make_request(payload={"pad": ""}))
    padding = MAX_BODY_BYTES - len(body)
    exact = encode(make_request(payload={"pad": "x" * padding}))
    assert len(exact) == MAX_BODY_BYTES
    assert handle(exact).status == 200
    assert handle(exact + b" ").status == 413


def test_nesting_up_to_the_limit_is_accepted() -> None:
    # The envelope takes 3 levels (request, deviceRuntimeContext, payload).
    response = handle(encode(make_request(payload=nested(MAX_JSON_DEPTH - 3))))
    assert response.status == 200


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    response = handle(encode(make_request(payload={"note": "[{" * 1000})))
    assert response.status == 200


def test_an_individual_enrollment_is_allocated() -> None:
    response = handle(encode(make_request("single-device", individual=True)))
    assert response.status == 200


def test_unknown_fields_and_a_leading_bom_are_tolerated() -> None:
    request = load_sample("group-symmetric-key-initial.json")
    request["somethingNew"] = {"from": "a future DPS"}
    request["deviceRuntimeContext"]["x509"] = {"clientCertificate": {"info": {}}}
    response = handle(b"\xef\xbb\xbf" + encode(request))
    assert response.status == 200


def test_duplicate_linked_hubs_count_once_and_the_exact_string_is_echoed() -> None:
    response = handle(
        encode(make_request(linked_hubs=["Hub-A.azure-devices.net", "hub-a.azure-devices.net"]))
    )
    assert response.body["iotHubHostName"] == "Hub-A.azure-devices.net"


@pytest.mark.parametrize("number", [b"1e999", b"-1e400"])
def test_numbers_no_double_can_hold_are_refused_not_changed(number: bytes) -> None:
    body = encode(make_request(payload={"n": [0]})).replace(b'"n": [0]', b'"n": [' + number + b"]")
    response = handle(body)
    assert response.status == 400
    assert response.body["details"] == [
        {"path": "deviceRuntimeContext.payload", "message": "numbers must be finite"}
    ]


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("where", ["payload", "unknown field"])
def test_nan_and_infinity_are_not_json_anywhere(constant: bytes, where: str) -> None:
    request = make_request(payload={"n": 0}) if where == "payload" else {**VALID, "future": 0}
    marker = b'"n": 0' if where == "payload" else b'"future": 0'
    body = encode(request).replace(marker, marker[:-1] + constant)
    assert constant in body
    response = handle(body)
    assert response.status == 400
    assert response.body["message"].startswith("the body is not JSON")


def test_large_integers_and_doubles_within_range_are_kept() -> None:
    body = encode(make_request(payload={"big": 0, "small": 0}))
    body = body.replace(b'"big": 0', b'"big": 1' + b"0" * 300)
    body = body.replace(b'"small": 0', b'"small": 1.7e308')
    assert handle(body).status == 200


def test_a_lone_surrogate_is_not_json_text() -> None:
    # RFC 8259, section 8.2: such a string cannot be text; DPS would not pass one on either.
    body = encode(make_request("device-\u00e9")).replace(b"\\u00e9", b"\\ud800")
    response = handle(body)
    assert response.status == 400
    assert response.body["message"].startswith("the body is not JSON")


def test_answers_are_utf_8_json_holding_the_devices_own_characters() -> None:
    policy = compile_policy(
        {"default": {"strategy": "weighted", "payload": {"greeting": "hej {registrationId}"}}}
    )
    response = handle(encode(make_request("enhet-\u00e5\u2028")), policy)
    assert response.status == 200
    assert "hej enhet-\u00e5\u2028".encode() in response.body_bytes()
    assert json.loads(response.body_bytes())["payload"] == {"greeting": "hej enhet-\u00e5\u2028"}


def test_a_rule_name_with_a_lone_surrogate_is_answered_in_ascii_escapes() -> None:
    # Policy text may escape a lone surrogate in a rule's name, which a 403 names; UTF-8 cannot
    # carry it, so that answer is ASCII-escaped JSON, as log lines always are.
    policy = parse_policy(
        '{"default": {"strategy": "rules", "rules": [{"name": "r\\ud800", "when": {}, "then": "deny"}]}}'
    )
    response = handle(encode(make_request()), policy)
    assert response.status == 403
    assert response.body_bytes().isascii()
    assert json.loads(response.body_bytes())["rule"] == "r\ud800"


# -- properties ------------------------------------------------------------------------------

labels = st.from_regex(r"\A[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?\Z")
host_names = st.builds(lambda a, b: f"{a}.{b}.azure-devices.net", labels, labels)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15,
)  # fmt: skip


@st.composite
def contract_valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    linked = draw(st.lists(host_names, min_size=1, max_size=8))
    current = draw(st.none() | st.sampled_from(linked) | host_names)
    return make_request(
        draw(st.text(min_size=1, max_size=128)),
        linked,
        individual=draw(st.booleans()),
        enrollment_group=draw(st.text(min_size=1, max_size=64)),
        current_hub=current,
        payload=draw(st.none() | json_values),
        update_hub_assignment=draw(st.none() | st.booleans()),
        migrate_device_data=draw(st.none() | st.booleans()),
        attestation=draw(st.sampled_from(["symmetricKey", "x509", "tpm", "somethingNew"])),
        iot_edge=draw(st.booleans()),
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(contract_valid_requests())
def test_every_contract_valid_request_gets_a_linked_hub(request: dict[str, Any]) -> None:
    response = handle(json.dumps(request).encode())
    assert response.status == 200
    assert response.body["iotHubHostName"] in request["linkedHubs"]


@settings(max_examples=400)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_get_a_4xx_with_a_json_body(body: bytes) -> None:
    response = handle(body)
    assert 400 <= response.status < 500
    assert response.status != 401
    assert json.loads(response.body_bytes())["error"]


@settings(max_examples=200)
@given(json_values)
def test_arbitrary_json_gets_a_4xx_with_a_json_body(document: Any) -> None:
    response = handle(json.dumps(document).encode())
    assert response.status == 400
    assert json.loads(response.body_bytes())["error"] == "invalid_request"


# -- the decision log --------------------------------------------------------------------------


def test_one_structured_line_per_decision(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="allocation")
    request = load_sample("group-reprovision-migrate-with-payload.json")
    response = handle(encode(request))

    [record] = caplog.records
    line = json.loads(record.getMessage())
    assert line == {
        "event": "allocated",
        "registrationId": "breakroom499-contoso-tstrsd-007",
        "enrollment": "contoso-custom-allocated-devices",
        "path": "default > weighted",
        "candidates": 2,
        "hub": response.body["iotHubHostName"],
        "reprovision": True,
        "currentHub": "contoso-toasters-hub-1098.azure-devices.net",
        "policy": default_policy().fingerprint,
        "durationMs": line["durationMs"],
    }
    assert line["durationMs"] >= 0


@pytest.mark.parametrize("refused", [False, True], ids=["allocated", "refused"])
def test_a_long_enrollment_id_is_cut_in_log_lines(
    caplog: pytest.LogCaptureFixture, refused: bool
) -> None:
    """An enrollment group ID may fill the 96 KiB body; the line keeps its first 256 characters
    and says how many more there were."""
    caplog.set_level(logging.INFO, logger="allocation")
    policy = compile_policy(
        {
            "default": {
                "strategy": "rules",
                "rules": [],
                "otherwise": "deny" if refused else {"strategy": "weighted"},
            }
        }
    )
    request = make_request(enrollment_group="g" * 90_000)
    assert handle(encode(request), policy).status == (403 if refused else 200)

    [record] = caplog.records
    line = json.loads(record.getMessage())
    assert line["enrollment"] == "g" * 256 + f"... ({90_000 - 256} more characters)"
    assert len(record.getMessage()) < 1024


@pytest.mark.parametrize("individual", [False, True], ids=["group", "individual"])
def test_a_registration_id_longer_than_dps_allows_is_refused(individual: bool) -> None:
    """DPS supports registration IDs of up to 128 characters: a longer one is not from DPS, and
    is refused before a rule reads it or a hub is hashed with it."""
    assert handle(encode(make_request("r" * MAX_REGISTRATION_ID_LENGTH))).status == 200
    response = handle(
        encode(make_request("r" * (MAX_REGISTRATION_ID_LENGTH + 1), individual=individual))
    )
    assert response.status == 400
    paths = {detail["path"] for detail in response.body["details"]}
    runtime = "deviceRuntimeContext.registrationId"
    assert paths == ({runtime, "individualEnrollment.registrationId"} if individual else {runtime})
    assert "at most 128 characters" in response.body["message"]


def test_refusals_are_logged_once_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="allocation")
    handle(b"[]")
    [record] = caplog.records
    assert json.loads(record.getMessage())["event"] == "invalid_request"


KEY_MATERIAL = {
    "symmetricKey": {"primaryKey": "cHJpbWFyeS1rZXktbWF0ZXJpYWw=", "secondaryKey": "c2Vjb25k"},
    "tpm": {"endorsementKey": "AToAAQALAAMAsgAgg3GXZ0SEs", "storageRootKey": "AToAAQALAAMAQAAgSRK"},
    "x509": {"clientCertificate": "-----BEGIN CERTIFICATE-----MIIBszCCAVmgAwIBAgIU"},
}


@pytest.mark.parametrize("body_kind", ["allocated", "invalid"])
def test_no_key_material_reaches_logs_or_answers(
    body_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request = make_request()
    request["deviceRuntimeContext"].update(KEY_MATERIAL)
    request["enrollmentGroup"]["attestation"] = {"type": "symmetricKey", **KEY_MATERIAL}
    if body_kind == "invalid":
        request["linkedHubs"] = [7]
    response = handle(encode(request))

    seen = caplog.text + response.body_bytes().decode()
    for secret in ("cHJpbWFyeS1rZXkt", "c2Vjb25k", "AToAAQALAAMA", "BEGIN CERTIFICATE"):
        assert secret not in seen


def test_a_defect_is_a_json_500_that_dps_retries(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from allocation import webhook

    def broken(*args: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(webhook, "decide", broken)
    response = handle(encode(make_request("dev-9")))
    assert response.status == 500
    assert json.loads(response.body_bytes())["error"] == "internal_error"
    assert "dev-9" in caplog.text and "ZeroDivisionError" in caplog.text


def test_no_key_material_reaches_the_decision_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from allocation.cli import main

    request = make_request()
    request["deviceRuntimeContext"].update(KEY_MATERIAL)
    request["enrollmentGroup"]["attestation"] = {"type": "symmetricKey", **KEY_MATERIAL}
    path = tmp_path / "request.json"
    path.write_bytes(encode(request))

    assert main(["explain", str(path), "--json"]) == 0
    assert main(["explain", str(path)]) == 0

    printed = capsys.readouterr()
    for secret in ("cHJpbWFyeS1rZXkt", "c2Vjb25k", "AToAAQALAAMA", "BEGIN CERTIFICATE"):
        assert secret not in printed.out + printed.err
