"""5. Lookups: an allocation reading a device inventory in Table Storage (Azurite on loopback).

The policy is example 05's shape: an allow-list (``{"lookup.inventory": {"exists": false}}``
denies) and the hub and customer tag from the device's row. Its floor is the same policy
reading the same two values from the device's payload instead (``payload.hub``,
``payload.customer``): the lookup's own cost is the difference.

- **warm**: the row is in the cache (after the first request); target at most 1.2x the floor.
- **cold**: nothing cached (``cacheSeconds`` and ``missingCacheSeconds`` 0), so every request
  reads the row from Azurite over loopback HTTP: what a device costs the first time it
  registers.

Both go through the core entry point, ``allocation.webhook.handle``, with logging on at INFO
into a handler that formats and drops each line, as in the in-process benchmark. Azurite is
started from ``.azurite/`` as the tests start it; without it the figures are skipped.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from benchmarks import bodies
from benchmarks.in_process import info_logging
from benchmarks.report import Figure, Target, skipped
from benchmarks.timing import interleaved

GROUP = "lookups"
TABLE = "benchdevices"
HUB = bodies.HUBS[3]
CUSTOMER = "contoso"


def _policy(source: str, **lookup: Any) -> dict[str, Any]:
    """The allow-list plus the hub and customer from ``source``: a lookup, or the payload
    (where the allow-list tests ``payload.customer``: the payload itself is no field)."""
    listed = source if source.startswith("lookup.") else f"{source}.customer"
    document: dict[str, Any] = {
        "default": {
            "strategy": "rules",
            "rules": [
                {"name": "not-in-inventory", "when": {listed: {"exists": False}}, "then": "deny"}
            ],
            "otherwise": {
                "strategy": "static",
                "hub": f"{{{source}.hub}}",
                "initialTwin": {"tags": {"customer": f"{{{source}.customer}}"}},
                "fallback": {"strategy": "weighted"},
            },
        }
    }
    if source.startswith("lookup."):
        document["lookups"] = {
            "inventory": {
                "table": TABLE,
                "partitionKey": "{enrollmentId}",
                "rowKey": "{registrationId}",
                **lookup,
            }
        }
    return document


def _body(payload: Any = None) -> tuple[bytes, dict[str, Any]]:
    request = copy.deepcopy(json.loads(bodies.default_body()))
    if payload is not None:
        request["deviceRuntimeContext"]["payload"] = payload
    return bodies.encode(request), request


def run(quick: bool) -> list[Figure]:
    try:
        from tests.azurite import AzuriteServer, azurite_executable  # noqa: PLC0415

        azurite_executable()
    except (ImportError, RuntimeError) as error:
        reason = f"skipped: {error}"
        return [
            skipped(GROUP, f"{GROUP}.warm", "allocation with a warm-cache lookup", "us", reason),
            skipped(GROUP, f"{GROUP}.cold", "allocation with a cold lookup", "us", reason),
        ]
    server = AzuriteServer()
    server.start()
    saved = os.environ.get("ALLOCATION_STORAGE")
    os.environ["ALLOCATION_STORAGE"] = server.connection_string
    try:
        return _measure(server.connection_string, quick)
    finally:
        if saved is None:
            os.environ.pop("ALLOCATION_STORAGE", None)
        else:
            os.environ["ALLOCATION_STORAGE"] = saved
        server.stop()


def _measure(connection_string: str, quick: bool) -> list[Figure]:
    from azure.data.tables import TableServiceClient  # noqa: PLC0415

    from allocation.policy import compile_policy  # noqa: PLC0415
    from allocation.webhook import handle  # noqa: PLC0415

    lookup_body, request = _body()
    enrollment = request["enrollmentGroup"]["enrollmentGroupId"]
    registration = request["deviceRuntimeContext"]["registrationId"]
    table = TableServiceClient.from_connection_string(connection_string)
    table.create_table_if_not_exists(TABLE).upsert_entity(
        {"PartitionKey": enrollment, "RowKey": registration, "hub": HUB, "customer": CUSTOMER}
    )
    payload_body, _ = _body({"hub": HUB, "customer": CUSTOMER})

    floor = compile_policy(_policy("payload"))
    warm = compile_policy(_policy("lookup.inventory"))
    cold = compile_policy(_policy("lookup.inventory", cacheSeconds=0, missingCacheSeconds=0))
    expected = handle(payload_body, floor).body
    for name, policy in (("warm", warm), ("cold", cold)):
        answer = handle(lookup_body, policy).body
        if answer != expected or answer["iotHubHostName"] != HUB:
            raise RuntimeError(f"{name}: the lookup policy answered {answer}, not {expected}")

    runs, seconds = (3, 0.02) if quick else (25, 0.1)
    with info_logging():
        fast = interleaved(
            {
                "floor": lambda: handle(payload_body, floor),
                "warm": lambda: handle(lookup_body, warm),
            },
            runs,
            seconds,
        )
        slow = interleaved(
            {
                "floor": lambda: handle(payload_body, floor),
                "cold": lambda: handle(lookup_body, cold),
            },
            max(3, runs // 3),
            seconds * 3,
        )
    floor_id = f"{GROUP}.floor"
    return [
        Figure(
            GROUP,
            floor_id,
            "floor: the same policy reading hub and customer from the payload",
            "us",
            [s * 1e6 for s in fast["floor"]],
        ),
        Figure(
            GROUP,
            f"{GROUP}.warm",
            "allocation with a warm-cache lookup",
            "us",
            [s * 1e6 for s in fast["warm"]],
            baseline=floor_id,
            target=Target(1.2),
        ),
        Figure(
            GROUP,
            f"{GROUP}.cold",
            "allocation with a cold lookup (Azurite, loopback)",
            "us",
            [s * 1e6 for s in slow["cold"]],
            baseline=floor_id,
            note="one get_entity over loopback HTTP per request",
        ),
    ]
