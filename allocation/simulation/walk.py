"""Every device of a fleet through an ordered list of policies (phases), counted as it goes.

Each device is taken through all the steps before the next device is read: nothing is kept
per device, so a seeded fleet (or a CSV read line by line) of any size runs in constant memory.

At each step a device in the re-registering share registers from its current hub; the answer
is its new hub. A refused registration (denied, no eligible hub) leaves the device where it
was: DPS changes no assignment it did not make. A device outside the share does not register.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from allocation.candidates import Candidate
from allocation.hostnames import host_key
from allocation.simulation.fleet import FleetDevice, in_share
from allocation.simulation.quota import ReferenceClient
from allocation.simulation.reregister import CERTAIN, UNKNOWN, Registrar

NOT_ASKED: Final = "not-asked"

# Told of every registration: (registration ID, step index, hub before, hub after, code).
Recorder = Callable[[str, int, str | None, str | None, str], None]


@dataclass
class StepCounts:
    """What one step did to the fleet."""

    # (hub before, hub after, ALLOCATED / STICKY / NEVER / NOT_ASKED / a refusal's error code)
    transitions: Counter[tuple[str | None, str | None, str]] = field(default_factory=Counter)
    moved_twice: int = 0
    # For the expected shares: devices placed by weighted hashing, by their eligible hubs;
    # devices whose hub after the step was certain, by that hub; devices of unknown odds.
    weighted: Counter[tuple[Candidate, ...]] = field(default_factory=Counter)
    certain: Counter[str | None] = field(default_factory=Counter)
    unknown: int = 0
    # Under the reference client, turned away by their hub: registrations by the 5-second slot
    # in which they first reach DPS.
    slots: Counter[int] = field(default_factory=Counter)

    def expected(self, devices: int) -> dict[str | None, float] | None:
        """Each hub's expected share after the step; None where no expectation is meaningful."""
        if self.unknown or not devices:
            return None
        shares: dict[str | None, float] = {
            hub: number / devices for hub, number in self.certain.items()
        }
        for eligible, number in self.weighted.items():
            total = sum(hub.weight for hub in eligible)
            for hub in eligible:
                shares[hub.name] = shares.get(hub.name, 0.0) + number * hub.weight / total / devices
        return shares


class Walk:
    def __init__(
        self,
        steps: Sequence[Registrar],
        linked_hubs: Sequence[str],
        share: float,
        reference: ReferenceClient | None = None,
        record: Recorder | None = None,
    ) -> None:
        self.registrars = tuple(steps)
        self.share = share
        self.reference = reference
        self.record = record
        self.devices = 0
        self.start: Counter[str | None] = Counter()
        self.steps = [StepCounts() for _ in steps]
        # A current hub named in another case than linkedHubs is the same hub.
        self._spelling = {host_key(hub): hub for hub in linked_hubs}

    def device(self, device: FleetDevice, start: str | None, *, exact: bool) -> None:
        """Take one device through every step; ``exact`` posts its whole request body (a CSV
        fleet), otherwise the seeded fleet's shared context is used."""
        if start is not None:
            start = self._spelling.get(host_key(start), start)
        self.devices += 1
        self.start[start] += 1
        registration_id = device.registration_id
        asked = in_share(registration_id, self.share)
        hub = start
        moves = 0
        for index, (registrar, counts) in enumerate(zip(self.registrars, self.steps, strict=True)):
            if not asked:
                counts.transitions[(hub, hub, NOT_ASKED)] += 1
                counts.certain[hub] += 1
                continue
            if exact:
                result = registrar.exact(device._replace(current_hub=hub))
            else:
                result = registrar.seeded(
                    registration_id, device.enrollment_id, hub, device.payload
                )
            after = hub if result.hub is None else result.hub
            if hub is not None and after != hub:
                moves += 1
                if moves > 1:
                    counts.moved_twice += 1
            counts.transitions[(hub, after, result.code)] += 1
            if self.record is not None:
                self.record(registration_id, index, hub, after, result.code)
            odds = result.odds
            if odds is CERTAIN:
                counts.certain[after] += 1
            elif odds is UNKNOWN or not odds:
                counts.unknown += 1
            else:
                counts.weighted[odds] += 1
            if self.reference is not None:
                counts.slots[self.reference.slot(registration_id, index)] += 1
            hub = after
