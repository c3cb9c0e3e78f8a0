"""1. Allocation cost in process: the real Azure Function, request in, response out.

The function is called as the Functions host calls it: the ``allocate`` function indexed from
``function_app.app``, a ``func.HttpRequest`` in, a ``func.HttpResponse`` out, with logging on at
INFO into a handler that formats every record and drops it: the decision line is built and
formatted as in Azure (the Functions worker's handler formats each record, then sends it to the
host), but not shipped anywhere. The request object is built once: building it is the host's
work, not the function's.

Baseline, per case: ``json.loads`` of the same request body plus ``json.dumps`` of the same
response body. Any Python webhook pays at least that to read DPS's request and answer it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func

from benchmarks import bodies
from benchmarks.report import Figure, Target
from benchmarks.timing import interleaved

GROUP = "in-process"
URL = "https://bench.azurewebsites.net/api/allocate"


@dataclass(frozen=True)
class Case:
    id: str
    label: str
    policy: Path | None  # None: the built-in policy
    body: bytes
    target: float | None  # at most this many times the floor


def cases() -> list[Case]:
    return [
        Case("default", "default policy, 10 hubs", None, bodies.default_body(), 6.0),
        Case(
            "rules-50",
            "50-rule policy, last rule matches",
            bodies.POLICIES / "rules-50.json",
            bodies.rules_body(),
            15.0,
        ),
        Case(
            "latency",
            "latency strategy, 10 measured hubs",
            bodies.POLICIES / "latency.json",
            bodies.latency_body(),
            None,
        ),
    ]


def allocate_function() -> Callable[[func.HttpRequest], func.HttpResponse]:
    """The ``allocate`` function as the Functions host indexes it."""
    from function_app import app  # noqa: PLC0415 - importing it is part of what is measured

    # get_functions() builds the functions, which the SDK refuses to do twice: once here.
    functions = {f.get_function_name(): f for f in app.get_functions()}
    user_function: Callable[[func.HttpRequest], func.HttpResponse] = functions[
        "allocate"
    ].get_user_function()
    return user_function


def http_request(body: bytes) -> func.HttpRequest:
    return func.HttpRequest(
        method="POST",
        url=URL,
        body=body,
        headers={"Content-Type": "application/json"},
        params={},
    )


class DiscardingHandler(logging.Handler):
    """Formats every record, as the Functions worker's handler does before it ships the line
    to the host, and drops it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


@contextlib.contextmanager
def info_logging() -> Iterator[None]:
    """Logging on at INFO, into a handler that discards."""
    root = logging.getLogger()
    handler = DiscardingHandler()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@contextlib.contextmanager
def policy_setting(policy: Path | None) -> Iterator[None]:
    """The policy the function loads: a file through ALLOCATION_POLICY_FILE, or the built-in."""
    from allocation.sources import (  # noqa: PLC0415
        POLICY_FILE_SETTING,
        POLICY_SETTING,
        policy_cache,
    )

    saved = {name: os.environ.get(name) for name in (POLICY_SETTING, POLICY_FILE_SETTING)}
    os.environ.pop(POLICY_SETTING, None)
    if policy is None:
        os.environ.pop(POLICY_FILE_SETTING, None)
    else:
        os.environ[POLICY_FILE_SETTING] = str(policy)
    policy_cache.clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        policy_cache.clear()


def run(quick: bool) -> list[Figure]:
    runs, seconds = (5, 0.02) if quick else (25, 0.1)
    allocate = allocate_function()
    figures: list[Figure] = []
    with info_logging():
        for case in cases():
            with policy_setting(case.policy):
                figures.extend(_measure(allocate, case, runs, seconds))
    return figures


def _measure(
    allocate: Callable[[func.HttpRequest], func.HttpResponse],
    case: Case,
    runs: int,
    seconds: float,
) -> list[Figure]:
    request = http_request(case.body)
    first = allocate(request)
    if first.status_code != 200:
        raise RuntimeError(
            f"{case.id}: the function answered {first.status_code}: {first.get_body()!r}"
        )
    answer: Any = json.loads(first.get_body())
    body = case.body

    def floor() -> None:
        json.loads(body)
        json.dumps(answer)

    samples = interleaved({"floor": floor, "function": lambda: allocate(request)}, runs, seconds)
    floor_id = f"{GROUP}.{case.id}.floor"
    return [
        Figure(
            GROUP,
            floor_id,
            f"floor: json.loads + json.dumps ({case.id} bodies)",
            "us",
            [s * 1e6 for s in samples["floor"]],
            note=f"request {len(body)} bytes, response {len(first.get_body())} bytes",
        ),
        Figure(
            GROUP,
            f"{GROUP}.{case.id}",
            case.label,
            "us",
            [s * 1e6 for s in samples["function"]],
            baseline=floor_id,
            target=Target(case.target) if case.target is not None else None,
        ),
    ]
