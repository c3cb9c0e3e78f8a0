"""``python -m allocation inventory load``, and ``explain --lookup`` answering from a CSV file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from tests.azurite import AzuriteServer
from tests.conftest import assert_no_traceback, encode, make_request, run_cli, write_policy

A, B = "hub-a.azure-devices.net", "hub-b.azure-devices.net"


def table_rows(connection_string: str, table: str) -> list[dict[str, Any]]:
    from azure.data.tables import TableServiceClient

    client = TableServiceClient.from_connection_string(connection_string).get_table_client(table)
    return [dict(entity) for entity in client.list_entities()]


def table_exists(connection_string: str, table: str) -> bool:
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(connection_string)
    return any(t.name == table for t in service.query_tables(f"TableName eq '{table}'"))


def write_csv(directory: Path, lines: list[str], name: str = "devices.csv") -> Path:
    path = directory / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load(path: Path, table: str, azurite: AzuriteServer, *extra: str) -> Any:
    return run_cli(
        "inventory",
        "load",
        str(path),
        "--table",
        table,
        *extra,
        env={"ALLOCATION_STORAGE": azurite.connection_string},
    )


def new_name() -> str:
    return "t" + uuid.uuid4().hex[:16]


def test_every_row_is_upserted_in_batches_of_one_partition(
    tmp_path: Path, azurite: AzuriteServer
) -> None:
    rows = ["PartitionKey,RowKey,customer,hub"]
    # 250 devices of one enrollment (three transactions) and 3 of another, one without a hub.
    rows += [f"fleet,dev-{n:03d},contoso,{A}" for n in range(250)]
    rows += [f"lab,lab-{n},fabrikam,{B}" for n in range(2)] + ["lab,lab-2,fabrikam,"]
    table = new_name()

    result = load(write_csv(tmp_path, rows), table, azurite, "--progress")

    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert f"loaded 253 rows from {tmp_path / 'devices.csv'} into table '{table}'" in (
        result.stdout
    )
    assert "100% 253/253 rows" in result.stderr
    stored = {
        (r["PartitionKey"], r["RowKey"]): r for r in table_rows(azurite.connection_string, table)
    }
    assert len(stored) == 253
    assert stored["fleet", "dev-007"]["hub"] == A
    assert "hub" not in stored["lab", "lab-2"]

    # Loading again replaces rows: a changed hub, nothing duplicated.
    rows[1] = f"fleet,dev-000,contoso,{B}"
    again = load(write_csv(tmp_path, rows), table, azurite)
    assert again.returncode == 0
    assert again.stderr == ""  # not a terminal, no --progress: no bar
    stored = {
        (r["PartitionKey"], r["RowKey"]): r for r in table_rows(azurite.connection_string, table)
    }
    assert len(stored) == 253
    assert stored["fleet", "dev-000"]["hub"] == B


def test_a_bad_row_is_named_by_its_line_and_nothing_is_written(
    tmp_path: Path, azurite: AzuriteServer
) -> None:
    rows = ["PartitionKey,RowKey,hub", f"fleet,dev-1,{A}", f"fleet,dev/2,{A}", f"fleet,dev-3,{A}"]
    table = new_name()

    result = load(write_csv(tmp_path, rows), table, azurite)

    assert_no_traceback(result)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'devices.csv'}, line 3: RowKey 'dev/2'")
    assert not table_exists(azurite.connection_string, table)


def test_other_bad_files_are_named_by_their_line(tmp_path: Path, azurite: AzuriteServer) -> None:
    cases = {
        "line 1: the first columns must be PartitionKey,RowKey": ["RowKey,PartitionKey"],
        "line 3: 2 values for 3 columns": ["PartitionKey,RowKey,hub", "p,r,h", "p,s"],
        "line 3: the same PartitionKey and RowKey as line 2": [
            "PartitionKey,RowKey",
            "p,r",
            "p,r",
        ],
        "line 2: PartitionKey is empty": ["PartitionKey,RowKey", ",r"],
        "line 1: column 'Timestamp' is not a property name": ["PartitionKey,RowKey,Timestamp"],
    }
    for message, lines in cases.items():
        result = load(write_csv(tmp_path, lines), new_name(), azurite)
        assert result.returncode == 1, message
        assert message in result.stderr


def test_without_a_storage_connection_the_load_says_which_setting(tmp_path: Path) -> None:
    path = write_csv(tmp_path, ["PartitionKey,RowKey", "p,r"])

    result = run_cli("inventory", "load", str(path), "--table", "devices", env={
        "ALLOCATION_STORAGE": ""
    })  # fmt: skip

    assert result.returncode == 2
    assert "ALLOCATION_STORAGE" in result.stderr
    assert_no_traceback(result)


# -- explain --lookup --------------------------------------------------------------------------

POLICY = {
    "lookups": {"inventory": {"table": "devices"}},
    "default": {
        "strategy": "rules",
        "rules": [
            {"name": "unknown-device", "when": {"lookup.inventory": {"exists": False}},
             "then": "deny"},
            {"when": {}, "then": {"strategy": "static", "hub": "{lookup.inventory.hub}"}},
        ],
    },
}  # fmt: skip


def test_explain_answers_a_lookup_offline_from_a_csv_file(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, POLICY)
    inventory = write_csv(tmp_path, ["PartitionKey,RowKey,hub", f"fleet,dev-1,{B}"])
    request = tmp_path / "request.json"
    request.write_bytes(encode(make_request("dev-1")))
    offline = ("--policy", str(policy), "--lookup", f"inventory={inventory}")

    result = run_cli("explain", str(request), *offline, "--json", env={"ALLOCATION_STORAGE": ""})

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["hub"] == B
    assert document["lookups"] == {
        "inventory": {
            "outcome": "hit",
            "from": "file",
            "row": {"PartitionKey": "fleet", "RowKey": "dev-1", "hub": B},
        }
    }

    text = run_cli("explain", str(request), *offline)
    assert 'lookup       inventory: hit (from the file): {"PartitionKey": "fleet"' in text.stdout

    request.write_bytes(encode(make_request("stranger")))
    denied = run_cli("explain", str(request), *offline, "--json")
    assert denied.returncode == 1
    assert json.loads(denied.stdout)["lookups"]["inventory"] == {
        "outcome": "miss",
        "from": "file",
        "row": None,
    }


def test_explain_refuses_a_lookup_the_policy_does_not_declare(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, POLICY)
    inventory = write_csv(tmp_path, ["PartitionKey,RowKey", "fleet,dev-1"])
    request = tmp_path / "request.json"
    request.write_bytes(encode(make_request("dev-1")))

    result = run_cli(
        "explain", str(request), "--policy", str(policy), "--lookup", f"stock={inventory}"
    )

    assert result.returncode == 2
    assert result.stderr == (
        "error: --lookup stock: the policy has no lookup 'stock' (its lookups: inventory)\n"
    )


def test_simulate_answers_lookups_from_the_same_csv(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, POLICY)
    # simulate's devices are sim-<seeded id>: an inventory that lists none denies them all.
    inventory = write_csv(tmp_path, ["PartitionKey,RowKey,hub", f"simulated,none,{B}"])

    result = run_cli(
        "simulate", "--policy", str(policy), "--devices", "50", "--hubs", f"{A},{B}",
        "--lookup", f"inventory={inventory}", "--json",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "denied" in result.stdout


# -- validate ----------------------------------------------------------------------------------


def test_validate_names_the_lookups_and_the_path_of_a_field_naming_no_lookup(
    tmp_path: Path,
) -> None:
    good = run_cli("validate", "examples/05-inventory/policy.json")
    assert good.returncode == 0
    assert "strategies: rules, static, weighted, lookups: inventory (table devices) " in good.stdout

    policy = json.loads(json.dumps(POLICY))
    policy["default"]["rules"][0]["when"] = {"lookup.inventroy": {"exists": False}}
    bad = run_cli("validate", str(write_policy(tmp_path, policy)))

    assert bad.returncode == 1
    assert (
        "  default.rules[0].when[\"lookup.inventroy\"]: no lookup named 'inventroy' in the "
        "policy's 'lookups' (declared: inventory)" in bad.stderr
    )
