"""Drain: a stable share of devices leaves, and then avoids, a hub.

Each (device, hub) pair has a fixed bucket in [0, 1 000 000) from a 64-bit MurmurHash3 of the
hub's host name and the registration ID. A device is drained from a hub at ``p`` percent when its
bucket is below ``p * 10 000``. The bucket never changes, so raising ``p`` only ever adds devices
to the drained set: a fleet moves off a hub in phases (5, 25, 50, 100 %) and no device moves
twice. Hashing the hub too makes the drained devices of two hubs independent samples.
"""

from __future__ import annotations

import mmh3

from allocation.candidates import Candidate
from allocation.hub_list_cache import HubListCache
from allocation.rendezvous import encode_key

BUCKETS = 1_000_000
_PER_PERCENT = BUCKETS // 100


def drain_bucket(registration_id: str, hub_key: str) -> int:
    # The registration ID bounded as rendezvous hashing bounds its keys: one request may ask
    # for a bucket on every linked hub.
    data = b"drain\n" + hub_key.encode() + b"\n" + encode_key(registration_id)
    return int(mmh3.hash64(data, signed=False)[0] % BUCKETS)


def is_drained(registration_id: str, hub: Candidate) -> bool:
    percent = hub.settings.drain
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    return drain_bucket(registration_id, hub.key) < percent * _PER_PERCENT


# Candidates are made once per linkedHubs list (CandidateCache): which of them drain is kept.
_DRAINING: HubListCache[tuple[Candidate, ...], tuple[Candidate, ...]] = HubListCache()


def undrained(registration_id: str, candidates: tuple[Candidate, ...]) -> tuple[Candidate, ...]:
    draining = _DRAINING.get(
        candidates, lambda: tuple(c for c in candidates if c.settings.drain), len(candidates)
    )
    # Only the draining hubs are looked at: a call per linked hub took a quarter of a request
    # with 256 linked hubs.
    away = [c for c in draining if is_drained(registration_id, c)]
    if not away:
        return candidates
    return tuple(c for c in candidates if c not in away)
