"""A policy file that changes under a running webhook: changed, deleted, unreadable, half-written,
invalid, fixed. The last good version keeps answering (last-known-good), and health says so."""

from __future__ import annotations

import json
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from allocation import webhook
from allocation.sources import POLICY_FILE_SETTING, PolicyCache
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
def cache(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Iterator[PolicyCache]:
    """The webhook's cache, with a clock the test moves and checks the test runs (check_now)."""
    cache = PolicyCache(interval=INTERVAL, clock=clock, background=False)
    monkeypatch.setattr(webhook, "policy_cache", cache)
    yield cache
    cache.clear()


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: PolicyCache) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(ON_A))
    monkeypatch.setenv(POLICY_FILE_SETTING, str(path))
    return path


def write(path: Path, content: Any) -> None:
    text = content if isinstance(content, str) else json.dumps(content)
    path.write_text(text)
    # Some file systems keep whole-second times: make every write visibly new.
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))


def hub() -> Any:
    response = webhook.handle(encode(make_request(linked_hubs=[A, B])))
    return response.body.get("iotHubHostName", (response.status, response.body))


def test_a_changed_file_is_picked_up_by_a_check_not_by_requests(
    policy_file: Path, cache: PolicyCache
) -> None:
    assert hub() == A
    write(policy_file, ON_B)
    assert hub() == A  # requests never read the file again
    cache.check_now()
    assert hub() == B


BREAKS: Final = {
    "deleted": lambda path: path.unlink(),
    "half-written": lambda path: write(path, '{"default": {"strategy": "sta'),
    "not UTF-8": lambda path: path.write_bytes(b'{"default": "\xff"}'),
    "invalid": lambda path: write(path, {"default": {"strategy": "static"}}),
    "unreadable (a directory)": lambda path: (path.unlink(), path.mkdir()),
}


@pytest.mark.parametrize("break_it", BREAKS.values(), ids=BREAKS.keys())
def test_a_broken_file_never_replaces_the_last_good_one(
    policy_file: Path,
    cache: PolicyCache,
    clock: Clock,
    break_it: Callable[[Path], Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert hub() == A
    live = webhook.health().body["policy"]["fingerprint"]
    break_it(policy_file)
    clock.advance(12)
    with caplog.at_level(logging.WARNING, logger="allocation"):
        cache.check_now()
        cache.check_now()  # an unchanged broken file is refused, and logged, once

    assert hub() == A
    health = webhook.health()
    assert health.status == 200
    assert health.body["status"] == "degraded"
    assert health.body["policy"]["fingerprint"] == live
    assert health.body["rejected"]["reason"] in {"policy_file_unreadable", "policy_invalid"}
    assert health.body["lastGoodCheckSecondsAgo"] == 12.0
    [line] = [json.loads(r.getMessage()) for r in caplog.records]
    assert line["event"] == "policy_rejected"
    assert line["source"] == "file"
    assert line["live"] == live
    assert line["correlationId"] == health.body["rejected"]["correlationId"]
    assert str(policy_file) in line["reason"]  # the full reason is in the log

    if policy_file.is_dir():
        policy_file.rmdir()
    write(policy_file, ON_B)
    cache.check_now()
    assert hub() == B
    assert webhook.health().body["status"] == "ok"
    assert "rejected" not in webhook.health().body


def test_a_broken_file_put_back_as_it_was_is_healthy_again(
    policy_file: Path, cache: PolicyCache
) -> None:
    assert hub() == A
    write(policy_file, "{")
    cache.check_now()
    assert webhook.health().body["status"] == "degraded"
    write(policy_file, ON_A)
    cache.check_now()
    assert webhook.health().body["status"] == "ok"


def test_a_file_broken_before_the_first_load_answers_503_until_it_is_fixed(
    policy_file: Path, clock: Clock
) -> None:
    write(policy_file, "{")
    assert hub()[0] == 503
    assert webhook.health().status == 503
    write(policy_file, ON_B)
    assert hub()[0] == 503  # a failed first load is tried again only after the interval
    clock.advance()
    assert hub() == B
    assert webhook.health().body["status"] == "ok"


def test_an_unchanged_file_is_only_checked_not_reread(
    policy_file: Path, cache: PolicyCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hub() == A
    reads: list[str] = []
    original = Path.read_bytes

    def counting_read(self: Path) -> bytes:
        reads.append(str(self))
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting_read)
    for _ in range(5):
        cache.check_now()
        assert hub() == A
    assert reads == []


def test_the_setting_source_is_never_checked(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    monkeypatch.setenv("ALLOCATION_POLICY", json.dumps(ON_B))
    cache = PolicyCache(interval=INTERVAL, clock=clock)
    first = cache.get()
    clock.advance(3600)
    cache.check_now()
    assert cache.get() is first


def test_the_background_check_picks_up_a_change_while_requests_never_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policy.json"
    write(path, ON_A)
    monkeypatch.setenv(POLICY_FILE_SETTING, str(path))
    cache = PolicyCache(interval=0.05)
    monkeypatch.setattr(webhook, "policy_cache", cache)
    try:
        assert hub() == A
        write(path, ON_B)
        deadline = time.monotonic() + 10
        while hub() != B:
            assert time.monotonic() < deadline, "the change was never picked up"
            time.sleep(0.02)
    finally:
        cache.clear()


def test_requests_keep_their_latency_while_a_large_file_reloads(
    policy_file: Path, cache: PolicyCache
) -> None:
    """A large policy takes seconds to compile. Requests go on answering from the live version
    meanwhile, at their own pace, never behind the reload."""
    assert hub() == A
    enrollments = {
        f"group-{n:05d}": {"strategy": "static", "hub": B, "initialTwin": {"tags": {"n": n}}}
        for n in range(5000)
    }
    write(policy_file, {"enrollments": enrollments, **ON_B})
    reload = threading.Thread(target=cache.check_now)
    started = time.perf_counter()
    reload.start()
    latencies: list[float] = []
    while reload.is_alive():
        before = time.perf_counter()
        answer = hub()
        latencies.append(time.perf_counter() - before)
        assert answer in {A, B}
    reload_seconds = time.perf_counter() - started
    assert hub() == B
    # Requests answered all along: none waited for the reload (before, one request did the
    # reload and the others queued behind it). A single pause remains possible, where the
    # reloading thread holds the GIL (a garbage collection, say).
    assert len(latencies) > 100
    assert statistics.median(latencies) < reload_seconds / 100, (latencies, reload_seconds)
