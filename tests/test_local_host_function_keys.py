"""The local host's function-key check: any query gets an answer, and no key reaches the log."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation.local_host import redact_query
from tests.asgi import LoggedHost
from tests.conftest import encode, make_request

KEY = "k3y-0123456789"
BODY = encode(make_request())


@pytest.fixture(scope="module")
def host() -> LoggedHost:
    return LoggedHost(keys=(KEY,))


def allocate(host: LoggedHost, query: bytes) -> tuple[int, dict[str, object], list[str]]:
    answer = host.request("POST", b"/api/allocate", query, body=BODY)
    return answer.status, answer.json(), host.lines()


@pytest.mark.parametrize(
    "query",
    [b"code=%E2%82%AC", b"code=%FF", b"code=%F0%9F%94%91", "code=🔑".encode(), b"code=%", b"code"],
    ids=["euro", "not-utf-8", "emoji-escaped", "emoji-raw", "bare-percent", "no-value"],
)
def test_a_key_that_does_not_match_gets_401_json_and_an_access_line(
    host: LoggedHost, query: bytes
) -> None:
    status, body, lines = allocate(host, query)
    assert (status, body["error"]) == (401, "unauthorized")
    assert len(lines) == 1 and '"POST /api/allocate?code=***" 401' in lines[0]


@pytest.mark.parametrize(
    "query",
    [f"code={KEY}", f"%63ode={KEY}", f"%43%4F%44%45={KEY}", f"CoDe={KEY}", f"x=1&c%6fde={KEY}"],
)
def test_every_spelling_that_authenticates_is_redacted(host: LoggedHost, query: str) -> None:
    status, _, lines = allocate(host, query.encode())
    assert status == 200
    assert KEY not in "\n".join(lines)
    assert lines[-1].count("=***") == 1


def spelled(text: str) -> st.SearchStrategy[bytes]:
    """``text`` as a client may spell it in a query: each byte as is, in either case, or %XX."""

    def one(char: str) -> st.SearchStrategy[bytes]:
        byte = char.encode()
        spellings = {byte, byte.upper(), byte.lower(), b"%%%02X" % byte[0], b"%%%02x" % byte[0]}
        return st.sampled_from(sorted(spellings))

    return st.tuples(*(one(c) for c in text)).map(b"".join)


field = st.one_of(
    st.tuples(spelled("code"), st.just(b"="), spelled(KEY)).map(b"".join),
    st.tuples(spelled("code"), st.just(b"="), st.binary(max_size=12)).map(b"".join),
    st.binary(max_size=20),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=st.lists(field, max_size=4).map(b"&".join) | st.binary(max_size=60))
def test_any_query_bytes_get_200_or_401_and_the_log_never_shows_the_key(query: bytes) -> None:
    host = LoggedHost(keys=(KEY,))
    status, body, lines = allocate(host, query)

    assert status in (200, 401)
    assert status == 200 or body["error"] == "unauthorized"
    access = [line for line in lines if not line.startswith("{")]
    assert len(access) == 1
    # However the key was spelled, no decoding of the logged line gives it back.
    logged = access[0].encode()
    assert KEY.encode() not in unquote_to_bytes(logged)
    assert KEY.encode() not in unquote_to_bytes(logged.decode("unicode_escape").encode("latin-1"))
    for line in lines[:-1]:
        json.loads(line)


@pytest.mark.parametrize(
    ("query", "redacted"),
    [
        (b"code=abc", "code=***"),
        (b"x=1&code=abc&y=2", "x=1&code=***&y=2"),
        (b"CODE=abc", "CODE=***"),
        (b"%63ode=abc", "%63ode=***"),
        (b"barcode=1", "barcode=1"),
        (b"code=a&code=b", "code=***&code=***"),
    ],
)
def test_function_keys_are_redacted_from_query_strings(query: bytes, redacted: str) -> None:
    assert redact_query(query) == redacted
