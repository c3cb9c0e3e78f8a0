"""``serve`` start-up failures: one line on stderr, exit code 2, never "listening" first."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_local_host import start_host


def serve(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")}
    environment["ALLOCATION_FUNCTION_KEYS"] = "a-key"
    return subprocess.run(
        [sys.executable, "-m", "allocation", "serve", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert all(word in result.stderr for word in words), result.stderr
    assert "listening" not in result.stderr


def test_a_busy_port_is_one_line_and_exit_code_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve("--port", str(port))
    assert_one_line_failure(result, f"127.0.0.1:{port}", "in use")


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_a_port_out_of_range_is_one_line_and_exit_code_2(port: str) -> None:
    assert_one_line_failure(serve("--port", port), port, "0 to 65535")


def test_a_host_that_does_not_resolve_is_one_line_and_exit_code_2() -> None:
    assert_one_line_failure(
        serve("--host", "no-such-host.invalid", "--port", "7071"), "no-such-host"
    )


def test_an_address_not_on_this_machine_is_one_line_and_exit_code_2() -> None:
    # TEST-NET-1 (RFC 5737): never assigned to a machine.
    assert_one_line_failure(serve("--host", "192.0.2.1", "--port", "7071"), "192.0.2.1:7071")


def test_unreadable_local_settings_are_one_line_and_exit_code_2() -> None:
    settings = ROOT / "local.settings.json"
    if settings.exists():
        pytest.fail("local.settings.json exists in the working tree; this test would overwrite it")
    settings.write_text('{"Values": {"ALLOCATION_FUNCTION_KEYS": ')
    try:
        result = serve("--port", "0")
    finally:
        settings.unlink()
    assert_one_line_failure(result, "local.settings.json")


def test_listening_is_said_once_the_socket_is_bound_on_the_port_it_names() -> None:
    host = start_host()
    _, stderr = host.stop()
    listening = [line for line in stderr.splitlines() if "listening" in line]
    assert listening == [f"listening on {host.base}/api/allocate"]
    assert json.dumps(stderr).count("Traceback") == 0
