"""``python -m allocation validate``: a summary line for a good policy, every problem for a bad one."""

from __future__ import annotations

import json
from pathlib import Path

from allocation.policy import parse_policy
from allocation.sources import POLICY_FILE_SETTING, POLICY_SETTING
from tests.conftest import assert_no_traceback, run_cli, write_policy

A, B, C = "hub-a.azure-devices.net", "hub-b.azure-devices.net", "hub-c.azure-devices.net"

POLICY = {
    "$schema": "./policy.schema.json",
    "hubs": {A: {"weight": 2}, B: {"drain": 25}, C: {"tags": ["eu"]}},
    "default": {"strategy": "weighted"},
    "enrollments": {
        "toasters": {"strategy": "static", "hub": A},
        "heatpumps": {
            "strategy": "rules",
            "rules": [{"when": {"payload.model": {"equals": "x1"}}, "then": "deny"}],
        },
    },
}


def test_a_valid_policy_gets_a_one_line_summary(tmp_path: Path) -> None:
    path = write_policy(tmp_path, POLICY)

    result = run_cli("validate", str(path))

    fingerprint = parse_policy(path.read_text()).fingerprint
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "policy ok: 3 hubs, 2 enrollments, strategies: rules, static, weighted "
        f"(fingerprint {fingerprint})\n"
    )
    assert result.stderr == ""


def test_one_hub_and_one_enrollment_are_singular(tmp_path: Path) -> None:
    policy = {"hubs": {A: {}}, "enrollments": {"g": {"strategy": "weighted"}}}

    result = run_cli("validate", str(write_policy(tmp_path, policy)))

    assert result.stdout.startswith("policy ok: 1 hub, 1 enrollment, strategies: weighted (")


def test_without_a_file_it_validates_the_policy_of_the_settings(tmp_path: Path) -> None:
    default = run_cli("validate")
    from_setting = run_cli("validate", env={POLICY_SETTING: json.dumps(POLICY)})
    path = write_policy(tmp_path, POLICY)
    from_file = run_cli("validate", env={POLICY_FILE_SETTING: str(path)})

    assert default.returncode == 0, default.stderr
    assert default.stdout.startswith("policy ok: 0 hubs, 0 enrollments, strategies: weighted")
    assert "(built-in default, fingerprint " in default.stdout
    assert from_setting.returncode == 0, from_setting.stderr
    assert f"(app setting {POLICY_SETTING}, fingerprint " in from_setting.stdout
    assert from_file.returncode == 0, from_file.stderr
    assert f"(file {path}, fingerprint " in from_file.stdout


def test_an_invalid_policy_exits_1_listing_every_problem_with_its_json_path(
    tmp_path: Path,
) -> None:
    policy = {
        "hubs": {A: {"weight": 0}, "not a host": {}},
        "default": {"strategy": "static"},
        "enrollments": {"g": {"strategy": "weighted", "hubs": []}},
    }
    path = write_policy(tmp_path, policy)

    result = run_cli("validate", str(path))

    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: invalid policy {path}:"
    assert [line.split(": ", 1)[0].strip() for line in lines[1:]] == [
        f'hubs["{A}"].weight',
        'hubs["not a host"]',
        "default.hub",
        "enrollments.g.hubs",
    ]
    assert_no_traceback(result)


def test_a_policy_that_is_not_json_exits_1(tmp_path: Path) -> None:
    result = run_cli("validate", str(write_policy(tmp_path, '{"default": ')))

    assert result.returncode == 1
    assert "not valid JSON" in result.stderr
    assert_no_traceback(result)


def test_an_invalid_policy_in_the_settings_exits_1() -> None:
    result = run_cli("validate", env={POLICY_SETTING: '{"default": {"strategy": "nearest"}}'})

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: invalid policy in app setting {POLICY_SETTING}: ")
    assert "default.strategy: unknown strategy 'nearest'" in result.stderr
    assert_no_traceback(result)


def test_a_file_that_cannot_be_read_exits_2(tmp_path: Path) -> None:
    result = run_cli("validate", str(tmp_path / "missing.json"))

    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot read the policy file {tmp_path}")
    assert result.stderr.count("\n") == 1
    assert_no_traceback(result)


def test_help_names_the_exit_codes() -> None:
    result = run_cli("validate", "--help")

    assert result.returncode == 0
    assert "exit codes: 0 the policy is valid; 1 it is not" in " ".join(result.stdout.split())


def test_a_usage_error_exits_2() -> None:
    result = run_cli("validate", "a.json", "b.json")

    assert result.returncode == 2
    assert "unrecognized arguments: b.json" in result.stderr


def test_stats_show_for_each_rules_list_how_many_rules_are_indexed(tmp_path: Path) -> None:
    customers = [
        {"when": {"payload.customerId": {"equals": f"c{number}"}}, "then": {"strategy": "weighted"}}
        for number in range(20)
    ]
    slow = [
        {"when": {"registrationId": {"regex": f"^r{number}-"}}, "then": "deny"}
        for number in range(10)
    ]
    policy = {
        "default": {"strategy": "rules", "rules": [*customers, *slow[:2]]},
        "enrollments": {
            "few": {"strategy": "rules", "rules": customers[:3]},
            "regexes": {"strategy": "rules", "rules": slow},
            "plain": {"strategy": "weighted"},
        },
    }

    result = run_cli("validate", "--stats", str(write_policy(tmp_path, policy)))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "rules lists:",
        "  default: 22 rules, 20 indexed (checked only when the index names them), "
        "2 always checked",
        "  enrollments.few: 3 rules, checked in order (no index below 8 rules)",
        "  enrollments.regexes: 10 rules, checked in order "
        "(no rule has a condition the index can use)",
    ]


def test_stats_of_a_policy_without_rules(tmp_path: Path) -> None:
    result = run_cli("validate", "--stats", str(write_policy(tmp_path, {"hubs": {A: {}}})))

    assert result.stdout.splitlines()[1:] == ["rules lists: none"]
