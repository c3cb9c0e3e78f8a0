"""The reference client against DPS's quota: the fluid model in allocation.simulation.quota,
checked against devices drawing their own retry delays one by one."""

from __future__ import annotations

import heapq
import random
from collections import Counter

import pytest

from allocation.simulation.quota import (
    SLOT_SECONDS,
    SLOTS_PER_MINUTE,
    ReferenceClient,
    minutes_at_quota,
    reference_figures,
)
from device.backoff import RetryPolicy

QUOTA_PER_MINUTE = 1_000


def one_by_one(arrivals: list[float], seed: int = 0) -> tuple[float, int]:
    """Every device with its own random source: when the last one got through, and how many
    calls DPS received. Each 5-second slot accepts a twelfth of the minute's quota."""
    retry = RetryPolicy()
    rngs = [random.Random(seed * 1_000_003 + n) for n in range(len(arrivals))]
    events = [(time, 0, device) for device, time in enumerate(arrivals)]
    heapq.heapify(events)
    accepted: Counter[int] = Counter()
    calls, last = 0, 0.0
    while events:
        time, failures, device = heapq.heappop(events)
        calls += 1
        slot = int(time // SLOT_SECONDS)
        if accepted[slot] < QUOTA_PER_MINUTE / SLOTS_PER_MINUTE - 0.5:
            accepted[slot] += 1
            last = max(last, time)
            continue
        delay = retry.server_error_delay(failures, rngs[device])
        heapq.heappush(events, (time + delay, failures + 1, device))
    return last / 60, calls


@pytest.mark.parametrize("devices", [3_000, 12_000])
def test_asked_at_once_the_model_agrees_with_devices_drawing_their_own_delays(
    devices: int,
) -> None:
    model = reference_figures(ReferenceClient(), {0: devices}, units=1)
    minutes, calls = one_by_one([0.0] * devices)
    assert model["minutes"] == pytest.approx(minutes, rel=0.15)
    assert model["dpsCalls"] == pytest.approx(calls, rel=0.15)
    # Never faster than the quota allows, and far more calls than devices: the refused ones.
    assert model["minutes"] >= minutes_at_quota(devices, 1)
    assert model["refused"] > devices


def test_a_spread_under_the_quota_is_never_refused() -> None:
    # The fleet-reboot test's numbers: 10,000 devices over 900 s, 1,000 a minute.
    client = ReferenceClient()
    rng = random.Random(4)
    slots = Counter(int(RetryPolicy().reregister_delay(rng) // SLOT_SECONDS) for _ in range(10_000))
    figures = reference_figures(client, slots, units=1)
    assert figures["refused"] == 0
    assert figures["dpsCalls"] == 10_000
    assert figures["peakPerMinute"] < QUOTA_PER_MINUTE
    assert 14 <= figures["minutes"] <= 15


def test_a_burst_within_a_slot_s_share_of_the_quota_is_never_refused() -> None:
    # 120 units: 120,000 a minute, 10,000 in each 5-second slot.
    figures = reference_figures(ReferenceClient(), {0: 10_000}, units=120)
    assert figures == {"minutes": pytest.approx(SLOT_SECONDS / 60), "peakPerMinute": 10_000,
                       "dpsCalls": 10_000, "refused": 0}  # fmt: skip
    # At 20 units (1,667 a slot) the same burst is partly refused, and retried.
    assert reference_figures(ReferenceClient(), {0: 10_000}, units=20)["refused"] > 0
