"""The AllocationResponse for a decision: the hub, and the twin and payload rendered for it."""

from __future__ import annotations

from typing import Any

from allocation.context import MISSING, RequestContext
from allocation.decision import Decision
from allocation.errors import InvalidRequest, Problem
from allocation.hostnames import host_key
from allocation.limits import MAX_RENDERED_BYTES
from allocation.templates import JsonTemplate, RenderedTooLarge, Resolve


def twin_applies(context: RequestContext, hub_name: str) -> bool:
    """Whether DPS applies an initial twin with this answer (the DPS reprovisioning docs).

    DPS applies it on initial assignment, and on reprovisioning only when the hub changes under
    *reprovision and reset to initial state*; in every other case it ignores it.
    """
    if not context.reprovision:
        return True
    return (
        context.update_hub_assignment
        and not context.migrate_device_data
        and host_key(hub_name) != context.current_hub_key
    )


def render_response(decision: Decision, context: RequestContext) -> dict[str, Any]:
    hub = decision.hub

    def resolve(name: str) -> Any:
        if name == "hub":
            return hub.name
        if name == "hub.region":
            return hub.region if hub.region is not None else MISSING
        return context.value(name)

    response: dict[str, Any] = {"iotHubHostName": hub.name}
    allocation = decision.allocation
    if allocation.initial_twin is not None and twin_applies(context, hub.name):
        response["initialTwin"] = _bounded(allocation.initial_twin, resolve, "initialTwin")
    if allocation.payload is not None:
        response["payload"] = _bounded(allocation.payload, resolve, "payload")
    return response


def _bounded(template: JsonTemplate, resolve: Resolve, name: str) -> Any:
    try:
        return template.render(resolve, MAX_RENDERED_BYTES)
    except RenderedTooLarge:
        # Rendering stopped where it crossed the limit: the full size is never computed.
        raise InvalidRequest(
            f"with this device's values the {name} would be over the "
            f"{MAX_RENDERED_BYTES}-byte limit",
            [Problem("deviceRuntimeContext.payload", f"values too large for the {name}")],
        ) from None
