"""Plug-in strategies: operator code behind the same protocol as the built-in strategies.

A policy names a plug-in by ``"strategy": "package.module:Name"``, or by a name registered
under the entry-point group ``dps_allocation.strategies`` (in the plug-in package's
``pyproject.toml``: ``[project.entry-points."dps_allocation.strategies"] my-strategy =
"package.module:Name"``). ``Name`` is a class (or any callable) that the policy loader calls
once with the allocation's options — every key of the allocation except ``strategy``, ``hubs``,
``initialTwin``, ``payload`` and ``sticky`` — and that raises ``ValueError`` for options it does
not accept (the message becomes a policy error at the allocation's path; any other exception
does too, less readably).
The object it returns has one method::

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> ...

``context`` is the registration (allocation.context.RequestContext: ``registration_id``,
``enrollment_id``, ``payload``, ``current_hub``, ``value("payload.x")`` ...); ``candidates``
are the hubs it may choose from, in ``linkedHubs`` order, after filters and drain, each with
``name``, ``weight``, ``region`` and ``settings.tags``. It returns one of the candidates (or its
host name), or ``Deny("reason")`` (allocation.strategies.base.Deny) to refuse the device.

A plug-in can never place a device wrongly: when it raises, takes longer than
``PLUGIN_TIMEOUT_SECONDS`` (allocation.limits), or answers anything other than a candidate or a
denial, the request gets a 503 (DPS retries) and the log names the plug-in. ``choose`` runs on a
worker thread: it must be thread-safe.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from allocation.candidates import Candidate
from allocation.context import RequestContext
from allocation.errors import PolicyError, Problem, StrategyFailed
from allocation.hostnames import host_key
from allocation.limits import PLUGIN_TIMEOUT_SECONDS
from allocation.paths import JsonPath, format_path
from allocation.strategies.base import CompileNested, Deny, Outcome, Pick, StrategyBuilder

ENTRY_POINT_GROUP: Final = "dps_allocation.strategies"
TIMEOUT_SECONDS = PLUGIN_TIMEOUT_SECONDS


class PluginChooser(Protocol):
    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Any: ...


@dataclass(frozen=True)
class Plugin:
    """Adapts a plug-in to the Strategy protocol, checking everything it answers."""

    name: str
    chooser: PluginChooser
    routes: bool = False

    def choose(self, context: RequestContext, candidates: Sequence[Candidate]) -> Outcome:
        # On a worker thread, so a plug-in that hangs costs this request a 503, not the host a
        # worker. A hung call keeps its thread; the pool's bound keeps that from growing.
        call = _pool().submit(self.chooser.choose, context, tuple(candidates))
        try:
            answer = call.result(timeout=TIMEOUT_SECONDS)
        except concurrent.futures.TimeoutError:
            call.cancel()
            raise StrategyFailed(
                self.name, f"plug-in '{self.name}' did not answer within {TIMEOUT_SECONDS:g} s"
            ) from None
        except Exception as error:
            raise StrategyFailed(
                self.name, f"plug-in '{self.name}' raised {type(error).__name__}"
            ) from error
        if isinstance(answer, Deny):
            return answer
        if isinstance(answer, (Candidate, str)):
            wanted = answer.key if isinstance(answer, Candidate) else host_key(answer)
            for hub in candidates:
                if hub.key == wanted:
                    return Pick(hub, {"plugin": self.name})
        raise StrategyFailed(
            self.name,
            f"plug-in '{self.name}' answered {_describe(answer)}, which is not one of its "
            f"{len(candidates)} candidate hubs",
        )


@functools.cache
def _pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="plugin")


def _describe(answer: Any) -> str:
    if isinstance(answer, Candidate):
        return f"hub '{answer.name}'"
    if isinstance(answer, str):
        return f"hub '{answer[:100]}'"
    return f"a {type(answer).__name__}"


def resolve(name: str) -> StrategyBuilder | None:
    """A builder for a plug-in name, or None when ``name`` cannot name a plug-in."""
    if ":" not in name and not _entry_points(name):
        return None

    def build(options: Mapping[str, Any], at: JsonPath, nested: CompileNested) -> Plugin:
        factory = _load(name, (*at, "strategy"))
        try:
            chooser = factory(dict(options))
        except Exception as error:  # operator code: any failure is a policy error, never a crash
            reason = str(error) if isinstance(error, (ValueError, TypeError)) else repr(error)
            raise PolicyError([Problem(format_path(at), f"plug-in '{name}': {reason}")]) from None
        if not callable(getattr(chooser, "choose", None)):
            raise PolicyError(
                [
                    Problem(
                        format_path((*at, "strategy")), f"plug-in '{name}' has no choose() method"
                    )
                ]
            )
        return Plugin(name, chooser)

    return build


def _entry_points(name: str) -> list[importlib.metadata.EntryPoint]:
    import importlib.metadata  # noqa: PLC0415 - 5 ms of a cold start; only plug-ins need it

    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name))


def _load(name: str, at: JsonPath) -> Callable[[dict[str, Any]], PluginChooser]:
    try:
        if ":" in name:
            module_name, _, attribute = name.partition(":")
            target: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                target = getattr(target, part)
        else:
            target = _entry_points(name)[0].load()
    except Exception as error:
        raise PolicyError(
            [
                Problem(
                    format_path(at),
                    f"cannot load plug-in '{name}': {type(error).__name__}: {error}",
                )
            ]
        ) from None
    if not callable(target):
        raise PolicyError(
            [Problem(format_path(at), f"plug-in '{name}' is not a class or function")]
        )
    loaded: Callable[[dict[str, Any]], PluginChooser] = target
    return loaded
