"""The local host's limits on connections and time, over real sockets on loopback."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from allocation.cli.server import HEADER_SECONDS, KEEP_ALIVE_SECONDS
from allocation.local_host import BODY_SECONDS, MAX_CONNECTIONS
from tests.conftest import ROOT, encode, make_request
from tests.test_local_host import Host, free_port, start_host

SLACK = 2.0  # seconds a loaded machine may add to a deadline


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    started = start_host()
    yield started
    started.stop()


def connect(host: Host) -> socket.socket:
    port = int(host.base.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def closed_after(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received, time.monotonic() - started


def test_headers_that_trickle_in_are_cut_off_at_the_header_deadline(host: Host) -> None:
    silent, trickling = connect(host), connect(host)
    started = time.monotonic()
    request = b"POST /api/allocate HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    with silent, trickling:
        closed = False
        for byte in request:
            try:
                trickling.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.25)
            if time.monotonic() - started > HEADER_SECONDS + SLACK:
                break
        assert closed or closed_after(trickling, 1)[0] == b""
        assert time.monotonic() - started < HEADER_SECONDS + SLACK
        assert closed_after(silent, 1)[0] == b""


def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes(
    host: Host,
) -> None:
    with connect(host) as client:
        client.sendall(
            b"POST /api/allocate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{" + b" " * 10
        )
        answer, seconds = closed_after(client, BODY_SECONDS + SLACK + 1)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in answer.lower()
    assert b'"error":"request_timeout"' in answer
    assert BODY_SECONDS - 0.5 < seconds < BODY_SECONDS + SLACK


def test_an_idle_keep_alive_connection_is_closed(host: Host) -> None:
    with connect(host) as client:
        client.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer, seconds = closed_after(client, KEEP_ALIVE_SECONDS + SLACK + 1)
    assert answer.startswith(b"HTTP/1.1 200")
    assert seconds < KEEP_ALIVE_SECONDS + SLACK


def test_a_declared_100_mb_body_gets_413_at_once_and_is_never_read(host: Host) -> None:
    with connect(host) as client:
        client.sendall(
            b"POST /api/allocate HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n"
        )
        answer, seconds = closed_after(client, 5)
        assert answer.startswith(b"HTTP/1.1 413")
        assert b"connection: close" in answer.lower()
        assert seconds < 1
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(100):
                client.sendall(b"x" * 1024 * 1024)
                sent += 1024 * 1024
    assert sent < 10 * 1024 * 1024


def test_a_client_still_sending_a_refused_body_reads_its_413_not_a_reset(host: Host) -> None:
    # As urllib or requests send: the whole body, then read the answer; a send that fails on a
    # reset loses the answer with it.
    with connect(host) as client:
        client.sendall(b"POST /api/allocate HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n\r\n")
        time.sleep(0.3)  # the 413 is written by now
        for _ in range(9):
            client.sendall(b"x" * 100_000)
            time.sleep(0.01)
        answer, seconds = closed_after(client, 5)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"error":"too_large"' in answer
    assert seconds < 3


def test_a_chunked_body_over_the_limit_gets_413_and_the_connection_closes(host: Host) -> None:
    chunk = b"x" * (96 * 1024 + 1)
    with connect(host) as client:
        client.sendall(
            b"POST /api/allocate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % len(chunk)
            + chunk
            + b"\r\n"
        )
        answer, seconds = closed_after(client, 5)
    assert answer.startswith(b"HTTP/1.1 413")
    assert seconds < 2


def test_connections_past_the_limit_are_closed_and_the_host_recovers(host: Host) -> None:
    held = [connect(host) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        with connect(host) as refused:
            assert closed_after(refused, 2)[0] == b""
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert host.request("GET", "/api/health")[0] == 200


def test_when_file_descriptors_run_out_accept_failures_are_reported_once_per_interval() -> None:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")}

    def few_file_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    process = subprocess.Popen(
        [sys.executable, "-m", "allocation", "serve", "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=few_file_descriptors,  # noqa: PLW1509 - a limit of the child alone
    )
    host = Host(process, port)
    clients: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                if host.request("GET", "/api/health")[0] == 200:
                    break
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        for _ in range(80):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(3)  # accept() fails again and again meanwhile
        for sock in clients:
            sock.close()
        clients.clear()
        time.sleep(1.5)  # asyncio waits a second before it accepts again
        status, _, _ = host.request("POST", "/api/allocate", encode(make_request()))
        assert status == 200
    finally:
        for sock in clients:
            sock.close()
        code, stderr = host.stop()
    assert code == 0
    assert "Traceback" not in stderr
    reports = [line for line in stderr.splitlines() if '"event": "accept_failed"' in line]
    assert 1 <= len(reports) <= 2, stderr[-2000:]
    assert "EMFILE" in reports[0]
    assert len(stderr) < 20_000
