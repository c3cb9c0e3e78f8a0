"""Caches of what is derived from a linkedHubs list: bounded by the hubs they hold, LRU first."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator

from allocation.hub_list_cache import HubListCache
from allocation.limits import MAX_CACHED_HUBS, MAX_LINKED_HUBS
from allocation.policy import compile_policy
from allocation.webhook import handle
from tests.conftest import encode, make_request

# Every cache of a linkedHubs list in play: candidates, a hub filter's narrowing, drain, and
# linkedHubs without duplicates.
FILTERED_AND_DRAINED = compile_policy(
    {
        "hubs": {"drained.azure-devices.net": {"drain": 50}},
        "default": {"strategy": "weighted", "hubs": ["*"]},
    }
)


def long_hub_lists(lists: int, hubs: int = MAX_LINKED_HUBS) -> Iterator[list[str]]:
    """``lists`` distinct lists of ``hubs`` host names of about 200 characters."""
    padding = ".".join(["x" * 60, "y" * 60, "z" * 40])
    for number in range(lists):
        yield [f"hub-{number:04d}-{hub:03d}.{padding}.azure-devices.net" for hub in range(hubs)]


def test_caches_of_linked_hub_lists_hold_bounded_memory() -> None:
    """1,024 lists of the most long host names a list may hold: the caches keep at most
    MAX_CACHED_HUBS hubs each, whatever a caller sends. Unbounded, 1,024 lists of 256 such
    names held 212 MiB."""
    bodies = (encode(make_request(linked_hubs=hubs)) for hubs in long_hub_lists(1024))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        statuses = {handle(body, FILTERED_AND_DRAINED).status for body in bodies}
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert statuses == {200}
    # Four caches (candidates, narrowing, drain, distinct lists) of MAX_CACHED_HUBS hubs, each
    # hub a Candidate and its strings at about 1 KB: about 17 MB. The figure is in BENCHMARKS.md.
    print(f"held after 1,024 lists of {MAX_LINKED_HUBS} hubs: {held / 2**20:.1f} MiB")
    assert held <= 4 * MAX_CACHED_HUBS * 1100 + 2**20, f"{held / 2**20:.1f} MiB held"


def test_the_least_recently_used_list_is_dropped_first() -> None:
    cache: HubListCache[str, str] = HubListCache(max_hubs=10)
    assert cache.get("a", lambda: "A", 4) == "A"
    assert cache.get("b", lambda: "B", 4) == "B"
    assert cache.get("a", lambda: "not made again", 4) == "A"  # "a" is now the most recent
    assert cache.get("c", lambda: "C", 4) == "C"  # 12 hubs: "b" goes
    assert cache.hubs == 8
    assert cache.get("b", lambda: "B again", 4) == "B again"
    assert cache.get("c", lambda: "not made again", 4) == "C"


def test_a_list_heavier_than_the_bound_is_answered_and_not_kept() -> None:
    cache: HubListCache[str, str] = HubListCache(max_hubs=10)
    cache.get("small", lambda: "S", 3)
    assert cache.get("huge", lambda: "H", 11) == "H"
    assert (len(cache), cache.hubs) == (1, 3)
    assert cache.get("small", lambda: "not made again", 3) == "S"
