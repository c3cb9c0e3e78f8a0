"""Fuzzing the core entry point on a short budget; fuzz/README.md has the long runs.

Hostile requests (fuzz.hostile) answered under every fuzzing policy with the invariants of
fuzz.invariants, and under the built-in policy with the exact status the spec gives; atheris
over raw bytes; the checks themselves catching what they must; and what fuzzing found.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mmh3
import pytest
from hypothesis import given, settings

from allocation import drain, rendezvous, webhook
from allocation.limits import MAX_BODY_BYTES
from allocation.webhook import WebhookResponse, handle
from fuzz import invariants
from fuzz.bodies import encode, raw, request, seed_bodies, short_keys
from fuzz.hostile import (
    NOT_JSON_CONSTANTS,
    Case,
    check_case,
    contract_valid_cases,
    invalid_cases,
)
from fuzz.invariants import ALLOWED_STATUSES, InvariantViolation, Tally, answer, check_answer
from fuzz.policies import HUB_A, HUB_B, POLICIES

ROOT = Path(__file__).resolve().parents[1]
CI = settings.get_profile("fuzz-ci")


@pytest.fixture(scope="module", autouse=True)
def _warmed_up() -> None:
    # First calls import lazily and fill caches: they say nothing about the budget.
    for body in seed_bodies().values():
        for policy in POLICIES.values():
            handle(body, policy)


# -- hypothesis: hostile requests -------------------------------------------------------------


@settings(CI)
@given(contract_valid_cases)
def test_contract_valid_requests_with_hostile_values_are_placed(case: Case) -> None:
    check_case(case)


@settings(CI)
@given(invalid_cases)
def test_hostile_invalid_requests_get_the_status_the_spec_gives(case: Case) -> None:
    check_case(case)


def _seed_status(name: str) -> int:
    if name.startswith("fixture-"):
        return 200 if name.startswith("fixture-group-") else 400
    if name == "size-past-limit":
        return 413
    invalid = ("nan", "infinity", "out-of-range", "nesting-past-limit", "keys-past-limit",
               "registration-id-filling-the-body")  # fmt: skip
    return 400 if name in (*invalid, "hub-with-space", "lone-surrogates") else 200


@pytest.mark.parametrize(("name", "body"), seed_bodies().items(), ids=list(seed_bodies()))
def test_the_atheris_seeds_are_what_their_names_say(name: str, body: bytes) -> None:
    check_case(Case(name, body, _seed_status(name)))


def test_the_long_run_driver_reports_counts() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "fuzz.run_hypothesis", "--examples", "40", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["examples"] >= 40
    for tally in summary["policies"].values():
        assert tally["calls"] == summary["examples"]
        assert {int(status) for status in tally["statuses"]} <= ALLOWED_STATUSES
        assert tally["max_budget_share"] <= 1
        assert tally["max_ms_first_try"] >= tally["max_ms"]


# -- atheris: raw bytes ------------------------------------------------------------------------


def test_atheris_over_raw_bytes(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "fuzz/atheris_bytes.py",
            "-runs=50000",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
            str(corpus),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    tail = run.stderr[-4000:]
    assert run.returncode == 0, tail
    assert not list(tmp_path.glob("crash-*")), tail
    # libFuzzer may run a few inputs past -runs before it stops ("Done 50003 runs").
    done = re.search(r"^Done (\d+) runs", run.stderr, re.MULTILINE)
    assert done is not None, tail
    assert int(done.group(1)) >= 50000
    [line] = [line for line in run.stderr.splitlines() if line.startswith("fuzz summary: ")]
    summary = json.loads(line.removeprefix("fuzz summary: "))
    assert summary["inputs"] >= 50000
    for tally in summary["policies"].values():
        assert {int(status) for status in tally["statuses"]} <= ALLOWED_STATUSES
        assert tally["max_budget_share_uninstrumented"] <= 1
    assert time.monotonic() - started < 120


# -- the checks catch what they must ----------------------------------------------------------

BODY = encode(request(linked_hubs=[HUB_A, HUB_B]))


@pytest.mark.parametrize(
    ("status", "answer_body", "headers", "why"),
    [
        (500, {"error": "internal_error", "message": "x"}, None, "status 500"),
        (401, {"error": "unauthorized", "message": "x"}, None, "status 401"),
        (200, {"iotHubHostName": HUB_A.upper()}, None, "is not one of linkedHubs"),
        (200, {"iotHubHostName": f"{HUB_A} "}, None, "is not one of linkedHubs"),
        (200, {"iotHubHostName": None}, None, "is not one of linkedHubs"),
        (400, {"error": "too_large", "message": "x"}, None, "error code"),
        (403, {"error": "denied"}, None, "no message"),
        (503, {"error": "no_eligible_hub", "message": "x"}, None, "Retry-After"),
        (200, {"iotHubHostName": HUB_A}, {"Content-Type": "text/plain"}, "content type"),
        (200, {"iotHubHostName": HUB_A, "payload": "text"}, None, "not an AllocationResponse"),
    ],
)
def test_the_invariants_catch_a_wrong_answer(
    status: int, answer_body: dict[str, Any], headers: dict[str, str] | None, why: str
) -> None:
    response = (
        WebhookResponse(status, answer_body)
        if headers is None
        else WebhookResponse(status, answer_body, headers)
    )
    with pytest.raises(InvariantViolation, match=why):
        check_answer(BODY, response)


def test_a_defect_is_caught_with_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(webhook, "decide", broken)
    with pytest.raises(InvariantViolation, match=r"(?s)status 500.*ZeroDivisionError: a bug"):
        answer(BODY)


def _slow_calls(monkeypatch: pytest.MonkeyPatch, slow: int) -> None:
    """The next ``slow`` calls of handle() take 60 ms, far over the budget of a small body."""
    calls = iter(range(100))

    def delayed(body: bytes, policy: Any = None) -> WebhookResponse:
        if next(calls) < slow:
            time.sleep(0.060)
        return handle(body, policy)

    monkeypatch.setattr(invariants, "handle", delayed)


def test_an_answer_slow_every_time_breaks_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_calls(monkeypatch, slow=1 + invariants.RETRIES)
    with pytest.raises(InvariantViolation, match="over its budget"):
        answer(BODY)


def test_one_stall_is_forgiven_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_calls(monkeypatch, slow=1)
    tally = Tally()
    assert answer(BODY, tally=tally).status == 200
    assert tally.retried == 1
    assert tally.max_first_try >= 0.060 > tally.max_seconds


def test_a_case_with_the_wrong_expectation_fails() -> None:
    with pytest.raises(InvariantViolation, match="status 200, expected 400"):
        check_case(Case("envelope", BODY, 400))
    bad_second_hub = encode(request(linked_hubs=[HUB_A, f"{HUB_B} "]))
    with pytest.raises(
        InvariantViolation, match=r"names \['linkedHubs\[1\]'\], not linkedHubs\[0\]"
    ):
        check_case(Case("hub-space", bad_second_hub, 400, "linkedHubs[0]"))


# -- what fuzzing found ------------------------------------------------------------------------


class _CountingMmh3:
    def __init__(self) -> None:
        self.bytes = 0

    def hash64(self, data: bytes, *args: Any, **kwargs: Any) -> Any:
        self.bytes += len(data)
        return mmh3.hash64(data, *args, **kwargs)


def many_hubs_and_a_long_key(hubs: int = 8000) -> bytes:
    """``hubs`` distinct one-to-three-character host names, and a registration ID filling the
    rest of the 96 KiB: each hub's score hashes the whole ID again."""
    lower_case = (key for key in short_keys() if key == key.lower())  # distinct in any case
    names = [next(lower_case) for _ in range(hubs)]
    base = encode(request("", names))
    return encode(request("r" * (MAX_BODY_BYTES - len(base)), names))


def test_hashing_work_is_bounded_whatever_the_hub_count(monkeypatch: pytest.MonkeyPatch) -> None:
    body = many_hubs_and_a_long_key()
    assert len(body) <= MAX_BODY_BYTES
    counter = _CountingMmh3()
    monkeypatch.setattr(rendezvous, "mmh3", counter)
    monkeypatch.setattr(drain, "mmh3", counter)
    status = handle(body, POLICIES["default"]).status
    # 32 MiB hashes in ~10 ms; 50 hubs x a 96 KiB key is 4.8 MB.
    assert counter.bytes <= 32 * 2**20, f"{counter.bytes} bytes hashed for one {status} request"
    monkeypatch.undo()
    answer(body, POLICIES["default"])


def test_nan_and_infinity_outside_the_payload_are_not_json() -> None:
    statuses = {}
    for constant in NOT_JSON_CONSTANTS:
        unknown_field = encode(request(extra={"future": raw(constant)}))
        ignored_field = encode(request()).replace(b'"custom"', constant.encode())
        assert constant.encode() in ignored_field
        for where, body in (("unknown field", unknown_field), ("ignored field", ignored_field)):
            statuses[f"{constant} in an {where}"] = handle(body).status
    assert statuses == dict.fromkeys(statuses, 400)
