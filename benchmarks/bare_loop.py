"""The floor of the simulation benchmark: N weighted rendezvous choices over the hubs, no policy.

``python -m benchmarks.bare_loop --devices N --hubs h1,h2,...`` generates the registration IDs
exactly as ``python -m allocation simulate`` does (seeded ``getrandbits(64)``), and for each
one scores every hub with the arithmetic of ``allocation/rendezvous.py`` (MurmurHash3 of
``"<host name>\\n<key>"``, ``u`` from its top 52 bits, score ``-w / ln(u)``), keeps the best
and counts it. Nothing else: no request context, no policy walk, no trace. It prints the counts
so that the work cannot be skipped and can be checked against the simulation's.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections import Counter

import mmh3

_SCALE = 2.0**-52


def bare_loop(devices: int, hubs: list[str], seed: int = 0) -> Counter[str]:
    prefixes = [(hub, hub.lower().encode() + b"\n", 1) for hub in hubs]
    hash64, log = mmh3.hash64, math.log
    bits = random.Random(seed).getrandbits
    counts: Counter[str] = Counter()
    for _ in range(devices):
        key = f"sim-{bits(64):016x}".encode()
        best, best_score = "", -1.0
        for hub, prefix, weight in prefixes:
            word = hash64(prefix + key, signed=False)[0]
            score = -weight / log(((word >> 12) + 0.5) * _SCALE)
            if score > best_score:
                best, best_score = hub, score
        counts[best] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare_loop")
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--hubs", required=True, help="comma-separated host names")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(bare_loop(args.devices, args.hubs.split(","), args.seed)))


if __name__ == "__main__":
    main()
