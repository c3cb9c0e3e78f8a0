"""``openapi.json``: in sync with the models, true to what the webhook answers, served by the
local host, and a schemathesis run against that host with no failures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from allocation import errors, openapi
from allocation.contract import REQUEST
from allocation.errors import Denied, NoEligibleHub, PolicyUnavailable
from allocation.policy import compile_policy
from allocation.webhook import error_response, handle, health
from tests.conftest import SAMPLE_REQUESTS, encode, make_request
from tests.test_local_host import KEY, Host, start_host

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT_FILE = ROOT / "openapi.json"
DOCUMENT = openapi.document()


def validator(name: str) -> Draft202012Validator:
    """A validator for one of the document's schemas, its $refs resolved in the document."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry
    )


# -- the file ----------------------------------------------------------------------------------


def test_openapi_json_is_in_sync_with_the_models() -> None:
    assert DOCUMENT_FILE.read_text(encoding="utf-8") == openapi.document_text(), (
        "openapi.json is out of date: run 'python -m allocation.openapi > openapi.json' and "
        "commit it"
    )


def test_the_module_prints_the_document() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "allocation.openapi"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert printed.stdout == openapi.document_text()


def test_the_document_is_openapi_3_1_with_the_webhook_routes() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    allocate = DOCUMENT["paths"]["/api/allocate"]["post"]
    assert set(allocate["responses"]) == {"200", "400", "401", "403", "413", "503"}
    assert allocate["security"] == [{"functionKeyQuery": []}, {"functionKeyHeader": []}]
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert (schemes["functionKeyQuery"]["in"], schemes["functionKeyQuery"]["name"]) == (
        "query",
        "code",
    )
    assert schemes["functionKeyHeader"]["name"] == "x-functions-key"
    assert "Retry-After" in allocate["responses"]["503"]["headers"]
    check_health = DOCUMENT["paths"]["/api/health"]["get"]
    assert check_health["security"] == []
    assert set(check_health["responses"]) == {"200", "503"}
    for name, schema in DOCUMENT["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert "$defs" not in schema, name


def test_the_error_models_carry_the_codes_of_the_errors() -> None:
    def codes(model: type[BaseModel]) -> set[str]:
        return set(get_args(model.model_fields["error"].annotation))

    assert codes(openapi.InvalidRequestError) == {errors.InvalidRequest.code}
    assert codes(openapi.DeniedError) == {errors.Denied.code}
    assert codes(openapi.TooLargeError) == {errors.RequestTooLarge.code}
    assert codes(openapi.UnavailableError) == {PolicyUnavailable.code, NoEligibleHub.code}
    assert codes(openapi.HealthUnavailable) == {PolicyUnavailable.code}


# -- the document says what the webhook does --------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLE_REQUESTS, ids=lambda p: p.stem)
def test_captured_requests_and_their_answers_fit_the_schemas(sample: Path) -> None:
    request = json.loads(sample.read_bytes())
    validator("AllocationRequest").validate(request)
    response = handle(sample.read_bytes())
    assert response.status == 200
    validator("AllocationResponse").validate(json.loads(response.body_bytes()))


def test_an_answer_with_twin_and_payload_fits_the_schema() -> None:
    policy = compile_policy(
        {
            "default": {
                "strategy": "weighted",
                "initialTwin": {"tags": {"t": "{registrationId}"}, "properties": {"desired": {}}},
                "payload": {"hub": "{hub}"},
            }
        }
    )
    response = handle(encode(make_request()), policy)
    assert set(response.body) == {"iotHubHostName", "initialTwin", "payload"}
    validator("AllocationResponse").validate(json.loads(response.body_bytes()))


@pytest.mark.parametrize(
    ("document", "valid"),
    [
        (make_request(), True),
        (make_request(individual=True), True),
        ({**make_request(), "individualEnrollment": {"registrationId": "d"}}, False),
        ({k: v for k, v in make_request().items() if k != "enrollmentGroup"}, False),
        ({**make_request(), "individualEnrollment": None}, True),
        (make_request(linked_hubs=[" hub-a.azure-devices.net"]), False),
        (make_request(linked_hubs=[]), False),
        (make_request(current_hub=""), True),
    ],
    ids=[
        "group",
        "individual",
        "both enrollments",
        "no enrollment",
        "a null second enrollment",
        "hub with a space",
        "no hubs",
        "empty current hub",
    ],
)
def test_the_request_schema_accepts_what_the_webhook_accepts(
    document: dict[str, Any], valid: bool
) -> None:
    assert validator("AllocationRequest").is_valid(document) is valid
    assert (handle(encode(document)).status == 200) is valid
    try:
        REQUEST.validate_python(document)
        assert valid
    except ValueError:
        assert not valid


@pytest.mark.parametrize(
    ("body", "schema"),
    [
        (b"{", "InvalidRequestError"),
        (encode({**make_request(), "linkedHubs": [7]}), "InvalidRequestError"),
        (b"x" * 100_000, "TooLargeError"),
    ],
)
def test_error_answers_fit_their_schemas(body: bytes, schema: str) -> None:
    validator(schema).validate(json.loads(handle(body).body_bytes()))


@pytest.mark.parametrize(
    ("error", "schema"),
    [
        (Denied("old firmware"), "DeniedError"),
        (PolicyUnavailable("invalid policy"), "UnavailableError"),
        (NoEligibleHub("no candidate hubs"), "UnavailableError"),
    ],
)
def test_refusals_fit_their_schemas(error: errors.AllocationError, schema: str) -> None:
    response = error_response(error)
    validator(schema).validate(json.loads(response.body_bytes()))
    if response.status == 503:
        assert response.headers["Retry-After"].isdigit()


def test_health_answers_fit_their_schemas(use_policy: Callable[[Any], None]) -> None:
    validator("HealthOk").validate(json.loads(health().body_bytes()))
    use_policy("{not a policy")
    unavailable = health()
    assert unavailable.status == 503
    validator("HealthUnavailable").validate(json.loads(unavailable.body_bytes()))


# -- the local host serves it, and schemathesis finds nothing ---------------------------------


@pytest.fixture(scope="module")
def keyed_host() -> Iterator[Host]:
    host = start_host(env={"ALLOCATION_FUNCTION_KEYS": KEY})
    yield host
    host.stop()


def test_the_local_host_serves_the_document_anonymously(keyed_host: Host) -> None:
    status, headers, body = keyed_host.request("GET", "/api/openapi.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert body == DOCUMENT
    assert keyed_host.request("POST", "/api/openapi.json", b"{}")[0] == 405


# ignored_auth is left out: the host, like the Functions host, takes the x-functions-key header
# before ?code=, so a generated wrong code beside the right header key is (rightly) accepted.
SCHEMATHESIS_CHECKS = "all"
SCHEMATHESIS_EXCLUDED = "ignored_auth"


def test_schemathesis_finds_no_failure(keyed_host: Host, tmp_path: Path) -> None:
    command = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert command, "schemathesis is not installed: pip install -r requirements-dev.txt"
    run = subprocess.run(
        [
            command,
            "run",
            f"{keyed_host.base}/api/openapi.json",
            "--header",
            f"x-functions-key: {KEY}",
            "--checks",
            SCHEMATHESIS_CHECKS,
            "--exclude-checks",
            SCHEMATHESIS_EXCLUDED,
            "--max-examples",
            "50",
            "--workers",
            "1",
            "--seed",
            "1",
            "--request-timeout",
            "10",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert "No issues found" in output
