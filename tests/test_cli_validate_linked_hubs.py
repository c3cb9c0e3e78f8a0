"""``validate --linked-hubs`` and ``--enrollment``: hub-name typos found before a device meets
them as a 503."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import FIXTURES, assert_no_traceback, run_cli, write_policy

EU, US = "contoso-toasters-eu.azure-devices.net", "contoso-toasters-us.azure-devices.net"
ENROLLMENT = FIXTURES / "enrollment-group-show.json"
TOASTERS, KETTLES = 'enrollments["contoso-toasters"]', 'enrollments["contoso-kettles"]'

POLICY = {
    "hubs": {EU: {"tags": ["eu"], "region": "westeurope"}, US: {"region": "eastus"}},
    "default": {"strategy": "weighted"},
    "enrollments": {
        "contoso-toasters": {
            "strategy": "weighted",
            "hubs": ["contoso-toaster-eu.azure-devices.net", {"region": "estus"}, {"tag": "eu"}],
        },
        "contoso-kettles": {"strategy": "static", "hub": "contoso-kettles.azure-devices.net"},
    },
}


def test_every_name_that_matches_no_linked_hub_is_reported_with_a_suggestion(
    tmp_path: Path,
) -> None:
    path = write_policy(tmp_path, POLICY)

    result = run_cli("validate", str(path), "--linked-hubs", f"{EU}, {US}")

    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"error: policy {path} names hubs, tags or regions that no linked hub matches "
        f"(the linked hubs: {EU}, {US}):"
    )
    assert lines[1:] == [
        f"  {TOASTERS}.hubs[0]: 'contoso-toaster-eu.azure-devices.net' is not a linked hub "
        f"(did you mean '{EU}'?)",
        f"  {TOASTERS}.hubs[1]: no linked hub is in the region 'estus' (did you mean 'eastus'?)",
        f"  {KETTLES}.hub: 'contoso-kettles.azure-devices.net' is not a linked hub",
    ]
    assert_no_traceback(result)


def test_a_policy_that_fits_the_linked_hubs_gets_its_summary(tmp_path: Path) -> None:
    policy = {"hubs": {EU: {}}, "default": {"strategy": "static", "hub": EU}}

    result = run_cli("validate", str(write_policy(tmp_path, policy)), "--linked-hubs", EU)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("policy ok: 1 hub, 0 enrollments, strategies: static (")


def test_an_exported_enrollment_checks_the_allocation_that_serves_it(tmp_path: Path) -> None:
    path = write_policy(tmp_path, POLICY)

    result = run_cli("validate", str(path), "--enrollment", str(ENROLLMENT))

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].endswith(f"(enrollment 'contoso-toasters': {EU}, {US}):")
    # The kettles' static hub belongs to another enrollment: not this one's business.
    assert [line.split(": ", 1)[0].strip() for line in lines[1:]] == [
        f"{TOASTERS}.hubs[0]",
        f"{TOASTERS}.hubs[1]",
    ]
    assert_no_traceback(result)


def test_an_enrollment_that_does_not_call_the_webhook_is_reported(tmp_path: Path) -> None:
    enrollment = json.loads(ENROLLMENT.read_text()) | {"allocationPolicy": "hashed"}
    exported = write_policy(tmp_path, enrollment, "enrollment.json")
    policy = write_policy(tmp_path, {"default": {"strategy": "weighted"}})

    result = run_cli("validate", str(policy), "--enrollment", str(exported))

    assert result.returncode == 1
    assert (
        f"  {exported}: allocationPolicy is 'hashed': DPS calls the webhook only for an "
        "enrollment whose allocationPolicy is 'custom'"
    ) in result.stderr.splitlines()


def test_an_enrollment_without_iot_hubs_needs_the_linked_hubs(tmp_path: Path) -> None:
    enrollment = json.loads(ENROLLMENT.read_text()) | {"iotHubs": None, "iotHubHostName": None}
    exported = write_policy(tmp_path, enrollment, "enrollment.json")
    policy = write_policy(tmp_path, POLICY)

    alone = run_cli("validate", str(policy), "--enrollment", str(exported))
    with_hubs = run_cli(
        "validate", str(policy), "--enrollment", str(exported), "--linked-hubs", f"{EU},{US}"
    )

    assert alone.returncode == 2
    assert "lists no iotHubs" in alone.stderr
    assert "--linked-hubs" in alone.stderr
    assert alone.stderr.count("\n") == 1
    assert with_hubs.returncode == 1
    assert f"{TOASTERS}.hubs[0]" in with_hubs.stderr


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path) -> None:
    policy = str(write_policy(tmp_path, POLICY))
    not_json = write_policy(tmp_path, "{", "enrollment.json")
    not_an_enrollment = write_policy(tmp_path, {"name": "x"}, "other.json")

    for args in (
        ("--linked-hubs", "not a host"),
        ("--linked-hubs", " , "),
        ("--enrollment", str(tmp_path / "missing.json")),
        ("--enrollment", str(not_json)),
        ("--enrollment", str(not_an_enrollment)),
    ):
        result = run_cli("validate", policy, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ")
        assert result.stderr.count("\n") == 1, (args, result.stderr)
        assert_no_traceback(result)


def test_help_names_the_exit_code_for_unmatched_hubs() -> None:
    result = run_cli("validate", "--help")

    assert "--linked-hubs" in result.stdout
    assert "--enrollment" in result.stdout
    assert "or it names hubs, tags or regions that no linked hub matches" in " ".join(
        result.stdout.split()
    )
