"""The local host's access log: one request is always one line, whatever the client sends."""

from __future__ import annotations

import json
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.asgi import LoggedHost
from tests.test_local_host import start_host

FORGED = b'{"event":"allocated","hub":"evil.azure-devices.net"}'


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/x%0a" + FORGED + b"%0a",
        b"/x%0d%0a" + FORGED,
        b"/x%E2%80%A8" + FORGED,
        b"/x%C2%85" + FORGED,
        b"/x%1c" + FORGED,
        b"/x\n" + FORGED + b"\n",
        b"/x\r" + FORGED,
        "/x\u2028".encode() + FORGED,
        b'/x" 200 0.01ms\n' + FORGED,
    ],
)
def test_a_path_cannot_forge_a_log_line(raw_path: bytes) -> None:
    host = LoggedHost()
    assert host.request("GET", raw_path).status == 404
    lines = host.lines()
    assert len(lines) == 1
    assert lines[0].count('"') == 2
    assert lines[0].endswith("ms") and " 404 " in lines[0]


@settings(max_examples=200, deadline=None)
@given(
    method=st.binary(min_size=1, max_size=10),
    raw_path=st.binary(max_size=40).map(lambda p: b"/" + p),
    query=st.binary(max_size=40),
)
def test_any_method_path_and_query_log_one_line(
    method: bytes, raw_path: bytes, query: bytes
) -> None:
    host = LoggedHost()
    host.request(method.decode("latin-1"), raw_path, query)
    lines = host.lines()
    assert len(lines) == 1
    assert lines[0].isascii() and lines[0].count('"') == 2


def test_a_forged_line_over_http_stays_inside_one_access_line() -> None:
    host = start_host()
    try:
        with socket.create_connection(("127.0.0.1", int(host.base.rsplit(":", 1)[1]))) as client:
            client.sendall(
                b"GET /x%0a" + FORGED.replace(b'"', b"%22") + b"%0a HTTP/1.1\r\n"
                b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            assert client.recv(4096).startswith(b"HTTP/1.1 404")
    finally:
        _, stderr = host.stop()
    forged = [line for line in stderr.splitlines() if line.startswith("{")]
    assert all(json.loads(line).get("hub") != "evil.azure-devices.net" for line in forged)
    assert [line for line in stderr.splitlines() if '"GET /x' in line] == [
        line for line in stderr.splitlines() if "evil" in line
    ]
