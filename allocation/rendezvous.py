"""Weighted rendezvous (highest random weight) hashing, logarithmic form.

For a key ``k`` and hubs ``h`` with weights ``w_h``, every hub gets the score

    score(k, h) = -w_h / ln(u(k, h)),    u(k, h) uniform in the open interval (0, 1)

and the key goes to the hub with the highest score. ``-ln(u) / w`` is exponentially distributed
with rate ``w``, so hub ``h`` wins with probability ``w_h / sum(w)``; and since a hub's score does
not depend on the other hubs, adding, removing or re-weighting one hub only moves keys to or from
that hub. (The "logarithmic method" of weighted rendezvous hashing: Wikipedia, "Rendezvous
hashing", section "Weighted rendezvous hash"; compare mcrouter's WeightedRendezvousHashFunc.)

``u`` comes from the first 64-bit word of MurmurHash3 x64-128 (``mmh3.hash64``) of
``"<host name, lower case>\\n<key>"`` in UTF-8 (a key of more than MAX_HASH_KEY_LENGTH bytes as
its first MAX_HASH_KEY_LENGTH bytes and the 16 bytes of ``mmh3.hash_bytes`` of all of it, so that
each hub hashes a bounded key, whoever sent it): its top 52 bits ``m`` give
``u = (m + 0.5) / 2**52``, exactly representable, never 0 nor 1. MurmurHash3 is a fixed
function and the score is IEEE 754 double arithmetic, so scores agree on every machine and
Python version; a C library whose ``log`` differed from glibc's in the last bit could only swap
two hubs whose scores agree to about 15 significant digits. Equal scores go to the lower host
name.

The golden table in ``tests/test_rendezvous.py`` pins the function: a change that fails it moves
devices between hubs in production.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import mmh3

from allocation.candidates import Candidate
from allocation.limits import MAX_HASH_KEY_LENGTH

_SCALE = 2.0**-52

HubT = TypeVar("HubT", bound=Candidate)


def encode_key(key: str) -> bytes:
    """The key as hashed: UTF-8, and bounded (above)."""
    # surrogatepass: the webhook refuses lone surrogates, but a context built another way (a
    # simulation, a plug-in's own call) may still hold one; hashing must not fail on it.
    data = key.encode("utf-8", "surrogatepass")
    if len(data) > MAX_HASH_KEY_LENGTH:
        # Hashed once here rather than once per hub: 256 hubs x a 96 KiB registration ID took
        # 40 times as long as json.loads of the request. Real keys are far shorter, and keep
        # their hub.
        return data[:MAX_HASH_KEY_LENGTH] + mmh3.hash_bytes(data)
    return data


def unit_hash(hub_key: str, key: bytes) -> float:
    """``u(k, h)`` above, strictly inside (0, 1)."""
    word = mmh3.hash64(hub_key.encode("utf-8") + b"\n" + key, signed=False)[0]
    return ((word >> 12) + 0.5) * _SCALE


def score(hub_key: str, weight: int, key: bytes) -> float:
    return -weight / math.log(unit_hash(hub_key, key))


def choose(key: str, hubs: Sequence[HubT]) -> HubT:
    """The hub that ``key`` belongs to among ``hubs`` (which must not be empty)."""
    # score() inlined, with each hub's encoded prefix: this loop runs for every hub of every
    # request, and the arithmetic is exactly score()'s (the golden table checks it).
    data = encode_key(key)
    hash64, log = mmh3.hash64, math.log
    best = hubs[0]
    best_score = -math.inf
    for hub in hubs:
        word = hash64(hub.hash_prefix + data, signed=False)[0]
        candidate_score = -hub.settings.weight / log(((word >> 12) + 0.5) * _SCALE)
        if candidate_score > best_score or (candidate_score == best_score and hub.key < best.key):
            best, best_score = hub, candidate_score
    return best


def scores(key: str, hubs: Sequence[Candidate]) -> dict[str, float]:
    """Every hub's score for ``key``, by host name: the evidence behind :func:`choose`."""
    data = encode_key(key)
    return {hub.name: score(hub.key, hub.weight, data) for hub in hubs}
