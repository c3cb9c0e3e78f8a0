from __future__ import annotations

import random

import pytest

from device.backoff import RetryPolicy


def test_server_error_delays_follow_floor_plus_full_jitter_over_a_doubling_window() -> None:
    policy = RetryPolicy(floor=5, base=5, cap=300)
    draws = random.Random(1)
    expected = [5 + draws.uniform(0, min(295, 5 * 2**n)) for n in range(10)]

    rng = random.Random(1)
    assert [policy.server_error_delay(n, rng) for n in range(10)] == expected


def test_first_retry_after_a_5xx_is_never_earlier_than_5_seconds() -> None:
    policy = RetryPolicy()
    rng = random.Random(0)
    first = [policy.server_error_delay(0, rng) for _ in range(10_000)]
    assert min(first) >= 5.0
    assert max(first) <= 10.0


def test_server_error_windows_grow_then_stop_at_the_cap() -> None:
    policy = RetryPolicy(floor=5, base=5, cap=300)
    rng = random.Random(0)
    highest = [max(policy.server_error_delay(n, rng) for _ in range(2_000)) for n in range(9)]
    # Window n is [5, 5 + min(295, 5 * 2**n)]: 10, 15, 25, 45, 85, 165, then 300 s from n = 6.
    windows = [5 + min(295, 5 * 2**n) for n in range(9)]
    assert windows == [10, 15, 25, 45, 85, 165, 300, 300, 300]
    assert all(0.97 * window <= h <= window for h, window in zip(highest, windows, strict=True))
    assert policy.server_error_delay(10_000, rng) <= 300


def test_throttled_delay_honours_retry_after_plus_at_most_ten_percent() -> None:
    policy = RetryPolicy()
    rng = random.Random(3)
    delays = [policy.throttled_delay(30.0, 0, rng) for _ in range(1_000)]
    assert min(delays) >= 30.0
    assert max(delays) <= 33.0


def test_throttled_delay_without_retry_after_falls_back_to_the_5xx_schedule() -> None:
    policy = RetryPolicy()
    assert policy.throttled_delay(None, 2, random.Random(9)) == policy.server_error_delay(
        2, random.Random(9)
    )


def test_reregister_delay_is_spread_over_the_window() -> None:
    policy = RetryPolicy(reregister_spread=900)
    rng = random.Random(5)
    delays = [policy.reregister_delay(rng) for _ in range(10_000)]
    assert 0 <= min(delays) < 10
    assert 890 < max(delays) <= 900


@pytest.mark.parametrize(
    "options",
    [{"floor": 0}, {"floor": 10, "cap": 5}, {"base": 0}, {"max_hub_retries": -1}],
)
def test_inconsistent_policies_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy needs"):
        RetryPolicy(**options)  # type: ignore[arg-type]
