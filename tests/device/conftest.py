"""Fixtures for the reference device: a fake clock, a seeded random source, a cache file."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from device_doubles import HUB_EU, HUB_US, REGISTRATION_ID, SEED

from device.backoff import RetryPolicy
from device.boot import Device
from device.cache import AssignmentCache
from device.clock import FakeClock
from device.fake_transport import FakeTransport, assign_to


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(tmp_path: Path) -> AssignmentCache:
    return AssignmentCache(tmp_path / "assignment.json", REGISTRATION_ID)


@pytest.fixture
def transport(clock: FakeClock) -> FakeTransport:
    """DPS assigns every registration to the EU hub; every hub accepts the device."""
    return FakeTransport(REGISTRATION_ID, clock, assign_to(HUB_EU, {"hubs": [HUB_EU, HUB_US]}))


@pytest.fixture
def make_device(
    transport: FakeTransport, cache: AssignmentCache, clock: FakeClock
) -> Callable[..., Device]:
    """A device on the fake transport, fake clock and a random source seeded with SEED."""

    def make(**options: Any) -> Device:
        options.setdefault("retry", RetryPolicy())
        return Device(transport, cache, clock=clock, rng=random.Random(SEED), **options)

    return make
