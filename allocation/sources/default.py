"""The built-in policy, when no policy setting is set: DPS's evenly weighted distribution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from allocation.policy import default_policy
from allocation.sources.base import LoadedPolicy


@dataclass
class DefaultSource:
    kind: Literal["default"] = "default"
    check_seconds: None = None

    def load(self) -> LoadedPolicy:
        return LoadedPolicy(default_policy(), "default")

    def check(self, live: LoadedPolicy) -> LoadedPolicy | None:
        return None
