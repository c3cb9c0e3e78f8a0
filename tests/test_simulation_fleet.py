"""A CSV fleet re-registering: the report is what ``explain`` says of each device's request."""

from __future__ import annotations

import csv
import functools
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from allocation.cli import main
from allocation.cli.explain import explain
from allocation.cli.settings import read_policy
from allocation.policy import Policy, compile_policy
from allocation.simulation.fleet import FleetDevice, in_share
from allocation.simulation.reregister import Registrar
from allocation.webhook import handle
from tests.conftest import ROOT, encode, make_request, run_cli
from tests.test_cli_simulate import HUBS, NEW_POLICY

EXAMPLE = ROOT / "examples" / "03-phased-migration"
LEGACY = "contoso-legacy-hub.azure-devices.net"
LINKED = [LEGACY, "contoso-meters-1.azure-devices.net", "contoso-meters-2.azure-devices.net"]
FLAGS = {
    "never": (False, False),
    "reset": (True, False),
    "migrate": (True, True),
}


def write_fleet(path: Path, size: int) -> list[list[str]]:
    """Meters mostly on the legacy hub, some already moved, some new, some with payloads."""
    rng = random.Random(14)
    rows = [["registrationId", "enrollmentId", "currentHub", "payload"]]
    for number in range(size):
        hub = rng.choice([LEGACY, LEGACY, LEGACY, LINKED[1], LINKED[2], ""])
        payload = json.dumps({"site": f"s{number % 7}"}) if number % 3 == 0 else ""
        rows.append([f"meter-{number:05d}", "contoso-meters", hub, payload])
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)
    return rows[1:]


def test_a_csv_fleet_matches_explain_device_by_device(tmp_path: Path) -> None:
    fleet = tmp_path / "devices.csv"
    rows = write_fleet(fleet, 1000)
    outcomes = tmp_path / "outcomes.csv"
    policy = EXAMPLE / "phases" / "drain-25.json"
    result = run_cli(
        "simulate", "--fleet", str(fleet), "--policy", str(policy), "--hubs", ",".join(LINKED),
        "--reprovision", "reset", "--outcomes", str(outcomes), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    with outcomes.open(encoding="utf-8") as file:
        lines = {line["registrationId"]: line for line in csv.DictReader(file)}
    assert len(lines) == report["devices"] == 1000

    loaded = read_policy(str(policy))
    update, migrate = FLAGS["reset"]
    for registration_id, _, hub, payload in random.Random(50).sample(rows, 50):
        body = encode(
            make_request(
                registration_id,
                LINKED,
                enrollment_group="contoso-meters",
                current_hub=hub or None,
                payload=json.loads(payload) if payload else None,
                update_hub_assignment=update,
                migrate_device_data=migrate,
            )
        )
        explanation = explain(body, handle(body, loaded.policy), loaded)
        line = lines[registration_id]
        assert line["before"] == hub
        assert line["after"] == explanation["hub"]
        assert line["outcome"] == explanation["reason"]

    # The report's counts are the outcomes, recounted.
    step = report["steps"][0]
    after = Counter(line["after"] for line in lines.values())
    assert {row["hub"]: row["after"] for row in step["hubs"]} == {h: after[h] for h in LINKED}
    moved = [v for v in lines.values() if v["before"] and v["before"] != v["after"]]
    assert step["moved"] == len(moved)
    assert {v["before"] for v in moved} == {LEGACY}
    assert step["placed"] == sum(1 for v in lines.values() if not v["before"])
    assert step["stayed"]["sticky"] == sum(1 for v in lines.values() if v["outcome"] == "sticky")


def test_a_bad_fleet_line_is_named(tmp_path: Path) -> None:
    fleet = tmp_path / "devices.csv"
    fleet.write_text("meter-1,contoso-meters,not a hub\n", encoding="utf-8")
    result = run_cli("simulate", "--fleet", str(fleet), "--hubs", ",".join(LINKED))
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {fleet}, line 1: currentHub 'not a hub' is not an IoT hub host name "
        "(such as my-hub.azure-devices.net)\n"
    )


def test_a_fleet_needs_a_size_or_a_file() -> None:
    result = run_cli("simulate", "--from", str(EXAMPLE / "before.json"))
    assert result.returncode == 2
    assert result.stderr == "error: --from OLD_POLICY needs --devices N\n"


def test_only_the_share_re_registers(tmp_path: Path) -> None:
    result = run_cli(
        "simulate", "--from", str(EXAMPLE / "before.json"), "--devices", "20000",
        "--policy", str(EXAMPLE / "phases" / "drain-100.json"), "--hubs", ",".join(LINKED),
        "--share", "30", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    step = json.loads(result.stdout)["steps"][0]
    assert step["registrations"] / 20000 == pytest.approx(0.30, abs=0.01)
    # Drained at 100 %, every device that registers moves, and only those.
    assert step["moved"] == step["registrations"]
    assert step["notAsked"] == 20000 - step["registrations"]


@given(st.text(min_size=1, max_size=40), st.floats(0, 100), st.floats(0, 100))
def test_a_larger_share_only_adds_devices(registration_id: str, p: float, q: float) -> None:
    low, high = sorted((p, q))
    assert not in_share(registration_id, low) or in_share(registration_id, high)


@functools.cache
def sticky_policy() -> Policy:
    return compile_policy({**NEW_POLICY, "sticky": True})


@given(
    st.integers(0, 2**64 - 1),
    st.sampled_from([None, *HUBS, HUBS[0].upper()]),
    st.sampled_from(sorted(FLAGS)),
)
def test_seeded_devices_get_the_answer_of_their_whole_request(
    bits: int, current_hub: str | None, reprovision: Any
) -> None:
    # The seeded path shares one parsed context per current hub; it must agree with handle()
    # posting each device's own body.
    registrar = Registrar(sticky_policy(), HUBS, reprovision)
    device = FleetDevice(f"sim-{bits:016x}", "simulated", current_hub, None)
    seeded = registrar.seeded(device.registration_id, "simulated", current_hub, None)
    assert seeded == registrar.exact(device)


def test_a_fleet_file_with_no_device_is_refused(tmp_path: Path) -> None:
    fleet = tmp_path / "devices.csv"
    fleet.write_text("registrationId,enrollmentId,currentHub\n", encoding="utf-8")
    result = run_cli("simulate", "--fleet", str(fleet), "--hubs", ",".join(LINKED))
    assert result.returncode == 2
    assert result.stderr == f"error: {fleet} lists no device\n"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            st.lists(st.text(max_size=30), min_size=0, max_size=5).map(",".join),
            # Lines the file format allows, with hostile values the webhook must refuse alone.
            st.tuples(
                st.text(min_size=1, max_size=20).filter(lambda s: s.strip() and "," not in s),
                st.sampled_from(["contoso-meters", "", "x" * 300]),
                st.sampled_from([*LINKED, "", "other-hub.azure-devices.net"]),
                st.sampled_from(["", '"{""a"": 1}"', '"[1, 2]"', "null", '"{""n"": 1e400}"']),
            ).map(",".join),
        ),
        max_size=6,
    ),
    st.sampled_from(["never", "reset", "migrate"]),
)
def test_no_fleet_file_crashes_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str], reprovision: str
) -> None:
    fleet = tmp_path / "devices.csv"
    fleet.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    code = main(
        ["simulate", "--fleet", str(fleet), "--hubs", ",".join(LINKED), "--policy",
         str(EXAMPLE / "phases" / "drain-25.json"), "--reprovision", reprovision, "--json"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    event(f"exit {code}")
    assert code in (0, 2)
    if code == 0:
        report = json.loads(out)
        assert report["devices"] >= 1
        assert {row["hub"] for row in report["steps"][0]["hubs"]} >= set(LINKED)
    else:
        assert err.startswith("error: ") and err.count("\n") == 1
