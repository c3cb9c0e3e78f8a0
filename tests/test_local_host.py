"""The local host as a real process: `python -m allocation serve` on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, ROOT, SAMPLE_REQUESTS, encode, make_request

KEY = "local-test-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Host:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Message, Any]:
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, error.headers, json.loads(error.read())

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=20)
        return self.process.returncode, stderr


def start_host(*args: str, env: dict[str, str] | None = None) -> Host:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")}
    environment.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "allocation", "serve", "--port", str(port), *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    host = Host(process, port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early: {process.communicate()[1]}")
        try:
            host.request("GET", "/api/health")
            return host
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.05)
    process.kill()
    raise AssertionError("serve did not start")


@pytest.fixture(scope="module")
def keyed_host() -> Iterator[Host]:
    host = start_host(env={"ALLOCATION_FUNCTION_KEYS": f"other-key,{KEY}"})
    yield host
    if host.process.poll() is None:
        host.process.kill()
        host.process.communicate()


@pytest.mark.parametrize("sample", SAMPLE_REQUESTS, ids=lambda p: p.stem)
@pytest.mark.parametrize("key_in", ["query", "header"])
def test_every_sample_is_allocated_with_the_key_in_query_or_header(
    keyed_host: Host, sample: Path, key_in: str
) -> None:
    path = f"/api/allocate?code={KEY}" if key_in == "query" else "/api/allocate"
    headers = {"x-functions-key": KEY} if key_in == "header" else {}
    status, response_headers, body = keyed_host.request("POST", path, sample.read_bytes(), headers)
    assert status == 200
    assert response_headers["content-type"] == "application/json"
    assert body["iotHubHostName"] in json.loads(sample.read_text())["linkedHubs"]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/allocate", {}),
        ("/api/allocate?code=wrong", {}),
        ("/api/allocate?code=", {}),
        ("/api/allocate", {"x-functions-key": KEY[:-1]}),
    ],
)
def test_a_missing_or_wrong_key_gets_401_json(
    keyed_host: Host, path: str, headers: dict[str, str]
) -> None:
    body = (FIXTURES / "group-symmetric-key-initial.json").read_bytes()
    status, _, answer = keyed_host.request("POST", path, body, headers)
    assert status == 401
    assert answer["error"] == "unauthorized"


def test_bad_bodies_get_400_and_413(keyed_host: Host) -> None:
    path = f"/api/allocate?code={KEY}"
    assert keyed_host.request("POST", path, b"{not json")[0] == 400
    too_big = encode(make_request(payload={"pad": "x" * 100_000}))
    status, _, answer = keyed_host.request("POST", path, too_big)
    assert (status, answer["error"]) == (413, "too_large")


def test_health_is_anonymous(keyed_host: Host) -> None:
    status, _, body = keyed_host.request("GET", "/api/health")
    assert status == 200
    assert body["policy"]["source"] == "default"


def test_wrong_methods_and_routes(keyed_host: Host) -> None:
    assert keyed_host.request("GET", f"/api/allocate?code={KEY}")[0] == 405
    assert keyed_host.request("POST", "/api/health", b"{}")[0] == 405
    assert keyed_host.request("GET", "/api/nothing")[0] == 404


def test_shuts_down_cleanly_on_sigterm_and_never_logs_a_key() -> None:
    host = start_host(env={"ALLOCATION_FUNCTION_KEYS": KEY})
    host.request("POST", f"/api/allocate?code={KEY}", encode(make_request()))
    host.request("POST", "/api/allocate?code=guessed-key", encode(make_request()))

    code, stderr = host.stop()

    assert code == 0
    assert "stopped" in stderr
    assert KEY not in stderr and "guessed-key" not in stderr
    access = [line for line in stderr.splitlines() if '"POST /api/allocate' in line]
    assert len(access) == 2
    assert all("code=***" in line for line in access)


def test_each_answer_logs_its_decision_line_then_its_access_line() -> None:
    host = start_host(env={"ALLOCATION_FUNCTION_KEYS": KEY})
    host.request("POST", f"/api/allocate?code={KEY}", encode(make_request(registration_id="d-1")))
    host.request("POST", f"/api/allocate?code={KEY}", b"{}")
    host.request("GET", "/api/nothing")

    code, stderr = host.stop()

    assert code == 0
    # Readiness probes aside, the lines of the three requests, in order.
    lines = [
        line
        for line in stderr.splitlines()
        if (line.startswith("{") or '"' in line) and "GET /api/health" not in line
    ]
    assert [json.loads(lines[0])["registrationId"], json.loads(lines[2])["event"]] == [
        "d-1",
        "invalid_request",
    ]
    assert json.loads(lines[0])["event"] == "allocated"
    assert [line.split('"')[1] for line in (lines[1], lines[3], lines[4])] == [
        "POST /api/allocate?code=***",
        "POST /api/allocate?code=***",
        "GET /api/nothing",
    ]
    assert len(lines) == 5


def test_health_is_503_with_an_invalid_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"default": {"strategy": "static"}}')
    host = start_host("--policy", str(policy))
    try:
        status, headers, body = host.request("GET", "/api/health")
        assert status == 503
        assert headers["Retry-After"]
        assert body["reason"] == "policy_invalid"
        assert "default.hub" not in json.dumps(body)  # the reason goes to the log only
        status, _, body = host.request("POST", "/api/allocate", encode(make_request()))
        assert (status, body["error"]) == (503, "policy_unavailable")
    finally:
        host.stop()


def test_anonymous_only_on_loopback() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")}
    refused = subprocess.run(
        [sys.executable, "-m", "allocation", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 2
    assert "without a function key" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_anonymous_loopback_host_says_so_and_answers() -> None:
    host = start_host()
    try:
        status, _, body = host.request("POST", "/api/allocate", encode(make_request()))
        assert status == 200
        assert body["iotHubHostName"] in make_request()["linkedHubs"]
    finally:
        _, stderr = host.stop()
    assert "anonymous" in stderr


def test_local_settings_values_reach_the_host(tmp_path: Path) -> None:
    policy = tmp_path / "static.json"
    policy.write_text(
        json.dumps({"default": {"strategy": "static", "hub": "hub-b.azure-devices.net"}})
    )
    settings = ROOT / "local.settings.json"
    if settings.exists():
        pytest.fail("local.settings.json exists in the working tree; this test would overwrite it")
    settings.write_text(
        json.dumps(
            {"Values": {"ALLOCATION_POLICY_FILE": str(policy), "ALLOCATION_FUNCTION_KEYS": KEY}}
        )
    )
    try:
        host = start_host()
        try:
            status, _, body = host.request(
                "POST", f"/api/allocate?code={KEY}", encode(make_request())
            )
            assert status == 200
            assert body["iotHubHostName"] == "hub-b.azure-devices.net"
            assert host.request("POST", "/api/allocate", encode(make_request()))[0] == 401
        finally:
            host.stop()
    finally:
        settings.unlink()


def test_the_function_app_never_imports_the_server() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import function_app, sys; print('uvicorn' in sys.modules)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.stdout.strip() == "False"


def test_the_access_log_writes_each_line_once_within_a_tenth_of_a_second() -> None:
    import asyncio
    import io

    from allocation.local_host import AccessLog

    stream = io.StringIO()
    log = AccessLog(stream)

    async def serve_two_requests() -> str:
        flusher = asyncio.create_task(log.flush_periodically())
        log.write('127.0.0.1 "POST /api/allocate?code=***" 200 0.40ms')
        log.write('127.0.0.1 "GET /api/health" 200 0.10ms')
        before = stream.getvalue()
        await asyncio.sleep(AccessLog.FLUSH_SECONDS * 3)
        flusher.cancel()
        return before

    written_at_once = asyncio.run(serve_two_requests())
    assert written_at_once == ""
    assert stream.getvalue().splitlines() == [
        '127.0.0.1 "POST /api/allocate?code=***" 200 0.40ms',
        '127.0.0.1 "GET /api/health" 200 0.10ms',
    ]
    log.flush()
    assert len(stream.getvalue().splitlines()) == 2
