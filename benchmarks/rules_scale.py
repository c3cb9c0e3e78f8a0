"""5. Rules that scale: allocation cost as a ``rules`` list grows from 50 to 5,000 rules.

One rule per customer, as operators write them: even rules hold for a device whose payload names
the customer (``payload.customerId``), odd ones for a registration ID with the customer's prefix
(``registrationId`` ``startsWith``), each placing the device on one hub. Three devices: one whose
rule is in the middle of the list, one whose rule is the last, and one no rule holds for (the
linear scan's worst case). Each is answered by :func:`allocation.webhook.handle`, the entry every
host calls, with the decision line built and dropped.

Baselines, per device: the same device under the 50-rule policy; 500 and 5,000 rules must cost at
most 2x that. The 5,000-rule list is also timed checked rule by rule (the index switched off),
for the gain; and small lists both ways, for the threshold below which the index is not built
(``allocation.rule_index.MIN_RULES``). Policy load: the time to parse and compile the 5,000-rule
policy, and the memory it allocates at its peak (tracemalloc), against absolute targets.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any, Final

from benchmarks import bodies
from benchmarks.report import Figure, Target
from benchmarks.timing import interleaved

GROUP: Final = "rules-scale"
SIZES: Final = (50, 500, 5000)
SMALL_SIZES: Final = (2, 4, 8, 16)
HUBS: Final = bodies.HUBS[:4]


def customer(number: int) -> str:
    return f"customer-{number:05d}"


def customer_policy(rules: int) -> dict[str, Any]:
    """``rules`` rules, one per customer (see the module docstring)."""
    listed = []
    for number in range(rules):
        name = customer(number)
        when = (
            {"payload.customerId": {"equals": name}}
            if number % 2 == 0
            else {"registrationId": {"startsWith": f"{name}-"}}
        )
        then = {"strategy": "static", "hub": HUBS[number % len(HUBS)]}
        listed.append({"name": name, "when": when, "then": then})
    return {"default": {"strategy": "rules", "rules": listed, "otherwise": "deny"}}


def device_of(rule: int | None) -> bytes:
    """A request the given rule holds for (and no earlier one); None: no rule holds."""
    if rule is None:
        return bodies.encode(bodies.request("unknown-device-7", {"customerId": "nobody"}))
    if rule % 2 == 0:
        return bodies.encode(bodies.request("device-7", {"customerId": customer(rule)}))
    return bodies.encode(bodies.request(f"{customer(rule)}-device-7", {"model": "m1"}))


def _discard(level: int, line: str) -> None:
    return None


@contextlib.contextmanager
def min_rules(count: int) -> Iterator[None]:
    """The linear switch, for the benchmark and the tests: policies compiled inside index lists
    of ``count`` rules or more (1: always; a huge count: never)."""
    from allocation import rule_index  # noqa: PLC0415

    saved = rule_index.MIN_RULES
    rule_index.MIN_RULES = count
    try:
        yield
    finally:
        rule_index.MIN_RULES = saved


def compiled(rules: int, *, linear: bool = False) -> Any:
    from allocation.policy import compile_policy  # noqa: PLC0415

    with min_rules(10**9 if linear else 1):
        return compile_policy(customer_policy(rules))


def answering(policy: Any, body: bytes, expected: int) -> Callable[[], object]:
    from allocation.webhook import handle  # noqa: PLC0415

    first = handle(body, policy, log=_discard)
    if first.status != expected:
        raise RuntimeError(f"expected {expected}, the webhook answered {first.status}")
    return lambda: handle(body, policy, log=_discard)


def run(quick: bool) -> list[Figure]:
    runs, seconds = (3, 0.01) if quick else (15, 0.05)
    figures: list[Figure] = []
    policies = {size: compiled(size) for size in SIZES}
    devices: dict[str, Callable[[int], int | None]] = {
        "middle": lambda size: size // 2,
        "last": lambda size: size - 1,
        "none": lambda size: None,
    }
    labels = {
        "middle": "device whose rule is in the middle",
        "last": "device whose rule is the last",
        "none": "device no rule holds for",
    }
    linear_5000 = compiled(5000, linear=True)
    for device, rule_of in devices.items():
        calls = {
            str(size): answering(
                policies[size], device_of(rule_of(size)), 403 if rule_of(size) is None else 200
            )
            for size in SIZES
        }
        calls["5000-linear"] = answering(
            linear_5000, device_of(rule_of(5000)), 403 if rule_of(5000) is None else 200
        )
        samples = interleaved(calls, runs, seconds)
        base = f"{GROUP}.{device}.50"
        for size in SIZES:
            figures.append(
                Figure(
                    GROUP,
                    f"{GROUP}.{device}.{size}",
                    f"{size} rules, {labels[device]}",
                    "us",
                    [s * 1e6 for s in samples[str(size)]],
                    baseline=None if size == 50 else base,
                    target=None if size == 50 else Target(2.0),
                )
            )
        figures.append(
            Figure(
                GROUP,
                f"{GROUP}.{device}.5000-linear",
                f"5000 rules checked one by one (no index), {labels[device]}",
                "us",
                [s * 1e6 for s in samples["5000-linear"]],
                baseline=base,
            )
        )
    figures.extend(_threshold(runs, seconds))
    figures.extend(_load(3 if quick else 7))
    return figures


def _threshold(runs: int, seconds: float) -> list[Figure]:
    """Small lists, indexed against linear, for a device no rule holds for (MIN_RULES): the
    strategy's choice alone, since a whole request's cost would hide a difference this small."""
    from allocation.context import context_from_request  # noqa: PLC0415
    from allocation.requests import parse_request  # noqa: PLC0415

    context = context_from_request(parse_request(device_of(None)))
    figures = []
    for size in SMALL_SIZES:
        linear = compiled(size, linear=True).default.strategy
        indexed = compiled(size).default.strategy
        samples = interleaved(
            {
                "linear": lambda s=linear: s.choose(context, ()),
                "indexed": lambda s=indexed: s.choose(context, ()),
            },
            runs,
            seconds,
        )
        base = f"{GROUP}.small.{size}.linear"
        figures.append(
            Figure(
                GROUP,
                base,
                f"{size} rules, no index: the rules strategy's choice, no rule holds",
                "us",
                [s * 1e6 for s in samples["linear"]],
            )
        )
        figures.append(
            Figure(
                GROUP,
                f"{GROUP}.small.{size}.indexed",
                f"{size} rules, indexed: the rules strategy's choice, no rule holds",
                "us",
                [s * 1e6 for s in samples["indexed"]],
                baseline=base,
            )
        )
    return figures


def _load(runs: int) -> list[Figure]:
    from allocation.policy import parse_policy  # noqa: PLC0415

    text = json.dumps(customer_policy(5000))
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        parse_policy(text)
        times.append((time.perf_counter() - started) * 1e3)
    tracemalloc.start()
    try:
        parse_policy(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return [
        Figure(
            GROUP,
            f"{GROUP}.load.5000",
            "load a 5000-rule policy (parse, compile, index)",
            "ms",
            times,
            target=Target(1000.0, on="value"),
            note=f"policy text {len(text) / 1e6:.1f} MB; median of {runs} loads "
            f"{statistics.median(times):.0f} ms",
        ),
        Figure(
            GROUP,
            f"{GROUP}.memory.5000",
            "peak memory allocated loading a 5000-rule policy",
            "MiB",
            [peak / 2**20],
            target=Target(50.0, on="value"),
            note="tracemalloc peak, the policy text itself not counted",
        ),
    ]
