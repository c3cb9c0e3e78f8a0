"""Plug-in strategies used by the tests, written as an operator would write one."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from allocation.candidates import Candidate
from allocation.context import MISSING, RequestContext
from allocation.strategies.base import Deny


class PreferredHub:
    """Places a device on the hub its payload asks for, when allowed; else on the first."""

    def __init__(self, options: dict[str, Any]) -> None:
        unknown = set(options) - {"field"}
        if unknown:
            raise ValueError(f"unknown options: {sorted(unknown)}")
        self.field = options.get("field", "payload.preferredHub")

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Candidate | str:
        wanted = context.value(self.field)
        if wanted is not MISSING and isinstance(wanted, str):
            return wanted
        return candidates[0]


class OnlyAdults:
    def __init__(self, options: dict[str, Any]) -> None:
        self.minimum = int(options["minimumAge"])

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Candidate | Deny:
        age = context.value("payload.age")
        if not isinstance(age, int) or age < self.minimum:
            return Deny("too young")
        return candidates[-1]


class Crashes:
    def __init__(self, options: dict[str, Any]) -> None:
        pass

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Candidate:
        raise RuntimeError("lookup service unreachable")


class Rogue:
    """Answers a hub DPS never linked: must never reach DPS."""

    def __init__(self, options: dict[str, Any]) -> None:
        pass

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> str:
        return "attacker.azure-devices.net"


class AnswersNonsense:
    def __init__(self, options: dict[str, Any]) -> None:
        pass

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> int:
        return 42


class NoChoose:
    def __init__(self, options: dict[str, Any]) -> None:
        pass


NOT_CALLABLE = "a string"


class Hangs:
    """Waits on a lookup that never answers (released by the test when it is done)."""

    release = threading.Event()

    def __init__(self, options: dict[str, Any]) -> None:
        pass

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Candidate:
        self.release.wait(30)
        return candidates[0]
