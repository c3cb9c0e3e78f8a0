"""One device's registration, as DPS would post it to the webhook, and the webhook's answer.

:func:`request_document` builds the DPS request body: the enrollment with its reprovision policy
(``--reprovision``), ``deviceRuntimeContext`` with ``currentIotHubHostName`` when the device has a
hub (DPS sends it only then), and ``linkedHubs``. :meth:`Registrar.exact` posts that body to
:func:`allocation.webhook.handle`, the entry point every host calls.

A seeded fleet differs only in registration IDs and current hubs, so :meth:`Registrar.seeded`
parses one such body per current hub and replaces the registration ID in the context it gives
before calling :func:`allocation.decision.decide`, which is what ``handle`` calls after parsing.
Measured on this project's machine: 32 µs a device through ``handle`` with the body encoded, 10 µs
through the shared context; a million devices over five phases is then a minute rather than
three. Seeded IDs (``sim-`` and 16 hex digits) are valid in any request, and
tests/test_simulation_reregister.py checks both paths answer alike.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, NamedTuple

from allocation.candidates import Candidate
from allocation.context import RequestContext, context_from_request
from allocation.decision import Decision, decide
from allocation.errors import AllocationError
from allocation.lookups import with_lookups
from allocation.policy import Policy
from allocation.requests import parse_request
from allocation.simulation.fleet import FleetDevice
from allocation.webhook import handle

Reprovision = Literal["never", "reset", "migrate"]

# The enrollment's reprovision policy as DPS sends it (dps-webhook.md, "reprovisionPolicy"):
# never reprovision; reprovision and reset to initial state; reprovision and migrate data.
REPROVISION_POLICIES: Final[Mapping[str, Mapping[str, bool]]] = {
    "never": {"updateHubAssignment": False, "migrateDeviceData": False},
    "reset": {"updateHubAssignment": True, "migrateDeviceData": False},
    "migrate": {"updateHubAssignment": True, "migrateDeviceData": True},
}

# Outcome codes other than a refusal's error code.
ALLOCATED: Final = "allocated"
STICKY: Final = "sticky"
NEVER: Final = "never-reprovision"
INTERNAL_ERROR: Final = "internal_error"

# What a device's expected outcome is: the eligible candidates of weighted hashing (each hub
# by weight / their total), CERTAIN (the outcome could be nothing else: a static hub, a kept
# hub, a refusal), or UNKNOWN (a strategy whose odds this tool cannot state).
CERTAIN: Final[tuple[Candidate, ...] | None] = None
UNKNOWN: Final[tuple[Candidate, ...]] = ()


class Result(NamedTuple):
    hub: str | None  # the hub answered; None for a refusal
    code: str  # ALLOCATED, STICKY, NEVER, or the refusal's error code
    odds: tuple[Candidate, ...] | None  # see CERTAIN and UNKNOWN


def request_document(
    device: FleetDevice, linked_hubs: Sequence[str], reprovision: Reprovision
) -> dict[str, Any]:
    """The body DPS posts for this device (the shape of tests/fixtures' captured requests)."""
    enrollment: dict[str, Any] = {
        "attestation": {"type": "symmetricKey"},
        "capabilities": {"iotEdge": False},
        "reprovisionPolicy": dict(REPROVISION_POLICIES[reprovision]),
        "allocationPolicy": "custom",
    }
    runtime: dict[str, Any] = {"registrationId": device.registration_id, "symmetricKey": {}}
    if device.current_hub is not None:
        runtime["currentIotHubHostName"] = device.current_hub
        runtime["currentDeviceId"] = device.registration_id
    if device.payload is not None:
        runtime["payload"] = device.payload
    document: dict[str, Any] = {}
    if device.enrollment_id:
        document["enrollmentGroup"] = {"enrollmentGroupId": device.enrollment_id, **enrollment}
    else:
        document["individualEnrollment"] = {"registrationId": device.registration_id, **enrollment}
    document["deviceRuntimeContext"] = runtime
    document["linkedHubs"] = list(linked_hubs)
    return document


def _no_line(level: int, line: str) -> None:
    # A simulation answers millions of requests: the webhook's one line per answer is not wanted.
    return None


def result_of(decision: Decision) -> Result:
    hub = decision.hub.name
    if decision.reason != "allocated":
        return Result(hub, STICKY if decision.reason == "sticky" else NEVER, CERTAIN)
    last = decision.steps[-1]
    if last.strategy == "weighted":
        return Result(hub, ALLOCATED, last.after_drain)
    if last.strategy == "static":
        return Result(hub, ALLOCATED, CERTAIN)
    return Result(hub, ALLOCATED, UNKNOWN)


class Registrar:
    """Registers devices under one policy, one set of linked hubs and one reprovision policy."""

    def __init__(self, policy: Policy, linked_hubs: Sequence[str], reprovision: Reprovision):
        self.policy = policy
        self.linked_hubs = tuple(linked_hubs)
        self.reprovision: Reprovision = reprovision
        self._contexts: dict[tuple[str, str | None], Callable[..., RequestContext]] = {}

    def exact(self, device: FleetDevice) -> Result:
        """The webhook's answer to this device's request body, through ``handle``."""
        document = request_document(device, self.linked_hubs, self.reprovision)
        body = json.dumps(document, separators=(",", ":")).encode()
        response = handle(body, self.policy, log=_no_line)
        if response.decision is not None:
            return result_of(response.decision)
        return Result(None, str(response.body["error"]), CERTAIN)

    def seeded(
        self, registration_id: str, enrollment_id: str, current_hub: str | None, payload: Any
    ) -> Result:
        """The same answer for a device of a seeded fleet (see the module's docstring)."""
        device = self._contexts.get((enrollment_id, current_hub))
        if device is None:
            device = self._context(enrollment_id, current_hub, payload)
        try:
            context = device(registration_id=registration_id)
            return result_of(decide(self.policy, with_lookups(self.policy.lookups, context)))
        except AllocationError as error:
            return Result(None, error.code, CERTAIN)
        except Exception:
            # A defect, which the webhook answers with 500; count it rather than stop.
            return Result(None, INTERNAL_ERROR, CERTAIN)

    def _context(
        self, enrollment_id: str, current_hub: str | None, payload: Any
    ) -> Callable[..., RequestContext]:
        template = FleetDevice("sim-0000000000000000", enrollment_id, current_hub, payload)
        document = request_document(template, self.linked_hubs, self.reprovision)
        context = context_from_request(parse_request(json.dumps(document).encode()))
        fixed = context._asdict()
        del fixed["registration_id"]
        device = functools.partial(RequestContext, **fixed)
        self._contexts[(enrollment_id, current_hub)] = device
        return device


def check_template(enrollment_id: str, linked_hubs: Sequence[str], payload: Any) -> None:
    """Raise the webhook's error if the seeded devices' request is not one it reads (an empty
    enrollment ID, a payload nested too deep, ...)."""
    template = FleetDevice("sim-0000000000000000", enrollment_id, None, payload)
    parse_request(json.dumps(request_document(template, linked_hubs, "migrate")).encode())
