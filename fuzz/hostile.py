"""Hypothesis strategies for hostile requests, and the settings profiles that run them.

Every strategy draws a :class:`Case`: a body, and the exact status the built-in policy must
answer it with (``None`` where a random mutation makes it unpredictable; the invariants of
fuzz/invariants.py hold for every case under every policy). The families, by ``Case.kind``:

contract-valid, with hostile values (200; 413 where the body ends up over 96 KiB):
    ``envelope``       unicode registration and enrollment IDs (RTL, zero-width, controls),
                       hub names in odd case, current hub in another case or spelled
                       ``currentIoTHubHostName`` or empty, unknown fields, a BOM, pretty
                       printing, duplicate JSON keys (the last one counts)
    ``long-id``        registration IDs of up to the 128 characters DPS supports; longer ones,
                       up to the body limit, get a 400
    ``hub-case``       duplicates in ``linkedHubs`` differing only by case: counted once, the
                       device gets the same hub as without them
    ``numbers``        -0, 1e-400, the largest double, 10^300, 4300-digit integers
    ``keys``           payloads of up to 10,000 object keys (the limit), over several levels
    ``nesting``        nesting up to exactly the depth limit, in the payload or elsewhere
    ``size``           bodies a few bytes under, at and over 96 KiB
hostile-invalid (the exact status the spec gives):
    ``hub-space``      a hub name with leading or trailing whitespace or invisible characters
    ``hub-malformed``  a hub name that is no host name (trailing dot, underscore, IDN, URL, ...)
    ``surrogate-id``   a lone surrogate (``\\ud800``) in the registration or enrollment ID
    ``bad-number``     in the payload: NaN, Infinity, 1e400 and other numbers no double holds,
                       integers over 4300 digits, non-JSON numbers (``01``, ``.5``, ``0x10``)
    ``deep``           nesting past the limit, up to 40,000 levels
    ``too-many-keys``  a payload over 10,000 object keys
    ``surrogate-payload``  lone surrogates anywhere else: in the payload, in an unknown field
    ``oversized``      any bytes over 96 KiB
the invariants only:
    ``mutated``        a valid request with one node replaced by hostile JSON or removed
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from allocation.limits import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD_KEYS,
    MAX_REGISTRATION_ID_LENGTH,
)
from fuzz.bodies import (
    ENVELOPE_DEPTH,
    PAYLOAD_DEPTH_LIMIT,
    encode,
    keyed_payload,
    nested,
    padded,
    raw,
    request,
)
from fuzz.invariants import InvariantViolation, Tally, answer, show
from fuzz.policies import POLICIES, POLICY_HUBS

# -- settings profiles -------------------------------------------------------------------------

_SUPPRESSED: Final = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
    HealthCheck.filter_too_much,
]
# Timing is measured around handle() alone (fuzz.invariants), never around generation.
settings.register_profile(
    "fuzz-ci", max_examples=300, deadline=None, suppress_health_check=_SUPPRESSED
)
settings.register_profile(
    "fuzz-long", settings.get_profile("fuzz-ci"), max_examples=100_000, database=None
)


@dataclass(frozen=True)
class Case:
    kind: str
    body: bytes
    expected: int | None  # the built-in policy's status; None: any status the spec allows
    path: str | None = None  # for a 400: a JSON path its details must name
    # For ``hub-case``: the same request without the duplicates, which must get the same hub
    # (compared case-insensitively).
    same_hub_as: bytes | None = None


def _case(kind: str, body: bytes, expected: int, path: str | None = None, **more: Any) -> Case:
    if len(body) > MAX_BODY_BYTES:
        return Case(kind, body, 413)
    return Case(kind, body, expected, path, **more)


# -- hostile text ------------------------------------------------------------------------------

BIDI_AND_INVISIBLE: Final = (
    "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad\u034f\u061c"
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
RTL_LETTERS: Final = "\u05d0\u05e9\u0627\u0644\u0645\u06cc\u0710"
ODD_ASCII: Final = '\x00\x1f\x7f"\\/ \t\n{}[]'

hostile_chars = st.sampled_from(BIDI_AND_INVISIBLE + RTL_LETTERS + ODD_ASCII) | st.characters(
    exclude_categories=["Cs"]
)
hostile_text = st.text(hostile_chars, min_size=1, max_size=40)


@st.composite
def _with_lone_surrogates(draw: st.DrawFn) -> str:
    """Hostile text with a run of lone surrogates in it: all high or all low, so that no two
    make a pair (an escaped pair is one character to a JSON parser)."""
    text = draw(st.text(hostile_chars, max_size=30))
    low = draw(st.booleans())
    run = draw(st.lists(st.integers(0, 0x3FF), min_size=1, max_size=3))
    surrogates = "".join(chr((0xDC00 if low else 0xD800) + n) for n in run)
    at = draw(st.integers(0, len(text)))
    return text[:at] + surrogates + text[at:]


surrogate_text = _with_lone_surrogates()


def _escaped_size(text: str) -> int:
    return len(json.dumps(text)) - 2


@st.composite
def long_text(draw: st.DrawFn, max_bytes: int = MAX_BODY_BYTES + 1024) -> str:
    """A short hostile unit repeated to up to ``max_bytes`` once JSON-escaped."""
    unit = draw(hostile_text)
    target = draw(
        st.one_of(
            st.integers(1, max_bytes),
            st.integers(max(1, max_bytes - 4096), max_bytes),
        )
    )
    return unit * max(1, target // _escaped_size(unit))


# -- host names --------------------------------------------------------------------------------


def _as_label(text: str) -> str:
    """A DNS label from letters, digits and hyphens: no hyphen at either end."""
    if text.startswith("-"):
        text = "0" + text[1:]
    if text.endswith("-"):
        text = text[:-1] + "9"
    return text


# Cheaper than st.from_regex, which dominated generation time.
_label = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=63).map(
    _as_label
)
# The longest host name there is: labels of 63, 253 characters in all.
LONGEST_HOST_NAME: Final = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])


@st.composite
def odd_case(draw: st.DrawFn, name: str) -> str:
    chance = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    if chance in (0.0, 1.0):
        return name.swapcase() if chance else name
    # One drawn seed rather than a draw per character: generation stays cheap.
    flips = random.Random(draw(st.integers(0, 2**32 - 1)))
    return "".join(c.swapcase() if flips.random() < chance else c for c in name)


host_names = st.one_of(
    st.sampled_from(POLICY_HUBS),
    st.builds(lambda a, b: f"{a}.{b}.azure-devices.net", _label, _label),
    st.lists(_label, min_size=1, max_size=4).map(".".join).filter(lambda n: len(n) <= 253),
    st.just(LONGEST_HOST_NAME),
).flatmap(odd_case)


@st.composite
def linked_hub_lists(draw: st.DrawFn, duplicates: int = 2) -> list[str]:
    """1 to 50 hubs (DPS's maximum), plus duplicates differing only by case."""
    hubs = draw(st.lists(host_names, min_size=1, max_size=50, unique_by=str.lower))
    for _ in range(draw(st.integers(0, duplicates))):
        variant = draw(odd_case(draw(st.sampled_from(hubs))))
        hubs.insert(draw(st.integers(0, len(hubs))), variant)
    return hubs


# -- JSON values -------------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(),
    st.integers(-(10**300), 10**300),
    st.sampled_from([10**300, -(10**300), 2**63, -(2**63) - 1, 2**1024]),
    st.floats(allow_nan=False, allow_infinity=False),
)
_json_text = st.text(hostile_chars, max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | _json_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_json_text, inner, max_size=5),
    max_leaves=20,
)

# Integers of up to this many digits are read; one more is "number out of range".
DIGITS_LIMIT: Final = 4300
# Number literals in the double range, or integers, that Python's json would not write: 200.
IN_RANGE_LITERALS: Final = (
    "-0", "-0.0", "0e0", "1e-400", "4.9e-325", "2.2250738585072014e-308",
    "1.7976931348623157e308", "1E+308", "1" + "0" * 300, "9" * DIGITS_LIMIT,
    "-" + "9" * DIGITS_LIMIT, "123456789012345678901234567890.5e-10", "0." + "0" * 5000 + "1",
)  # fmt: skip
# JSON numbers no double holds: refused in the payload (a 400), rather than silently changed.
OUT_OF_RANGE_LITERALS: Final = (
    "1e400", "-1e400", "1E+400", "1.7976931348623159e308", "1e99999999999999999999",
    "1" + "0" * 4299 + ".5",
)  # fmt: skip
# Not JSON numbers, though a lenient parser reads them: a 400 in the payload.
NOT_JSON_CONSTANTS: Final = ("NaN", "Infinity", "-Infinity")
# Not JSON to any parser: a 400 wherever they are.
SYNTAX_ERRORS: Final = (
    "nan", "inf", "+1", "01", ".5", "1.", "0x10", "1e", "--1", "1e+", "9" * (DIGITS_LIMIT + 1),
    "-" + "1" * (DIGITS_LIMIT + 1),
)  # fmt: skip

_ENVELOPE_KEYS: Final = frozenset(
    {"enrollmentGroup", "individualEnrollment", "deviceRuntimeContext", "linkedHubs", "pad"}
)


# -- contract-valid requests -------------------------------------------------------------------


@st.composite
def valid_documents(
    draw: st.DrawFn, registration_ids: st.SearchStrategy[str] = hostile_text
) -> dict[str, Any]:
    hubs = draw(linked_hub_lists())
    current = draw(st.none() | st.sampled_from(hubs).flatmap(odd_case) | host_names | st.just(""))
    reprovision = draw(
        st.none()
        | st.fixed_dictionaries(
            {}, optional={"updateHubAssignment": st.booleans(), "migrateDeviceData": st.booleans()}
        )
    )
    extra = draw(
        st.dictionaries(
            hostile_text.filter(lambda key: key not in _ENVELOPE_KEYS), json_values, max_size=2
        )
    )
    document = request(
        draw(registration_ids),
        hubs,
        individual=draw(st.booleans()),
        enrollment_id=draw(hostile_text),
        current_hub=current,
        payload=draw(st.none() | json_values),
        reprovision_policy=reprovision,
        iot_edge=draw(st.booleans()),
        extra=extra,
    )
    if current is not None and draw(st.booleans()):
        # The spelling of some old documentation tables, accepted as an alias.
        runtime = document["deviceRuntimeContext"]
        runtime["currentIoTHubHostName"] = runtime.pop("currentIotHubHostName")
    return document


@st.composite
def envelope_cases(draw: st.DrawFn) -> Case:
    document = draw(valid_documents())
    body = encode(document, compact=draw(st.booleans()))
    style = draw(st.sampled_from(["plain", "bom", "whitespace", "duplicate-keys"]))
    if style == "bom":
        body = b"\xef\xbb\xbf" + body
    elif style == "whitespace":
        body = b" \t\r\n" + body + b"\n\t "
    elif style == "duplicate-keys":
        # json keeps the last of duplicate keys: an invalid first linkedHubs is overridden.
        body = b'{"linkedHubs":[" not a hub "],"deviceRuntimeContext":7,' + body[1:]
    return _case("envelope", body, 200)


@st.composite
def long_id_cases(draw: st.DrawFn) -> Case:
    longest = st.text(hostile_chars, min_size=1, max_size=MAX_REGISTRATION_ID_LENGTH)
    document = draw(valid_documents(longest | long_text()))
    if len(document["deviceRuntimeContext"]["registrationId"]) <= MAX_REGISTRATION_ID_LENGTH:
        return _case("long-id", encode(document), 200)
    # Longer than DPS supports: not a DPS request.
    return _case("long-id", encode(document), 400, "deviceRuntimeContext.registrationId")


@st.composite
def hub_case_cases(draw: st.DrawFn) -> Case:
    document = draw(valid_documents())
    unique: list[str] = []
    for hub in document["linkedHubs"]:
        if hub.lower() not in {u.lower() for u in unique}:
            unique.append(hub)
    with_duplicates = list(unique)
    for _ in range(draw(st.integers(1, 5))):
        variant = draw(odd_case(draw(st.sampled_from(unique))))
        with_duplicates.insert(draw(st.integers(1, len(with_duplicates))), variant)
    document["linkedHubs"] = with_duplicates
    body = encode(document)
    document["linkedHubs"] = unique
    return _case("hub-case", body, 200, same_hub_as=encode(document))


@st.composite
def number_cases(draw: st.DrawFn) -> Case:
    literals = draw(st.lists(st.sampled_from(IN_RANGE_LITERALS), min_size=1, max_size=6))
    payload: dict[str, Any] = {f"n{i}": raw(text, i) for i, text in enumerate(literals)}
    payload["list"] = [raw(text, 100 + i) for i, text in enumerate(literals)]
    document = draw(valid_documents())
    document["deviceRuntimeContext"]["payload"] = payload
    return _case("numbers", encode(document), 200)


@st.composite
def key_cases(draw: st.DrawFn) -> Case:
    keys = draw(
        st.one_of(
            st.integers(1, 200),
            st.integers(MAX_PAYLOAD_KEYS - 100, MAX_PAYLOAD_KEYS),
            st.just(MAX_PAYLOAD_KEYS),
        )
    )
    levels = draw(st.integers(1, min(keys, PAYLOAD_DEPTH_LIMIT)))
    document = request(draw(hostile_text), draw(linked_hub_lists()))
    document["deviceRuntimeContext"]["payload"] = keyed_payload(keys, levels)
    return _case("keys", encode(document), 200)


def _deep_literal(depth: int, shape: str) -> str:
    """``depth`` brackets as text: Python's json could not write (or read) the deepest."""
    if shape == "array":
        return "[" * depth + "0" + "]" * depth
    return '{"x":' * depth + "0" + "}" * depth


@st.composite
def nesting_cases(draw: st.DrawFn) -> Case:
    shape = draw(st.sampled_from(["object", "array", "mixed"]))
    document = request(draw(hostile_text), draw(linked_hub_lists()))
    if draw(st.booleans()):
        depth = draw(st.integers(1, PAYLOAD_DEPTH_LIMIT) | st.just(PAYLOAD_DEPTH_LIMIT))
        document["deviceRuntimeContext"]["payload"] = nested(depth, shape)
    else:  # in an unknown top-level field, one level below the request object
        depth = draw(st.integers(1, MAX_JSON_DEPTH - 1) | st.just(MAX_JSON_DEPTH - 1))
        document["future"] = nested(depth, shape)
    return _case("nesting", encode(document), 200)


@st.composite
def size_cases(draw: st.DrawFn) -> Case:
    document = draw(valid_documents())
    delta = draw(st.integers(-64, 64) | st.sampled_from([-1, 0, 1]))
    size = MAX_BODY_BYTES + delta
    if draw(st.booleans()):
        body = padded(document, size)
        return _case("size", body, 200 if len(body) <= MAX_BODY_BYTES else 413)
    # The registration ID takes the rest: far longer than DPS allows (a 400), when the body is
    # not too large to read at all (a 413).
    runtime = document["deviceRuntimeContext"]
    runtime["registrationId"] = "r"
    missing = size - len(encode(document))
    if missing < 0:
        return _case("size", encode(document), 200)
    runtime["registrationId"] = "r" * (missing + 1)
    body = encode(document)
    return _case("size", body, 400, "deviceRuntimeContext.registrationId")


# -- hostile-invalid requests ------------------------------------------------------------------

WHITESPACE_AND_INVISIBLE: Final = " \t\n\r\x0b\x0c\u00a0\u1680\u2003\u3000\u0085\u200b\ufeff"
MALFORMED_HOST_NAMES: Final = (
    "hub-a.azure-devices.net.", ".hub-a.azure-devices.net", "hub-a..azure-devices.net",
    "hub_a.azure-devices.net", "hüb.azure-devices.net", "-hub.azure-devices.net",
    "hub-.azure-devices.net", "hub-a.azure-devices.net:443", "https://hub-a.azure-devices.net/",
    "a" * 64 + ".azure-devices.net", LONGEST_HOST_NAME + "d", "", "hub a.azure-devices.net",
    "hub-a.azure-devices.net\x00", "HUB-A.AZURE-DEVICES.NET/",
)  # fmt: skip


@st.composite
def _bad_hub_case(draw: st.DrawFn, kind: str, bad_names: st.SearchStrategy[str]) -> Case:
    document = draw(valid_documents())
    hubs = document["linkedHubs"]
    index = draw(st.integers(0, len(hubs)))
    hubs.insert(index, draw(bad_names))
    return _case(kind, encode(document), 400, f"linkedHubs[{index}]")


@st.composite
def _spaced(draw: st.DrawFn) -> str:
    name = draw(host_names)
    before = draw(st.text(st.sampled_from(WHITESPACE_AND_INVISIBLE), max_size=3))
    after = draw(st.text(st.sampled_from(WHITESPACE_AND_INVISIBLE), max_size=3))
    if not before and not after:
        after = draw(st.sampled_from(WHITESPACE_AND_INVISIBLE))
    return before + name + after


def hub_space_cases() -> st.SearchStrategy[Case]:
    return _bad_hub_case("hub-space", _spaced())


def hub_malformed_cases() -> st.SearchStrategy[Case]:
    return _bad_hub_case("hub-malformed", st.sampled_from(MALFORMED_HOST_NAMES))


@st.composite
def surrogate_id_cases(draw: st.DrawFn) -> Case:
    document = draw(valid_documents())
    hostile = draw(surrogate_text)
    if draw(st.booleans()):
        document["deviceRuntimeContext"]["registrationId"] = hostile
    else:
        document.pop("individualEnrollment", None)
        document["enrollmentGroup"] = {"enrollmentGroupId": hostile}
    return _case("surrogate-id", encode(document), 400)


@st.composite
def surrogate_payload_cases(draw: st.DrawFn) -> Case:
    """Lone surrogates where the contract takes any JSON. Whether such a string is JSON is the
    parser's call (RFC 8259 8.2: "unpredictable"): pydantic-core's refuses it, a 400, like a
    body that is not UTF-8."""
    document = draw(valid_documents())
    text = draw(surrogate_text)
    if draw(st.booleans()):
        document["deviceRuntimeContext"]["payload"] = {text: [text, 1]}
    else:
        document["future"] = text
    return _case("surrogate-payload", encode(document), 400)


@st.composite
def bad_number_cases(draw: st.DrawFn) -> Case:
    document = draw(valid_documents())
    where = draw(st.sampled_from(["payload", "list", "top"]))
    if where == "top":  # an unknown field: only a syntax error is sure to be refused there
        document["future"] = raw(draw(st.sampled_from(SYNTAX_ERRORS)))
    else:
        literal = draw(st.sampled_from(OUT_OF_RANGE_LITERALS + NOT_JSON_CONSTANTS + SYNTAX_ERRORS))
        value = raw(literal)
        payload = {"t": value} if where == "payload" else [1, value]
        document["deviceRuntimeContext"]["payload"] = payload
    return _case("bad-number", encode(document), 400)


@st.composite
def deep_cases(draw: st.DrawFn) -> Case:
    past = draw(st.integers(1, 3) | st.integers(1, 40_000))
    shape = draw(st.sampled_from(["object", "array"]))
    document = request(draw(hostile_text), draw(linked_hub_lists()))
    where = draw(st.sampled_from(["payload", "top", "hubs"]))
    if where == "payload":
        depth = PAYLOAD_DEPTH_LIMIT + past
        document["deviceRuntimeContext"]["payload"] = raw(_deep_literal(depth, shape))
    elif where == "top":
        document["future"] = raw(_deep_literal(MAX_JSON_DEPTH - 1 + past, shape))
    else:  # linkedHubs is an array of the request: one level below it
        document["linkedHubs"].append(
            raw(_deep_literal(MAX_JSON_DEPTH - ENVELOPE_DEPTH + past, shape))
        )
    return _case("deep", encode(document), 400)


@st.composite
def too_many_keys_cases(draw: st.DrawFn) -> Case:
    keys = draw(st.integers(MAX_PAYLOAD_KEYS + 1, MAX_PAYLOAD_KEYS + 200))
    levels = draw(st.integers(1, PAYLOAD_DEPTH_LIMIT))
    document = request(draw(hostile_text), draw(linked_hub_lists()))
    document["deviceRuntimeContext"]["payload"] = keyed_payload(keys, levels)
    return _case("too-many-keys", encode(document), 400, "deviceRuntimeContext.payload")


@st.composite
def oversized_cases(draw: st.DrawFn) -> Case:
    unit = draw(st.binary(min_size=1, max_size=16))
    size = draw(st.integers(MAX_BODY_BYTES + 1, MAX_BODY_BYTES + 4096))
    body = (unit * (size // len(unit) + 1))[:size]
    return Case("oversized", body, 413)


def _nodes(value: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield value, key
            yield from _nodes(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield value, index
            yield from _nodes(item)


@st.composite
def mutated_cases(draw: st.DrawFn) -> Case:
    document = draw(valid_documents())
    container, key = draw(st.sampled_from(list(_nodes(document))))
    if draw(st.booleans()):
        del container[key]
    else:
        container[key] = draw(json_values | st.sampled_from(["", " ", 0, [], {}, None, True]))
    return Case("mutated", encode(document), None)


# -- all of them -------------------------------------------------------------------------------

VALID_FAMILIES: Final = (
    envelope_cases(),
    long_id_cases(),
    hub_case_cases(),
    number_cases(),
    key_cases(),
    nesting_cases(),
    size_cases(),
)
INVALID_FAMILIES: Final = (
    hub_space_cases(),
    hub_malformed_cases(),
    surrogate_id_cases(),
    surrogate_payload_cases(),
    bad_number_cases(),
    deep_cases(),
    too_many_keys_cases(),
    oversized_cases(),
    mutated_cases(),
)
contract_valid_cases = st.one_of(*VALID_FAMILIES)
invalid_cases = st.one_of(*INVALID_FAMILIES)
hostile_cases = st.one_of(*VALID_FAMILIES, *INVALID_FAMILIES)


# -- checking a case ---------------------------------------------------------------------------


def check_case(case: Case, tallies: Mapping[str, Tally] | None = None) -> None:
    """Answer ``case`` under every fuzzing policy with the invariants checked, and under the
    built-in policy with the status (and 400 path, and hub) the case expects."""
    policies = list(POLICIES.items())
    for name, policy in policies:
        response = answer(case.body, policy, tallies[name] if tallies else None)
        if name != "default":
            continue
        if case.expected is not None and response.status != case.expected:
            raise InvariantViolation(
                f"{case.kind}: status {response.status}, expected {case.expected}\n"
                f"  answer: {response.body!r:.600}\n  body: {show(case.body)}"
            )
        if case.path is not None:
            paths = [detail["path"] for detail in response.body.get("details", [])]
            if case.path not in paths:
                raise InvariantViolation(
                    f"{case.kind}: the 400 names {paths}, not {case.path}\n"
                    f"  body: {show(case.body)}"
                )
        if case.same_hub_as is not None and response.status == 200:
            twin = answer(case.same_hub_as, policy)
            hub, expected_hub = response.body["iotHubHostName"], twin.body["iotHubHostName"]
            if hub.lower() != expected_hub.lower():
                raise InvariantViolation(
                    f"{case.kind}: duplicates in linkedHubs moved the device from "
                    f"{expected_hub} to {hub}\n  body: {show(case.body)}"
                )
