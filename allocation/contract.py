"""The DPS custom allocation contract: the request DPS sends and the response it accepts.

Models are tolerant where real requests are (absent or unknown fields, see the captured samples
in ``tests/fixtures``) and strict where the contract is: a string ``registrationId`` and a
non-empty list of host names in ``linkedHubs``. Field names follow the DPS REST specification
(service.json, api-version 2021-10-01).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from allocation.hostnames import HOST_NAME_PATTERN
from allocation.limits import MAX_LINKED_HUBS

# The pattern of allocation.hostnames, checked by pydantic-core's own regex engine (no Python
# call per hub); webhook.py rewords its error message.
HostName = Annotated[StrictStr, StringConstraints(max_length=253, pattern=HOST_NAME_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class ReprovisionPolicy(_Model):
    # Both default to true when absent: that is DPS's default, "reprovision and migrate".
    update_hub_assignment: StrictBool = True
    migrate_device_data: StrictBool = True


class Attestation(_Model):
    # Not an enum: a future attestation type must not fail registrations.
    type: StrictStr | None = None


class Capabilities(_Model):
    iot_edge: StrictBool = False


class _Enrollment(_Model):
    attestation: Attestation | None = None
    capabilities: Capabilities | None = None
    reprovision_policy: ReprovisionPolicy | None = None
    iot_hubs: list[StrictStr] | None = None


class EnrollmentGroup(_Enrollment):
    enrollment_group_id: StrictStr = Field(min_length=1)


class IndividualEnrollment(_Enrollment):
    registration_id: StrictStr = Field(min_length=1)
    device_id: StrictStr | None = None


class DeviceRuntimeContext(_Model):
    registration_id: StrictStr = Field(min_length=1)
    # Some old documentation tables spell it currentIoTHubHostName; real requests never do.
    current_iot_hub_host_name: HostName | None = Field(
        default=None,
        validation_alias=AliasChoices("currentIotHubHostName", "currentIoTHubHostName"),
    )
    current_device_id: StrictStr | None = None
    # Whatever JSON the device sent in its registration call.
    payload: Any = None

    @field_validator("current_iot_hub_host_name", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: Any) -> Any:
        return None if value == "" else value


class AllocationRequest(_Model):
    enrollment_group: EnrollmentGroup | None = None
    individual_enrollment: IndividualEnrollment | None = None
    device_runtime_context: DeviceRuntimeContext
    linked_hubs: list[HostName] = Field(min_length=1, max_length=MAX_LINKED_HUBS)

    @model_validator(mode="after")
    def _one_enrollment(self) -> AllocationRequest:
        if (self.enrollment_group is None) == (self.individual_enrollment is None):
            raise ValueError(
                "exactly one of 'enrollmentGroup' and 'individualEnrollment' must be present"
            )
        return self


# The answer is built as plain JSON on the request path; these models describe it (the OpenAPI
# document, the tests) and are built only when first used, which keeps cold starts short.
class _Answer(_Model):
    model_config = ConfigDict(defer_build=True)


class InitialTwin(_Answer):
    """Tags and desired properties only: DPS ignores anything else."""

    tags: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None


class AllocationResponse(_Answer):
    iot_hub_host_name: StrictStr
    initial_twin: InitialTwin | None = None
    payload: dict[str, Any] | None = None
