"""The azd template (azure.yaml, infra/), checked offline: every Bicep file parses, checkov finds
nothing it doesn't justify, and what the template sets matches what the code reads and writes.

Nothing here deploys: these are the checks that can run without an Azure subscription.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import logging
import pkgutil
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

import allocation
from allocation.webhook import handle
from tests.conftest import encode, make_request

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
CHECKOV = ROOT / ".ci-tools" / "checkov" / "bin" / "checkov"


@functools.cache
def _parser() -> BicepParser:
    # Building the grammar takes seconds: once per session.
    return BicepParser(cache=False)


@functools.cache
def _parsed(path: Path) -> str:
    return json.dumps(_parser().parse(file_path=path))


def parse_bicep(path: Path) -> dict[str, Any]:
    """The Bicep file as pycep-parser's JSON (a fresh copy: tests may index into it freely)."""
    parsed: dict[str, Any] = json.loads(_parsed(path))
    return parsed


# -- parsing and static analysis ---------------------------------------------------------------


def test_the_template_has_the_azd_layout() -> None:
    assert (ROOT / "azure.yaml").is_file()
    assert (INFRA / "main.bicep").is_file()
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parse_bicep(INFRA / "main.bicep")["parameters"]
    # Every parameter azd passes is one main.bicep declares (azd fails on an unknown one).
    assert set(parameters) <= set(declared)


def test_azure_yaml_deploys_the_function_app_and_runs_the_hook_on_every_platform() -> None:
    text = (ROOT / "azure.yaml").read_text()
    assert re.search(r"^\s+host: function$", text, re.MULTILINE)
    assert re.search(r"^\s+language: python$", text, re.MULTILINE)
    hook = re.search(r"^  postdeploy:\n((?:    .*\n)+)", text, re.MULTILINE)
    assert hook, "azure.yaml has no postdeploy hook"
    runs = re.findall(r"run: (python3?) (\S+)", hook.group(1))
    assert [python for python, _ in runs] == ["python3", "python"]  # posix, windows
    assert {path for _, path in runs} == {"infra/hooks/postdeploy.py"}
    assert (ROOT / "infra" / "hooks" / "postdeploy.py").is_file()
    # azd finds the app to deploy `api` to by this tag.
    assert "'azd-service-name': 'api'" in (INFRA / "app" / "function.bicep").read_text()
    assert re.search(r"^  api:$", text, re.MULTILINE)


def test_readme_names_every_setting_azd_and_the_hook_take() -> None:
    readme = (ROOT / "README.md").read_text()
    parameters = (INFRA / "main.parameters.json").read_text()
    hook = (INFRA / "hooks" / "postdeploy.py").read_text()
    # azd's own (AZURE_ENV_NAME, AZURE_LOCATION, AZURE_PRINCIPAL_ID) it asks for or sets itself.
    taken = set(re.findall(r"\$\{([A-Z_]+)", parameters)) - {
        "AZURE_ENV_NAME",
        "AZURE_LOCATION",
        "AZURE_PRINCIPAL_ID",
    }
    taken |= set(re.findall(r'"(DPS_[A-Z_]+)"', hook))
    assert taken
    assert {name for name in taken if not re.search(rf"\b{name}\b", readme)} == set()


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = parse_bicep(path)
    assert parsed.get("resources") or parsed.get("modules")


def test_main_bicep_gives_each_module_the_parameters_it_declares() -> None:
    modules = parse_bicep(INFRA / "main.bicep")["modules"]
    assert modules
    for name, module in modules.items():
        path = INFRA / module["detail"]["path"]
        assert path.is_file(), f"module {name}: {path}"
        declared = parse_bicep(path)["parameters"]
        config = module["config"]
        config = config.get("config", config)  # a conditional module nests its body
        given = set(config["params"])
        required = {p for p, spec in declared.items() if spec["default"] is None}
        assert given <= set(declared), f"module {name}: unknown {sorted(given - set(declared))}"
        assert required <= given, f"module {name}: missing {sorted(required - given)}"


def test_every_checkov_skip_carries_its_reason() -> None:
    skips = [
        (path.name, line.strip())
        for path in BICEP_FILES
        for line in path.read_text().splitlines()
        if "checkov:skip=" in line
    ]
    assert skips, "the template should justify what it skips"
    for name, line in skips:
        match = re.search(r"checkov:skip=(CKV2?_AZURE_\d+):\s*(.+)", line)
        assert match, f"{name}: {line}"
        assert len(match.group(2)) >= 40, f"{name}: a skip needs a real reason: {line}"


if CHECKOV.exists():
    # checkov lives in its own virtual environment (.ci/run makes it): its pins clash with ours.

    def test_checkov_finds_no_failed_check() -> None:
        done = subprocess.run(
            [
                str(CHECKOV),
                "--framework",
                "bicep",
                "--skip-download",
                "-d",
                str(INFRA),
                "--output",
                "json",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        report = json.loads(done.stdout)
        summary = report["summary"]
        failed = [
            f"{c['check_id']} {c['resource']} ({c['file_path']})"
            for c in report["results"]["failed_checks"]
        ]
        assert summary["failed"] == 0, failed
        assert summary["passed"] > 0


# -- app settings: set by the template, read by the code ----------------------------------------

# Settings the template sets for the Functions host, not for our code.
HOST_SETTINGS = {
    # Identity-based AzureWebJobsStorage (the host's keys and locks).
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    # App Insights, with the identity instead of the instrumentation key.
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

# Settings the code reads that the template leaves unset, and why.
NOT_SET_IN_AZURE = {
    "ALLOCATION_STORAGE": "a connection string carries a shared key; the template's accounts refuse them",
    "ALLOCATION_POLICY": "the policy comes from the policies container (ALLOCATION_POLICY_BLOB)",
    "ALLOCATION_POLICY_FILE": "as above: a file would ship inside the deployment package",
    "ALLOCATION_POLICY_CHECK_SECONDS": "its default suits a blob",
    "ALLOCATION_FUNCTION_KEYS": "the local host's keys; Azure Functions manages its own",
}

SETTING_NAME = re.compile(r"ALLOCATION_[A-Z0-9_]*[A-Z0-9](__[A-Za-z]+)?")


def settings_read_by_the_code() -> set[str]:
    """Every ALLOCATION_* name the code holds: module-level constants (which catches names built
    from others, like f"{STORAGE_SETTING}__clientId") and exact string literals anywhere."""
    names: set[str] = set()
    for module_info in pkgutil.walk_packages(allocation.__path__, "allocation."):
        if module_info.name.endswith("__main__"):
            continue  # importing it runs the command line
        module = importlib.import_module(module_info.name)
        names.update(
            value
            for value in vars(module).values()
            if isinstance(value, str) and SETTING_NAME.fullmatch(value)
        )
    for path in [*(ROOT / "allocation").rglob("*.py"), ROOT / "function_app.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_string = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_string and SETTING_NAME.fullmatch(node.value):
                names.add(node.value)
    return names


def settings_set_by_the_template() -> dict[str, Any]:
    function = parse_bicep(INFRA / "app" / "function.bicep")
    site_config = function["resources"]["site"]["config"]["properties"]["siteConfig"]
    # The site's settings are the `appSettings` variable, item by item.
    loop = site_config["appSettings"]["loop_type"]["detail"]["array_name"]
    assert loop == {"function": {"type": "items", "parameters": {"arg_1": "appSettings"}}}
    settings: dict[str, Any] = function["variables"]["appSettings"]["value"]
    return settings


def test_the_code_reads_every_allocation_setting_the_template_sets() -> None:
    template = set(settings_set_by_the_template())
    unread = {name for name in template - HOST_SETTINGS if name not in settings_read_by_the_code()}
    assert not unread, f"set in Azure but read by no code: {sorted(unread)}"


def test_the_template_sets_every_setting_the_code_needs_in_azure() -> None:
    needed = settings_read_by_the_code() - set(NOT_SET_IN_AZURE)
    missing = needed - set(settings_set_by_the_template())
    assert not missing, f"read by the code, not set by the template: {sorted(missing)}"


def test_the_template_sets_host_settings_it_knows_only() -> None:
    template = set(settings_set_by_the_template())
    assert {n for n in template if not n.startswith("ALLOCATION_")} == HOST_SETTINGS


def test_the_policy_blob_container_and_table_are_the_ones_the_settings_name() -> None:
    storage = parse_bicep(INFRA / "app" / "storage.bicep")["variables"]
    assert storage["policiesContainerName"]["value"] == "policies"
    assert storage["policyBlobName"]["value"] == "policy.json"
    assert storage["devicesTableName"]["value"] == "devices"
    function = parse_bicep(INFRA / "app" / "function.bicep")
    assert settings_set_by_the_template()["ALLOCATION_POLICY_BLOB"] == "policyBlob"
    assert "policyBlob" in function["parameters"]


def test_the_app_runs_on_flex_consumption_with_its_identity_everywhere() -> None:
    function = parse_bicep(INFRA / "app" / "function.bicep")
    plan = function["resources"]["plan"]["config"]
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    site = function["resources"]["site"]["config"]
    assert site["properties"]["httpsOnly"] is True
    assert site["properties"]["siteConfig"]["minTlsVersion"] == "1.2"
    assert site["properties"]["siteConfig"]["ftpsState"] == "Disabled"
    deployment = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"
    basic_auth = {
        r["config"]["name"]: r["config"]["properties"]["allow"]
        for r in function["resources"].values()
        if r["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    }
    assert basic_auth == {"ftp": False, "scm": False}
    storage = parse_bicep(INFRA / "app" / "storage.bicep")
    properties = storage["variables"]["accountProperties"]["value"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"


# -- the workbook and alert rules: fields the log lines really have --------------------------


def queries() -> dict[str, str]:
    workbook = json.loads((INFRA / "app" / "workbook.json").read_text())
    alerts = json.loads((INFRA / "app" / "alerts.json").read_text())
    found = {
        f"workbook:{item['name']}": item["content"]["query"]
        for item in workbook["items"]
        if item["type"] == 3
    }
    found.update({f"alert:{rule['name']}": rule["query"] for rule in alerts})
    return found


def fields_read(query: str) -> set[str]:
    """The log line's fields a query reads: the query parses `message` into `d`."""
    return set(re.findall(r"\bd\.([A-Za-z_]\w*)", query))


def events_read(query: str) -> set[str] | None:
    """The events a query keeps (tostring(d.event) == / in (...)); None: any line."""
    equal = re.findall(r'tostring\(d\.event\) == "(\w+)"', query)
    within = re.findall(r"tostring\(d\.event\) in \(([^)]*)\)", query)
    events = set(equal) | {e for group in within for e in re.findall(r'"(\w+)"', group)}
    return events or None


class CapturedLines:
    """The `allocation` logger's lines, as JSON, at INFO: what the Functions host ships to
    App Insights `traces`."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def __call__(self, level: int, line: str) -> None:
        self.lines.append(json.loads(line))

    def handle(self, body: bytes, policy: Any = None) -> None:
        handle(body, policy, log=self)


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> CapturedLines:
    # The webhook formats a line only when its level is enabled.
    caplog.set_level(logging.INFO, logger="allocation")
    return CapturedLines()


def allocation_lines(captured: CapturedLines) -> list[dict[str, Any]]:
    """A first assignment, a reprovisioning that moves the device, and refusals: a bad request,
    and a device whose every hub is drained."""
    from allocation.policy import parse_policy

    moved = make_request(
        "device-1", current_hub="hub-x.azure-devices.net", update_hub_assignment=True
    )
    captured.handle(encode(make_request("device-1")))
    captured.handle(encode(moved))
    captured.handle(b"{not json")
    drained = {"hub-a.azure-devices.net": {"drain": 100}, "hub-b.azure-devices.net": {"drain": 100}}
    policy = parse_policy(json.dumps({"hubs": drained, "default": {"strategy": "weighted"}}))
    captured.handle(encode(make_request("device-1")), policy)
    return captured.lines


def lookup_lines(captured: CapturedLines, connection_string: str) -> list[dict[str, Any]]:
    """A decision whose policy read a row of a table (Azurite), as the devices table is read."""
    from azure.data.tables import TableServiceClient

    from allocation.policy import parse_policy

    table = "lookups" + uuid.uuid4().hex[:12]
    client = TableServiceClient.from_connection_string(connection_string).create_table(table)
    client.upsert_entity({"PartitionKey": "fleet", "RowKey": "device-1", "tier": "gold"})
    lookup = {"table": table, "partitionKey": "{enrollmentId}", "rowKey": "{registrationId}"}
    # The table lists device-1 (a hit), not device-2 (a miss); both are allocated.
    listed = {
        "name": "listed",
        "when": {"lookup.inventory": {"exists": True}},
        "then": {"strategy": "weighted"},
    }
    others = {"name": "others", "when": {}, "then": {"strategy": "weighted"}}
    policy = parse_policy(
        json.dumps(
            {
                "lookups": {"inventory": lookup},
                "default": {
                    "strategy": "rules",
                    "rules": [listed, others],
                },
            }
        )
    )
    captured.handle(encode(make_request("device-1")), policy)
    captured.handle(encode(make_request("device-2")), policy)
    return captured.lines


def policy_event_lines(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """A policy file that loads, is replaced by an invalid one (rejected: the last good one
    keeps answering), then by a valid new one: the policy source's own lines."""
    from allocation.sources import POLICY_FILE_SETTING, PolicyCache

    path = tmp_path / "policy.json"
    monkeypatch.setenv(POLICY_FILE_SETTING, str(path))
    cache = PolicyCache(background=False)
    path.write_text('{"default": {"strategy": "weighted"}}')
    cache.get()
    for text in ('{"default": 1}', '{"default": {"strategy": "weighted"}, "hubs": {}}'):
        path.write_text(text)
        cache.check_now()
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "allocation" and record.getMessage().startswith('{"event":"policy_')
    ]


def lines_for(query: str, lines: list[dict[str, Any]]) -> set[str]:
    """The fields of the lines a query keeps."""
    events = events_read(query)
    kept = [line for line in lines if events is None or line["event"] in events]
    return set().union(*(line.keys() for line in kept))


ALLOCATION_QUERIES = {
    n: q for n, q in queries().items() if "lookups" not in q and "policy_" not in q
}
LOOKUP_QUERIES = {n: q for n, q in queries().items() if "lookups" in q}
POLICY_EVENT_QUERIES = {n: q for n, q in queries().items() if "policy_" in q}


def test_the_queries_are_sorted_by_the_lines_they_read() -> None:
    assert set(ALLOCATION_QUERIES) | set(LOOKUP_QUERIES) | set(POLICY_EVENT_QUERIES) == set(
        queries()
    )
    assert ALLOCATION_QUERIES and LOOKUP_QUERIES and POLICY_EVENT_QUERIES


@pytest.mark.parametrize("name", sorted(ALLOCATION_QUERIES))
def test_allocation_queries_read_fields_the_webhook_writes(
    name: str, captured: CapturedLines
) -> None:
    query = ALLOCATION_QUERIES[name]
    have = lines_for(query, allocation_lines(captured))
    assert fields_read(query) <= have, sorted(fields_read(query) - have)


@pytest.mark.parametrize("name", sorted(LOOKUP_QUERIES))
def test_lookup_queries_read_fields_a_lookup_writes(
    name: str, captured: CapturedLines, storage_setting: str
) -> None:
    query = LOOKUP_QUERIES[name]
    lines = lookup_lines(captured, storage_setting)
    assert [line.get("lookups") for line in lines] == [{"inventory": "hit"}, {"inventory": "miss"}]
    have = lines_for(query, lines)
    assert fields_read(query) <= have, sorted(fields_read(query) - have)


@pytest.mark.parametrize("name", sorted(POLICY_EVENT_QUERIES))
def test_policy_event_queries_read_fields_the_policy_source_writes(
    name: str,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="allocation")
    query = POLICY_EVENT_QUERIES[name]
    lines = policy_event_lines(caplog, tmp_path, monkeypatch)
    events = {line["event"] for line in lines}
    assert {"policy_loaded", "policy_rejected"} <= events, events
    # policy_source_unreachable comes from the blob source only; its fields are policy_rejected's
    # less `rejected` (README.md, "Logs"), so the lines above cover what the query reads.
    have = lines_for(query, lines)
    assert fields_read(query) <= have, sorted(fields_read(query) - have)


def test_the_queries_parse_the_log_line_they_read() -> None:
    for name, query in queries().items():
        if fields_read(query):
            assert "d = parse_json(message)" in query, name
            assert "message startswith '{\"event\":'" in query, name


def test_the_decision_line_is_one_line_that_the_queries_can_filter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Through the `allocation` logger, as the Functions host sees it: the query's prefix filter
    # must match the message exactly as written.
    with caplog.at_level(logging.INFO, logger="allocation"):
        handle(encode(make_request("device-1")))
    (record,) = caplog.records
    assert record.getMessage().startswith('{"event":"allocated"')
    assert "\n" not in record.getMessage()
