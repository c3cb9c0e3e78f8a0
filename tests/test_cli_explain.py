"""``python -m allocation explain``: the webhook's answer to a request, and the trace of why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from allocation import rendezvous
from allocation.candidates import linked_candidates
from allocation.policy import default_policy, parse_policy
from allocation.webhook import handle
from tests.conftest import (
    FIXTURES,
    SAMPLE_REQUESTS,
    assert_no_traceback,
    encode,
    make_request,
    run_cli,
    write_policy,
)

A, B, C = "hub-a.azure-devices.net", "hub-b.azure-devices.net", "hub-c.azure-devices.net"
INITIAL = FIXTURES / "group-symmetric-key-initial.json"
MIGRATE = FIXTURES / "group-reprovision-migrate-with-payload.json"
TOASTERS = "contoso-toasters-hub-1098.azure-devices.net"
HEATPUMPS = "contoso-heatpumps-hub-1098.azure-devices.net"


def write_request(directory: Path, request: Any) -> Path:
    path = directory / "request.json"
    path.write_bytes(encode(request))
    return path


def explain_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("explain", *args, "--json")
    assert result.stderr == ""
    document: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, document


@pytest.mark.parametrize("sample", SAMPLE_REQUESTS, ids=[p.name for p in SAMPLE_REQUESTS])
def test_the_answer_is_the_webhooks_for_every_sample_request(sample: Path) -> None:
    expected = handle(sample.read_bytes(), default_policy())

    code, document = explain_json(str(sample))

    assert code == 0
    assert document["status"] == expected.status == 200
    assert document["response"] == expected.body
    assert document["path"] == "default > weighted"
    assert document["hub"] == expected.body["iotHubHostName"]


def test_a_weighted_step_shows_every_eligible_hubs_weight_and_score(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, {"hubs": {TOASTERS: {"weight": 3}}})

    code, document = explain_json(str(MIGRATE), "--policy", str(policy))

    (step,) = document["trace"]
    hubs = linked_candidates([TOASTERS, HEATPUMPS], parse_policy(policy.read_text()).hubs)
    registration_id = "breakroom499-contoso-tstrsd-007"
    assert code == 0
    assert step["strategy"] == "weighted"
    assert step["evidence"] == {"key": registration_id}
    assert step["hubs"] == {
        TOASTERS: {"weight": 3, "drain": 0.0},
        HEATPUMPS: {"weight": 1, "drain": 0.0},
    }
    assert step["scores"] == rendezvous.scores(registration_id, hubs)
    assert step["outcome"] == max(step["scores"], key=step["scores"].get)


def test_the_trace_shows_candidates_before_and_after_the_filter_and_drain(
    tmp_path: Path,
) -> None:
    policy = write_policy(
        tmp_path,
        {
            "hubs": {B: {"drain": True}, C: {"tags": ["eu"]}},
            "default": {
                "strategy": "rules",
                "rules": [
                    {
                        "name": "eu",
                        "when": {"payload.zone": {"equals": "eu"}},
                        "then": {"strategy": "weighted", "hubs": [B, {"tag": "eu"}]},
                    }
                ],
            },
        },
    )
    request = write_request(tmp_path, make_request("dev-1", [A, B, C], payload={"zone": "eu"}))

    code, document = explain_json(str(request), "--policy", str(policy))
    text = run_cli("explain", str(request), "--policy", str(policy))

    rules, weighted = document["trace"]
    assert code == 0
    assert document["path"] == 'default > rules[0] "eu" > weighted'
    assert rules["candidates"] == rules["filtered"] == [A, B, C]
    assert rules["eligible"] == [A, C]  # B is drained for every device
    assert rules["outcome"] == 'rules[0] "eu"'
    assert weighted["allocation"] == "default.rules[0].then"
    assert weighted["candidates"] == [A, C]
    assert weighted["filtered"] == weighted["eligible"] == [C]
    assert list(weighted["scores"]) == [C]
    assert document["response"] == {"iotHubHostName": C}
    lines = text.stdout.splitlines()
    assert text.returncode == 0
    assert f'decision     default > rules[0] "eu" > weighted -> {C} (allocated)' in lines
    assert "   candidates 3, after hub filter 3, after drain 2" in lines
    assert "   candidates 2, after hub filter 1, after drain 1" in lines
    cells = [line.split() for line in lines]
    assert [B, "1", "100%", "drained"] in cells
    assert [A, "1", "filtered", "out"] in cells
    assert any(row[:3] == [C, "1", "eligible"] and row[-2:] == ["<-", "chosen"] for row in cells)


def test_latency_figures_and_a_tie_split_by_hashing_are_shown(tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path,
        {
            "hubs": {A: {"region": "westeurope"}, B: {"region": "northeurope"}},
            "default": {"strategy": "latency"},
        },
    )
    request = write_request(
        tmp_path, make_request("dev-1", [A, B], payload={"latencyMs": {A: 20, B: 25}})
    )

    code, document = explain_json(str(request), "--policy", str(policy))
    text = run_cli("explain", str(request), "--policy", str(policy))

    (step,) = document["trace"]
    assert code == 0
    assert step["evidence"]["evidence"] == "measurements"
    assert step["evidence"]["latencyMs"] == {A: 20.0, B: 25.0}
    assert step["evidence"]["tied"] == [A, B]
    assert step["scores"] == rendezvous.scores("dev-1", linked_candidates([A, B], {}))
    assert "   evidence: measurements" in text.stdout
    assert "the tie is split by weighted hashing of the registration ID" in text.stdout
    assert "20.0" in text.stdout and "25.0" in text.stdout


TWIN_POLICY: dict[str, Any] = {
    "enrollments": {
        "contoso-custom-allocated-devices": {
            "strategy": "weighted",
            "initialTwin": {"tags": {"site": "{registrationId}"}},
        }
    }
}


def test_initial_twin_applies_on_initial_assignment(tmp_path: Path) -> None:
    code, document = explain_json(
        str(INITIAL), "--policy", str(write_policy(tmp_path, TWIN_POLICY))
    )

    assert code == 0
    assert document["response"]["initialTwin"] == {
        "tags": {"site": "breakroom499-contoso-tstrsd-007"}
    }
    assert document["initialTwin"] == {
        "applies": True,
        "why": "initial assignment: DPS applies the initialTwin returned",
    }


def test_initial_twin_is_not_applied_when_reprovisioning_migrates_the_device(
    tmp_path: Path,
) -> None:
    policy = write_policy(tmp_path, TWIN_POLICY)

    code, document = explain_json(str(MIGRATE), "--policy", str(policy))

    assert code == 0
    assert document["hub"] == HEATPUMPS  # from its current hub, TOASTERS
    assert "initialTwin" not in document["response"]
    assert document["initialTwin"] == {
        "applies": False,
        "why": "reprovisioning to a new hub under 'reprovision and migrate current state': "
        "DPS ignores any initialTwin, so none is returned",
    }


def test_initial_twin_is_not_applied_when_the_device_keeps_its_hub(tmp_path: Path) -> None:
    (allocation,) = TWIN_POLICY["enrollments"].values()
    static = {
        "enrollments": {
            "contoso-custom-allocated-devices": {
                **allocation,
                "strategy": "static",
                "hub": TOASTERS,
            }
        }
    }

    code, document = explain_json(str(MIGRATE), "--policy", str(write_policy(tmp_path, static)))

    assert code == 0
    assert document["hub"] == TOASTERS
    assert document["initialTwin"] == {
        "applies": False,
        "why": "reprovisioning to the device's current hub: DPS ignores any initialTwin, so none "
        "is returned",
    }


def test_initial_twin_not_set_by_the_policy_is_explained(tmp_path: Path) -> None:
    code, document = explain_json(str(INITIAL))

    assert code == 0
    assert document["initialTwin"]["applies"] is False
    assert "default sets no initialTwin" in document["initialTwin"]["why"]


def test_initial_twin_under_reset_to_initial_state(tmp_path: Path) -> None:
    request = make_request(
        "dev-1",
        [A, B],
        enrollment_group="contoso-custom-allocated-devices",
        current_hub="hub-old.azure-devices.net",
        update_hub_assignment=True,
        migrate_device_data=False,
    )
    path = write_request(tmp_path, request)

    code, document = explain_json(str(path), "--policy", str(write_policy(tmp_path, TWIN_POLICY)))

    assert code == 0
    assert "initialTwin" in document["response"]
    assert document["initialTwin"] == {
        "applies": True,
        "why": "reprovisioning to a new hub under 'reprovision and reset to initial state': "
        "DPS applies the initialTwin returned",
    }


def test_the_human_output_holds_status_response_trace_and_twin(tmp_path: Path) -> None:
    result = run_cli("explain", str(INITIAL), "--policy", str(write_policy(tmp_path, TWIN_POLICY)))

    out = result.stdout
    assert result.returncode == 0
    assert out.startswith('status 200\n{\n  "iotHubHostName": ')
    assert (
        'device       "breakroom499-contoso-tstrsd-007", group enrollment '
        '"contoso-custom-allocated-devices": enrollments["contoso-custom-allocated-devices"]'
    ) in out
    assert "             initial assignment" in out
    assert '   hashed key "breakroom499-contoso-tstrsd-007"' in out
    assert "initialTwin  applied: initial assignment: DPS applies the initialTwin returned" in out


def test_a_sticky_device_keeps_its_hub_and_the_trace_says_so(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, {"sticky": True, "hubs": {HEATPUMPS: {"weight": 1000}}})

    code, document = explain_json(str(MIGRATE), "--policy", str(policy))
    text = run_cli("explain", str(MIGRATE), "--policy", str(policy))

    assert code == 0
    assert (document["hub"], document["path"], document["reason"]) == (
        TOASTERS,
        "default > sticky",
        "sticky",
    )
    assert document["trace"][0]["evidence"] == {"sticky": True}
    assert "scores" not in document["trace"][0]  # the strategy did not run
    assert (
        "   kept the current hub: sticky, and it is still a candidate, not drained" in text.stdout
    )


def test_the_policy_used_is_named_with_its_fingerprint(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, TWIN_POLICY)
    fingerprint = parse_policy(policy.read_text()).fingerprint

    _, document = explain_json(str(INITIAL), "--policy", str(policy))
    text = run_cli("explain", str(INITIAL), "--policy", str(policy))
    default = run_cli("explain", str(INITIAL))

    assert document["policy"] == {
        "source": "file",
        "location": str(policy),
        "fingerprint": fingerprint,
    }
    assert f"policy       file {policy} (fingerprint {fingerprint})" in text.stdout.splitlines()
    assert (
        f"policy       built-in default (fingerprint {default_policy().fingerprint})"
        in default.stdout
    )


# -- answers other than 200 --------------------------------------------------------------------


def test_a_denied_device_exits_1_naming_the_rule(tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path,
        {
            "default": {
                "strategy": "rules",
                "rules": [{"name": "no toasters", "when": {}, "then": "deny"}],
            }
        },
    )

    code, document = explain_json(str(INITIAL), "--policy", str(policy))
    text = run_cli("explain", str(INITIAL), "--policy", str(policy))

    assert code == 1
    assert document["status"] == 403
    assert document["response"]["rule"] == "no toasters"
    assert document["trace"] == []
    assert document["initialTwin"]["applies"] is False
    assert text.returncode == 1
    assert text.stdout.startswith("status 403\n")
    assert "denied by    no toasters" in text.stdout
    assert text.stderr == ""


def test_no_eligible_hub_exits_1_with_the_503_and_retry_after(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, {"hubs": {A: {"drain": True}, B: {"drain": 100}}})
    request = write_request(tmp_path, make_request("dev-1", [A, B]))

    code, document = explain_json(str(request), "--policy", str(policy))
    text = run_cli("explain", str(request), "--policy", str(policy))

    assert code == 1
    assert document["status"] == 503
    assert document["retryAfter"] == 10
    assert document["response"]["error"] == "no_eligible_hub"
    assert text.stdout.startswith("status 503\nRetry-After: 10\n")
    assert text.stderr == "", "the webhook's log line is not repeated on stderr"


def test_a_body_that_is_not_a_dps_request_exits_1_with_the_400(tmp_path: Path) -> None:
    path = tmp_path / "request.json"
    path.write_text('{"linkedHubs": []}')

    code, document = explain_json(str(path))

    assert code == 1
    assert document["status"] == 400
    assert document["response"]["error"] == "invalid_request"
    assert "device" not in document
    assert document["initialTwin"] == {
        "applies": False,
        "why": "no hub is assigned (status 400), so there is no twin",
    }


def test_the_request_can_come_from_standard_input() -> None:
    result = run_cli("explain", "-", "--json", stdin=INITIAL.read_text())

    assert result.returncode == 0
    assert json.loads(result.stdout)["status"] == 200


# -- failures of the command itself ------------------------------------------------------------


def test_a_request_file_that_cannot_be_read_exits_2(tmp_path: Path) -> None:
    result = run_cli("explain", str(tmp_path / "missing.json"))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: cannot read the request file {tmp_path / 'missing.json'}: "
        "No such file or directory\n"
    )


def test_an_invalid_policy_exits_1_with_its_problems(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, {"default": {"strategy": "static"}})

    result = run_cli("explain", str(INITIAL), "--policy", str(policy))

    assert result.returncode == 1
    assert (
        result.stderr
        == f"error: invalid policy {policy}:\n  default.hub: required field is missing\n"
    )


def test_a_policy_file_that_cannot_be_read_exits_2(tmp_path: Path) -> None:
    result = run_cli("explain", str(INITIAL), "--policy", str(tmp_path / "missing.json"))

    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot read the policy file")
    assert_no_traceback(result)


def test_help_and_usage_errors() -> None:
    help_result = run_cli("explain", "--help")
    missing = run_cli("explain")

    assert help_result.returncode == 0
    assert "REQUEST.json" in help_result.stdout
    assert "exit codes: 0 the webhook answers 200" in " ".join(help_result.stdout.split())
    assert missing.returncode == 2
    assert "required: REQUEST.json" in missing.stderr
    assert_no_traceback(missing)


def test_explain_prints_no_decision_line_but_shows_a_defects_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from allocation import webhook
    from allocation.cli import main

    # In process: a developer's local.settings.json must not reach this process's environment.
    monkeypatch.setattr("allocation.cli.explain.apply_local_settings", list)
    request = tmp_path / "request.json"
    request.write_bytes(encode(make_request()))
    policy = str(write_policy(tmp_path, {}))
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    webhook.logger.addHandler(handler)
    webhook.logger.setLevel(logging.INFO)
    try:
        main(["explain", str(request), "--policy", policy])
        assert records == []  # the explanation says it all: no decision line

        def defect(*args: Any) -> None:
            raise RuntimeError("a defect")

        monkeypatch.setattr(webhook, "decide", defect)
        main(["explain", str(request), "--policy", policy])
    finally:
        webhook.logger.removeHandler(handler)
        webhook.logger.setLevel(logging.NOTSET)
    assert [record.exc_info is not None for record in records] == [True]
    assert "internal_error" in records[0].getMessage()
    capsys.readouterr()


# -- rules lists and the rule index ------------------------------------------------------------


def customer_rules(count: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"customer-{number}",
            "when": {"payload.customerId": {"equals": f"c{number}"}},
            "then": {"strategy": "static", "hub": A},
        }
        for number in range(count)
    ]


def test_explain_says_how_many_rules_the_index_skipped(tmp_path: Path) -> None:
    rules = [
        *customer_rules(100),
        {"name": "test benches", "when": {"registrationId": {"regex": "^bench-"}}, "then": "deny"},
    ]
    policy = write_policy(tmp_path, {"default": {"strategy": "rules", "rules": rules}})
    request = write_request(tmp_path, make_request(payload={"customerId": "c42"}))

    code, document = explain_json(str(request), "--policy", str(policy))
    text = run_cli("explain", str(request), "--policy", str(policy))

    assert code == 0
    assert document["rules"] == [
        {
            "allocation": "default",
            "rules": 101,
            "indexed": True,
            "checked": 1,
            "skipped": 42,
            "decidedBy": 'rules[42] "customer-42"',
        }
    ]
    assert (
        "rules        default: 101 rules, the index skipped 42, 1 checked; "
        'decided by rules[42] "customer-42"'
    ) in text.stdout


def test_a_device_no_rule_holds_for_checks_only_the_rules_the_index_cannot_rule_out(
    tmp_path: Path,
) -> None:
    rules = [
        *customer_rules(100),
        {"name": "test benches", "when": {"registrationId": {"regex": "^bench-"}}, "then": "deny"},
    ]
    policy = write_policy(tmp_path, {"default": {"strategy": "rules", "rules": rules}})
    request = write_request(tmp_path, make_request("bench-7", payload={"customerId": "nobody"}))

    code, document = explain_json(str(request), "--policy", str(policy))

    assert (code, document["status"]) == (1, 403)
    assert document["rules"] == [
        {
            "allocation": "default",
            "rules": 101,
            "indexed": True,
            "checked": 1,
            "skipped": 100,
            "decidedBy": "test benches",
        }
    ]


def test_a_short_list_is_checked_in_order_and_nested_lists_are_shown(tmp_path: Path) -> None:
    inner = {"strategy": "rules", "rules": customer_rules(3)}
    rules = [{"name": "eu", "when": {"payload.region": {"equals": "eu"}}, "then": inner}]
    policy = write_policy(tmp_path, {"default": {"strategy": "rules", "rules": rules}})
    request = write_request(tmp_path, make_request(payload={"region": "eu", "customerId": "c2"}))

    _, document = explain_json(str(request), "--policy", str(policy))
    text = run_cli("explain", str(request), "--policy", str(policy))

    assert [
        (r["allocation"], r["indexed"], r["checked"], r["skipped"]) for r in document["rules"]
    ] == [
        ("default", False, 1, 0),
        ("default.rules[0].then", False, 3, 0),
    ]
    assert (
        "rules        default.rules[0].then: 3 rules, no index, 3 checked in order; " in text.stdout
    )


def test_a_rules_list_reached_through_a_latency_fallback_is_shown(tmp_path: Path) -> None:
    fallback = {"strategy": "rules", "rules": customer_rules(10)}
    policy = write_policy(tmp_path, {"default": {"strategy": "latency", "fallback": fallback}})
    request = write_request(tmp_path, make_request(payload={"customerId": "c9"}))

    code, document = explain_json(str(request), "--policy", str(policy))

    assert code == 0
    assert document["path"] == 'default > fallback > rules[9] "customer-9" > static'
    assert document["rules"] == [
        {
            "allocation": "default.fallback",
            "rules": 10,
            "indexed": True,
            "checked": 1,
            "skipped": 9,
            "decidedBy": 'rules[9] "customer-9"',
        }
    ]
