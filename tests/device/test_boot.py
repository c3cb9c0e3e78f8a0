from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from device_doubles import HUB_EU, HUB_US, REGISTRATION_ID, SEED, FixedProbe

from device.backoff import RetryPolicy
from device.boot import Device
from device.cache import AssignmentCache, CachedAssignment
from device.clock import FakeClock
from device.fake_transport import FakeSession, FakeTransport, failing
from device.transport import (
    Assignment,
    HubRejected,
    HubThrottled,
    HubUnavailable,
    RegistrationFailed,
)

MakeDevice = Callable[..., Device]
CACHED = Assignment(HUB_US, REGISTRATION_ID, {"hubs": [HUB_US, HUB_EU]})


def rng() -> random.Random:
    """The same random source the device under test was given, to compute its exact schedule."""
    return random.Random(SEED)


def test_a_normal_boot_with_a_good_cache_connects_to_the_cached_hub_without_dps(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport, clock: FakeClock
) -> None:
    cache.save(CACHED)

    session = make_device().boot()

    assert transport.registrations == []
    assert [attempt.hub for attempt in transport.connects] == [HUB_US]
    assert isinstance(session, FakeSession)
    assert (session.hub, session.device_id) == (HUB_US, REGISTRATION_ID)
    assert clock.sleeps == []


def test_the_first_boot_registers_through_dps_at_once_and_caches_the_answer(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport, clock: FakeClock
) -> None:
    device = make_device(region="westeurope")
    device.boot()

    assert [r.payload for r in transport.registrations] == [{"region": "westeurope"}]
    assert [attempt.hub for attempt in transport.connects] == [HUB_EU]
    assert clock.sleeps == []
    assert cache.load() == CachedAssignment(
        Assignment(HUB_EU, REGISTRATION_ID, {"hubs": [HUB_EU, HUB_US]})
    )
    assert device.assignment == Assignment(HUB_EU, REGISTRATION_ID, {"hubs": [HUB_EU, HUB_US]})


def test_a_corrupt_cache_means_provision(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport
) -> None:
    cache.path.write_text('{"version": 1, "assignedHub": ', encoding="utf-8")

    make_device().boot()

    assert len(transport.registrations) == 1
    assert [attempt.hub for attempt in transport.connects] == [HUB_EU]


def test_429_is_retried_on_the_same_hub_only_after_retry_after(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport, clock: FakeClock
) -> None:
    cache.save(CACHED)
    transport.hubs = {HUB_US: failing(HubThrottled(30), HubThrottled(12.5), HubThrottled(60))}

    make_device().boot()

    draws = rng()
    assert clock.sleeps == [
        30 + draws.uniform(0, 3.0),
        12.5 + draws.uniform(0, 1.25),
        60 + draws.uniform(0, 6.0),
    ]
    assert [a.time for a in transport.connects] == pytest.approx(
        [0, clock.sleeps[0], sum(clock.sleeps[:2]), sum(clock.sleeps)]
    )
    assert all(
        later.time - earlier.time >= retry_after
        for earlier, later, retry_after in zip(
            transport.connects, transport.connects[1:], (30, 12.5, 60), strict=False
        )
    )
    assert transport.registrations == []
    assert {a.hub for a in transport.connects} == {HUB_US}


def test_5xx_is_retried_with_exponential_back_off_and_full_jitter_from_5_seconds(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport, clock: FakeClock
) -> None:
    cache.save(CACHED)
    transport.hubs = {HUB_US: failing(*[HubUnavailable("503 Service Unavailable")] * 9)}

    make_device().boot()

    draws = rng()
    windows = [5, 10, 20, 40, 80, 160, 295, 295, 295]  # min(cap - floor, 5 * 2**n)
    assert clock.sleeps == [5 + draws.uniform(0, window) for window in windows]
    assert clock.sleeps[0] >= 5
    assert all(5 <= delay <= 300 for delay in clock.sleeps)
    assert transport.registrations == []
    assert len(transport.connects) == 10


def test_jitter_differs_between_devices_so_a_fleet_does_not_retry_in_step(
    cache: AssignmentCache, clock: FakeClock
) -> None:
    first_retries = []
    for seed in range(50):
        clock = FakeClock()
        transport = FakeTransport(REGISTRATION_ID, clock, lambda *_: CACHED)
        transport.hubs = {HUB_US: failing(HubUnavailable("500"))}
        cache.save(CACHED)
        Device(transport, cache, clock=clock, rng=random.Random(seed)).boot()
        first_retries.append(clock.sleeps[0])
    assert len(set(first_retries)) == 50
    assert all(5 <= delay <= 10 for delay in first_retries)


def test_a_429_without_retry_after_is_treated_like_a_5xx(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport, clock: FakeClock
) -> None:
    cache.save(CACHED)
    transport.hubs = {HUB_US: failing(HubThrottled(None), HubThrottled(None))}

    make_device().boot()

    draws = rng()
    assert clock.sleeps == [5 + draws.uniform(0, 5), 5 + draws.uniform(0, 10)]


@pytest.mark.parametrize(
    "error",
    [
        HubRejected("401 Unauthorized"),
        HubRejected("403 Forbidden: device disabled"),
        HubRejected("404 Device not found"),
        HubRejected("hub-us.azure-devices.net does not resolve"),
    ],
    ids=["401", "403", "404", "hub-gone"],
)
def test_any_other_hub_error_re_registers_through_dps_after_a_spread_delay(
    make_device: MakeDevice,
    cache: AssignmentCache,
    transport: FakeTransport,
    clock: FakeClock,
    error: HubRejected,
) -> None:
    cache.save(CACHED)
    transport.current_hub = HUB_US
    transport.hubs = {HUB_US: failing(error)}

    session = make_device(region="westeurope").boot()

    spread = rng().uniform(0, 900)
    assert clock.sleeps == [spread]  # no retry of the hub itself
    assert [(r.time, r.current_hub) for r in transport.registrations] == [(spread, HUB_US)]
    assert [a.hub for a in transport.connects] == [HUB_US, HUB_EU]
    assert isinstance(session, FakeSession)
    assert session.hub == HUB_EU
    loaded = cache.load()
    assert loaded is not None
    assert (loaded.assignment.hub, loaded.hub_failed) == (HUB_EU, False)


def test_a_hub_still_failing_after_the_last_retry_sends_the_device_back_to_dps(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport, clock: FakeClock
) -> None:
    cache.save(CACHED)
    transport.hubs = {HUB_US: failing(*[HubUnavailable("500")] * 4)}

    make_device(retry=RetryPolicy(max_hub_retries=3)).boot()

    draws = rng()
    backoff = [5 + draws.uniform(0, window) for window in (5, 10, 20)]
    assert clock.sleeps == [*backoff, draws.uniform(0, 900)]
    assert len(transport.registrations) == 1
    assert [a.hub for a in transport.connects] == [HUB_US] * 4 + [HUB_EU]


def test_a_boot_after_the_hub_failed_goes_to_dps_without_trying_the_hub_again(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport, clock: FakeClock
) -> None:
    cache.save(CACHED, hub_failed=True)

    make_device().boot()

    assert [a.hub for a in transport.connects] == [HUB_EU]
    assert len(transport.registrations) == 1
    assert clock.sleeps == [rng().uniform(0, 900)]


def test_a_failed_registration_is_retried_with_back_off(
    make_device: MakeDevice, transport: FakeTransport, clock: FakeClock
) -> None:
    transport.dps = failing(RegistrationFailed("status 'failed'"), RegistrationFailed("timeout"))

    make_device().boot()

    draws = rng()
    assert clock.sleeps == [5 + draws.uniform(0, 5), 5 + draws.uniform(0, 10)]
    assert len(transport.registrations) == 3
    assert [a.hub for a in transport.connects] == [HUB_EU]


def test_a_newly_assigned_hub_that_refuses_the_device_is_not_hammered(
    make_device: MakeDevice, transport: FakeTransport, clock: FakeClock
) -> None:
    transport.hubs = {HUB_EU: failing(HubRejected("401"), HubRejected("401"))}

    make_device().boot()

    draws = rng()
    assert clock.sleeps == [draws.uniform(0, 900), draws.uniform(0, 900)]
    assert len(transport.registrations) == 3
    assert len(transport.connects) == 3


def test_reprovision_registers_through_dps_even_with_a_good_cache_and_a_healthy_hub(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport, clock: FakeClock
) -> None:
    cache.save(CACHED)
    transport.current_hub = HUB_US
    device = make_device()
    first = device.boot()

    second = device.reprovision()

    assert isinstance(first, FakeSession)
    assert first.closed
    assert isinstance(second, FakeSession)
    assert second.hub == HUB_EU
    assert [(r.time, r.current_hub) for r in transport.registrations] == [(0, HUB_US)]
    assert clock.sleeps == []  # on demand: no spread delay
    loaded = cache.load()
    assert loaded is not None
    assert loaded.assignment.hub == HUB_EU


def test_the_reprovision_direct_method_asks_the_device_to_reprovision(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport
) -> None:
    cache.save(CACHED)
    device = make_device()
    session = device.boot()
    assert isinstance(session, FakeSession)

    assert session.invoke("reprovision") == (202, {"reprovisioning": True})
    assert device.reprovision_requested.is_set()
    assert transport.registrations == []  # the handler only asks; the application acts

    device.reprovision()

    assert not device.reprovision_requested.is_set()
    assert len(transport.registrations) == 1
    assert transport.sessions[-1].handler == device.handle_direct_method


def test_other_direct_methods_are_not_found(
    make_device: MakeDevice, cache: AssignmentCache
) -> None:
    cache.save(CACHED)
    device = make_device()
    session = device.boot()
    assert isinstance(session, FakeSession)

    assert session.invoke("reboot", {"delay": 1}) == (404, {"error": "unknown method 'reboot'"})
    assert not device.reprovision_requested.is_set()


def test_reprovision_without_any_cache_still_registers(
    make_device: MakeDevice, transport: FakeTransport
) -> None:
    make_device().reprovision()
    assert len(transport.registrations) == 1


def test_the_registration_payload_carries_region_fields_and_measured_latency(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport
) -> None:
    cache.save(CACHED)
    probe = FixedProbe({HUB_US: 31.5, HUB_EU: 12.0})
    device = make_device(
        region="westeurope", payload={"modelId": "dtmi:contoso:toaster;1"}, probe=probe
    )

    device.reprovision()

    assert probe.asked == [[HUB_US, HUB_EU]]
    assert transport.registrations[0].payload == {
        "modelId": "dtmi:contoso:toaster;1",
        "region": "westeurope",
        "latencyMs": {HUB_US: 31.5, HUB_EU: 12.0},
    }


@pytest.mark.parametrize(
    ("previous_payload", "latencies"),
    [
        ({}, {HUB_US: 10.0}),  # the allocation listed no hubs
        ({"hubs": "hub-us.azure-devices.net"}, {HUB_US: 10.0}),  # not a list
        ({"hubs": [HUB_US]}, {}),  # nothing reachable
    ],
    ids=["no-hubs", "hubs-not-a-list", "unreachable"],
)
def test_no_latency_is_sent_without_hubs_to_measure_or_answers(
    make_device: MakeDevice,
    cache: AssignmentCache,
    transport: FakeTransport,
    previous_payload: dict[str, object],
    latencies: dict[str, float],
) -> None:
    cache.save(Assignment(HUB_US, REGISTRATION_ID, previous_payload))

    make_device(region="eastus", probe=FixedProbe(latencies)).reprovision()

    assert transport.registrations[0].payload == {"region": "eastus"}


def test_only_host_names_from_the_previous_payload_are_measured(make_device: MakeDevice) -> None:
    probe = FixedProbe({})
    device = make_device(probe=probe)
    device.registration_payload(Assignment(HUB_US, "d", {"hubs": [HUB_US, 7, None, HUB_EU]}))
    assert probe.asked == [[HUB_US, HUB_EU]]


def test_the_hubs_are_measured_once_per_registration_not_on_every_dps_retry(
    make_device: MakeDevice, cache: AssignmentCache, transport: FakeTransport
) -> None:
    cache.save(CACHED)
    transport.dps = failing(RegistrationFailed("timeout"), RegistrationFailed("timeout"))
    probe = FixedProbe({HUB_US: 40.0})

    make_device(probe=probe).reprovision()

    assert probe.asked == [[HUB_US, HUB_EU]]
    assert [r.payload for r in transport.registrations] == [{"latencyMs": {HUB_US: 40.0}}] * 3
