"""``static``: one named hub (a host name or a glob), like DPS's static configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypedDict

from pydantic_core import core_schema as cs

from allocation.candidates import Candidate, NameSelector
from allocation.context import RequestContext
from allocation.errors import NoEligibleHub
from allocation.options import options_validator, parse_options
from allocation.paths import JsonPath
from allocation.strategies.base import CompileNested, Outcome, Pick


class StaticOptions(TypedDict):
    hub: str


OPTIONS: Final = options_validator(StaticOptions, {"hub": cs.str_schema(strict=True, min_length=1)})


@dataclass(frozen=True)
class Static:
    selector: NameSelector
    name: str = "static"
    routes: bool = False

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Outcome:
        # The first match in linkedHubs order, so the answer never depends on hashing.
        for hub in candidates:
            if self.selector.matches(hub):
                return Pick(hub, {"hub": self.selector.pattern})
        raise NoEligibleHub(f"no candidate hub matches static hub '{self.selector.pattern}'")


def build(options: Mapping[str, Any], at: JsonPath, nested: CompileNested) -> Static:
    parsed: StaticOptions = parse_options(OPTIONS, options, at)
    return Static(NameSelector(parsed["hub"]))
