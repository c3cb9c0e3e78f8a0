"""Where Azure regions are, how far apart two places are, and what that distance costs in time.

The region table is ``allocation/data/azure_regions.json``: every public Azure region's reference
point as Azure Resource Manager lists it (``az account list-locations``); the file's ``source``
field says exactly where the figures come from. It is read once, on first use: a policy that never
names the ``latency`` strategy never reads it.

Distance is the great-circle (haversine) distance on a sphere of the Earth's mean radius, 6371 km;
against the ellipsoid it is off by at most about 0.5 %, far less than the spread of real routes.

Distance becomes an estimated round-trip time in :func:`estimated_rtt_ms`: out and back at the
speed of light in fibre (about 200 km per ms: c divided by silica's refractive index of about
1.47), along a route :data:`ROUTE_INFLATION` times longer than the straight line. The factor 2.1
is the rule of thumb from Internet latency measurements quoted by Bozkurt et al., "Dissecting
Latency in the Internet's Fiber Infrastructure" (arXiv:1811.10737, 2018): "multiply
line-of-sight distance by 2.1, then divide by the speed of light in fiber". It is a median over
many paths, an assumption for any one device; an operator with real figures gives them in the
strategy's ``regionLatencyMs``. A constant (last-mile, processing) term is left out on purpose:
it would add the same to every hub, so it changes neither their order nor which are tied.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Final

EARTH_RADIUS_KM: Final = 6371.0
FIBRE_KM_PER_MS: Final = 200.0
ROUTE_INFLATION: Final = 2.1


@dataclass(frozen=True)
class Position:
    """A point on the globe, in degrees."""

    latitude: float
    longitude: float


@functools.cache
def azure_regions() -> Mapping[str, Position]:
    """Every public Azure region by its programmatic name (``westeurope``), lower case."""
    data = resources.files("allocation") / "data" / "azure_regions.json"
    table = json.loads(data.read_text(encoding="utf-8"))
    return {
        name.lower(): Position(float(region["latitude"]), float(region["longitude"]))
        for name, region in table["regions"].items()
    }


def region_position(name: str) -> Position | None:
    """The reference point of an Azure region, by name in any case; None for an unknown name."""
    return azure_regions().get(name.lower())


def distance_km(a: Position, b: Position) -> float:
    """Great-circle distance by the haversine formula."""
    lat1, lon1 = math.radians(a.latitude), math.radians(a.longitude)
    lat2, lon2 = math.radians(b.latitude), math.radians(b.longitude)
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    # Rounding can push h a hair above 1 for antipodal points.
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def estimated_rtt_ms(distance: float) -> float:
    """The expected round-trip time over ``distance`` km (see the module docstring)."""
    return 2 * distance * ROUTE_INFLATION / FIBRE_KM_PER_MS
