"""Every documented bound on a request, at, just below and just above its limit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from allocation.conditions import MAX_REGEX_INPUT
from allocation.errors import PolicyError
from allocation.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_PAYLOAD_KEYS, MAX_RENDERED_BYTES
from allocation.policy import compile_policy
from allocation.webhook import handle
from tests.conftest import encode, make_request

A, B = "hub-a.azure-devices.net", "hub-b.azure-devices.net"


def padded_body(size: int) -> bytes:
    base = encode(make_request(payload={"pad": ""}))
    body = encode(make_request(payload={"pad": "x" * (size - len(base))}))
    assert len(body) == size
    return body


@pytest.mark.parametrize(
    ("size", "status"),
    [(MAX_BODY_BYTES - 1, 200), (MAX_BODY_BYTES, 200), (MAX_BODY_BYTES + 1, 413)],
)
def test_body_size(size: int, status: int) -> None:
    assert handle(padded_body(size)).status == status


def nested(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("depth", "status"),
    [(MAX_JSON_DEPTH - 1, 200), (MAX_JSON_DEPTH, 200), (MAX_JSON_DEPTH + 1, 400)],
)
def test_json_nesting(depth: int, status: int) -> None:
    # The request object, deviceRuntimeContext and payload are three of the levels.
    response = handle(encode(make_request(payload={"deep": nested(depth - 3)})))
    assert response.status == status


def keyed_payload(keys: int) -> dict[str, Any]:
    # One key is "group"; the rest sit one level down, so both levels count.
    return {"group": {f"{i:x}": 0 for i in range(keys - 1)}}


@pytest.mark.parametrize(
    ("keys", "status"),
    [(MAX_PAYLOAD_KEYS - 1, 200), (MAX_PAYLOAD_KEYS, 200), (MAX_PAYLOAD_KEYS + 1, 400)],
)
def test_payload_key_count(keys: int, status: int) -> None:
    body = json.dumps(make_request(payload=keyed_payload(keys)), separators=(",", ":")).encode()
    assert len(body) <= MAX_BODY_BYTES
    response = handle(body)
    assert response.status == status
    if status == 400:
        assert response.body["details"][0]["path"] == "deviceRuntimeContext.payload"


ECHO = compile_policy({"default": {"strategy": "weighted", "payload": {"note": "{payload.note}"}}})


def echoed(size: int) -> Any:
    # The rendered payload is {"note":"..."}: 11 bytes of JSON around the note.
    return handle(encode(make_request(payload={"note": "n" * (size - 11)})), ECHO)


@pytest.mark.parametrize(
    ("size", "status"),
    [(MAX_RENDERED_BYTES - 1, 200), (MAX_RENDERED_BYTES, 200), (MAX_RENDERED_BYTES + 1, 400)],
)
def test_rendered_payload_size(size: int, status: int) -> None:
    response = echoed(size)
    assert response.status == status
    if status == 200:
        rendered = json.dumps(response.body["payload"], separators=(",", ":"))
        assert len(rendered) == size
    else:
        assert "over the 32768-byte limit" in response.body["message"]


def test_a_policy_whose_own_payload_is_too_large_does_not_load() -> None:
    with pytest.raises(PolicyError, match=r"default\.payload: is \d+ bytes as JSON"):
        compile_policy(
            {"default": {"strategy": "weighted", "payload": {"x": "y" * MAX_RENDERED_BYTES}}}
        )


REGEX = compile_policy(
    {
        "default": {
            "strategy": "rules",
            "rules": [
                {
                    "when": {"payload.serial": {"regex": "^a+$"}},
                    "then": {"strategy": "static", "hub": B},
                }
            ],
            "otherwise": {"strategy": "static", "hub": A},
        }
    }
)


@pytest.mark.parametrize(
    ("length", "hub"),
    [(MAX_REGEX_INPUT - 1, B), (MAX_REGEX_INPUT, B), (MAX_REGEX_INPUT + 1, A)],
)
def test_regex_input_length(length: int, hub: str) -> None:
    response = handle(
        encode(make_request(linked_hubs=[A, B], payload={"serial": "a" * length})), REGEX
    )
    assert response.body["iotHubHostName"] == hub
