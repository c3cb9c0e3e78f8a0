"""The DPS custom allocation contract: the request DPS sends and the response it accepts.

The shapes are tolerant where real requests are (absent or unknown fields, see the captured
samples in ``tests/fixtures``) and strict where the contract is: a string ``registrationId`` and
a non-empty list of host names in ``linkedHubs``. Field names are DPS's own (the REST
specification, service.json, api-version 2021-10-01): a validated request is a ``dict`` keyed as
DPS spells it, described by the ``TypedDict`` of the same name. Why these are pydantic-core
schemas rather than pydantic models: see allocation.shapes.
"""

from __future__ import annotations

from typing import Any, Final, TypedDict

from pydantic_core import CoreSchema, SchemaValidator
from pydantic_core import core_schema as cs

from allocation.hostnames import HOST_NAME_PATTERN
from allocation.limits import MAX_LINKED_HUBS, MAX_REGISTRATION_ID_LENGTH
from allocation.shapes import ANY, BOOLEAN, STRING, json_object, nullable, optional

# The pattern of allocation.hostnames, checked by pydantic-core's own regex engine (no Python
# call per hub); allocation.requests rewords its error message.
HOST_NAME: Final = cs.str_schema(strict=True, max_length=253, pattern=HOST_NAME_PATTERN)
NON_EMPTY: Final = cs.str_schema(strict=True, min_length=1)
REGISTRATION_ID: Final = cs.str_schema(
    strict=True, min_length=1, max_length=MAX_REGISTRATION_ID_LENGTH
)


class ReprovisionPolicy(TypedDict):
    updateHubAssignment: bool
    migrateDeviceData: bool


class Attestation(TypedDict):
    # Not an enum: a future attestation type must not fail registrations.
    type: str | None


class Capabilities(TypedDict):
    iotEdge: bool


class EnrollmentGroup(TypedDict):
    enrollmentGroupId: str
    attestation: Attestation | None
    capabilities: Capabilities | None
    reprovisionPolicy: ReprovisionPolicy | None
    iotHubs: list[str] | None


class IndividualEnrollment(TypedDict):
    registrationId: str
    deviceId: str | None
    attestation: Attestation | None
    capabilities: Capabilities | None
    reprovisionPolicy: ReprovisionPolicy | None
    iotHubs: list[str] | None


class DeviceRuntimeContext(TypedDict):
    registrationId: str
    currentIotHubHostName: str | None
    currentDeviceId: str | None
    payload: Any  # whatever JSON the device sent in its registration call


class AllocationRequest(TypedDict):
    enrollmentGroup: EnrollmentGroup | None
    individualEnrollment: IndividualEnrollment | None
    deviceRuntimeContext: DeviceRuntimeContext
    linkedHubs: list[str]


def _dps_object(title: type, fields: dict[str, CoreSchema], **aliases: list[str]) -> CoreSchema:
    # DPS adds fields over time: unknown ones are ignored, never refused.
    return json_object(fields, title=title, unknown="ignore", aliases=aliases)


_ENROLLMENT_FIELDS: Final[dict[str, CoreSchema]] = {
    "attestation": optional(
        nullable(_dps_object(Attestation, {"type": optional(nullable(STRING))}))
    ),
    "capabilities": optional(
        nullable(_dps_object(Capabilities, {"iotEdge": optional(BOOLEAN, False)}))
    ),
    # Both default to true when absent: that is DPS's default, "reprovision and migrate".
    "reprovisionPolicy": optional(
        nullable(
            _dps_object(
                ReprovisionPolicy,
                {
                    "updateHubAssignment": optional(BOOLEAN, True),
                    "migrateDeviceData": optional(BOOLEAN, True),
                },
            )
        )
    ),
    "iotHubs": optional(nullable(cs.list_schema(STRING))),
}


def _empty_is_absent(value: Any) -> Any:
    return None if value == "" else value


def _one_enrollment(request: AllocationRequest) -> AllocationRequest:
    if (request["enrollmentGroup"] is None) == (request["individualEnrollment"] is None):
        raise ValueError(
            "exactly one of 'enrollmentGroup' and 'individualEnrollment' must be present"
        )
    return request


REQUEST_SCHEMA: Final = cs.no_info_after_validator_function(
    _one_enrollment,
    _dps_object(
        AllocationRequest,
        {
            "enrollmentGroup": optional(
                nullable(
                    _dps_object(
                        EnrollmentGroup,
                        {"enrollmentGroupId": NON_EMPTY, **_ENROLLMENT_FIELDS},
                    )
                )
            ),
            "individualEnrollment": optional(
                nullable(
                    _dps_object(
                        IndividualEnrollment,
                        {
                            "registrationId": REGISTRATION_ID,
                            "deviceId": optional(nullable(STRING)),
                            **_ENROLLMENT_FIELDS,
                        },
                    )
                )
            ),
            "deviceRuntimeContext": _dps_object(
                DeviceRuntimeContext,
                {
                    "registrationId": REGISTRATION_ID,
                    "currentIotHubHostName": optional(
                        cs.no_info_before_validator_function(_empty_is_absent, nullable(HOST_NAME))
                    ),
                    "currentDeviceId": optional(nullable(STRING)),
                    "payload": optional(ANY),
                },
                # Some old documentation tables spell it so; real requests never do.
                currentIotHubHostName=["currentIoTHubHostName"],
            ),
            "linkedHubs": cs.list_schema(HOST_NAME, min_length=1, max_length=MAX_LINKED_HUBS),
        },
    ),
)

REQUEST: Final = SchemaValidator(REQUEST_SCHEMA)


# The answer is built as plain JSON on the request path; these describe it (the OpenAPI
# document, the fuzzing's check of every answer).


class InitialTwin(TypedDict, total=False):
    """Tags and desired properties only: DPS ignores anything else."""

    tags: dict[str, Any] | None
    properties: dict[str, Any] | None


class AllocationResponse(TypedDict, total=False):
    iotHubHostName: str
    initialTwin: InitialTwin | None
    payload: dict[str, Any] | None


_JSON_OBJECT: Final = cs.dict_schema(cs.str_schema(), ANY, strict=True)

RESPONSE_SCHEMA: Final = json_object(
    {
        "iotHubHostName": STRING,
        "initialTwin": optional(
            nullable(
                json_object(
                    {
                        "tags": optional(nullable(_JSON_OBJECT)),
                        "properties": optional(nullable(_JSON_OBJECT)),
                    },
                    title=InitialTwin,
                    unknown="ignore",
                )
            )
        ),
        "payload": optional(nullable(_JSON_OBJECT)),
    },
    title=AllocationResponse,
    unknown="ignore",
)
