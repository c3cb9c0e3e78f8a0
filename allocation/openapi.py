"""The webhook's OpenAPI 3.1 document, generated from the contract models.

The request and response schemas are pydantic's own (``AllocationRequest`` as it validates,
``AllocationResponse`` as it serialises, both by alias); the error bodies are the small models
below, one per error code of the spec's status table (policy.md, "Status codes"). Two rules the
request model enforces in code are added to its schema by hand, so the document says what the
webhook accepts: exactly one of ``enrollmentGroup`` and ``individualEnrollment``, and an empty
``currentIotHubHostName`` read as absent. What JSON Schema cannot say (the 96 KiB body, nesting
depth, payload keys) is in the operation's description and its 400 and 413 answers.

The repository keeps the document as ``openapi.json`` (``python -m allocation.openapi >
openapi.json``; a test fails when the two differ), and the local host serves it at
``GET /api/openapi.json``.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from allocation.contract import AllocationRequest, AllocationResponse
from allocation.limits import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD_KEYS,
    RETRY_AFTER_SECONDS,
)

OPENAPI_VERSION: Final = "3.1.0"
REF_TEMPLATE: Final = "#/components/schemas/{model}"

Document = dict[str, Any]


# -- the error bodies (allocation.webhook.error_response, allocation.local_host) ---------------


class _Body(BaseModel):
    # Every field is required and nothing else is sent: a new field must update the document.
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Body):
    """One thing wrong with the request, at a JSON path such as ``linkedHubs[0]``."""

    path: str
    message: str


class InvalidRequestError(_Body):
    """The body is not JSON, not an object, too deep, or not a DPS allocation request."""

    error: Literal["invalid_request"]
    message: str
    details: list[ErrorDetail]


class DeniedError(_Body):
    """A rule of the policy refuses the device."""

    error: Literal["denied"]
    message: str
    rule: str = Field(description="The name of the rule that denied the device.")


class TooLargeError(_Body):
    """The body is over DPS's 96 KiB message limit."""

    error: Literal["too_large"]
    message: str
    limit: int = Field(description="The largest body accepted, in bytes.")


class UnavailableError(_Body):
    """The policy cannot be loaded, or no linked hub is left for the device: DPS retries."""

    error: Literal["policy_unavailable", "no_eligible_hub"]
    message: str


class UnauthorizedError(_Body):
    """No function key, or a wrong one (answered by the host, never by the webhook itself)."""

    error: Literal["unauthorized"]
    message: str


class PolicySummary(_Body):
    """What is loaded, never its content."""

    source: Literal["setting", "file", "default"]
    fingerprint: str
    hubs: int
    enrollments: int
    strategies: list[str]


class HealthOk(_Body):
    status: Literal["ok"]
    policy: PolicySummary


class HealthUnavailable(_Body):
    status: Literal["unavailable"]
    error: Literal["policy_unavailable"]
    message: str


_MODELS: Final[tuple[tuple[type[BaseModel], JsonSchemaMode], ...]] = (
    (AllocationRequest, "validation"),
    (AllocationResponse, "serialization"),
    (InvalidRequestError, "serialization"),
    (UnauthorizedError, "serialization"),
    (DeniedError, "serialization"),
    (TooLargeError, "serialization"),
    (UnavailableError, "serialization"),
    (HealthOk, "serialization"),
    (HealthUnavailable, "serialization"),
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _json(description: str, model: type[BaseModel], retry: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(model)}},
    }
    if retry:
        answer["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return answer


def schemas() -> dict[str, Any]:
    """The components' schemas: pydantic's, with the request's code-only rules added."""
    _, top = models_json_schema(_MODELS, by_alias=True, ref_template=REF_TEMPLATE)
    defs: dict[str, Any] = top["$defs"]
    for schema in defs.values():
        # pydantic titles properties after their snake_case names ("Iothubs"): noise here.
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
    request = defs["AllocationRequest"]
    request["oneOf"] = [
        {"required": [name], "properties": {name: {"type": "object"}}}
        for name in ("enrollmentGroup", "individualEnrollment")
    ]
    request["description"] = (
        "What DPS sends: the enrollment the device came through (exactly one of "
        "enrollmentGroup and individualEnrollment), the device's runtime context, and the "
        "IoT hubs it may be assigned to. Unknown fields are ignored."
    )
    current = defs["DeviceRuntimeContext"]["properties"]["currentIotHubHostName"]
    current["anyOf"].append({"const": ""})
    current["description"] = (
        "The device's current hub, present only when it was assigned before (an empty string "
        "counts as absent)."
    )
    return {name: defs[name] for name in sorted(defs)}


def document() -> Document:
    """The OpenAPI document as a JSON-serialisable dict."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "DPS custom allocation webhook",
            "version": "1",
            "description": (
                "The custom allocation webhook that Azure IoT Hub Device Provisioning Service "
                "calls for each registration: it answers the IoT hub the device is assigned "
                "to. Status codes follow what DPS does with them: a 4xx fails the registration at "
                "once, a 5xx makes DPS retry."
            ),
        },
        "paths": {
            "/api/allocate": {
                "post": {
                    "operationId": "allocate",
                    "summary": "Choose the IoT hub for one device registration",
                    "description": (
                        f"A body is at most {MAX_BODY_BYTES} bytes (413 past that), nests at "
                        f"most {MAX_JSON_DEPTH} levels, has at most {MAX_PAYLOAD_KEYS} object "
                        "keys in the device payload and no NaN or Infinity (400 otherwise). "
                        "The answer names one of the request's linkedHubs, exactly as sent."
                    ),
                    "security": [{"functionKeyQuery": []}, {"functionKeyHeader": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(AllocationRequest)}},
                    },
                    "responses": {
                        "200": _json("The device is allocated to this hub.", AllocationResponse),
                        "400": _json(
                            "The body is not a DPS allocation request.", InvalidRequestError
                        ),
                        "401": _json("A function key is missing or wrong.", UnauthorizedError),
                        "403": _json("A rule of the policy denies the device.", DeniedError),
                        "413": _json("The body is over the size limit.", TooLargeError),
                        "503": _json(
                            "The policy is unavailable, or no linked hub is eligible: DPS retries.",
                            UnavailableError,
                            retry=True,
                        ),
                    },
                }
            },
            "/api/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Whether the policy loads",
                    "security": [],
                    "responses": {
                        "200": _json("The policy is loaded.", HealthOk),
                        "503": _json("The policy cannot be loaded.", HealthUnavailable, retry=True),
                    },
                }
            },
        },
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "functionKeyQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "code",
                    "description": "The function key, as DPS sends it in the webhook URL.",
                },
                "functionKeyHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-functions-key",
                    "description": "The function key in a header, as the Functions host takes it.",
                },
            },
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before trying again.",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    "example": str(RETRY_AFTER_SECONDS),
                }
            },
        },
    }


def document_text() -> str:
    """The document as the repository keeps it: 2-space indent, a trailing newline."""
    return json.dumps(document(), indent=2) + "\n"


@functools.cache
def document_bytes() -> bytes:
    """The document as served by the local host: built once, on first request."""
    return document_text().encode()


def main() -> int:
    print(document_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
