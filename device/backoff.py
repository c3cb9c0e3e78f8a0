"""How long a device waits before it tries again.

The DPS reprovisioning doc asks devices to retry a hub operation on 429 only after Retry-After,
and on 5xx "with exponential back-off with jitter, first retry at least 5 s later". We use *full
jitter* (Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015): the wait
is drawn uniformly from a window that doubles with each retry, which spreads a fleet that failed
at the same instant instead of letting it retry in waves. The window sits on a floor so that even
the earliest retry honours the 5 s minimum:

    delay(n) = floor + uniform(0, min(cap - floor, base * 2**n))        n = 0, 1, 2, ...

With the defaults the first retry comes 5-10 s later, the second 5-15 s, the third 5-25 s, ...,
never more than 300 s.

A device whose hub turned it away re-registers through DPS after `uniform(0, reregister_spread)`:
when a whole hub disappears its devices reach DPS over that window rather than in one burst, so
the fleet stays under the registration quota (1,000 per minute per DPS unit).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_MAX_DOUBLINGS = 32  # 2**32 * base is far past any cap; keeps the float conversion finite


@dataclass(frozen=True)
class RetryPolicy:
    floor: float = 5.0
    """Minimum wait before retrying after a 5xx (the DPS guidance says at least 5 s)."""
    base: float = 5.0
    """Width of the first jitter window; it doubles with every retry."""
    cap: float = 300.0
    """Longest wait between two attempts."""
    throttle_jitter: float = 0.1
    """After a 429, wait Retry-After plus up to this fraction of it."""
    max_hub_retries: int = 10
    """Retries of an unavailable or throttled hub before the device goes back to DPS."""
    reregister_spread: float = 900.0
    """Window over which a device turned away by its hub re-registers through DPS."""

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.cap:
            raise ValueError("RetryPolicy needs 0 < floor <= cap")
        if self.base <= 0 or self.throttle_jitter < 0 or self.reregister_spread < 0:
            raise ValueError("RetryPolicy needs base > 0, throttle_jitter >= 0, spread >= 0")
        if self.max_hub_retries < 0:
            raise ValueError("RetryPolicy needs max_hub_retries >= 0")

    def server_error_delay(self, retry: int, rng: random.Random) -> float:
        """Wait before retry number `retry` (0 for the first) after a 5xx or a network failure."""
        window = min(self.cap - self.floor, self.base * 2 ** min(retry, _MAX_DOUBLINGS))
        return self.floor + rng.uniform(0, window)

    def throttled_delay(self, retry_after: float | None, retry: int, rng: random.Random) -> float:
        """Wait after a 429: never before Retry-After; without one, as after a 5xx."""
        if retry_after is None:
            return self.server_error_delay(retry, rng)
        wait = max(retry_after, 0.0)
        return wait + rng.uniform(0, wait * self.throttle_jitter)

    def reregister_delay(self, rng: random.Random) -> float:
        """Wait before re-registering through DPS because the hub turned the device away."""
        return rng.uniform(0, self.reregister_spread)
