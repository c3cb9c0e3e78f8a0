"""Every documented bound on a request, at, just below and just above its limit."""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import mmh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation import rendezvous, requests
from allocation.candidates import Candidate
from allocation.conditions import MAX_REGEX_INPUT
from allocation.errors import PolicyError
from allocation.limits import (
    MAX_BODY_BYTES,
    MAX_HASH_KEY_LENGTH,
    MAX_JSON_DEPTH,
    MAX_LINKED_HUBS,
    MAX_PAYLOAD_KEYS,
    MAX_REGISTRATION_ID_LENGTH,
    MAX_RENDERED_BYTES,
)
from allocation.policy import compile_policy
from allocation.sources import APP_ROOT
from allocation.templates import Budget, RenderedTooLarge, spend_json
from allocation.webhook import handle
from tests.conftest import encode, make_request

EXAMPLES = APP_ROOT / "examples"
CANDIDATES = tuple(Candidate(f"hub-{n}.azure-devices.net") for n in range(5))


def json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)


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


GLOB = compile_policy(
    {
        "default": {
            "strategy": "rules",
            "rules": [
                {
                    "when": {"payload.serial": {"glob": "a*"}},
                    "then": {"strategy": "static", "hub": B},
                }
            ],
            "otherwise": {"strategy": "static", "hub": A},
        }
    }
)


@pytest.mark.parametrize(("length", "hub"), [(MAX_REGEX_INPUT, B), (MAX_REGEX_INPUT + 1, A)])
def test_glob_input_length(length: int, hub: str) -> None:
    response = handle(
        encode(make_request(linked_hubs=[A, B], payload={"serial": "a" * length})), GLOB
    )
    assert response.body["iotHubHostName"] == hub


# -- rendering stops at its limit ---------------------------------------------------------------


def body_with_b(b: Any) -> bytes:
    body = encode(make_request(payload={"b": b}))
    assert len(body) <= MAX_BODY_BYTES
    return body


def largest_b() -> str:
    return "b" * (MAX_BODY_BYTES - len(body_with_b("")))


def repeating(twin: Any) -> Any:
    return compile_policy({"default": {"strategy": "weighted", "initialTwin": twin}})


# Each policy repeats {payload.b} as often as its 32 KiB of twin allows.
REPEATED = {
    "in one string": repeating({"tags": {"b": "{payload.b}" * 2970}}),
    "as list items": repeating({"tags": {"b": ["{payload.b}"] * 2330}}),
    "under many keys": repeating({"tags": {f"{n:x}": "{payload.b}" * 2 for n in range(1000)}}),
}


@pytest.mark.parametrize("policy", REPEATED.values(), ids=list(REPEATED))
@pytest.mark.parametrize(
    "b",
    [largest_b(), {"x": [largest_b()[:-100]]}, {f"{n:x}": n for n in range(7000)}],
    ids=["a 97 KB string", "a 97 KB nested value", "7,000 keys"],
)
def test_rendering_stops_at_the_size_limit(policy: Any, b: Any) -> None:
    """N copies of a device's 97 KB value (N = 2,970 in a 32 KB policy) took 1 s and 832 MB
    of peak RSS: rendering must stop where the 32 KiB limit is crossed, so the memory it adds
    to the request's is proportional to that limit, not to N."""
    body = body_with_b(b)
    without_templates = peak_memory(lambda: handle(body, PLAIN))
    response, peak = handle(body, policy), peak_memory(lambda: handle(body, policy))
    assert response.status == 400
    assert "initialTwin would be over the 32768-byte limit" in response.body["message"]
    added = peak - without_templates
    assert added <= 4 * MAX_RENDERED_BYTES, f"rendering added {added:,} bytes at peak"


PLAIN = compile_policy({"default": {"strategy": "weighted"}})


def peak_memory(call: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@given(st.recursive(st.none() | st.integers() | st.text(), json_containers, max_leaves=20))
def test_the_rendered_size_is_the_size_of_the_compact_json(value: Any) -> None:
    rendered = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    exact = Budget(len(rendered))
    spend_json(value, exact)
    assert exact.left == 0
    with pytest.raises(RenderedTooLarge):
        spend_json(value, Budget(len(rendered) - 1))


# -- hash keys are bounded ----------------------------------------------------------------------

SITES = compile_policy(json.loads((EXAMPLES / "04-site-affinity" / "policy.json").read_text()))
SITE_HUBS = [f"contoso-sites-{n}.azure-devices.net" for n in (1, 2, 3)]


@pytest.mark.parametrize(
    ("length", "status"), [(MAX_HASH_KEY_LENGTH, 200), (MAX_HASH_KEY_LENGTH + 1, 400)]
)
def test_a_weighted_key_is_at_most_256_characters(length: int, status: int) -> None:
    response = handle(
        encode(make_request(linked_hubs=SITE_HUBS, payload={"siteId": "s" * length})), SITES
    )
    assert response.status == status
    if status == 400:
        assert "weighted key would be longer than 256 characters" in response.body["message"]


class CountingMmh3:
    def __init__(self) -> None:
        self.bytes = 0

    def hash64(self, data: bytes, *args: Any, **kwargs: Any) -> Any:
        self.bytes += len(data)
        return mmh3.hash64(data, *args, **kwargs)

    def hash_bytes(self, data: bytes, *args: Any, **kwargs: Any) -> Any:
        self.bytes += len(data)
        return mmh3.hash_bytes(data, *args, **kwargs)


def test_a_registration_id_filling_the_body_is_refused_before_any_hashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """256 linked hubs each hashed a 96 KiB registration ID again: 40 times what json.loads
    takes on the body. DPS supports registration IDs of up to 128 characters, so such a request
    is refused by the contract, and nothing is hashed."""
    hubs = [f"hub-{n:03d}.azure-devices.net" for n in range(MAX_LINKED_HUBS)]
    base = len(encode(make_request("", hubs)))
    counter = CountingMmh3()
    monkeypatch.setattr(rendezvous, "mmh3", counter)
    response = handle(encode(make_request("r" * (MAX_BODY_BYTES - base), hubs)))
    assert response.status == 400
    assert counter.bytes == 0


def test_linked_hubs_are_bounded_just_above_what_dps_can_link() -> None:
    """DPS links at most 50 hubs to an instance. Up to 64 are answered; past that, each request
    could make us validate and hash hundreds of host names, and is refused."""
    hubs = [f"hub-{n:03d}.azure-devices.net" for n in range(MAX_LINKED_HUBS + 1)]
    assert MAX_LINKED_HUBS == 64
    assert handle(encode(make_request("device-1", hubs[:MAX_LINKED_HUBS]))).status == 200
    response = handle(encode(make_request("device-1", hubs)))
    assert response.status == 400
    assert [detail["path"] for detail in response.body["details"]] == ["linkedHubs"]


def test_the_longest_registration_id_is_hashed_in_bounded_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """128 characters of 4-byte UTF-8 are 512 bytes: past 256 bytes a key is hashed once, then
    as its first 256 bytes and that digest, for each linked hub."""
    hubs = [f"hub-{n:03d}.azure-devices.net" for n in range(MAX_LINKED_HUBS)]
    long_id = "\U0001f600" * MAX_REGISTRATION_ID_LENGTH
    counter = CountingMmh3()
    monkeypatch.setattr(rendezvous, "mmh3", counter)
    assert handle(encode(make_request(long_id, hubs))).status == 200
    per_hub = len("hub-000.azure-devices.net\n") + MAX_HASH_KEY_LENGTH + 16
    assert counter.bytes <= len(long_id.encode()) + MAX_LINKED_HUBS * per_hub


def test_long_keys_that_share_their_first_256_bytes_still_spread() -> None:
    prefix = "p" * MAX_HASH_KEY_LENGTH
    hubs = [rendezvous.choose(f"{prefix}{n}", CANDIDATES).name for n in range(200)]
    assert set(hubs) == {c.name for c in CANDIDATES}


def test_keys_within_the_bound_are_hashed_as_they_always_were() -> None:
    key = "k" * MAX_HASH_KEY_LENGTH
    assert rendezvous.encode_key(key) == key.encode()


# -- nesting is measured outside strings, on the parsed body or on its bytes -------------------


@given(
    st.binary(max_size=200) | st.text("[{}] x", max_size=200).map(str.encode), st.integers(0, 40)
)
def test_the_bracket_count_that_skips_the_envelope_walk_is_exact(body: bytes, limit: int) -> None:
    """Bodies of at most MAX_JSON_DEPTH brackets have only their payload walked: the count that
    decides it stops at the limit, and must agree with counting every bracket."""
    expected = body.count(b"[") + body.count(b"{") <= limit
    assert requests._brackets_at_most(body, limit) is expected


def strings_with_json_syntax() -> st.SearchStrategy[str]:
    return st.text(st.sampled_from('[]{}:,"\\\\ 0e1aé\n'), max_size=12)


def nested_document(depth: int, strings: list[str]) -> Any:
    value: Any = strings
    for level in range(depth):
        value = {strings[level % len(strings)] if strings else "k": value} if level % 2 else [value]
    return value


@settings(max_examples=60, deadline=None)
@given(
    depth=st.integers(1, MAX_JSON_DEPTH + 3),
    strings=st.lists(strings_with_json_syntax(), min_size=1, max_size=5),
    padding=st.sampled_from([[], [0] * 2000, [[[0]]] * 700]),
)
def test_nesting_is_measured_outside_strings(
    depth: int, strings: list[str], padding: list[Any]
) -> None:
    """With padding the body is too large to walk and its bytes are measured (as long runs of
    brackets, or many short ones): the answer is the same, whatever brackets, quotes and
    backslashes its strings hold."""
    payload = {"deep": nested_document(depth, strings), "pad": padding}
    body = encode(make_request(payload=payload))
    # The request object, deviceRuntimeContext, payload and "deep" are four levels over the
    # document's own, and a list of strings at the bottom is one more.
    expected = 200 if depth + 4 <= MAX_JSON_DEPTH else 400
    assert handle(body).status == expected
