"""``python -m allocation simulate``: the counts are the webhook's own answers, recounted."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from allocation.cli.simulate import Progress, minimum_moves, registration_ids
from allocation.policy import compile_policy
from allocation.webhook import handle
from tests.conftest import ROOT, assert_no_traceback, encode, make_request, run_cli, write_policy

HUBS = [f"hub-{i}.azure-devices.net" for i in range(4)]
H0, H1, H2, H3 = HUBS

# Weights, a drained hub, a hub filter, a deny rule and a payload-keyed rule: every kind of
# outcome, so the recount exercises them all.
NEW_POLICY: dict[str, Any] = {
    "hubs": {H0: {"weight": 3}, H1: {}, H2: {"drain": 50}, H3: {"tags": ["spare"]}},
    "enrollments": {
        "simulated": {
            "strategy": "rules",
            "rules": [
                {"name": "blocked", "when": {"registrationId": {"glob": "sim-0*"}}, "then": "deny"},
                {
                    "name": "legacy",
                    "when": {"registrationId": {"glob": "sim-3*"}},
                    "then": {"strategy": "static", "hub": H2},
                },
                {
                    "name": "spares",
                    "when": {"registrationId": {"glob": "sim-[12]*"}},
                    "then": {"strategy": "weighted", "hubs": [{"tag": "spare"}, H2]},
                },
            ],
            "otherwise": {"strategy": "weighted", "hubs": [H0, H1, H2]},
        }
    },
}
OLD_POLICY: dict[str, Any] = {"hubs": {H0: {}, H1: {}, H2: {}}}


def simulate_json(*args: str) -> dict[str, Any]:
    result = run_cli("simulate", *args, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "no progress bar when stderr is not a terminal"
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def webhook_outcome(policy: Any, registration_id: str, payload: Any = None) -> str:
    """What the webhook answers this simulated device: its hub, or the error code."""
    body = encode(
        make_request(registration_id, HUBS, enrollment_group="simulated", payload=payload)
    )
    response = handle(body, policy)
    return str(
        response.body["iotHubHostName"] if response.status == 200 else response.body["error"]
    )


def test_the_counts_are_what_the_webhook_answers_for_the_same_devices(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, NEW_POLICY)

    document = simulate_json(
        "--policy", str(policy), "--devices", "2000", "--seed", "7", "--hubs", ",".join(HUBS)
    )

    compiled = compile_policy(NEW_POLICY)
    expected = Counter(webhook_outcome(compiled, rid) for rid in registration_ids(7, 2000))
    counted = {hub["hub"]: hub["devices"] for hub in document["hubs"]} | document["refused"]
    assert counted == {"denied": 0, "no_eligible_hub": 0, **dict.fromkeys(HUBS, 0), **expected}
    assert expected["denied"] > 0 and expected["no_eligible_hub"] > 0  # the rows are exercised
    assert sum(counted.values()) == document["devices"] == 2000
    assert document["linkedHubs"] == HUBS
    assert document["seed"] == 7
    assert document["enrollment"] == "simulated"


def test_expected_shares_come_from_the_candidates_each_device_had(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, NEW_POLICY)

    document = simulate_json(
        "--policy", str(policy), "--devices", "20000", "--hubs", ",".join(HUBS)
    )  # fmt: skip

    # Rules, a deny, a static hub, a tag filter and drain: each device's own candidates give
    # the expectation, which the webhook's decisions then reach.
    rows = {hub["hub"]: hub for hub in document["hubs"]}
    for row in rows.values():
        assert row["share"] == row["devices"] / 20000
        assert row["expectedShare"] == pytest.approx(row["share"], abs=0.01)
    # The spare hub is only reachable through rule 'spares' (sim-1*, sim-2*: 1/8 of devices),
    # where it shares with the half-drained third hub: 1/8 x (1/2 + 1/2 x 1/2).
    assert rows[H3]["expectedShare"] == pytest.approx(3 / 32, abs=0.005)
    assert [(rows[hub]["weight"], rows[hub]["drain"]) for hub in HUBS] == [
        (3, 0),
        (1, 0),
        (1, 50),
        (1, 0),
    ]

    # With the weighted strategy alone: weights 3, 1, 1, 1 with the third hub drained at 50 %,
    # half the devices choose among weights 3, 1, 1 (of 5), the other half among all four.
    weighted = write_policy(tmp_path, {"hubs": NEW_POLICY["hubs"]}, "weighted.json")
    plain = simulate_json(
        "--policy", str(weighted), "--devices", "20000", "--hubs", ",".join(HUBS)
    )  # fmt: skip
    targets = [(3 / 5 + 3 / 6) / 2, (1 / 5 + 1 / 6) / 2, (0 + 1 / 6) / 2, (1 / 5 + 1 / 6) / 2]
    expected = {hub["hub"]: hub["expectedShare"] for hub in plain["hubs"]}
    assert [expected[hub] for hub in HUBS] == pytest.approx(targets, abs=0.005)


def test_a_rule_that_keeps_new_devices_off_a_hub_expects_none_there() -> None:
    # The phased-migration example places first registrations on the new hubs only: the
    # legacy hub is expected to get nothing, whatever its weight and drain.
    example = ROOT / "examples" / "03-phased-migration" / "phases" / "drain-50.json"
    legacy = "contoso-legacy-hub.azure-devices.net"
    hubs = [legacy, "contoso-meters-1.azure-devices.net", "contoso-meters-2.azure-devices.net"]
    document = simulate_json(
        "--policy", str(example), "--devices", "5000", "--hubs", ",".join(hubs)
    )
    expected = {hub["hub"]: hub["expectedShare"] for hub in document["hubs"]}
    assert expected[legacy] == 0
    assert expected[hubs[1]] + expected[hubs[2]] == pytest.approx(1)


def test_no_share_is_expected_where_a_strategy_s_odds_are_unknown(tmp_path: Path) -> None:
    # The latency strategy follows each device's own measurements.
    policy = write_policy(tmp_path, {"default": {"strategy": "latency"}})
    payload = json.dumps({"latencyMs": {H0: 30, H1: 12, H2: 50, H3: 41}})
    document = simulate_json(
        "--policy", str(policy), "--devices", "100", "--hubs", ",".join(HUBS), "--payload", payload
    )  # fmt: skip
    assert {hub["hub"]: hub["devices"] for hub in document["hubs"]}[H1] == 100
    assert [hub["expectedShare"] for hub in document["hubs"]] == [None] * len(HUBS)


def test_movement_matches_a_recount_of_both_policies(tmp_path: Path) -> None:
    new = write_policy(tmp_path, NEW_POLICY, "new.json")
    old = write_policy(tmp_path, OLD_POLICY, "old.json")
    payload = {"siteId": "s1"}

    document = simulate_json(
        "--policy", str(new), "--against", str(old), "--devices", "1500",
        "--hubs", ",".join(HUBS), "--payload", json.dumps(payload),
    )  # fmt: skip

    before_policy, after_policy = compile_policy(OLD_POLICY), compile_policy(NEW_POLICY)
    pairs = Counter(
        (webhook_outcome(before_policy, rid, payload), webhook_outcome(after_policy, rid, payload))
        for rid in registration_ids(0, 1500)
    )
    label = {hub: hub for hub in HUBS} | {
        "denied": "(denied)",
        "no_eligible_hub": "(no_eligible_hub)",
    }
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    for (old_outcome, new_outcome), n in pairs.items():
        before[label[old_outcome]] += n
        after[label[new_outcome]] += n
    against = document["against"]
    assert against["moved"] == sum(n for (o, w), n in pairs.items() if o != w)
    assert against["minimumMoves"] == sum(abs(after[k] - before[k]) for k in {*before, *after}) // 2
    assert against["minimumMoves"] <= against["moved"]
    assert {(o, w): n for o, row in against["matrix"].items() for w, n in row.items()} == {
        (label[o], label[w]): n for (o, w), n in pairs.items()
    }
    assert {hub["hub"]: hub["devices"] for hub in against["hubs"]} == {
        hub: before[hub] for hub in HUBS
    }
    assert document["payload"] == payload


def test_the_same_seed_gives_the_same_devices() -> None:
    assert list(registration_ids(0, 3)) == list(registration_ids(0, 3))
    assert list(registration_ids(0, 3)) != list(registration_ids(1, 3))
    # Pinned: a seed names the same devices on every machine and Python version.
    assert list(registration_ids(0, 2)) == ["sim-629f6fbed82c07cd", "sim-e3e70682c2094cac"]


def test_minimum_moves_is_half_the_total_change() -> None:
    assert minimum_moves({"a": 10, "b": 0}, {"a": 5, "b": 5}) == 5
    assert minimum_moves({"a": 10}, {"b": 7, "c": 3}) == 10
    assert minimum_moves({"a": 4, "b": 6}, {"a": 4, "b": 6}) == 0


def test_the_hubs_default_to_those_the_policies_name(tmp_path: Path) -> None:
    new = write_policy(tmp_path, {"hubs": {H0: {}, H1: {}}}, "new.json")
    old = write_policy(tmp_path, {"hubs": {H1: {}, H2: {}}}, "old.json")

    document = simulate_json("--policy", str(new), "--against", str(old), "--devices", "10")

    assert document["linkedHubs"] == [H0, H1, H2]


def test_the_human_output_is_an_aligned_table_with_the_matrix(tmp_path: Path) -> None:
    new = write_policy(tmp_path, NEW_POLICY, "new.json")
    old = write_policy(tmp_path, OLD_POLICY, "old.json")

    result = run_cli(
        "simulate",
        "--policy",
        str(new),
        "--against",
        str(old),
        "--devices",
        "500",
        "--hubs",
        ",".join(HUBS),
    )

    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert lines[0].startswith(
        '500 devices (seed 0) of enrollment "simulated" over 4 linked hubs, in '
    )
    assert lines[1].startswith(f"policy: file {new} (fingerprint ")
    assert f"; against: file {old} (fingerprint " in lines[1]
    header = lines[3]
    assert header.split() == [
        "hub",
        "weight",
        "drain",
        "devices",
        "share",
        "expected",
        "before",
        "change",
    ]
    table = lines[3 : lines.index("", 3)]
    assert [row.split()[0] for row in table[1:]] == [
        *HUBS,
        "(denied)",
        "(no_eligible_hub)",
        "total",
    ]
    # Numbers are right-aligned: every row ends where the header does.
    assert {len(row) for row in table[1:-1]} == {len(header)}
    assert any(
        line.startswith("moved: ") and "the fewest moves between these counts: " in line
        for line in lines
    )
    matrix_header = lines[lines.index("from (rows: --against) to (columns: --policy):") + 1]
    assert matrix_header.split() == [
        "hub-0",
        "hub-1",
        "hub-2",
        "hub-3",
        "(denied)",
        "(no_eligible_hub)",
    ]


def test_the_progress_bar_is_drawn_at_most_ten_times_a_second() -> None:
    stream = io.StringIO()
    progress = Progress(1000, stream)

    progress.show(0)
    progress.show(500)  # within 0.1 s of the first: not drawn
    progress.close()

    drawn = stream.getvalue().split("\r")
    assert drawn[1].startswith("[..............................]   0% 0/1,000 devices, ")
    assert len([part for part in drawn if part.startswith("[")]) == 1
    assert stream.getvalue().endswith("\r\033[K")


# -- failures ----------------------------------------------------------------------------------


def test_a_policy_without_hubs_and_no_hubs_option_exits_2() -> None:
    result = run_cli("simulate", "--devices", "10")

    assert result.returncode == 2
    assert (
        result.stderr
        == "error: the policy names no hubs: give the linked hubs with --hubs h1,h2,...\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--hubs", "hub-a.azure-devices.net,not a hub"],
            "error: --hubs: 'not a hub' is not an IoT hub host name",
        ),
        (["--hubs", ","], "error: --hubs names no hub"),
        (["--hubs", H0, "--payload", "{"], "error: --payload is not JSON: "),
        (["--hubs", H0, "--payload", "[1]"], "error: --payload must be a JSON object"),
        (
            ["--hubs", H0, "--enrollment", ""],
            "error: the simulated devices' request is not valid: ",
        ),
        (
            ["--hubs", H0, "--against", "missing.json"],
            "error: cannot read the policy file missing.json",
        ),
    ],
)
def test_bad_options_exit_2_with_one_message(args: list[str], message: str) -> None:
    result = run_cli("simulate", "--devices", "10", *args)

    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


@pytest.mark.parametrize("devices", ["0", "-5", "many"])
def test_a_device_count_that_is_not_positive_is_a_usage_error(devices: str) -> None:
    result = run_cli("simulate", "--devices", devices, "--hubs", H0)

    assert result.returncode == 2
    assert "argument --devices: " in result.stderr
    assert_no_traceback(result)


def test_an_invalid_policy_exits_1(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, {"hubs": {H0: {"weight": 0}}})

    result = run_cli("simulate", "--policy", str(policy), "--devices", "10")

    assert result.returncode == 1
    assert f'hubs["{H0}"].weight' in result.stderr
    assert_no_traceback(result)


def test_help_names_the_options_and_exit_codes() -> None:
    result = run_cli("simulate", "--help")

    text = " ".join(result.stdout.split())
    assert result.returncode == 0
    for option in ("--policy", "--devices", "--hubs", "--against", "--payload", "--seed", "--json"):
        assert option in text
    assert "exit codes: 0 simulated" in text
