"""Candidate hubs: the linked hubs of a request, with what the policy says about each."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from allocation.hostnames import host_key


@dataclass(frozen=True)
class HubSettings:
    """A hub's entry under the policy's top-level ``hubs``."""

    weight: int = 1
    region: str | None = None
    tags: frozenset[str] = frozenset()
    # Percentage of devices (0-100) that leave and avoid this hub; see allocation.drain.
    drain: float = 0.0


DEFAULT_SETTINGS = HubSettings()


@dataclass(frozen=True)
class Candidate:
    """A linked hub a strategy may choose."""

    name: str  # exactly as DPS sent it in linkedHubs: the response echoes this string
    settings: HubSettings = field(default=DEFAULT_SETTINGS)
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", host_key(self.name))

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

    def narrow(self, candidates: Sequence[Candidate]) -> tuple[Candidate, ...]:
        return tuple(c for c in candidates if any(s.matches(c) for s in self.selectors))

    def describe(self) -> list[str]:
        return [s.describe() for s in self.selectors]
