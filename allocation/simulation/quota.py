"""Registrations against the DPS quota, and how the reference device client spreads them.

DPS allows 1,000 device registrations per minute per service unit, and as many operations
(every service API call, registrations included; status polling is not billed). Source:
Microsoft Learn, "Azure subscription and service limits" > "IoT Hub Device Provisioning
Service limits" (the same table as "IoT Hub DPS quotas and limits" in the DPS docs), rates
"Device registrations: 1,000/min/service unit" and "Operations: 1,000/min/service unit", both
adjustable on request. Beyond them DPS answers 429 and the device retries later.

The reference client (``device/``) does not register the instant it is asked: a device turned
away by its hub waits ``RetryPolicy.reregister_delay``, uniform over ``reregister_spread``
(900 s), the rule tests/device/test_fleet_simulation.py checks keeps 10,000 rebooting devices
under 1,000 a minute. :class:`ReferenceSpread` draws that delay for every registration.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Final, Protocol

REGISTRATIONS_PER_MINUTE_PER_UNIT: Final = 1_000
QUOTA_SOURCE: Final = (
    "https://learn.microsoft.com/azure/azure-resource-manager/management/"
    "azure-subscription-service-limits#iot-hub-device-provisioning-service-limits"
)


def minutes_at_quota(registrations: int, units: int) -> float:
    """The shortest time DPS takes to accept ``registrations`` at its quota."""
    return registrations / (REGISTRATIONS_PER_MINUTE_PER_UNIT * units)


class _Delay(Protocol):
    def reregister_delay(self, rng: random.Random) -> float: ...


class ReferenceSpread:
    """When each registration of a step reaches DPS under the reference client's rules."""

    def __init__(self) -> None:
        # The reference client is a separate package (not deployed with the function): it is
        # only needed when asked for.
        from device.backoff import RetryPolicy  # noqa: PLC0415 - see above

        self.retry: _Delay = RetryPolicy()
        self.spread_seconds: float = RetryPolicy().reregister_spread

    def minute(self, registration_id: str, step: int) -> int:
        """The minute, from the start of the step, in which this device calls DPS."""
        # Each device's own random source, seeded by its ID and the step: repeatable runs.
        rng = random.Random(f"{step}\n{registration_id}")
        return int(self.retry.reregister_delay(rng) // 60)


def spread_figures(minutes: Counter[int], units: int) -> dict[str, float | int | bool]:
    """The per-minute load of one step under the reference client, against the quota."""
    quota = REGISTRATIONS_PER_MINUTE_PER_UNIT * units
    registrations = sum(minutes.values())
    if not registrations:
        return {"minutes": 0, "peakPerMinute": 0, "overQuota": False}
    peak = max(minutes.values())
    # A minute over the quota gets 429s for its excess, which retry later: the step then takes
    # at least as long as the quota allows, and never less than the spread itself.
    spread = max(minutes) + 1
    return {
        "minutes": max(spread, math.ceil(registrations / quota)),
        "peakPerMinute": peak,
        "overQuota": peak > quota,
    }
