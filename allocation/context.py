"""What the policy sees of one registration: plain values taken from a validated request."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, Protocol

from allocation.contract import AllocationRequest, EnrollmentGroup, IndividualEnrollment
from allocation.hostnames import host_key


class _Missing:
    """A value the request does not have; templates render it as "", conditions as absent."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

EnrollmentType = Literal["group", "individual"]


class LookupRows(Protocol):
    """The rows a request's lookups found (allocation.lookups.LookupSession): each lookup runs
    the first time a field names it, at most once per request."""

    @property
    def rows(self) -> Mapping[str, Mapping[str, Any] | None]:
        """What each lookup that ran found; None: no row."""

    @property
    def outcomes(self) -> Mapping[str, str]:
        """How each lookup that ran found it: hit, miss, cached_hit, cached_miss, error."""

    def row(self, name: str, context: RequestContext) -> Mapping[str, Any] | None: ...


# A NamedTuple, immutable as a frozen dataclass is but made in a third of the time: one is
# made for every request.
class RequestContext(NamedTuple):
    registration_id: str
    enrollment_id: str
    enrollment_type: EnrollmentType
    attestation: str | None
    iot_edge: bool
    current_hub: str | None
    payload: Any
    update_hub_assignment: bool
    migrate_device_data: bool
    # linkedHubs as DPS sent them, duplicates (compared case-insensitively) removed, order kept.
    linked_hubs: tuple[str, ...]
    # The policy's lookups for this request; None when the policy has none.
    lookups: LookupRows | None = None

    @property
    def reprovision(self) -> bool:
        """DPS sends the current hub only to a device that was assigned before."""
        return self.current_hub is not None

    @property
    def current_hub_key(self) -> str | None:
        return None if self.current_hub is None else host_key(self.current_hub)

    def value(self, field: str) -> Any:
        """A named field of the request, as conditions and templates name them."""
        getter = FIELD_GETTERS.get(field)
        if getter is not None:
            return getter(self)
        if field.startswith("payload."):
            return lookup(self.payload, field[len("payload.") :])
        if field.startswith(LOOKUP_PREFIX):
            reader = LookupField.parse(field)
            return MISSING if reader is None else reader(self)
        return MISSING


@dataclass(frozen=True, slots=True)
class PayloadPath:
    """A dotted path such as ``site.sensors.0`` into a JSON value: object keys, and list
    indexes written as (ASCII) numbers; null counts as absent. Split once, read many times."""

    path: str
    # Each part as an object key, and as a list index where it is a number.
    parts: tuple[tuple[str, int | None], ...]

    @classmethod
    def parse(cls, path: str) -> PayloadPath:
        return cls(
            path,
            tuple(
                (part, int(part) if part.isascii() and part.isdigit() else None)
                for part in path.split(".")
            ),
        )

    def read(self, document: Any) -> Any:
        value = document
        for key, index in self.parts:
            if isinstance(value, dict):
                value = value.get(key, MISSING)
            elif isinstance(value, list) and index is not None and index < len(value):
                value = value[index]
            else:
                return MISSING
        return MISSING if value is None else value

    def __call__(self, context: RequestContext) -> Any:
        return self.read(context.payload)


LOOKUP_PREFIX: Final = "lookup."

# The lookup names the policy being compiled declares (allocation.policy sets it while it
# compiles): templates and conditions are compiled by strategies, plug-ins among them, whose
# builders take no such argument.
DECLARED_LOOKUPS: Final[ContextVar[frozenset[str]]] = ContextVar(
    "DECLARED_LOOKUPS", default=frozenset()
)


@dataclass(frozen=True, slots=True)
class LookupField:
    """``lookup.<name>`` (the row, or absent) or ``lookup.<name>.<property>``: read like a
    payload path, from the row the lookup found for this request."""

    name: str
    path: PayloadPath | None

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def parse(field: str) -> LookupField | None:
        """The reader of a ``lookup.`` field; None when it is not well formed."""
        name, _, rest = field[len(LOOKUP_PREFIX) :].partition(".")
        if not name.isidentifier() or not name.isascii() or (rest and not all(rest.split("."))):
            return None
        return LookupField(name, PayloadPath.parse(rest) if rest else None)

    def __call__(self, context: RequestContext) -> Any:
        rows = context.lookups
        row = None if rows is None else rows.row(self.name, context)
        if row is None:
            return MISSING
        return row if self.path is None else self.path.read(row)


def lookup_field_problem(field: str) -> str | None:
    """Why a ``lookup.`` field cannot be read under the policy being compiled, or None."""
    reader = LookupField.parse(field)
    if reader is None:
        return (
            f"'{field}' is not a lookup field: 'lookup.<name>' or 'lookup.<name>.<property>', "
            "e.g. 'lookup.inventory.customer'"
        )
    declared = DECLARED_LOOKUPS.get()
    if reader.name not in declared:
        known = ", ".join(sorted(declared)) or "none"
        return f"no lookup named '{reader.name}' in the policy's 'lookups' (declared: {known})"
    return None


def lookup(document: Any, dotted_path: str) -> Any:
    """``a.b.0`` in a JSON value (see PayloadPath)."""
    return PayloadPath.parse(dotted_path).read(document)


def _optional(value: Any) -> Any:
    return MISSING if value is None else value


# The request's named fields, as templates and conditions name them; an absent one is MISSING.
FIELD_GETTERS: Final[Mapping[str, Callable[[RequestContext], Any]]] = {
    "registrationId": operator.attrgetter("registration_id"),
    "enrollmentId": operator.attrgetter("enrollment_id"),
    "enrollmentType": operator.attrgetter("enrollment_type"),
    "attestation": lambda c: _optional(c.attestation),
    "iotEdge": operator.attrgetter("iot_edge"),
    "reprovision": operator.attrgetter("reprovision"),
    "currentHub": lambda c: _optional(c.current_hub),
    "payload": lambda c: _optional(c.payload),
}


def context_from_request(request: AllocationRequest) -> RequestContext:
    runtime = request["deviceRuntimeContext"]
    enrollment: EnrollmentGroup | IndividualEnrollment
    enrollment_type: EnrollmentType
    group = request["enrollmentGroup"]
    if group is not None:
        enrollment, enrollment_id, enrollment_type = group, group["enrollmentGroupId"], "group"
    else:
        individual = request["individualEnrollment"]
        assert individual is not None  # the contract guarantees exactly one
        enrollment, enrollment_id = individual, individual["registrationId"]
        enrollment_type = "individual"
    attestation = enrollment["attestation"]
    capabilities = enrollment["capabilities"]
    reprovision_policy = enrollment["reprovisionPolicy"]
    return RequestContext(
        registration_id=runtime["registrationId"],
        enrollment_id=enrollment_id,
        enrollment_type=enrollment_type,
        attestation=attestation["type"] if attestation is not None else None,
        iot_edge=capabilities["iotEdge"] if capabilities is not None else False,
        current_hub=runtime["currentIotHubHostName"],
        payload=runtime["payload"],
        update_hub_assignment=(
            reprovision_policy["updateHubAssignment"] if reprovision_policy is not None else True
        ),
        migrate_device_data=(
            reprovision_policy["migrateDeviceData"] if reprovision_policy is not None else True
        ),
        linked_hubs=distinct_hubs(tuple(request["linkedHubs"])),
    )


@functools.lru_cache(maxsize=1024)
def distinct_hubs(linked_hubs: tuple[str, ...]) -> tuple[str, ...]:
    """linkedHubs without duplicates (compared case-insensitively), in order. An enrollment's
    list is the same on every request, so the answer is kept."""
    seen: set[str] = set()
    linked: list[str] = []
    for hub in linked_hubs:
        key = host_key(hub)
        if key not in seen:
            seen.add(key)
            linked.append(hub)
    return tuple(linked)
