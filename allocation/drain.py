"""Drain: a stable share of devices leaves, and then avoids, a hub.

Each (device, hub) pair has a fixed bucket in [0, 1 000 000) from a 64-bit MurmurHash3 of the
hub's host name and the registration ID. A device is drained from a hub at ``p`` percent when its
bucket is below ``p * 10 000``. The bucket never changes, so raising ``p`` only ever adds devices
to the drained set: a fleet moves off a hub in phases (5, 25, 50, 100 %) and no device moves
twice. Hashing the hub too makes the drained devices of two hubs independent samples.
"""

from __future__ import annotations

import functools

import mmh3

from allocation.candidates import Candidate

BUCKETS = 1_000_000
_PER_PERCENT = BUCKETS // 100


def drain_bucket(registration_id: str, hub_key: str) -> int:
    data = f"drain\n{hub_key}\n{registration_id}".encode("utf-8", "surrogatepass")
    return int(mmh3.hash64(data, signed=False)[0] % BUCKETS)


def is_drained(registration_id: str, hub: Candidate) -> bool:
    percent = hub.settings.drain
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    return drain_bucket(registration_id, hub.key) < percent * _PER_PERCENT


@functools.lru_cache(maxsize=1024)
def _any_drain(candidates: tuple[Candidate, ...]) -> bool:
    # Candidates are made once per linkedHubs list (CandidateCache): the answer is kept.
    return any(c.settings.drain for c in candidates)


def undrained(registration_id: str, candidates: tuple[Candidate, ...]) -> tuple[Candidate, ...]:
    if not _any_drain(candidates):
        return candidates
    return tuple(c for c in candidates if not is_drained(registration_id, c))
