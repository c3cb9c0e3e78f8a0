"""Candidate hubs: the linked hubs of a request, with what the policy says about each."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from allocation.hostnames import host_key
from allocation.hub_list_cache import HubListCache


@dataclass(frozen=True)
class HubSettings:
    """A hub's entry under the policy's top-level ``hubs``."""

    weight: int = 1
    region: str | None = None
    tags: frozenset[str] = frozenset()
    # Percentage of devices (0-100) that leave and avoid this hub; see allocation.drain.
    drain: float = 0.0


DEFAULT_SETTINGS = HubSettings()


@dataclass(frozen=True, eq=False)
class Candidate:
    """A linked hub a strategy may choose.

    Compared by identity: a policy makes one Candidate per linked hub of each linkedHubs list
    it sees (see CandidateCache), which keeps the per-request work to dictionary look-ups.
    """

    name: str  # exactly as DPS sent it in linkedHubs: the response echoes this string
    settings: HubSettings = field(default=DEFAULT_SETTINGS)
    key: str = field(init=False, repr=False, compare=False)
    # What rendezvous hashing puts before the key, encoded once rather than per request.
    hash_prefix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", host_key(self.name))
        object.__setattr__(self, "hash_prefix", self.key.encode("utf-8") + b"\n")

    @property
    def weight(self) -> int:
        return self.settings.weight

    @property
    def region(self) -> str | None:
        return self.settings.region


def linked_candidates(
    linked_hubs: Iterable[str], settings: Mapping[str, HubSettings]
) -> tuple[Candidate, ...]:
    """Candidates for linked hubs in linkedHubs order; ``settings`` is keyed by host_key."""
    return tuple(
        Candidate(name, settings.get(host_key(name), DEFAULT_SETTINGS)) for name in linked_hubs
    )


class CandidateCache:
    """The candidates of the linkedHubs lists a policy has seen most recently."""

    def __init__(self, settings: Mapping[str, HubSettings]) -> None:
        self._settings = settings
        self._known: HubListCache[tuple[str, ...], tuple[Candidate, ...]] = HubListCache()

    def __call__(self, linked_hubs: tuple[str, ...]) -> tuple[Candidate, ...]:
        return self._known.get(
            linked_hubs, lambda: linked_candidates(linked_hubs, self._settings), len(linked_hubs)
        )


class HubSelector(Protocol):
    def matches(self, hub: Candidate) -> bool: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class NameSelector:
    """A host name, or a glob such as ``*-toasters-*``; compared case-insensitively."""

    pattern: str

    def matches(self, hub: Candidate) -> bool:
        return fnmatch.fnmatchcase(hub.key, host_key(self.pattern))

    def describe(self) -> str:
        return self.pattern


@dataclass(frozen=True)
class TagSelector:
    tag: str

    def matches(self, hub: Candidate) -> bool:
        return self.tag in hub.settings.tags

    def describe(self) -> str:
        return f"tag:{self.tag}"


@dataclass(frozen=True)
class RegionSelector:
    # Azure region names are identifiers ("westeurope"); the portal shows them in any case.
    region: str

    def matches(self, hub: Candidate) -> bool:
        return hub.region is not None and hub.region.lower() == self.region.lower()

    def describe(self) -> str:
        return f"region:{self.region}"


@dataclass(frozen=True)
class HubFilter:
    """An allocation's ``hubs``: a hub is a candidate if any selector matches it."""

    selectors: tuple[HubSelector, ...]

    def narrow(self, candidates: tuple[Candidate, ...]) -> tuple[Candidate, ...]:
        return _NARROWED.get(
            (self, candidates),
            lambda: tuple(c for c in candidates if any(s.matches(c) for s in self.selectors)),
            len(candidates),
        )

    def describe(self) -> list[str]:
        return [s.describe() for s in self.selectors]


# One cache for every filter of every policy: its bound is then the bound on the candidates that
# narrowing keeps alive, however many filters a policy has.
_NARROWED: HubListCache[tuple[HubFilter, tuple[Candidate, ...]], tuple[Candidate, ...]] = (
    HubListCache()
)
