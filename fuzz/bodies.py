"""Request bodies for the fuzzers, built without hypothesis: the DPS envelope, number literals
that Python's ``json`` cannot write (``NaN``, ``1e400``), nesting, padding, and the seed bodies
of the atheris corpus.
"""

from __future__ import annotations

import itertools
import json
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from allocation.limits import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD_KEYS,
    MAX_REGISTRATION_ID_LENGTH,
)
from fuzz.policies import HUB_A, HUB_B, HUB_C, TOASTERS

FIXTURES: Final = Path(__file__).resolve().parents[1] / "tests" / "fixtures"

# Depth of the device payload's own brackets: the request object and deviceRuntimeContext come
# first, so a payload nested PAYLOAD_DEPTH_LIMIT deep puts the body exactly at MAX_JSON_DEPTH.
ENVELOPE_DEPTH: Final = 2
PAYLOAD_DEPTH_LIMIT: Final = MAX_JSON_DEPTH - ENVELOPE_DEPTH


def request(
    registration_id: str = "device-1",
    linked_hubs: Sequence[str] = (HUB_A, HUB_B),
    *,
    individual: bool = False,
    enrollment_id: str = "fleet",
    current_hub: str | None = None,
    payload: Any = None,
    reprovision_policy: Mapping[str, Any] | None = None,
    iot_edge: bool = False,
    attestation: str = "symmetricKey",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A DPS allocation request shaped like the captured ones (tests/fixtures).

    ``enrollment_id`` is the group's ID, or an individual enrollment's registration ID."""
    enrollment: dict[str, Any] = {
        "attestation": {"type": attestation},
        "capabilities": {"iotEdge": iot_edge},
        "allocationPolicy": "custom",
    }
    if reprovision_policy is not None:
        enrollment["reprovisionPolicy"] = dict(reprovision_policy)
    runtime: dict[str, Any] = {"registrationId": registration_id, "symmetricKey": {}}
    if current_hub is not None:
        runtime["currentIotHubHostName"] = current_hub
        runtime["currentDeviceId"] = registration_id
    if payload is not None:
        runtime["payload"] = payload
    document: dict[str, Any] = {}
    if individual:
        document["individualEnrollment"] = {"registrationId": enrollment_id, **enrollment}
    else:
        document["enrollmentGroup"] = {"enrollmentGroupId": enrollment_id, **enrollment}
    document["deviceRuntimeContext"] = runtime
    document["linkedHubs"] = list(linked_hubs)
    document.update(extra or {})
    return document


def raw(literal: str, index: int = 0) -> str:
    """A placeholder that :func:`encode` replaces by ``literal`` written as is (``NaN``,
    ``1e400``); ``index`` keeps placeholders of one document distinct."""
    return f"\x01raw{index}:{literal}\x01"


def encode(document: Any, *, compact: bool = True) -> bytes:
    """JSON as DPS would send it (ASCII escapes, so lone surrogates are ``\\ud800``), with the
    :func:`raw` placeholders replaced by their literals."""
    text = json.dumps(document, separators=(",", ":") if compact else None)
    if "\\u0001raw" in text:
        text = _RAW.sub(lambda match: json.loads(f'"{match.group(1)}"'), text)
    return text.encode()


_RAW: Final = re.compile(r'"\\u0001raw\d+:((?:[^"\\]|\\.)*?)\\u0001"')


def json_depth(value: Any) -> int:
    """How deep brackets nest in ``value`` once encoded."""
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    return 0


def nested(depth: int, shape: str = "object", leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` brackets: objects, arrays, or alternating ("mixed")."""
    value = leaf
    for level in range(depth):
        as_list = shape == "array" or (shape == "mixed" and level % 2 == 1)
        value = [value] if as_list else {"x": value}
    return value


_KEY_ALPHABET: Final = string.digits + string.ascii_letters


def short_keys() -> Iterator[str]:
    """Distinct object keys, shortest first: 10,000 of them fit the body limit."""
    for length in itertools.count(1):
        for letters in itertools.product(_KEY_ALPHABET, repeat=length):
            yield "".join(letters)


def keyed_payload(keys: int, levels: int = 1) -> dict[str, Any]:
    """A payload with exactly ``keys`` object keys in all, spread over ``levels`` levels."""
    assert keys >= levels >= 1
    names = short_keys()
    payload: dict[str, Any] = {}
    node = payload
    for _ in range(levels - 1):  # one key per level holds the next level
        child: dict[str, Any] = {}
        node[next(names)] = child
        node = child
    for _ in range(keys - (levels - 1)):
        node[next(names)] = 0
    return payload


def padded(document: dict[str, Any], size: int) -> bytes:
    """``document`` with an unknown top-level field sized so that the body is ``size`` bytes."""
    base = encode({**document, "pad": ""})
    missing = size - len(base)
    if missing < 0:
        raise ValueError(f"the document alone is {len(base)} bytes, over {size}")
    body = encode({**document, "pad": "x" * missing})
    assert len(body) == size
    return body


def seed_bodies() -> dict[str, bytes]:
    """Named bodies at the edges the spec draws, for the atheris corpus and the tests."""
    numbers = {
        "tiny": raw("1e-400", 1),
        "zero": raw("-0.0", 2),
        "max": raw("1.7976931348623157e308", 3),
        "int": 10**300,
        "digits": raw("9" * 4300, 4),
    }
    seeds = {
        "minimal": encode({"enrollmentGroup": {"enrollmentGroupId": "g"},
                           "deviceRuntimeContext": {"registrationId": "d"}, "linkedHubs": ["h"]}),
        "individual-reprovision-reset": encode(request(
            "dev-tstrsd-7", (HUB_A, TOASTERS, HUB_C), individual=True, current_hub=HUB_C,
            reprovision_policy={"updateHubAssignment": True, "migrateDeviceData": False},
            iot_edge=True, payload={"firmware": "12.0.1", "siteId": "lyon", "n": 12})),
        "latency-evidence": encode(request(
            "sensor-1", (HUB_A, HUB_B, HUB_C, TOASTERS),
            payload={"latencyMs": {HUB_A.upper(): 20, HUB_B: 3.5, TOASTERS: -1},
                     "region": "westeurope", "tags": ["eu"], "echo": {"a": [1, None]}})),
        "unicode": encode(request(
            "\u202eevil\u200b\u200d\ufeff\u05d0", (HUB_A, HUB_A.upper()),
            payload={"\U0001f600": "\u2066", "rtl": "\u0627\u0644\u202b", "nul": "\x00"})),
        "lone-surrogates": encode(request(payload={"\ud800": "\udfff"})),
        "numbers": encode(request(payload=numbers)),
        "out-of-range": encode(request(payload={"t": raw("1e400")})),
        "nan": encode(request(payload={"t": raw("NaN")})),
        "infinity": encode(request(payload={"t": [raw("-Infinity")]})),
        "nesting-at-limit": encode(request(payload=nested(PAYLOAD_DEPTH_LIMIT, "mixed"))),
        "nesting-past-limit": encode(request(payload=nested(PAYLOAD_DEPTH_LIMIT + 1, "mixed"))),
        "keys-at-limit": encode(request(payload=keyed_payload(MAX_PAYLOAD_KEYS, 3))),
        "keys-past-limit": encode(request(payload=keyed_payload(MAX_PAYLOAD_KEYS + 1, 3))),
        "size-at-limit": padded(request(), MAX_BODY_BYTES),
        "size-past-limit": padded(request(), MAX_BODY_BYTES + 1),
        "registration-id-at-limit": encode(request("r" * MAX_REGISTRATION_ID_LENGTH)),
        "registration-id-filling-the-body": _long_registration_id(MAX_BODY_BYTES),
        "hub-with-space": encode(request(linked_hubs=(HUB_A, f" {HUB_B}"))),
        "duplicate-keys": b'{"linkedHubs":["not a hub"],' + encode(request())[1:],
        "bom": b"\xef\xbb\xbf" + encode(request(), compact=False),
    }  # fmt: skip
    for fixture in sorted(FIXTURES.glob("*.json")):
        seeds[f"fixture-{fixture.stem}"] = fixture.read_bytes()
    return seeds


def _long_registration_id(size: int) -> bytes:
    base = encode(request(""))
    return encode(request("r" * (size - len(base))))
