"""6. The worst request body for each shipped example policy, against ``json.loads`` of it.

A device controls its payload, and DPS passes up to 96 KiB of it. For each policy under
``examples/``, bodies that fill the limit are built from one of the example's own requests, with
hostile values at every payload path the policy reads (and at the payload itself): huge strings,
brackets and escapes inside strings, nesting to the limit and past it, many keys, long lists of
numbers, of escaped strings and of small objects holding them, escapes at the density where the
request parser changes JSON parsers, a registration ID longer than DPS allows, and the longest
it allows hashed against the most linked hubs we accept. Each body is answered by the core entry
point (``allocation.webhook.handle``, the decision line formatted at INFO) and parsed by
``json.loads``, both timed as the minimum of several runs taken in turns.
The figure of an example is its worst body, timed again in longer runs, with ``json.loads`` of
that same body as its baseline: the work a request makes us do must stay within a small
multiple of reading it at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from allocation.json_parsers import BYTES_PER_BACKSLASH_FOR_STDLIB
from allocation.limits import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_LINKED_HUBS,
    MAX_PAYLOAD_KEYS,
    MAX_REGISTRATION_ID_LENGTH,
)
from allocation.policy import Policy, parse_policy
from allocation.webhook import handle
from benchmarks.in_process import info_logging
from benchmarks.report import Figure, Target
from benchmarks.timing import batch, interleaved, loops_for
from fuzz.bodies import padded

GROUP = "worst-body"
EXAMPLES: Final = Path(__file__).resolve().parent.parent / "examples"
RATIO_TARGET: Final = 2.0

# The payload paths a policy reads, as its text names them: templates ("{payload.siteId}"),
# conditions ("payload.firmware") and strategy options ("measurements": "payload.latencyMs").
_PAYLOAD_PATH: Final = re.compile(r"payload\.([A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*)")


@dataclass(frozen=True)
class Body:
    name: str
    body: bytes


def payload_paths(policy_text: str) -> list[str]:
    """Every payload path the policy names, and "" for the payload itself."""
    return ["", *sorted(set(_PAYLOAD_PATH.findall(policy_text)))]


def base_request(example: Path) -> dict[str, Any]:
    """The example's first request with a payload, or its first request."""
    requests = sorted(
        p for p in (example / "requests").glob("*.json") if not p.name.endswith(".expected.json")
    )
    documents = [json.loads(p.read_text(encoding="utf-8")) for p in requests]
    with_payload = [d for d in documents if d["deviceRuntimeContext"].get("payload")]
    document: dict[str, Any] = (with_payload or documents)[0]
    return document


def _encode(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _with_payload_value(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    document = json.loads(json.dumps(base))
    runtime = document["deviceRuntimeContext"]
    if not path:
        runtime["payload"] = value
        return document
    payload = runtime.get("payload")
    if not isinstance(payload, dict):
        payload = runtime["payload"] = {}
    parts = path.split(".")
    for part in parts[:-1]:
        payload = payload.setdefault(part, {})
        if not isinstance(payload, dict):
            return document
    payload[parts[-1]] = value
    return document


def _fill(make: Callable[[int], Any], place: Callable[[Any], dict[str, Any]]) -> bytes:
    """The largest body within MAX_BODY_BYTES that ``make(n)`` placed by ``place`` gives."""
    low, high = 0, MAX_BODY_BYTES
    best = _encode(place(make(0)))
    while low < high:
        middle = (low + high + 1) // 2
        body = _encode(place(make(middle)))
        if len(body) <= MAX_BODY_BYTES:
            low, best = middle, body
        else:
            high = middle - 1
    return best


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def _values(depth_left: int) -> dict[str, Callable[[int], Any]]:
    """Hostile values of about ``n`` units each, for a path with ``depth_left`` levels free."""
    return {
        "string": lambda n: "x" * n,
        "brackets-in-string": lambda n: "[{" * (n // 2),
        "escapes": lambda n: "\u00e9\n" * (n // 8),
        # Written as \u escapes (json.dumps escapes every non-ASCII character).
        "unicode-escapes": lambda n: "\u00e9" * (n // 6),
        "surrogate-pair-escapes": lambda n: "\U0001f600" * (n // 12),
        # As dense in escapes, in many values, which cost json.loads more than pydantic-core.
        "escaped-strings": lambda n: ["\u00e9"] * (n // 9),
        "escaped-objects": lambda n: [{"a": "\u00e9"}] * (n // 15),
        # One backslash in BYTES_PER_BACKSLASH_FOR_STDLIB: where the parser changes.
        "sparse-unicode-escapes": lambda n: (
            ("\u00e9" + "x" * (BYTES_PER_BACKSLASH_FOR_STDLIB - 6))
            * (n // BYTES_PER_BACKSLASH_FOR_STDLIB)
        ),
        "nested-string": lambda n: _nested(depth_left - 1, "x" * n),
        "nested-objects": lambda n: [_nested(depth_left - 2, 0) for _ in range(n // 200)],
        "many-keys": lambda n: {f"k{i}": 0 for i in range(min(n // 8, MAX_PAYLOAD_KEYS - 10))},
        "too-many-keys": lambda n: {f"{i:x}": 0 for i in range(n // 7)},
        "numbers": lambda n: [1] * (n // 2),
        "exponents": lambda n: [1e22] * (n // 6),
        "empty-lists": lambda n: [[]] * (n // 3),
        "too-deep": lambda n: [_nested(depth_left + 2, 0) for _ in range(max(1, n // 300))],
    }


def hostile_bodies(example: Path) -> Iterator[Body]:
    text = (example / "policy.json").read_text(encoding="utf-8")
    base = base_request(example)
    for path in payload_paths(text):
        # The envelope nests the payload two levels deep (the request, deviceRuntimeContext).
        depth_left = MAX_JSON_DEPTH - 2 - len(path.split(".")) * bool(path)
        for family, make in _values(depth_left).items():

            def place(value: Any, path: str = path) -> dict[str, Any]:
                return _with_payload_value(base, path, value)

            yield Body(f"{family} at payload{'.' if path else ''}{path}", _fill(make, place))
    hubs = [f"h{i:03d}-{'x' * 40}.azure-devices.net" for i in range(MAX_LINKED_HUBS)]

    def many_hubs(registration_id: str) -> dict[str, Any]:
        document = json.loads(json.dumps(base))
        document["deviceRuntimeContext"]["registrationId"] = registration_id
        document["linkedHubs"] = [*base["linkedHubs"], *hubs][:MAX_LINKED_HUBS]
        return document

    # Longer than DPS allows: refused by the contract, which must cost little.
    yield Body(
        f"registration ID filling the body, {MAX_LINKED_HUBS} linked hubs",
        _fill(lambda n: "r" * n, many_hubs),
    )
    # The longest that is answered, hashed against every hub; an unknown field (read, then
    # ignored) fills the rest.
    yield Body(
        f"longest registration ID, {MAX_LINKED_HUBS} linked hubs",
        padded(many_hubs("r" * MAX_REGISTRATION_ID_LENGTH), MAX_BODY_BYTES),
    )


def _ratio(policy: Policy, body: bytes, runs: int) -> float:
    """handle() over json.loads(), each the minimum of ``runs`` batches taken in turns."""
    calls: dict[str, Callable[[], object]] = {
        "loads": lambda: json.loads(body),
        "handle": lambda: handle(body, policy),
    }
    loops = {name: loops_for(call, 0.002) for name, call in calls.items()}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(runs):
        for name, call in calls.items():
            best[name] = min(best[name], batch(call, loops[name]))
    return best["handle"] / best["loads"]


def worst(example: Path, runs: int = 5) -> tuple[Body, float, list[tuple[str, float]]]:
    """The example's worst body, its ratio, and every body's ratio."""
    policy = parse_policy((example / "policy.json").read_text(encoding="utf-8"))
    measured = [(body, _ratio(policy, body.body, runs)) for body in hostile_bodies(example)]
    body, ratio = max(measured, key=lambda pair: pair[1])
    return body, ratio, [(b.name, r) for b, r in measured]


def examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if (p / "policy.json").is_file())


def run(quick: bool) -> list[Figure]:
    search_runs, runs, seconds = (2, 3, 0.01) if quick else (9, 25, 0.1)
    figures: list[Figure] = []
    with info_logging():
        for example in examples():
            figures += _measure(example, search_runs, runs, seconds)
    return figures


def _measure(example: Path, search_runs: int, runs: int, seconds: float) -> list[Figure]:
    body, _, _ = worst(example, search_runs)
    policy = parse_policy((example / "policy.json").read_text(encoding="utf-8"))
    data = body.body
    samples = interleaved(
        {"loads": lambda: json.loads(data), "handle": lambda: handle(data, policy)},
        runs,
        seconds,
    )
    status = handle(data, policy).status
    floor_id = f"{GROUP}.{example.name}.floor"
    return [
        Figure(
            GROUP,
            floor_id,
            f"floor: json.loads of {example.name}'s worst body",
            "us",
            [s * 1e6 for s in samples["loads"]],
        ),
        Figure(
            GROUP,
            f"{GROUP}.{example.name}",
            f"{example.name}: {body.name} ({len(data):,} bytes, {status})",
            "us",
            [s * 1e6 for s in samples["handle"]],
            baseline=floor_id,
            target=Target(RATIO_TARGET),
        ),
    ]


def main() -> None:
    """Every hostile body's ratio, per example: ``python -m benchmarks.worst_body``."""
    with info_logging():
        for example in examples():
            body, ratio, measured = worst(example)
            print(f"{example.name}: worst {body.name}, {ratio:.2f}x json.loads")
            for name, each in sorted(measured, key=lambda pair: -pair[1]):
                print(f"  {each:6.2f}x  {name}")


if __name__ == "__main__":
    main()
