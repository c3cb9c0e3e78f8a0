"""What is derived from one linkedHubs list, kept for the next request that sends the same list.

An enrollment's linkedHubs list is the same on every request, and real deployments have few
distinct lists, so the candidates made from a list, its hub filters' narrowing and whether any
of its hubs drains are computed once. A caller can send endless variations, though, each up to
MAX_LINKED_HUBS long host names: every such cache is a least-recently-used one bounded by the
number of hubs its entries hold (MAX_CACHED_HUBS), not by its entries. Measured when a list could
hold 256 hubs, 1,024 lists of 256 host names of 200 characters each held 212 MiB unbounded,
3.3 MiB bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from allocation.limits import MAX_CACHED_HUBS

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class HubListCache(Generic[K, V]):
    """A least-recently-used cache whose entries weigh the number of hubs they hold."""

    def __init__(self, max_hubs: int = MAX_CACHED_HUBS) -> None:
        self.max_hubs = max_hubs
        # Insertion order is recency order: a hit moves its entry to the end.
        self._entries: dict[K, tuple[V, int]] = {}
        self._held = 0
        # The local host answers from several threads; the lock keeps the weights exact.
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V], hubs: int) -> V:
        """The value for ``key``, made by ``make`` on a miss; ``hubs`` is what it weighs."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._entries[key] = entry
                return entry[0]
        value = make()
        if hubs > self.max_hubs:
            return value
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._held -= previous[1]
            self._entries[key] = (value, hubs)
            self._held += hubs
            while self._held > self.max_hubs:
                oldest = next(iter(self._entries))
                self._held -= self._entries.pop(oldest)[1]
        return value

    @property
    def hubs(self) -> int:
        """The hubs held, at most ``max_hubs``."""
        return self._held

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._held = 0
