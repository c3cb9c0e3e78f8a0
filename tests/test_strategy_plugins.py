"""Plug-in strategies, end to end through the function: loading, answers, and failures."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from allocation.errors import PolicyError
from allocation.policy import compile_policy
from allocation.webhook import WebhookResponse, handle
from tests.conftest import call_function, encode, make_request

A, B = "hub-a.azure-devices.net", "hub-b.azure-devices.net"
MODULE = "tests.plugin_strategies"


def allocate(strategy: str, request: dict[str, Any], **options: Any) -> WebhookResponse:
    policy = compile_policy({"default": {"strategy": strategy, **options}})
    return handle(encode(request), policy)


def test_a_plugin_places_devices_through_the_azure_function(use_policy: Any) -> None:
    use_policy({"default": {"strategy": f"{MODULE}:PreferredHub", "payload": {"on": "{hub}"}}})
    request = make_request(linked_hubs=[A, B], payload={"preferredHub": "HUB-B.azure-devices.net"})

    response = call_function("allocate", encode(request))

    assert response.status_code == 200
    assert json.loads(response.get_body()) == {"iotHubHostName": B, "payload": {"on": B}}


def test_a_plugin_receives_its_options_and_only_its_candidates() -> None:
    request = make_request(linked_hubs=[A, B], payload={"where": B})
    response = allocate(f"{MODULE}:PreferredHub", request, field="payload.where", hubs=[A])
    # B is not a candidate of this allocation: the plug-in may not place the device there.
    assert response.status == 503
    assert response.body["error"] == "policy_unavailable"


def test_a_plugin_can_deny(caplog: pytest.LogCaptureFixture) -> None:
    request = make_request(linked_hubs=[A, B], payload={"age": 12})
    response = allocate(f"{MODULE}:OnlyAdults", request, minimumAge=18)
    assert response.status == 403
    assert response.body["rule"] == "too young"

    grown_up = make_request(linked_hubs=[A, B], payload={"age": 40})
    assert allocate(f"{MODULE}:OnlyAdults", grown_up, minimumAge=18).body["iotHubHostName"] == B


@pytest.mark.parametrize("plugin", ["Crashes", "Rogue", "AnswersNonsense"])
def test_a_failing_plugin_gets_503_and_is_named_in_the_log(
    plugin: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="allocation")
    response = allocate(f"{MODULE}:{plugin}", make_request(linked_hubs=[A, B]))

    assert response.status == 503
    assert response.headers["Retry-After"]
    assert "iotHubHostName" not in response.body
    [line] = [json.loads(r.getMessage()) for r in caplog.records]
    assert line["strategy"] == f"{MODULE}:{plugin}"
    assert line["status"] == 503


def test_the_cause_of_a_crash_is_logged_for_the_operator(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="allocation")
    allocate(f"{MODULE}:Crashes", make_request())
    assert "lookup service unreachable" in json.loads(caplog.records[0].getMessage())["cause"]


@pytest.mark.parametrize(
    ("strategy", "options", "path", "words"),
    [
        ("no_such_module:Thing", {}, "default.strategy", "cannot load plug-in"),
        (f"{MODULE}:Missing", {}, "default.strategy", "AttributeError"),
        (f"{MODULE}:NOT_CALLABLE", {}, "default.strategy", "not a class or function"),
        (f"{MODULE}:NoChoose", {}, "default.strategy", "no choose() method"),
        (f"{MODULE}:PreferredHub", {"colour": "red"}, "default", "unknown options"),
        (f"{MODULE}:OnlyAdults", {}, "default", "plug-in"),
        ("not-registered", {}, "default.strategy", "unknown strategy"),
    ],
)
def test_plugin_problems_are_load_errors_at_the_path(
    strategy: str, options: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        compile_policy({"default": {"strategy": strategy, **options}})
    problems = {p.path: p.message for p in raised.value.problems}
    assert words in problems[path]


def test_a_plugin_registered_as_an_entry_point_is_found_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "contoso_allocation-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: contoso-allocation\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        f"[dps_allocation.strategies]\npreferred-hub = {MODULE}:PreferredHub\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    request = make_request(linked_hubs=[A, B], payload={"preferredHub": B})
    response = allocate("preferred-hub", request)

    assert response.status == 200
    assert response.body["iotHubHostName"] == B


def test_a_plugin_that_hangs_gets_503_within_its_timeout(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from allocation.strategies import plugins
    from tests.plugin_strategies import Hangs

    monkeypatch.setattr(plugins, "TIMEOUT_SECONDS", 0.2)
    Hangs.release.clear()
    try:
        started = time.perf_counter()
        response = allocate(f"{MODULE}:Hangs", make_request(linked_hubs=[A, B]))
        elapsed = time.perf_counter() - started
    finally:
        Hangs.release.set()
    assert response.status == 503
    assert response.body["reason"] == "strategy_failed"
    [line] = [json.loads(record.getMessage()) for record in caplog.records]
    assert "did not answer within 0.2 s" in line["message"]
    assert line["correlationId"] == response.body["correlationId"]
    assert elapsed < 5
