"""``python -m allocation schema`` and ``policy.schema.json``: in sync, and agreeing with the loader.

The policy loader is the authority; the schema helps editors. So every valid policy of the
README, the examples and the tests must validate against the schema, and what the loader rejects
the schema rejects too, except the few rules JSON Schema cannot express (listed below).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from allocation import strategies
from allocation.conditions import FIELDS, OPERATORS
from allocation.errors import PolicyError
from allocation.hostnames import is_host_name
from allocation.policy import TOP_LEVEL_FIELDS, compile_policy
from allocation.policy_schema import HOST_NAME_PATTERN, policy_schema
from tests.conftest import ROOT, assert_no_traceback, run_cli
from tests.test_policy import INVALID_POLICIES
from tests.test_strategy_latency import INVALID_OPTIONS

SCHEMA_FILE = ROOT / "policy.schema.json"
A, B = "hub-a.azure-devices.net", "hub-b.azure-devices.net"

VALIDATOR = jsonschema.Draft202012Validator(policy_schema())


def schema_errors(policy: Any) -> list[str]:
    return [f"{error.json_path}: {error.message}" for error in VALIDATOR.iter_errors(policy)]


def loads(policy: Any) -> bool:
    try:
        compile_policy(policy)
    except PolicyError:
        return False
    return True


# -- the command and the file ------------------------------------------------------------------


def test_the_command_prints_the_schema_the_repository_keeps() -> None:
    result = run_cli("schema")

    assert result.returncode == 0, result.stderr
    assert result.stdout == SCHEMA_FILE.read_text(encoding="utf-8"), (
        "policy.schema.json is out of date: run "
        "'python -m allocation schema > policy.schema.json' and commit it"
    )
    assert result.stdout.startswith('{\n  "$schema": "https://json-schema.org/draft/2020-12')
    assert result.stdout.endswith("}\n")


def test_policy_schema_json_is_in_sync_with_the_code() -> None:
    kept = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))

    assert kept == policy_schema(), (
        "policy.schema.json is out of date: run "
        "'python -m allocation schema > policy.schema.json' and commit it"
    )


def test_schema_help_and_usage_errors() -> None:
    help_result = run_cli("schema", "--help")
    usage_error = run_cli("schema", "--pretty")

    assert help_result.returncode == 0
    assert "JSON Schema" in help_result.stdout
    assert "exit codes: 0" in help_result.stdout
    assert usage_error.returncode == 2
    assert "unrecognized arguments: --pretty" in usage_error.stderr
    assert_no_traceback(usage_error)


# -- the schema as a schema --------------------------------------------------------------------


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(policy_schema())


def _properties(schema: Any, at: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, schema) under a 'properties' or 'patternProperties' of the schema, except
    in an 'if', which only selects a branch."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "if":
                continue
            if key in ("properties", "patternProperties"):
                for name, inner in value.items():
                    yield f"{at}/{key}/{name}", inner
                    yield from _properties(inner, f"{at}/{key}/{name}")
            else:
                yield from _properties(value, f"{at}/{key}")
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from _properties(item, f"{at}/{index}")


def test_every_property_has_a_description_for_editors_to_show() -> None:
    # `true` re-lists an allocation's common fields in a strategy's branch: described above it.
    undescribed = [
        path
        for path, schema in _properties(policy_schema())
        if schema is not True and "description" not in schema
    ]

    assert undescribed == []


def test_the_schema_knows_every_strategy_field_and_operator_the_loader_knows() -> None:
    definitions = policy_schema()["$defs"]
    branches = definitions["allocation"]["allOf"]
    condition = definitions["condition"]["properties"]

    assert {b["if"]["properties"]["strategy"]["const"] for b in branches} == set(strategies.BUILTIN)
    assert set(condition) == {*FIELDS, "all", "any", "not"}
    assert set(definitions["payloadTest"]["properties"]) == set(OPERATORS)
    assert set(definitions["stringTest"]["properties"]) == set(OPERATORS) - {
        "gt",
        "gte",
        "lt",
        "lte",
    }
    assert set(definitions["booleanTest"]["properties"]) == {"equals", "in", "exists"}


@pytest.mark.parametrize(
    "name",
    [
        "hub-a.azure-devices.net",
        "HUB.azure-devices.net",
        "localhost",
        "a" * 63 + ".net",
        "a" * 64 + ".net",
        "-hub.azure-devices.net",
        "hub-.azure-devices.net",
        "hub..azure-devices.net",
        "hub.azure-devices.net.",
        "hub_1.azure-devices.net",
        "hub a.net",
        "",
        ".".join(["a" * 63] * 4),
        ".".join(["a" * 61] * 4),
        "hüb.net",
    ],
)
def test_the_host_name_pattern_agrees_with_the_loader(name: str) -> None:
    assert (re.search(HOST_NAME_PATTERN, name) is not None) == is_host_name(name)


@pytest.mark.parametrize(
    "selector",
    [
        "hub-a.azure-devices.net",
        "*-toasters-*",
        "*.azure-devices.net",
        "hub-?.azure-devices.net",
        "hub-[ab].azure-devices.net",
        "hub-[!a].azure-devices.net",
        "*",
        "hub!.net",
        "no spaces *",
        "*..net",
        "",
        {"tag": "eu"},
        {"region": "westeurope"},
        {"tag": ""},
        {"tag": "eu", "region": "westeurope"},
        {"zone": "1"},
        5,
    ],
)
def test_hub_selectors_are_accepted_by_the_schema_as_by_the_loader(selector: Any) -> None:
    policy = {"default": {"strategy": "weighted", "hubs": [selector]}}

    assert (schema_errors(policy) == []) == loads(policy)


# -- valid policies validate -------------------------------------------------------------------

VALID_POLICIES: list[tuple[str, Any]] = [
    ("empty", {}),
    ("every top-level field", {
        "$schema": "./policy.schema.json",
        "hubs": {
            A: {"weight": 1000, "region": "westeurope", "tags": ["eu", "new"], "drain": 12.5},
            B: {"drain": True},
            "hub-c.azure-devices.net": {"drain": False, "region": None},
        },
        "default": {"strategy": "weighted"},
        "enrollments": {"contoso-toasters": {"strategy": "static", "hub": "*-toasters-*"}},
        "sticky": True,
    }),
    ("common fields", {"default": {
        "strategy": "weighted",
        "key": "{payload.siteId}",
        "hubs": [A, "*-eu-*", {"tag": "eu"}, {"region": "westeurope"}],
        "initialTwin": {"tags": {"site": "{payload.siteId}"}, "properties": {"desired": {"hub": "{hub}"}}},
        "payload": {"hub": "{hub}", "region": "{hub.region}", "n": 1},
        "sticky": False,
    }}),
    ("latency with every option", {"default": {
        "strategy": "latency",
        "measurements": "payload.rtt.ms",
        "location": "payload.where",
        "regionLatencyMs": {"westeurope": {"northeurope": 12, "eastus": 80.5}, "onprem-1": {}},
        "toleranceMs": 0,
        "fallback": {"strategy": "static", "hub": A, "payload": {"placedBy": "fallback"}},
    }}),
    ("rules with every field and operator", {"default": {
        "strategy": "rules",
        "rules": [
            {"name": "old firmware", "when": {"payload.firmware": {"versionLt": "12.0"}}, "then": "deny"},
            {"when": {"registrationId": {"startsWith": "t-", "endsWith": "-7", "contains": "x",
                                         "glob": "t-*", "regex": "^t-[0-9]+$", "exists": True,
                                         "equals": "t-1", "in": ["t-1", "t-2"], "versionGte": "1"}},
             "then": {"strategy": "static", "hub": A}},
            {"name": "combined", "when": {
                "all": [{"enrollmentId": {"equals": "g"}}, {"enrollmentType": {"in": ["group", "individual"]}}],
                "any": [{"attestation": {"equals": "x509"}}, {"iotEdge": {"equals": True}}],
                "not": {"reprovision": {"in": [True]}},
                "currentHub": {"exists": False},
            }, "then": {"strategy": "weighted", "hubs": [B]}},
            {"name": "payload", "when": {
                "payload.count": {"gt": 1, "gte": 1.5, "lt": 10, "lte": 9},
                "payload.sensors.0": {"equals": {"kind": "t"}, "in": [1, "a", [1]], "contains": "t"},
                "payload.model": {"startsWith": "dtmi:", "regex": "v[0-9]"},
            }, "then": {"strategy": "rules", "rules": [], "otherwise": "deny"}},
            {"name": "always", "when": {}, "then": {"strategy": "tests.plugin_strategies:PreferredHub"}},
        ],
        "otherwise": {"strategy": "weighted"},
    }}),
    ("a plug-in with its own options", {"default": {
        "strategy": "tests.plugin_strategies:OnlyAdults", "minimumAge": 18, "hubs": [A],
    }}),
]  # fmt: skip


def _readme_policies() -> list[tuple[str, Any]]:
    """The README's JSON examples as policies: whole policies; allocations, placed under
    ``default``; and conditions (a block may hold one per line), placed in a rule."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for number, block in enumerate(re.findall(r"```json\n(.*?)```", text, re.DOTALL)):
        try:
            documents = [json.loads(block)]
        except ValueError:
            documents = [json.loads(line) for line in block.splitlines() if line.strip()]
        for index, document in enumerate(documents):
            if "strategy" in document:
                policy = {"default": document}
            elif set(document) & {"hubs", "default", "enrollments", "sticky"}:
                policy = document
            else:
                rule = {"when": document, "then": "deny"}
                policy = {"default": {"strategy": "rules", "rules": [rule]}}
            found.append((f"README block {number}.{index}", policy))
    return found


def _example_policy_files() -> list[Path]:
    """The policies of examples/: the JSON objects there with only a policy's top-level fields
    (not the DPS requests, nor the answers expected)."""
    return [
        path
        for path in sorted(ROOT.glob("examples/**/*.json"))
        if set(json.loads(path.read_text(encoding="utf-8"))) <= TOP_LEVEL_FIELDS
    ]


def _example_files() -> list[tuple[str, Any]]:
    files = [*_example_policy_files(), *sorted(ROOT.glob("tests/fixtures/policy-*.json"))]
    return [
        (str(path.relative_to(ROOT)), json.loads(path.read_text(encoding="utf-8")))
        for path in files
    ]


EVERY_VALID_POLICY = [*VALID_POLICIES, *_readme_policies(), *_example_files()]


@pytest.mark.parametrize(
    ("case", "policy"), EVERY_VALID_POLICY, ids=[case for case, _ in EVERY_VALID_POLICY]
)
def test_a_valid_policy_validates_against_the_schema(case: str, policy: Any) -> None:
    compile_policy(policy)  # the loader accepts it: it is a valid policy
    assert schema_errors(policy) == []


def test_the_readme_and_the_examples_are_among_them() -> None:
    cases = [case for case, _ in EVERY_VALID_POLICY]
    assert sum(case.startswith("README") for case in cases) >= 3
    assert any(case.startswith("examples/") for case in cases)
    assert any(case.startswith("tests/fixtures/") for case in cases)


def test_the_example_policies_point_editors_at_the_schema() -> None:
    for path in _example_policy_files():
        reference = json.loads(path.read_text(encoding="utf-8")).get("$schema")
        assert isinstance(reference, str), f"{path} has no $schema"
        assert (path.parent / reference).resolve() == SCHEMA_FILE, path


# -- invalid policies do not -------------------------------------------------------------------

# What JSON Schema cannot express, left to the loader.
BEYOND_THE_SCHEMA = {
    "the same hub twice",  # names unique regardless of case
    "an enrollment listed twice",
    "a row listed twice",
    "a column listed twice",
    "a constant weighted key",  # template syntax
    "an unknown template field",
    "an unclosed template",
    "an unknown strategy",  # any other name may be a plug-in's entry point
    "a fallback with an unknown strategy",
    "NaN in a twin",  # not JSON at all, though Python's parser reads them: no schema sees them
    "-Infinity in a payload list",
    "a lone surrogate in a payload",
    "a lone surrogate in a tag's name",
}

INVALID = [
    *[(case, policy) for case, policy, _, _ in INVALID_POLICIES if not isinstance(policy, str)],
    *[
        (case, {"default": {"strategy": "latency", **options}})
        for case, options, _, _ in INVALID_OPTIONS
    ],
    ("rules without rules", {"default": {"strategy": "rules"}}),
    ("a rule without then", {"default": {"strategy": "rules", "rules": [{"when": {}}]}}),
    ("a rule with an unknown field", {"default": {"strategy": "rules", "rules": [
        {"when": {}, "then": "deny", "else": "deny"}]}}),
    ("then neither deny nor an allocation", {"default": {"strategy": "rules", "rules": [
        {"when": {}, "then": "allow"}]}}),
    ("an empty rule name", {"default": {"strategy": "rules", "rules": [
        {"name": "", "when": {}, "then": "deny"}]}}),
    ("an unknown condition field", {"default": {"strategy": "rules", "rules": [
        {"when": {"deviceId": {"equals": "x"}}, "then": "deny"}]}}),
    ("an unknown operator", {"default": {"strategy": "rules", "rules": [
        {"when": {"registrationId": {"matches": "x"}}, "then": "deny"}]}}),
    ("gt on a string field", {"default": {"strategy": "rules", "rules": [
        {"when": {"registrationId": {"gt": 3}}, "then": "deny"}]}}),
    ("a number for a string field", {"default": {"strategy": "rules", "rules": [
        {"when": {"registrationId": {"equals": 3}}, "then": "deny"}]}}),
    ("a string for a boolean field", {"default": {"strategy": "rules", "rules": [
        {"when": {"iotEdge": {"equals": "true"}}, "then": "deny"}]}}),
    ("an unknown enrollment type", {"default": {"strategy": "rules", "rules": [
        {"when": {"enrollmentType": {"equals": "groups"}}, "then": "deny"}]}}),
    ("a version that is not one", {"default": {"strategy": "rules", "rules": [
        {"when": {"payload.fw": {"versionGte": "v12"}}, "then": "deny"}]}}),
    ("an empty payload path", {"default": {"strategy": "rules", "rules": [
        {"when": {"payload.": {"exists": True}}, "then": "deny"}]}}),
    ("exists not a boolean", {"default": {"strategy": "rules", "rules": [
        {"when": {"payload.x": {"exists": "yes"}}, "then": "deny"}]}}),
    ("an empty any", {"default": {"strategy": "rules", "rules": [
        {"when": {"any": []}, "then": "deny"}]}}),
    ("a field without operators", {"default": {"strategy": "rules", "rules": [
        {"when": {"registrationId": {}}, "then": "deny"}]}}),
    ("null for a payload value", {"default": {"strategy": "rules", "rules": [
        {"when": {"payload.x": {"equals": None}}, "then": "deny"}]}}),
    ("an empty static hub", {"default": {"strategy": "static", "hub": ""}}),
    ("an empty strategy", {"default": {"strategy": ""}}),
    ("an empty enrollment ID", {"enrollments": {"": {"strategy": "weighted"}}}),
    ("a drain as text", {"hubs": {A: {"drain": "50"}}}),
    ("a twin with reported properties", {"default": {"strategy": "weighted",
                                                     "initialTwin": {"properties": {"reported": {}}}}}),
    ("a twin with an unknown field", {"default": {"strategy": "weighted", "initialTwin": {"etag": "x"}}}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "policy"), INVALID, ids=[case for case, _ in INVALID])
def test_what_the_loader_rejects_the_schema_rejects(case: str, policy: Any) -> None:
    assert not loads(policy), "not an invalid policy"
    if case in BEYOND_THE_SCHEMA:
        assert schema_errors(policy) == [], "the schema catches it now: take it off the list"
    else:
        assert schema_errors(policy) != []


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    # stdout is a pipe whose reader is gone, as in `python -m allocation schema | head -0`.
    child = (
        "import os, sys\n"
        "read_end, write_end = os.pipe()\n"
        "os.close(read_end)\n"
        "os.dup2(write_end, 1)\n"
        "from allocation.cli import main\n"
        "sys.exit(main(['schema']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", child], cwd=ROOT, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert result.stderr == b""
