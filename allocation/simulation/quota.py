"""Registrations against the DPS quota, and how the reference device client meets it.

DPS allows 1,000 device registrations per minute per service unit, and as many operations
(every service API call, registrations included; status polling is not billed). Source:
Microsoft Learn, "Azure subscription and service limits" > "IoT Hub Device Provisioning
Service limits" (the same table as "IoT Hub DPS quotas and limits" in the DPS docs), rates
"Device registrations: 1,000/min/service unit" and "Operations: 1,000/min/service unit", both
adjustable on request. Beyond them DPS refuses the call (429) and the device tries again later.

The reference client (``device/``, ``device.backoff.RetryPolicy``) reaches DPS in one of two
ways, and :class:`ReferenceClient` follows both with its own rules and numbers:

- *asked to reprovision* (the ``reprovision`` direct method, ``Device.reprovision``): it
  registers at once;
- *turned away by its hub*: it waits ``reregister_delay``, uniform over ``reregister_spread``
  (900 s), the spread tests/device/test_fleet_simulation.py checks keeps 10,000 rebooting
  devices under 1,000 a minute.

Either way, a registration DPS refuses is retried after ``server_error_delay(n)`` (5 s plus a
uniform share of a window that doubles from 5 s, at most 300 s). :func:`reference_figures`
follows the registrations in 5-second slots: each slot accepts a twelfth of the per-minute
quota, the rest fail and come back spread as the retry delay spreads them. Counts are carried
as expected values (a fluid model), so a million devices take a few seconds and no memory per
device; tests/test_simulation_quota.py checks it against the client's own random draws.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final, Protocol

REGISTRATIONS_PER_MINUTE_PER_UNIT: Final = 1_000
QUOTA_SOURCE: Final = (
    "https://learn.microsoft.com/azure/azure-resource-manager/management/"
    "azure-subscription-service-limits#iot-hub-device-provisioning-service-limits"
)
# The retry delay's floor: a refused registration never comes back in the slot it failed in.
SLOT_SECONDS: Final = 5
SLOTS_PER_MINUTE: Final = 60 // SLOT_SECONDS


def minutes_at_quota(registrations: int, units: int) -> float:
    """The shortest time DPS takes to accept ``registrations`` at its quota."""
    return registrations / (REGISTRATIONS_PER_MINUTE_PER_UNIT * units)


class RetryRules(Protocol):
    @property
    def floor(self) -> float: ...
    @property
    def base(self) -> float: ...
    @property
    def cap(self) -> float: ...
    @property
    def reregister_spread(self) -> float: ...

    def reregister_delay(self, rng: random.Random) -> float: ...


class ReferenceClient:
    """The reference client's retry rules, and when each device turned away calls DPS."""

    def __init__(self) -> None:
        # The reference client is a separate package (not deployed with the function): it is
        # only needed when asked for.
        from device.backoff import RetryPolicy  # noqa: PLC0415 - see above

        self.retry: RetryRules = RetryPolicy()
        self.spread_seconds = self.retry.reregister_spread
        # Where a registration refused after n earlier failures comes back, in slots from the
        # one it failed in; beyond 6 failures the window stays at its cap.
        self.levels = 1 + next(
            n for n in range(64) if self.retry.base * 2**n >= self.retry.cap - self.retry.floor
        )
        self.comebacks = [self._comeback(n) for n in range(self.levels)]

    def slot(self, registration_id: str, step: int) -> int:
        """The slot, from the start of the step, in which a device turned away calls DPS."""
        # Each device's own random source, seeded by its ID and the step: repeatable runs.
        rng = random.Random(f"{step}\n{registration_id}")
        return int(self.retry.reregister_delay(rng) // SLOT_SECONDS)

    def _comeback(self, failures: int) -> list[tuple[int, float]]:
        """``server_error_delay(failures)`` from a uniform point of a slot, in whole slots."""
        retry = self.retry
        window = min(retry.cap - retry.floor, retry.base * 2**failures)
        mass: Counter[int] = Counter()
        positions, delays = 10, 200
        for i in range(positions):
            start = SLOT_SECONDS * (i + 0.5) / positions
            for j in range(delays):
                delay = retry.floor + window * (j + 0.5) / delays
                mass[int((start + delay) // SLOT_SECONDS)] += 1
        total = positions * delays
        return [(offset, count / total) for offset, count in sorted(mass.items())]


def reference_figures(
    client: ReferenceClient, arrivals: Mapping[int, float], units: int
) -> dict[str, Any]:
    """How the registrations arriving in each slot (``arrivals``) get through DPS's quota."""
    registrations = sum(arrivals.values())
    if not registrations:
        return {"minutes": 0.0, "peakPerMinute": 0, "dpsCalls": 0, "refused": 0}
    per_slot = REGISTRATIONS_PER_MINUTE_PER_UNIT * units / SLOTS_PER_MINUTE
    top = client.levels - 1
    pending: dict[int, list[float]] = {}
    for slot, number in arrivals.items():
        pending.setdefault(slot, [0.0] * client.levels)[0] += number
    calls_per_minute: dict[int, float] = {}
    accepted = calls = 0.0
    done_slot = 0
    slot, last = 0, max(pending)
    while slot <= last:
        waiting = pending.pop(slot, None)
        if waiting is not None:
            total = sum(waiting)
            calls += total
            minute = slot // SLOTS_PER_MINUTE
            calls_per_minute[minute] = calls_per_minute.get(minute, 0.0) + total
            taken = min(total, per_slot)
            accepted += taken
            if accepted < registrations - 0.5:
                done_slot = slot + 1
            refused = (total - taken) / total
            if refused > 0:
                for failures, number in enumerate(waiting):
                    if number:
                        again = min(failures + 1, top)
                        for offset, share in client.comebacks[failures]:
                            target = pending.setdefault(slot + offset, [0.0] * client.levels)
                            target[again] += number * refused * share
                            last = max(last, slot + offset)
        slot += 1
    return {
        "minutes": max(done_slot, 1) * SLOT_SECONDS / 60,
        "peakPerMinute": round(max(calls_per_minute.values())),
        "dpsCalls": round(calls),
        "refused": round(calls - registrations),
    }


def reference_steps(
    client: ReferenceClient, turned_away: Mapping[int, int], units: int
) -> dict[str, Any]:
    """Both ways a step's registrations reach DPS under the reference client."""
    registrations = sum(turned_away.values())
    return {
        "retry": {
            "floorSeconds": client.retry.floor,
            "capSeconds": client.retry.cap,
            "spreadSeconds": client.spread_seconds,
        },
        "askedToReprovision": reference_figures(client, {0: registrations}, units),
        "turnedAway": reference_figures(client, turned_away, units),
    }
