"""Which JSON parser reads a body changes what it costs, never the answer."""

from __future__ import annotations

import json
import math
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation import json_parsers
from allocation.errors import AllocationError, InvalidRequest
from allocation.json_parsers import (
    BYTES_PER_BACKSLASH_FOR_STDLIB,
    MIN_BYTES_FOR_STDLIB,
    parse_escape_dense,
    parse_with_pydantic_core,
)
from allocation.limits import MAX_BODY_BYTES
from allocation.requests import parse_request
from allocation.webhook import handle
from tests.conftest import encode, make_request

# Any code point, and often a surrogate (hypothesis leaves them out by default, and weighs a
# range of code points by its size) or a character that JSON escapes.
ANY_TEXT = st.lists(
    st.characters(exclude_categories=())
    | st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "é", "\U0001f600", '"', "\\", "\n"]),
    max_size=8,
).map("".join)
NUMBERS = (
    st.integers()
    | st.integers(-(10**400), 10**400)
    | st.floats(allow_nan=False)
    | st.sampled_from([math.inf, -math.inf, 1.7976931348623157e308, -0.0])
)


def json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | NUMBERS | ANY_TEXT,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4)
        ),
        max_leaves=12,
    )


def written(value: Any, ascii_only: bool, infinity: str = "1e400") -> bytes:
    """``value`` as a client would send it: in \\u escapes, or in UTF-8 (where a lone surrogate
    becomes bytes that are not UTF-8). An infinite float is written as ``infinity``: a number
    beyond a double's range, as JSON can write it, or a constant that is not JSON."""
    text = json.dumps(value, ensure_ascii=ascii_only).replace("Infinity", infinity)
    return text.encode("utf-8", "surrogatepass")


def outcome(parse: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "value", parse(body)
    except InvalidRequest:
        return "refused", None


@settings(max_examples=300, deadline=None)
@given(
    # A lone scalar too: a body may be any JSON value (the contract then refuses it).
    value=json_values() | ANY_TEXT | NUMBERS,
    ascii_only=st.booleans(),
    infinity=st.sampled_from(["1e400", "Infinity", "NaN"]),
    suffix=st.sampled_from(["", " ", ",", "]", "x", "\\"]),
)
def test_both_parsers_give_the_same_value_or_both_refuse(
    value: Any, ascii_only: bool, infinity: str, suffix: str
) -> None:
    body = written(value, ascii_only, infinity) + suffix.encode()
    assert outcome(parse_escape_dense, body) == outcome(parse_with_pydantic_core, body)


@pytest.mark.parametrize(
    "text",
    [
        "[NaN]",
        "[1, Infinity]",
        '{"a": -Infinity}',
        "[" + "1" * 4301 + "]",  # past the interpreter's limit on integer digits, as pydantic-core
        '["\\ud800"]',
        '{"\\udc00": 1}',
        '["\\ud83d\\ude00", "\\ude00"]',
        "[1,]",
        "",
    ],
)
def test_what_is_not_json_both_parsers_refuse(text: str) -> None:
    body = text.encode()
    with pytest.raises(InvalidRequest, match=r"^the body is not JSON"):
        parse_escape_dense(body)
    with pytest.raises(InvalidRequest, match=r"^the body is not JSON"):
        parse_with_pydantic_core(body)


def test_utf_8_that_encodes_a_surrogate_is_not_json() -> None:
    # json.loads would read such bytes ("surrogatepass"); UTF-8 has no surrogates.
    body = b'["\xed\xa0\x80"]'
    with pytest.raises(InvalidRequest, match="invalid UTF-8 at byte 2"):
        parse_escape_dense(body)


# -- requests dense in escapes ------------------------------------------------------------------


def answered(body: bytes, escape_dense: bool) -> tuple[str, Any]:
    """What parse_request makes of ``body`` when the windows find it dense in escapes, or not."""
    with mock.patch.object(json_parsers, "_escape_dense", lambda _body: escape_dense):
        try:
            return "request", parse_request(body)
        except AllocationError as error:
            return type(error).__name__, None


@settings(max_examples=100, deadline=None)
@given(
    value=json_values(),
    escapes=st.integers(MIN_BYTES_FOR_STDLIB // 6, MAX_BODY_BYTES // 6),
    ascii_only=st.booleans(),
    infinity=st.sampled_from(["1e400", "Infinity", "NaN"]),
)
def test_a_request_gets_the_same_answer_whichever_parser_reads_it(
    value: Any, escapes: int, ascii_only: bool, infinity: str
) -> None:
    document = make_request(payload={"value": value, "pad": "\u00e9" * escapes})
    body = json.dumps(document, ensure_ascii=ascii_only).replace("Infinity", infinity)
    data = body.encode("utf-8", "surrogatepass")
    assert answered(data, escape_dense=True) == answered(data, escape_dense=False)


def escaped_request(payload: Any, ascii_only: bool = True) -> bytes:
    body = json.dumps(make_request(payload=payload), ensure_ascii=ascii_only)
    return body.encode("utf-8", "surrogatepass")


ESCAPED = "\u00e9\U0001f600"  # json.dumps writes 6 and 12 bytes of escapes for them


def test_a_payload_in_escapes_is_the_payload_in_utf_8() -> None:
    payload = {"site": ESCAPED * 2000, "tags": [ESCAPED] * 500, "n": 12345678901234567890}
    body = escaped_request(payload)
    assert MIN_BYTES_FOR_STDLIB <= len(body) <= MAX_BODY_BYTES
    assert json_parsers._escape_dense(body)
    assert parse_request(body) == parse_request(escaped_request(payload, ascii_only=False))


@pytest.mark.parametrize(
    "payload",
    [
        {"site": ESCAPED * 2000, "bad": "\ud800"},
        {"site": ESCAPED * 2000, "\udfff": 1},
        {"site": ESCAPED * 2000, "deep": [[{"x": ["a", "b\udbff"]}]]},
        # More values than the walk looks at: pydantic-core's encoder looks instead.
        {"site": ESCAPED * 1000, "mixed": [ESCAPED, 1] * 600 + ["\ud800"]},
    ],
    ids=["value", "key", "nested", "past the walk"],
)
def test_a_lone_surrogate_in_a_request_dense_in_escapes_is_refused(payload: Any) -> None:
    body = escaped_request(payload)
    assert json_parsers._escape_dense(body)
    response = handle(body)
    assert response.status == 400
    assert "lone surrogate" in response.body["message"]


def test_a_number_beyond_a_double_among_many_strings_is_refused() -> None:
    # Few containers, many values: each container is looked at in C.
    body = escaped_request({"tags": [ESCAPED] * 3000 + ["INF"]}).replace(b'"INF"', b"1e400")
    response = handle(body)
    assert response.status == 400
    assert "not finite" in response.body["message"]


@settings(max_examples=50, deadline=None)
@given(gap=st.integers(0, 512), start=st.integers(0, 4096))
def test_escapes_are_found_wherever_the_sender_puts_them(gap: int, start: int) -> None:
    """Escapes filling all but a gap in every 4 KiB: the windows, drawn at random, find them
    dense, however the gaps are placed."""
    unit = "\u00e9" * ((4096 - gap) // 6) + "x" * gap
    body = encode(make_request(payload={"s": "x" * start + unit * 20}))
    assert json_parsers._escape_dense(body)


def test_a_body_with_few_escapes_is_left_to_pydantic_core() -> None:
    sparse = "\u00e9" + "x" * (4 * BYTES_PER_BACKSLASH_FOR_STDLIB)
    body = encode(make_request(payload={"s": sparse * 1000}))
    assert len(body) >= MIN_BYTES_FOR_STDLIB
    assert not json_parsers._escape_dense(body)
