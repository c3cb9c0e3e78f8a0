"""The strategies a policy can name, by the name it uses."""

from __future__ import annotations

from typing import Final

from allocation.strategies import static, weighted
from allocation.strategies.base import StrategyBuilder

BUILTIN: Final[dict[str, StrategyBuilder]] = {
    "static": static.build,
    "weighted": weighted.build,
}


def builder_for(name: str) -> StrategyBuilder | None:
    return BUILTIN.get(name)
