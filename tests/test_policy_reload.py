"""A policy file that changes under a running webhook: deleted, unreadable, half-written, fixed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from allocation import webhook
from allocation.policy_sources import POLICY_FILE_SETTING, PolicyCache, load_policy
from tests.conftest import encode, make_request

A, B = "hub-a.azure-devices.net", "hub-b.azure-devices.net"
ON_A = {"default": {"strategy": "static", "hub": A}}
ON_B = {"default": {"strategy": "static", "hub": B}}
INTERVAL = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = INTERVAL + 0.1) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Iterator[Path]:
    """A policy file behind the webhook's own cache, with a clock the test moves."""
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(ON_A))
    monkeypatch.setenv(POLICY_FILE_SETTING, str(path))
    monkeypatch.setattr(webhook, "policy_cache", PolicyCache(load_policy, INTERVAL, clock))
    yield path


def write(path: Path, content: Any) -> None:
    text = content if isinstance(content, str) else json.dumps(content)
    path.write_text(text)
    # Some file systems keep whole-second times: make every write visibly new.
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))


def hub() -> Any:
    response = webhook.handle(encode(make_request(linked_hubs=[A, B])))
    return response.body.get("iotHubHostName", (response.status, response.body.get("message")))


def health() -> int:
    return webhook.health().status


def test_a_changed_file_is_picked_up_after_the_check_interval(
    policy_file: Path, clock: Clock
) -> None:
    assert hub() == A
    write(policy_file, ON_B)
    assert hub() == A  # not re-read on every request
    clock.advance()
    assert hub() == B


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        (lambda path: path.unlink(), "cannot read the policy file"),
        (lambda path: write(path, '{"default": {"strategy": "sta'), "not valid JSON"),
        (lambda path: path.write_bytes(b'{"default": "\xff"}'), "cannot read the policy file"),
        (lambda path: write(path, {"default": {"strategy": "static"}}), "default.hub"),
        (lambda path: (path.unlink(), path.mkdir()), "cannot read the policy file"),
    ],
    ids=["deleted", "half-written", "not UTF-8", "invalid", "a directory"],
)
def test_a_broken_file_answers_503_until_it_is_fixed(
    policy_file: Path, clock: Clock, break_it: Callable[[Path], Any], reason: str
) -> None:
    assert hub() == A
    break_it(policy_file)
    clock.advance()

    response = webhook.handle(encode(make_request(linked_hubs=[A, B])))
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert response.body["error"] == "policy_unavailable"
    assert reason in response.body["message"]
    assert health() == 503

    if policy_file.is_dir():
        policy_file.rmdir()
    write(policy_file, ON_B)
    assert hub()[0] == 503  # a failed load is retried only after the interval
    clock.advance()
    assert hub() == B
    assert health() == 200


def test_an_unchanged_file_is_only_checked_not_reloaded(
    policy_file: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hub() == A
    reads: list[str] = []
    original = Path.read_text

    def counting_read(self: Path, *args: Any, **kwargs: Any) -> str:
        reads.append(str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting_read)
    for _ in range(5):
        clock.advance()
        assert hub() == A
    assert reads == []


def test_the_setting_source_never_touches_the_file_system(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setenv("ALLOCATION_POLICY", json.dumps(ON_B))
    cache = PolicyCache(load_policy, INTERVAL, clock)
    first = cache.get()
    clock.advance(3600)
    assert cache.get() is first
