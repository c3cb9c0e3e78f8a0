"""infra/hooks/postdeploy.py, run as azd runs it, against a fake `az` on PATH (tests/fake_az)."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
HOOK = ROOT / "infra" / "hooks" / "postdeploy.py"
FAKE_AZ = Path(__file__).parent / "fake_az" / "az.py"

KEY = "Zm9vYmFyLXNlY3JldC1mdW5jdGlvbi1rZXk-TEST=="
HOST = "func-alloc-abc.azurewebsites.net"
HUBS = ["iot-abc-a.azure-devices.net", "iot-abc-b.azure-devices.net"]
URL = f"https://{HOST}/api/allocate?code={KEY}"


def load_hook() -> Any:
    spec = importlib.util.spec_from_file_location("postdeploy", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class FakeAzure:
    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.state_file = root / "state.json"
        self.log = root / "az-calls.jsonl"
        self.log.touch()
        shim = self.bin / "az"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_AZ}" "$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
        self.state: dict[str, Any] = {
            "dps": {"name": "provs-abc", "resourceGroup": "rg-demo", "iotHubs": HUBS},
            "functionApp": {
                "name": "func-alloc-abc",
                "resourceGroup": "rg-demo",
                "defaultHostName": HOST,
                "keys": {"allocate": KEY},
            },
            "enrollmentGroups": {},
        }
        self.save()

    def save(self) -> None:
        self.state_file.write_text(json.dumps(self.state))

    def load(self) -> dict[str, Any]:
        self.state = json.loads(self.state_file.read_text())
        return self.state

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def writes(self) -> list[list[str]]:
        return [
            c
            for c in self.calls()
            if c[:3] == ["iot", "dps", "enrollment-group"] and c[3] in ("create", "update")
        ]


@pytest.fixture
def azure(tmp_path: Path) -> FakeAzure:
    return FakeAzure(tmp_path)


AZD_OUTPUTS = {
    "AZURE_RESOURCE_GROUP": "rg-demo",
    "AZURE_FUNCTION_APP_NAME": "func-alloc-abc",
    "AZURE_FUNCTION_HOSTNAME": HOST,
    "DEMO_DPS_NAME": "provs-abc",
    "DEMO_DPS_RESOURCE_GROUP": "rg-demo",
    "DEMO_DPS_IOT_HUBS": " ".join(HUBS),
}


@pytest.fixture
def run_hook(azure: FakeAzure) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(**settings: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{azure.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_AZ_STATE": str(azure.state_file),
            "FAKE_AZ_LOG": str(azure.log),
            **settings,
        }
        return subprocess.run(
            [sys.executable, str(HOOK)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def assert_key_kept_out(result: subprocess.CompletedProcess[str]) -> None:
    assert KEY not in result.stdout
    assert KEY not in result.stderr


def test_first_run_creates_the_enrollment_group_pointing_at_the_function(azure, run_hook):
    result = run_hook(**AZD_OUTPUTS)

    assert result.returncode == 0, result.stderr
    group = azure.load()["enrollmentGroups"]["allocation-webhook"]
    assert group["allocationPolicy"] == "custom"
    assert group["customAllocationDefinition"] == {"webhookUrl": URL, "apiVersion": "2021-10-01"}
    assert group["iotHubs"] == HUBS
    assert "created" in result.stdout
    assert "code=***" in result.stdout
    assert_key_kept_out(result)


def test_a_second_run_changes_nothing(azure, run_hook):
    run_hook(**AZD_OUTPUTS)
    writes_before = len(azure.writes())

    result = run_hook(**AZD_OUTPUTS)

    assert result.returncode == 0, result.stderr
    assert len(azure.writes()) == writes_before
    assert "no change" in result.stdout
    assert_key_kept_out(result)


def test_an_existing_enrollment_is_updated_and_each_change_printed(azure, run_hook):
    azure.state["enrollmentGroups"]["fleet"] = {
        "enrollmentGroupId": "fleet",
        "attestation": {"type": "symmetricKey"},
        "allocationPolicy": "hashed",
        "iotHubs": [HUBS[0]],
        "customAllocationDefinition": None,
    }
    azure.save()

    result = run_hook(
        AZURE_RESOURCE_GROUP="rg-demo",
        AZURE_FUNCTION_APP_NAME="func-alloc-abc",
        AZURE_FUNCTION_HOSTNAME=HOST,
        DPS_NAME="provs-abc",
        DPS_RESOURCE_GROUP="rg-demo",
        DPS_ENROLLMENT_GROUP="fleet",
    )

    assert result.returncode == 0, result.stderr
    (write,) = azure.writes()
    assert write[3] == "update"
    group = azure.load()["enrollmentGroups"]["fleet"]
    assert group["allocationPolicy"] == "custom"
    assert group["customAllocationDefinition"]["webhookUrl"] == URL
    # Without DPS_IOT_HUBS, the group may use every hub linked to the DPS.
    assert group["iotHubs"] == HUBS
    assert "allocationPolicy: hashed -> custom" in result.stdout
    assert (
        "webhookUrl: None -> https://func-alloc-abc.azurewebsites.net/api/allocate?code=***"
        in result.stdout
    )
    assert "iotHubs:" in result.stdout
    assert_key_kept_out(result)


def test_a_changed_key_is_noticed_and_printed_redacted(azure, run_hook):
    run_hook(**AZD_OUTPUTS)
    azure.load()
    azure.state["functionApp"]["keys"]["allocate"] = "cm90YXRlZC1rZXk-ROTATED=="
    azure.save()

    result = run_hook(**AZD_OUTPUTS)

    assert result.returncode == 0, result.stderr
    assert "webhookUrl: https://" in result.stdout
    assert "cm90YXRlZC1rZXk" not in result.stdout + result.stderr
    assert azure.load()["enrollmentGroups"]["allocation-webhook"]["customAllocationDefinition"][
        "webhookUrl"
    ].endswith("code=cm90YXRlZC1rZXk-ROTATED==")
    assert_key_kept_out(result)


def test_a_missing_dps_is_a_clear_error(azure, run_hook):
    result = run_hook(**{**AZD_OUTPUTS, "DPS_NAME": "provs-typo", "DPS_RESOURCE_GROUP": "rg-demo"})

    assert result.returncode == 1
    assert "no DPS named 'provs-typo' in resource group 'rg-demo'" in result.stderr
    assert "DPS_NAME" in result.stderr
    assert azure.writes() == []
    assert_key_kept_out(result)


def test_without_a_dps_the_hook_says_so_and_succeeds(azure, run_hook):
    result = run_hook(AZURE_RESOURCE_GROUP="rg-demo", AZURE_FUNCTION_APP_NAME="func-alloc-abc")

    assert result.returncode == 0
    assert "no DPS named" in result.stdout
    assert azure.calls() == []


def test_the_key_is_passed_to_az_only_in_the_webhook_url(azure, run_hook):
    run_hook(**AZD_OUTPUTS)

    carrying_key = [c for c in azure.calls() if any(KEY in arg for arg in c)]
    assert [c[:4] for c in carrying_key] == [["iot", "dps", "enrollment-group", "create"]]
    (create,) = carrying_key
    assert create[create.index("--webhook-url") + 1] == URL
    # A result that echoes the URL back is not asked for.
    assert create[create.index("--output") + 1] == "none"


def test_az_errors_are_redacted_before_they_are_printed():
    hook = load_hook()
    assert hook.redact(f"PUT {URL} failed") == f"PUT https://{HOST}/api/allocate?code=*** failed"


def test_the_function_and_route_are_the_ones_function_app_registers():
    # The FunctionApp as the Functions host indexes it (app.get_functions(), via conftest).
    from tests.conftest import function

    hook = load_hook()
    registered = function(hook.FUNCTION_NAME)
    prefix = json.loads((ROOT / "host.json").read_text())["extensions"]["http"]["routePrefix"]

    assert registered.get_function_name() == hook.FUNCTION_NAME
    assert f"{prefix}/{registered.get_trigger().route}" == hook.ROUTE
    assert registered.get_trigger().auth_level.name == "FUNCTION"  # the key the hook reads


def test_a_function_without_a_key_is_a_clear_error(azure, run_hook):
    azure.state["functionApp"]["keys"] = {}
    azure.save()

    result = run_hook(**AZD_OUTPUTS)

    assert result.returncode == 1
    assert "reading the key of function 'allocate' of 'func-alloc-abc' failed" in result.stderr
    assert azure.writes() == []


def test_without_az_on_path_the_hook_says_what_to_install(tmp_path, run_hook):
    result = subprocess.run(
        [sys.executable, str(HOOK)],
        env={"PATH": str(tmp_path), **AZD_OUTPUTS},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert "the Azure CLI (az) is not on PATH" in result.stderr
    assert "Traceback" not in result.stderr


# -- invariants of what the hook compares and prints ----------------------------------------------

KEYS = st.text(alphabet=string.ascii_letters + string.digits + "-_=/+", min_size=16, max_size=90)
HOSTS = st.from_regex(r"[a-z][a-z0-9-]{2,20}\.azure-devices\.net", fullmatch=True)


@given(key=KEYS, before=st.text(max_size=40), after=st.sampled_from(["", " ", "&x=1", "'", '"']))
def test_redaction_leaves_no_key(key, before, after):
    hook = load_hook()
    text = f"{before}https://{HOST}/api/allocate?code={key}{after}"
    assert key not in hook.redact(text).removeprefix(hook.redact(before))


@given(key=KEYS, hubs=st.lists(HOSTS, min_size=1, max_size=5, unique=True), data=st.data())
def test_an_enrollment_in_the_desired_state_needs_no_change(key, hubs, data):
    hook = load_hook()
    url = f"https://{HOST}/api/allocate?code={key}"
    listed = data.draw(st.permutations(hubs))
    current = {
        "allocationPolicy": "custom",
        "customAllocationDefinition": {"webhookUrl": url, "apiVersion": "2021-10-01"},
        # DPS may list the hubs in another order, and host names are case-insensitive.
        "iotHubs": [hub.upper() if i % 2 else hub for i, hub in enumerate(listed)],
    }
    assert hook.changes(current, url, hubs) == []


@given(
    old_key=KEYS,
    new_key=KEYS,
    hubs=st.lists(HOSTS, min_size=1, max_size=3, unique=True),
    policy=st.sampled_from(["hashed", "geoLatency", "static", "custom", None]),
)
def test_every_change_is_printed_without_either_key(old_key, new_key, hubs, policy):
    hook = load_hook()
    old_url = f"https://{HOST}/api/allocate?code={old_key}"
    new_url = f"https://{HOST}/api/allocate?code={new_key}"
    current = {
        "allocationPolicy": policy,
        "customAllocationDefinition": {"webhookUrl": old_url, "apiVersion": "2019-03-31"},
        "iotHubs": hubs[:1],
    }
    printed = "\n".join(hook.changes(current, new_url, hubs))
    assert old_key not in printed
    assert new_key not in printed
    assert "apiVersion: 2019-03-31 -> 2021-10-01" in printed
