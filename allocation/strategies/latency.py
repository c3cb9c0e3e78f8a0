"""``latency``: the candidate with the lowest expected round-trip time (RTT) for this device.

Evidence, strongest first; the first kind that gives at least one candidate a figure decides:

1. ``measurements`` (default ``payload.latencyMs``): an object host name -> milliseconds that the
   device measured itself. Trace: ``"evidence": "measurements"``.
2. ``location`` (default ``payload.region``), either
   - a region name: its row in the operator's ``regionLatencyMs`` when that has one
     (``"regionLatencyMs"``), else the great-circle distance from the region's reference point
     to each hub's ``region`` in the built-in table (``"region"``, see :mod:`allocation.geo`);
   - ``{"lat": .., "lon": ..}``: the great-circle distance from that point (``"coordinates"``).
3. None of these: the ``fallback`` allocation (default ``{"strategy": "weighted"}``) decides,
   with the same candidates. Trace: step ``fallback``, ``"evidence": "none"``.

Candidates within ``toleranceMs`` (default 10) of the best are tied, and weighted rendezvous
hashing of the registration ID over them (the hubs' weights apply) picks one.

Where the policy reference leaves it open, this strategy decides:

- Only candidates that the deciding evidence gives a figure are chosen among: a device that
  measured two of three hubs picks between those two, and measured and estimated figures are
  never mixed. Unscored candidates are not lost: with no evidence at all, the fallback gets
  every candidate.
- Measurements: host names compare case-insensitively; entries for hubs that are not
  candidates (not linked, filtered out, drained) are ignored; a value counts only if it is a
  JSON number (not a boolean, not a string), finite and not negative; anything else is ignored
  as if absent. An entry spelled as in linkedHubs counts when usable; else the usable entries
  whose name matches ignoring case (the smallest, if several). A ``measurements`` value that is
  not an object counts as no measurements. (The webhook refuses a body holding ``NaN`` or
  ``Infinity`` with 400 before any strategy runs; a number beyond the double range reaches the
  strategy as text and is ignored.)
- A region name compares case-insensitively. A name in neither table, or a location that is
  neither a string nor an object, is no location evidence.
- Coordinates: ``lat`` a number in [-90, 90], ``lon`` in [-180, 180]; other keys are ignored.
  They are always scored with the built-in table: an operator table cannot place a point.
- A hub whose ``region`` is missing, or unknown to the table in use, gets no estimate. An
  unknown hub region is not a load error (hubs are shared metadata): the first time a request
  needs that region's position, logger ``allocation.strategies.latency`` warns, once per region
  name and latency allocation of the loaded policy.
- ``regionLatencyMs``: rows are the device's region, columns the hub's; names compare
  case-insensitively and need not be Azure regions (an on-premises site, a sovereign cloud).
  A missing entry is taken from the opposite direction (round trips are symmetric) and a region
  to itself is 0 ms unless listed. When the device's row gives no candidate a figure, the
  built-in table is tried next.
- Ties: an estimate at most ``best + toleranceMs`` is tied (inclusive). The hash key is always
  the registration ID, so a device keeps its hub while its evidence keeps the same tied set.
- Trace evidence: ``evidence``; ``latencyMs`` (measured or estimated, per scored hub, rounded to
  0.1 ms, in linkedHubs order); ``tied`` (the hubs the hash chose among); ``region`` (the
  device's region, lower case) or ``lat``/``lon`` for location evidence.
- Options ``measurements`` and ``location`` must be ``payload.<dotted path>``; ``toleranceMs``
  and every ``regionLatencyMs`` figure a finite number >= 0; a region listed twice (in any case)
  is a load error. ``fallback`` is compiled when the policy loads, at ``<allocation>.fallback``,
  as a nested allocation: its ``hubs`` filter narrows the candidates, its twin and payload
  merge over this allocation's.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict, TypeGuard

from pydantic_core import PydanticCustomError
from pydantic_core import core_schema as cs

from allocation import geo, rendezvous
from allocation.candidates import Candidate
from allocation.context import PayloadPath, RequestContext
from allocation.errors import PolicyError, Problem
from allocation.geo import Position
from allocation.hostnames import host_key
from allocation.options import options_validator, parse_options
from allocation.paths import JsonPath, format_path
from allocation.shapes import ANY, STRING, nullable, optional
from allocation.strategies.base import (
    Allocation,
    CompileNested,
    Delegate,
    NestedAllocationInvalid,
    Outcome,
    Pick,
)

logger = logging.getLogger(__name__)

DEFAULT_MEASUREMENTS: Final = "payload.latencyMs"
DEFAULT_LOCATION: Final = "payload.region"
DEFAULT_TOLERANCE_MS: Final = 10.0
PAYLOAD_PREFIX: Final = "payload."

# (hub, measured or estimated round-trip time in ms), in linkedHubs order.
Estimates = list[tuple[Candidate, float]]


class LatencyOptions(TypedDict):
    measurements: str
    location: str
    regionLatencyMs: dict[str, dict[str, float]] | None
    toleranceMs: float
    fallback: Any


def _inside_the_payload(path: str) -> str:
    inside = path[len(PAYLOAD_PREFIX) :] if path.startswith(PAYLOAD_PREFIX) else ""
    if not inside or "" in inside.split("."):
        raise PydanticCustomError(
            "payload_path",
            "must be a path into the device's payload, such as 'payload.latencyMs'",
        )
    return path


_PAYLOAD_PATH: Final = cs.no_info_after_validator_function(_inside_the_payload, STRING)
_MILLISECONDS: Final = cs.float_schema(strict=True, ge=0, allow_inf_nan=False)

OPTIONS: Final = options_validator(
    LatencyOptions,
    {
        "measurements": optional(_PAYLOAD_PATH, DEFAULT_MEASUREMENTS),
        "location": optional(_PAYLOAD_PATH, DEFAULT_LOCATION),
        "regionLatencyMs": optional(
            nullable(cs.dict_schema(STRING, cs.dict_schema(STRING, _MILLISECONDS)))
        ),
        "toleranceMs": optional(_MILLISECONDS, DEFAULT_TOLERANCE_MS),
        # Compiled by build() as a nested allocation; declared here so it is a known field.
        "fallback": optional(ANY),
    },
)


@dataclass(frozen=True)
class Latency:
    fallback: Allocation
    # Paths inside the payload ("latencyMs" for "payload.latencyMs").
    measurements: PayloadPath
    location: PayloadPath
    # The operator's table, lower case, completed (see build): device region -> hub region -> ms.
    region_latency_ms: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    tolerance_ms: float = DEFAULT_TOLERANCE_MS
    path: str = "default"  # where the strategy sits in the policy, for warnings
    name: str = "latency"
    routes: bool = False
    # Hub region as the policy spells it -> its reference point; filled on first use.
    _hub_positions: dict[str, Position | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Outcome:
        measured = self.measurements(context)
        if isinstance(measured, Mapping):
            estimates = _measured(measured, candidates)
            if estimates:
                return self._pick(context, estimates, {"evidence": "measurements"})
        where = self.location(context)
        outcome: Pick | None = None
        if isinstance(where, str):
            outcome = self._by_region(context, where.lower(), candidates)
        elif isinstance(where, Mapping):
            position = _coordinates(where)
            if position is not None:
                outcome = self._by_distance(
                    context,
                    position,
                    candidates,
                    {
                        "evidence": "coordinates",
                        "lat": position.latitude,
                        "lon": position.longitude,
                    },
                )
        if outcome is not None:
            return outcome
        return Delegate(self.fallback, "fallback", {"evidence": "none"})

    def _by_region(
        self, context: RequestContext, region: str, candidates: Sequence[Candidate]
    ) -> Pick | None:
        row = self.region_latency_ms.get(region)
        if row is not None:
            estimates = [
                (hub, row[hub.region.lower()])
                for hub in candidates
                if hub.region is not None and hub.region.lower() in row
            ]
            if estimates:
                return self._pick(
                    context, estimates, {"evidence": "regionLatencyMs", "region": region}
                )
        position = geo.region_position(region)
        if position is None:
            return None
        return self._by_distance(
            context, position, candidates, {"evidence": "region", "region": region}
        )

    def _by_distance(
        self,
        context: RequestContext,
        device: Position,
        candidates: Sequence[Candidate],
        evidence: dict[str, Any],
    ) -> Pick | None:
        estimates: Estimates = []
        for hub in candidates:
            position = self._hub_position(hub.region)
            if position is not None:
                estimates.append((hub, geo.estimated_rtt_ms(geo.distance_km(device, position))))
        if not estimates:
            return None
        return self._pick(context, estimates, evidence)

    def _hub_position(self, region: str | None) -> Position | None:
        if region is None:
            return None
        if region in self._hub_positions:
            return self._hub_positions[region]
        position = geo.region_position(region)
        if position is None:
            logger.warning(
                "latency strategy at %s: hub region %s is not an Azure region of the built-in "
                "table; hubs in it get no distance estimate (regionLatencyMs can still score "
                "them)",
                self.path,
                json.dumps(region),
            )
        self._hub_positions[region] = position
        return position

    def _pick(
        self, context: RequestContext, estimates: Estimates, evidence: dict[str, Any]
    ) -> Pick:
        best = min(ms for _, ms in estimates)
        within = best + self.tolerance_ms
        tied = [hub for hub, ms in estimates if ms <= within]
        chosen = tied[0] if len(tied) == 1 else rendezvous.choose(context.registration_id, tied)
        evidence["latencyMs"] = {hub.name: round(ms, 1) for hub, ms in estimates}
        evidence["tied"] = [hub.name for hub in tied]
        return Pick(chosen, evidence)


def _measured(measured: Mapping[Any, Any], candidates: Sequence[Candidate]) -> Estimates:
    found: dict[str, float] = {}
    # A device normally reports host names as DPS sends them in linkedHubs: look those up first.
    for hub in candidates:
        ms = _milliseconds(measured.get(hub.name))
        if ms is not None:
            found[hub.key] = ms
    if len(found) < len(candidates) and len(measured) > len(found):
        # Then any other spelling, ignoring case; of several, the smallest counts.
        unmeasured = {hub.key for hub in candidates if hub.key not in found}
        for host, value in measured.items():
            key = host_key(host) if isinstance(host, str) else None
            if key in unmeasured:
                ms = _milliseconds(value)
                if ms is not None and (key not in found or ms < found[key]):
                    found[key] = ms
    return [(hub, found[hub.key]) for hub in candidates if hub.key in found]


def _milliseconds(value: Any) -> float | None:
    """A usable measurement: a number (not a boolean), finite and not negative."""
    # Exact types: what a JSON parser produces, and bool (a subclass of int) is left out.
    kind = type(value)
    if kind is float:
        ms = value
    elif kind is int:
        try:
            ms = float(value)
        except OverflowError:  # an integer beyond the double range
            return None
    else:
        return None
    return ms if 0.0 <= ms < math.inf else None  # NaN fails both comparisons


def _coordinates(value: Mapping[Any, Any]) -> Position | None:
    latitude, longitude = value.get("lat"), value.get("lon")
    if not (_is_number(latitude) and _is_number(longitude)):
        return None
    if -90 <= latitude <= 90 and -180 <= longitude <= 180:
        return Position(float(latitude), float(longitude))
    return None


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- loading ---------------------------------------------------------------------------------


def build(options: Mapping[str, Any], at: JsonPath, nested: CompileNested) -> Latency:
    problems: list[Problem] = []
    parsed: LatencyOptions | None = None
    try:
        parsed = parse_options(OPTIONS, options, at)
    except PolicyError as error:
        problems.extend(error.problems)
    # Read from the raw options, so that its duplicates are named along with any type errors.
    table = _region_table(options.get("regionLatencyMs"), (*at, "regionLatencyMs"), problems)

    # Read the region table now, so that a broken installation fails the policy load (a 503
    # that DPS retries) rather than a request.
    try:
        geo.azure_regions()
    except (OSError, ValueError, KeyError, TypeError) as error:
        problems.append(
            Problem(format_path(at), f"the built-in Azure region table cannot be read: {error}")
        )

    try:
        fallback = nested(options.get("fallback", {"strategy": "weighted"}), (*at, "fallback"))
    except NestedAllocationInvalid:
        # The fallback's own problems are recorded already; add ours, so one load names all.
        if problems:
            raise PolicyError(problems) from None
        raise
    if problems or parsed is None:
        raise PolicyError(problems)
    return Latency(
        fallback=fallback,
        measurements=PayloadPath.parse(parsed["measurements"][len(PAYLOAD_PREFIX) :]),
        location=PayloadPath.parse(parsed["location"][len(PAYLOAD_PREFIX) :]),
        region_latency_ms=table,
        tolerance_ms=parsed["toleranceMs"],
        path=format_path(at),
    )


def _region_table(raw: Any, at: JsonPath, problems: list[Problem]) -> dict[str, dict[str, float]]:
    """The operator's table in lower case, completed; types are the options model's to check."""
    table: dict[str, dict[str, float]] = {}
    if not isinstance(raw, Mapping):
        return table
    for device_region, raw_row in raw.items():
        device_key = _region_key(device_region, table, (*at, device_region), problems)
        if device_key is None:
            continue
        row: dict[str, float] = {}
        table[device_key] = row
        if not isinstance(raw_row, Mapping):
            continue
        for hub_region, value in raw_row.items():
            hub_key = _region_key(hub_region, row, (*at, device_region, hub_region), problems)
            ms = _milliseconds(value)
            if hub_key is not None and ms is not None:
                row[hub_key] = ms
    # Round trips are symmetric: an entry given in one direction serves the other too, unless
    # that one is given as well; and a region is 0 ms from itself unless listed.
    for device_key, row in list(table.items()):
        for hub_key, ms in list(row.items()):
            table.setdefault(hub_key, {}).setdefault(device_key, ms)
    for region, row in table.items():
        row.setdefault(region, 0.0)
    return table


def _region_key(
    name: Any, seen: Mapping[str, Any], at: JsonPath, problems: list[Problem]
) -> str | None:
    if not isinstance(name, str):
        return None  # reported by the options model
    key = name.lower()
    if not key:
        problems.append(Problem(format_path(at), "must be a region name, e.g. 'westeurope'"))
        return None
    if key in seen:
        problems.append(
            Problem(format_path(at), "listed twice (region names are case-insensitive)")
        )
        return None
    return key
