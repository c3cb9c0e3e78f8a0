from __future__ import annotations

import pytest

from device.clock import FakeClock
from device.fake_transport import (
    FakeTransport,
    assign_to,
    down_until,
    failing,
    gone,
    healthy,
)
from device.transport import (
    Assignment,
    HubRejected,
    HubUnavailable,
    RegistrationFailed,
)

HUB = "hub-a.azure-devices.net"


def test_failing_answers_its_errors_in_order_then_accepts() -> None:
    first, second = HubUnavailable("500"), HubRejected("404")
    behaviour = failing(first, second)
    assert [behaviour(0), behaviour(0), behaviour(0)] == [first, second, None]


def test_down_until_fails_only_before_the_given_time() -> None:
    error = HubUnavailable("503")
    behaviour = down_until(60, error)
    assert (behaviour(59.9), behaviour(60)) == (error, None)


def test_gone_always_turns_the_device_away() -> None:
    assert all(isinstance(gone()(t), HubRejected) for t in (0, 1e6))
    assert healthy(0) is None


def test_dps_remembers_the_hub_it_assigned_and_reports_it_as_current() -> None:
    clock = FakeClock()
    transport = FakeTransport("dev-1", clock, assign_to(HUB, {"hubs": [HUB]}))

    assert transport.register({"region": "eastus"}) == Assignment(HUB, "dev-1", {"hubs": [HUB]})
    clock.sleep(5)
    transport.register({})

    assert [(r.time, r.current_hub) for r in transport.registrations] == [(0, None), (5, HUB)]


def test_dps_errors_surface_as_registration_failures() -> None:
    transport = FakeTransport("dev-1", FakeClock(), assign_to(HUB))
    transport.dps = failing(RegistrationFailed("disabled"), HubUnavailable("500"))
    with pytest.raises(RegistrationFailed, match="disabled"):
        transport.register({})
    with pytest.raises(RegistrationFailed, match="500"):
        transport.register({})
    assert transport.current_hub is None


def test_connect_records_every_attempt_and_opens_a_session_on_success() -> None:
    clock = FakeClock()
    transport = FakeTransport(
        "dev-1", clock, assign_to(HUB), hubs={HUB: failing(HubUnavailable("500"))}
    )
    with pytest.raises(HubUnavailable):
        transport.connect(Assignment(HUB, "dev-1"))
    session = transport.connect(Assignment(HUB, "dev-1"))
    assert [a.error is None for a in transport.connects] == [False, True]
    assert transport.sessions == [session]
    with pytest.raises(RuntimeError, match="no direct-method handler"):
        session.invoke("reprovision")


def test_the_fake_clock_advances_only_when_slept_and_refuses_negative_sleeps() -> None:
    clock = FakeClock(start=100)
    clock.sleep(2.5)
    assert (clock.now(), clock.sleeps) == (102.5, [2.5])
    with pytest.raises(ValueError, match="negative"):
        clock.sleep(-1)
