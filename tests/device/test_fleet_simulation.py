"""10,000 devices reboot at the same instant (a firmware roll-out, a site-wide power cut).

Each device has its own fake clock starting at 0, its own random source and its own cache (kept in
memory: ten thousand fsyncs would only slow the test), and boots through the real flow. The hubs misbehave in the ways the DPS guidance distinguishes:
one hub was deleted, one is briefly unavailable (5xx), one throttles (429), one is healthy. What
must hold: only the devices of the deleted hub call DPS, and the re-registration spread keeps
them under DPS's 1,000 registrations per minute.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from device.backoff import RetryPolicy
from device.boot import Device
from device.cache import AssignmentCache, CachedAssignment
from device.clock import FakeClock
from device.fake_transport import (
    Behaviour,
    ConnectAttempt,
    FakeSession,
    FakeTransport,
    Registration,
    assign_to,
    down_until,
    gone,
)
from device.transport import Assignment, HubThrottled, HubUnavailable

FLEET_SIZE = 10_000
DPS_QUOTA_PER_MINUTE = 1_000
HUBS = [f"hub-{name}.azure-devices.net" for name in ("deleted", "flaky", "busy", "healthy")]
DELETED, FLAKY, BUSY, HEALTHY = HUBS
REPLACEMENT = "hub-new.azure-devices.net"


class MemoryCache(AssignmentCache):
    def __init__(self, registration_id: str, assignment: Assignment) -> None:
        super().__init__(Path("unused"), registration_id)
        self.cached: CachedAssignment | None = CachedAssignment(assignment)

    def load(self) -> CachedAssignment | None:
        return self.cached

    def save(self, assignment: Assignment, *, hub_failed: bool = False) -> None:
        self.cached = CachedAssignment(assignment, hub_failed)


@dataclass(frozen=True)
class FleetRun:
    registrations: list[Registration]
    connects: dict[str, list[ConnectAttempt]]
    """registration ID -> that device's connect attempts."""
    sessions: list[FakeSession]
    hub_of: dict[str, str]
    """registration ID -> the hub the device had cached before the reboot."""

    def per_minute(self) -> Counter[int]:
        return Counter(int(r.time // 60) for r in self.registrations)


def reboot_fleet(hubs: dict[str, Behaviour], retry: RetryPolicy) -> FleetRun:
    registrations: list[Registration] = []
    connects: dict[str, list[ConnectAttempt]] = {}
    sessions: list[FakeSession] = []
    hub_of: dict[str, str] = {}
    for number in range(FLEET_SIZE):
        registration_id = f"device-{number:05d}"
        hub = HUBS[number % len(HUBS)]
        hub_of[registration_id] = hub
        cache = MemoryCache(registration_id, Assignment(hub, registration_id, {}))
        clock = FakeClock()
        transport = FakeTransport(
            registration_id, clock, assign_to(REPLACEMENT), hubs=hubs, current_hub=hub
        )
        device = Device(transport, cache, retry=retry, clock=clock, rng=random.Random(number))
        session = device.boot()
        assert isinstance(session, FakeSession)
        registrations += transport.registrations
        connects[registration_id] = transport.connects
        sessions.append(session)
    return FleetRun(registrations, connects, sessions, hub_of)


@pytest.fixture(scope="module")
def mixed_failures() -> FleetRun:
    hubs = {
        DELETED: gone(),
        FLAKY: down_until(120, HubUnavailable("503 Service Unavailable")),
        BUSY: down_until(60, HubThrottled(retry_after=30)),
    }
    return reboot_fleet(hubs, RetryPolicy())


def test_only_devices_whose_hub_failed_call_dps(mixed_failures: FleetRun) -> None:
    callers = Counter(
        mixed_failures.hub_of[r.registration_id] for r in mixed_failures.registrations
    )
    assert callers == {DELETED: FLEET_SIZE // 4}
    assert all(r.current_hub == DELETED for r in mixed_failures.registrations)


def test_every_device_ends_connected(mixed_failures: FleetRun) -> None:
    hubs = Counter(session.hub for session in mixed_failures.sessions)
    assert hubs == {REPLACEMENT: 2_500, FLAKY: 2_500, BUSY: 2_500, HEALTHY: 2_500}


def test_devices_of_the_flaky_hub_backed_off_until_it_recovered(mixed_failures: FleetRun) -> None:
    flaky = [a for r, a in mixed_failures.connects.items() if mixed_failures.hub_of[r] == FLAKY]
    assert all(attempts[-1].time >= 120 for attempts in flaky)
    assert all(attempts[1].time - attempts[0].time >= 5 for attempts in flaky)
    first_retries = {attempts[1].time for attempts in flaky}
    assert len(first_retries) == len(flaky)  # jittered: no two devices retry together


def test_devices_of_the_busy_hub_waited_for_retry_after(mixed_failures: FleetRun) -> None:
    busy = [a for r, a in mixed_failures.connects.items() if mixed_failures.hub_of[r] == BUSY]
    gaps = [b.time - a.time for attempts in busy for a, b in itertools.pairwise(attempts)]
    assert min(gaps) >= 30
    assert all(attempts[-1].time >= 60 for attempts in busy)


def test_the_re_registrations_are_spread_under_the_dps_quota(mixed_failures: FleetRun) -> None:
    per_minute = mixed_failures.per_minute()
    print(
        f"\nmixed failures: {len(mixed_failures.registrations)} DPS calls over "
        f"{len(per_minute)} minutes, peak {max(per_minute.values())}/min"
    )
    assert max(per_minute.values()) < DPS_QUOTA_PER_MINUTE / 4
    assert sorted(per_minute) == list(range(15))  # the 900 s spread: minutes 0 to 14


def test_a_whole_fleet_turned_away_still_stays_under_the_quota() -> None:
    run = reboot_fleet(dict.fromkeys(HUBS, gone()), RetryPolicy())
    per_minute = run.per_minute()
    print(
        f"\nwhole fleet turned away: {len(run.registrations)} DPS calls over "
        f"{len(per_minute)} minutes, peak {max(per_minute.values())}/min"
    )
    assert len(run.registrations) == FLEET_SIZE
    assert max(per_minute.values()) < DPS_QUOTA_PER_MINUTE


def test_without_the_spread_the_same_reboot_would_blow_the_quota() -> None:
    run = reboot_fleet(dict.fromkeys(HUBS, gone()), RetryPolicy(reregister_spread=0))
    assert run.per_minute() == {0: FLEET_SIZE}
