"""``static``: one named hub (a host name or a glob), like DPS's static configuration.

The hub may also be a template, e.g. ``{lookup.inventory.hub}``: each device gets the hub its
inventory row names. A rendered name is a host name, compared case-insensitively; it is never
read as a glob, so a value in a table or a payload can only name one hub. When no candidate
matches (or the template renders empty) the optional ``fallback`` allocation takes the device;
without one the answer is 503 ``no_eligible_hub``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypedDict

from pydantic_core import core_schema as cs

from allocation.candidates import Candidate, NameSelector
from allocation.context import RequestContext
from allocation.errors import NoEligibleHub
from allocation.hostnames import host_key
from allocation.options import options_validator, parse_options
from allocation.paths import JsonPath
from allocation.shapes import ANY, optional
from allocation.strategies.base import CompileNested, Delegate, Outcome, Pick
from allocation.templates import REQUEST_FIELDS, TemplateString, parse_template

FALLBACK: Final = "fallback"


class StaticOptions(TypedDict):
    hub: str
    fallback: Any


OPTIONS: Final = options_validator(
    StaticOptions,
    {"hub": cs.str_schema(strict=True, min_length=1), "fallback": optional(ANY)},
)


@dataclass(frozen=True)
class Static:
    selector: NameSelector | None
    # A hub named by the request or a lookup, e.g. '{lookup.inventory.hub}'.
    template: TemplateString | None = None
    fallback: Delegate | None = None
    name: str = "static"
    routes: bool = False

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Outcome:
        if self.template is not None:
            wanted = self.template.render_text(context.value).strip()
            key = host_key(wanted)
            # The first match in linkedHubs order, so the answer never depends on hashing.
            for hub in candidates:
                if wanted and hub.key == key:
                    return Pick(hub, {"hub": wanted})
            return self._no_match(f"static hub '{wanted}'" if wanted else "an empty static hub")
        assert self.selector is not None
        for hub in candidates:
            if self.selector.matches(hub):
                return Pick(hub, {"hub": self.selector.pattern})
        return self._no_match(f"static hub '{self.selector.pattern}'")

    def _no_match(self, what: str) -> Outcome:
        if self.fallback is not None:
            return self.fallback
        raise NoEligibleHub(f"no candidate hub matches {what}")


def build(options: Mapping[str, Any], at: JsonPath, nested: CompileNested) -> Static:
    parsed: StaticOptions = parse_options(OPTIONS, options, at)
    fallback = (
        Delegate(nested(parsed["fallback"], (*at, FALLBACK)), FALLBACK)
        if parsed["fallback"] is not None
        else None
    )
    hub = parse_template(parsed["hub"], (*at, "hub"), REQUEST_FIELDS)
    if isinstance(hub, TemplateString):
        return Static(None, hub, fallback)
    return Static(NameSelector(hub), None, fallback)
