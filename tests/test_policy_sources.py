"""Where the policy comes from: the app setting, a file, or the built-in default; and caching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.errors import PolicyUnavailable
from allocation.sources import (
    APP_ROOT,
    POLICY_FILE_SETTING,
    POLICY_SETTING,
    LoadedPolicy,
    PolicyCache,
    load_policy,
)

STATIC = json.dumps({"default": {"strategy": "static", "hub": "hub-a.azure-devices.net"}})
WEIGHTED = json.dumps({"default": {"strategy": "weighted"}, "sticky": True})


def test_nothing_configured_means_the_built_in_default() -> None:
    loaded = load_policy({})
    assert loaded.source == "default"
    assert loaded.policy.strategies == frozenset({"weighted"})


def test_the_setting_holds_the_policy_text() -> None:
    loaded = load_policy({POLICY_SETTING: STATIC})
    assert loaded.source == "setting"
    assert loaded.policy.strategies == frozenset({"static"})


def test_the_setting_wins_over_the_file(tmp_path: Path) -> None:
    file = tmp_path / "policy.json"
    file.write_text(WEIGHTED)
    loaded = load_policy({POLICY_SETTING: STATIC, POLICY_FILE_SETTING: str(file)})
    assert loaded.source == "setting"


def test_a_blank_setting_counts_as_absent(tmp_path: Path) -> None:
    file = tmp_path / "policy.json"
    file.write_text(WEIGHTED)
    loaded = load_policy({POLICY_SETTING: "  ", POLICY_FILE_SETTING: str(file)})
    assert loaded.source == "file"
    assert loaded.location == str(file)
    assert loaded.policy.sticky is True


def test_a_relative_file_is_found_from_the_function_app_root() -> None:
    assert (APP_ROOT / "function_app.py").is_file()
    relative = Path("tests/fixtures/policy-static.json")
    loaded = load_policy({POLICY_FILE_SETTING: str(relative)})
    assert loaded.location == str(APP_ROOT / relative)
    assert loaded.policy.strategies == frozenset({"static"})


def test_a_missing_file_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(PolicyUnavailable, match=r"cannot read the policy file .*missing\.json"):
        load_policy({POLICY_FILE_SETTING: str(tmp_path / "missing.json")})


def test_an_invalid_policy_is_unavailable_naming_the_path() -> None:
    bad = json.dumps({"default": {"strategy": "static"}})
    with pytest.raises(PolicyUnavailable, match=r"app setting ALLOCATION_POLICY: default\.hub: "):
        load_policy({POLICY_SETTING: bad})


class CountingSource:
    """A source whose loads fail with the given reasons, in turn (None: loads the default)."""

    kind = "default"
    check_seconds = None

    def __init__(self, outcomes: list[str | None]) -> None:
        self.outcomes = outcomes
        self.calls = 0

    def load(self) -> LoadedPolicy:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if outcome is not None:
            raise PolicyUnavailable(outcome)
        return load_policy({})

    def check(self, live: LoadedPolicy) -> LoadedPolicy | None:
        return None


def test_the_policy_is_loaded_once_and_lazily() -> None:
    source = CountingSource([None])
    cache = PolicyCache(lambda: source)
    assert source.calls == 0
    assert not cache.attempted
    first = cache.get()
    assert cache.get() is first
    assert source.calls == 1


def test_a_failed_load_is_retried_only_after_the_retry_interval() -> None:
    now = [100.0]
    source = CountingSource(["file is half-written", None])
    cache = PolicyCache(lambda: source, interval=5, clock=lambda: now[0])

    with pytest.raises(PolicyUnavailable, match="half-written"):
        cache.get()
    now[0] += 4.9
    with pytest.raises(PolicyUnavailable, match="half-written"):
        cache.get()
    assert source.calls == 1

    now[0] += 0.2
    assert cache.get().source == "default"
    assert source.calls == 2


def test_importing_the_app_does_not_load_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from allocation import sources

    monkeypatch.setenv(POLICY_SETTING, "{ this is not json")
    sources.policy_cache.clear()
    importlib.reload(importlib.import_module("function_app"))
    assert not sources.policy_cache.attempted
    # The broken policy is found on first use, as a 503 rather than a host that cannot start.
    with pytest.raises(PolicyUnavailable, match="not valid JSON"):
        sources.policy_cache.get()


def test_the_default_policy_answers_without_importing_a_storage_sdk() -> None:
    """The cold start of the default policy: a first request and a health probe, and no Azure
    Storage, Tables, Identity or Core SDK among the loaded modules."""
    import subprocess
    import sys

    from tests.conftest import ROOT, encode, make_request

    code = (
        "import sys, json, function_app\n"
        "from allocation import webhook\n"
        f"assert webhook.handle({encode(make_request())!r}).status == 200\n"
        "assert webhook.health().body['policy']['source'] == 'default'\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "('azure.storage', 'azure.data', 'azure.identity', 'azure.core')))))\n"
    )
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


class ScriptedSource:
    """A source that changes as a test says: each check shows the next event of the script."""

    kind = "blob"
    check_seconds = 30.0

    def __init__(self) -> None:
        self.version = 0  # the version now in the store; what a check compares with
        self.seen = 0
        self.event: str = "good"

    def load(self) -> LoadedPolicy:
        return self._version()

    def check(self, live: LoadedPolicy) -> LoadedPolicy | None:
        from allocation.errors import SourceUnreachable

        if self.event == "unreachable":
            raise SourceUnreachable("the store does not answer")
        if self.seen == self.version:
            return None
        self.seen = self.version
        if self.event == "bad":
            raise PolicyUnavailable("invalid", "policy_invalid", f"v{self.version}")
        return self._version()

    def _version(self) -> LoadedPolicy:
        return self.policy_of(self.version)

    @staticmethod
    def policy_of(version: int) -> LoadedPolicy:
        hub = f"hub-{version}.azure-devices.net"
        text = json.dumps({"default": {"strategy": "static", "hub": hub}})
        return load_policy({POLICY_SETTING: text})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["good", "bad", "unreachable", "unchanged"]), max_size=30))
def test_the_live_policy_is_always_the_newest_good_version(events: list[str]) -> None:
    source = ScriptedSource()
    cache = PolicyCache(lambda: source, background=False)
    cache.get()
    newest_good, bad_since_good = 0, False
    for event in events:
        if event in {"good", "bad"}:
            source.version += 1
            source.event = event
        elif event == "unreachable":
            source.event = "unreachable"
        else:
            source.event = "good" if source.event == "unreachable" else source.event
        cache.check_now()
        if event == "good":
            newest_good, bad_since_good = source.version, False
        elif event == "bad":
            bad_since_good = True

        status = cache.status()
        assert status.live is not None
        expected = ScriptedSource.policy_of(newest_good).policy.fingerprint
        assert status.live.policy.fingerprint == expected
        assert (status.rejected is not None) == bad_since_good
        assert (status.unreachable is not None) == (source.event == "unreachable")
        assert status.degraded == (bad_since_good or source.event == "unreachable")


@pytest.mark.parametrize(
    ("setting", "blob", "file"),
    [("", 30.0, 5.0), ("7", 7.0, 7.0), ("0.5", 0.5, 0.5), ("soon", 30.0, 5.0), ("0", 30.0, 5.0)],
)
def test_the_check_interval_is_the_setting_else_the_sources_own(
    setting: str, blob: float, file: float
) -> None:
    from allocation.sources import CHECK_SETTING, check_seconds, select_source

    environ = {CHECK_SETTING: setting}
    blob_source = select_source({"ALLOCATION_POLICY_BLOB": "policies/policy.json"})
    file_source = select_source({POLICY_FILE_SETTING: "policy.json"})
    assert check_seconds(blob_source, environ) == blob
    assert check_seconds(file_source, environ) == file
    assert check_seconds(select_source({POLICY_SETTING: STATIC}), environ) is None


@pytest.mark.parametrize("value", ["policies", "/policy.json", "policies/", " / "])
def test_a_blob_setting_without_container_and_path_is_unavailable_saying_so(value: str) -> None:
    with pytest.raises(PolicyUnavailable, match="<container>/<path>") as raised:
        load_policy({"ALLOCATION_POLICY_BLOB": value})
    assert raised.value.reason == "storage_not_configured"


def test_a_blob_setting_without_a_storage_connection_is_unavailable_saying_so() -> None:
    with pytest.raises(PolicyUnavailable, match="ALLOCATION_STORAGE") as raised:
        load_policy({"ALLOCATION_POLICY_BLOB": "policies/policy.json"})
    assert raised.value.reason == "storage_not_configured"
