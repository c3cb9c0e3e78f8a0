"""The strategies a policy can name.

Built-in strategies are listed by the module that holds them, imported when a policy first uses
one (a policy that never names ``latency`` never loads the region table). Any other name is a
plug-in: see :mod:`allocation.strategies.plugins`.
"""

from __future__ import annotations

import importlib
from typing import Final

from allocation.strategies import plugins
from allocation.strategies.base import StrategyBuilder

BUILTIN: Final[dict[str, str]] = {
    "static": "allocation.strategies.static",
    "weighted": "allocation.strategies.weighted",
    "rules": "allocation.strategies.rules",
    "latency": "allocation.strategies.latency",
}


def builder_for(name: str) -> StrategyBuilder | None:
    """The builder of a built-in or plug-in strategy, or None for a name that is neither."""
    module_name = BUILTIN.get(name)
    if module_name is None:
        return plugins.resolve(name)
    builder: StrategyBuilder = importlib.import_module(module_name).build
    return builder
