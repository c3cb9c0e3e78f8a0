"""What anyone may see: /api/health (anonymous, public in Azure) and the 503 bodies of
/api/allocate carry a reason code, the live policy's fingerprint and a correlation ID, whatever
is wrong with the policy. Paths, hub names, enrollment IDs, operands, regular expressions and a
plug-in's error text (which may quote a key) go to the log line with that correlation ID, with
key-like values masked, and to validate/explain on the operator's machine."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocation import webhook
from allocation.sources import POLICY_FILE_SETTING, PolicyCache
from tests.conftest import call_function, encode, make_request

SECRET = "c2VjcmV0LWtleS1tYXRlcmlhbA=="  # base64 of "secret-key-material"
LEAKY_MODULE = "leaky_allocation_plugin"
GOOD = {"default": {"strategy": "weighted"}}


def rules(when: dict[str, Any]) -> dict[str, Any]:
    rule = {"name": "r", "when": when, "then": {"strategy": "weighted"}}
    return {"default": {"strategy": "rules", "rules": [rule]}}


# Each broken policy, as what the file holds (None: no file), with the words that must not leak.
BROKEN: dict[str, tuple[Any, list[str]]] = {
    "unreadable file": ("a directory", []),
    "deleted file": (None, []),
    "invalid JSON": ('{"hubs": {"contoso-hidden-hub.azure-devices.net": {"region"', []),
    "schema error naming a hub": (
        {"hubs": {"contoso-hidden-hub.azure-devices.net": {"weight": -3}}, **GOOD},
        ["contoso-hidden-hub"],
    ),
    "enrollment ID": (
        {"enrollments": {"contoso-hidden-enrollment": {"strategy": "nope"}}, **GOOD},
        ["contoso-hidden-enrollment"],
    ),
    "operand": (rules({"registrationId": {"hidden-operand-77": "x"}}), ["hidden-operand-77"]),
    "bad regular expression": (
        rules({"registrationId": {"regex": "(hidden-regex["}}),
        ["hidden-regex"],
    ),
    "plug-in import error quoting a key": (
        {"default": {"strategy": f"{LEAKY_MODULE}:Chooser"}},
        [SECRET, LEAKY_MODULE],
    ),
    "static hub outside the rules": (
        {"default": {"strategy": "static", "hub": "contoso-hidden-hub.azure-devices.net", "x": 1}},
        ["contoso-hidden-hub"],
    ),
}


@pytest.fixture
def policy_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The policy file's path, in a folder whose name must not leak either; and a plug-in
    module that fails to import with an error quoting a connection string's key."""
    folder = tmp_path / "contoso-hidden-folder"
    folder.mkdir()
    (tmp_path / f"{LEAKY_MODULE}.py").write_text(
        "raise RuntimeError('cannot reach HostName=x.azure-devices.net;"
        f"SharedAccessKeyName=owner;SharedAccessKey={SECRET}')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = folder / "policy.json"
    monkeypatch.setenv(POLICY_FILE_SETTING, str(path))
    return path


def install(path: Path, content: Any) -> None:
    if path.is_dir():
        path.rmdir()
    elif path.exists():
        path.unlink()
    if content == "a directory":
        path.mkdir()
    elif content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))


def assert_anonymous(body: bytes, path: Path, words: list[str]) -> None:
    text = body.decode()
    for forbidden in [str(path), "contoso-hidden", "policy.json", SECRET, *words]:
        assert forbidden not in text, f"{forbidden!r} in {text}"


@pytest.mark.parametrize("broken", BROKEN.values(), ids=BROKEN.keys())
def test_a_policy_that_never_loaded_leaks_nothing_anonymously(
    policy_path: Path, broken: tuple[Any, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    content, words = broken
    install(policy_path, content)
    caplog.set_level(logging.INFO, logger="allocation")

    health = call_function("health", method="GET")
    allocate = call_function("allocate", encode(make_request()))

    assert (health.status_code, allocate.status_code) == (503, 503)
    for body in (health.get_body(), allocate.get_body()):
        assert_anonymous(body, policy_path, words)
    health_body, allocate_body = json.loads(health.get_body()), json.loads(allocate.get_body())
    assert set(health_body) == {"status", "error", "reason", "correlationId"}
    assert set(allocate_body) == {"error", "message", "reason", "correlationId"}
    # One line per request, each with the full reason under the same correlation ID (the same
    # failure, until the load is tried again), with keys masked.
    assert allocate_body["correlationId"] == health_body["correlationId"]
    lines = [json.loads(record.getMessage()) for record in caplog.records]
    assert [line["correlationId"] for line in lines] == [health_body["correlationId"]] * 2
    for line in lines:
        assert line["event"] == "policy_unavailable"
        assert str(policy_path) in line["message"]
    assert SECRET not in caplog.text


@pytest.mark.parametrize("broken", BROKEN.values(), ids=BROKEN.keys())
def test_a_rejected_new_version_leaks_nothing_anonymously(
    policy_path: Path,
    broken: tuple[Any, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    content, words = broken
    cache = PolicyCache(background=False)
    monkeypatch.setattr(webhook, "policy_cache", cache)
    install(policy_path, GOOD)
    assert call_function("allocate", encode(make_request())).status_code == 200
    install(policy_path, content)
    caplog.set_level(logging.WARNING, logger="allocation")
    cache.check_now()

    health = call_function("health", method="GET")
    assert health.status_code == 200
    assert_anonymous(health.get_body(), policy_path, words)
    body = json.loads(health.get_body())
    assert body["status"] == "degraded"
    [line] = [json.loads(record.getMessage()) for record in caplog.records]
    assert line["correlationId"] == body["rejected"]["correlationId"]
    assert SECRET not in caplog.text
    assert call_function("allocate", encode(make_request())).status_code == 200


def test_a_plugin_failing_at_request_time_leaks_nothing_anonymously(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "failing_allocation_plugin.py").write_text(
        "class Chooser:\n"
        "    def __init__(self, options):\n"
        "        pass\n"
        "    def choose(self, context, candidates):\n"
        "        raise RuntimeError('contoso-hidden-service refused AccountKey="
        f"{SECRET};')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    policy = {"default": {"strategy": "failing_allocation_plugin:Chooser"}}
    monkeypatch.setenv("ALLOCATION_POLICY", json.dumps(policy))
    caplog.set_level(logging.INFO, logger="allocation")

    allocate = call_function("allocate", encode(make_request()))

    assert allocate.status_code == 503
    assert_anonymous(allocate.get_body(), tmp_path, ["failing_allocation_plugin", "Chooser"])
    body = json.loads(allocate.get_body())
    fingerprint = webhook.health().body["policy"]["fingerprint"]
    assert (body["reason"], body["policy"]) == ("strategy_failed", fingerprint)
    [line] = [json.loads(record.getMessage()) for record in caplog.records]
    assert line["correlationId"] == body["correlationId"]
    assert "contoso-hidden-service refused AccountKey=***" in line["cause"]
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "text",
    [
        f"HostName=h;SharedAccessKeyName=o;SharedAccessKey={SECRET}",
        f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={SECRET};",
        f"https://a.blob.core.windows.net/c/b?sv=2024&sig={SECRET}&se=1",
        f"https://app.azurewebsites.net/api/allocate?code={SECRET}",
    ],
)
def test_key_material_in_an_error_text_is_masked_in_logs(text: str) -> None:
    from allocation.errors import without_secrets

    assert SECRET not in without_secrets(text)


@given(
    name=st.sampled_from(["AccountKey", "SharedAccessKey", "sig", "code", "password", "token"]),
    value=st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=%-_",
        min_size=8,
    ),
    before=st.sampled_from(["", "error: ", "a;", "https://x/?a=1&"]),
    after=st.sampled_from(["", ";", "&b=2", " and more", "'"]),
)
def test_no_key_like_value_survives_masking(name: str, value: str, before: str, after: str) -> None:
    from allocation.errors import without_secrets

    assert without_secrets(f"{before}{name}={value}{after}") == f"{before}{name}=***{after}"


def test_every_reason_code_is_in_the_documented_schema() -> None:
    from typing import get_args

    from allocation.errors import REASONS
    from allocation.openapi import ReasonCode

    assert set(get_args(ReasonCode)) == set(REASONS)
