"""``weighted``: weighted rendezvous hashing over the candidates (see allocation.rendezvous).

The equivalent of DPS's *evenly weighted distribution*, with the hubs' ``weight`` from the
policy, and a configurable ``key`` so that, say, every device of a site lands on one hub.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypedDict

from allocation import rendezvous
from allocation.candidates import Candidate
from allocation.context import RequestContext
from allocation.errors import InvalidRequest, PolicyError, Problem
from allocation.limits import MAX_HASH_KEY_LENGTH
from allocation.options import options_validator, parse_options
from allocation.paths import JsonPath, format_path
from allocation.shapes import STRING, optional
from allocation.strategies.base import CompileNested, Outcome, Pick
from allocation.templates import REQUEST_FIELDS, RenderedTooLarge, TemplateString, parse_template

DEFAULT_KEY = "{registrationId}"


class WeightedOptions(TypedDict):
    key: str


OPTIONS: Final = options_validator(WeightedOptions, {"key": optional(STRING, DEFAULT_KEY)})


@dataclass(frozen=True)
class Weighted:
    # None: the registration ID, the default and the fast path.
    key: TemplateString | None = None
    name: str = "weighted"
    routes: bool = False

    def hash_key(self, context: RequestContext) -> str:
        if self.key is None:
            return context.registration_id
        # A device without the keyed value (no siteId in its payload, say) is hashed on its
        # registration ID, rather than every such device piling onto one hub.
        try:
            key = self.key.render_text(context.value, MAX_HASH_KEY_LENGTH)
        except RenderedTooLarge:
            # Every hub hashes the whole key: rendering stopped at the bound.
            raise InvalidRequest(
                f"with this device's values the weighted key would be longer than "
                f"{MAX_HASH_KEY_LENGTH} characters",
                [Problem("deviceRuntimeContext.payload", "values too long for the weighted key")],
            ) from None
        return key or context.registration_id

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Outcome:
        key = self.hash_key(context)
        return Pick(rendezvous.choose(key, candidates), {"key": key})


def build(options: Mapping[str, Any], at: JsonPath, nested: CompileNested) -> Weighted:
    parsed: WeightedOptions = parse_options(OPTIONS, options, at)
    if parsed["key"] == DEFAULT_KEY:
        return Weighted()
    key = parse_template(parsed["key"], (*at, "key"), REQUEST_FIELDS)
    if isinstance(key, str):
        raise PolicyError(
            [
                Problem(
                    format_path((*at, "key")),
                    "must name a request field, e.g. '{payload.siteId}': a constant key sends "
                    "every device to one hub (use the static strategy for that)",
                )
            ]
        )
    return Weighted(key)
