"""The policy as JSON text in the app setting ``ALLOCATION_POLICY``: read once per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from allocation.sources.base import POLICY_SETTING, LoadedPolicy, content_hash, parse


@dataclass
class SettingSource:
    text: str
    kind: Literal["setting"] = "setting"
    check_seconds: None = None

    def load(self) -> LoadedPolicy:
        version = content_hash(self.text.encode("utf-8", "surrogatepass"))
        return LoadedPolicy(parse(self.text, f"app setting {POLICY_SETTING}", version), "setting")

    def check(self, live: LoadedPolicy) -> LoadedPolicy | None:
        return None
