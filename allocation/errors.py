"""What can go wrong while answering a request, as types.

Each error knows its JSON error code; :mod:`allocation.webhook` is the one place that maps these
types to HTTP status codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, at a JSON path such as ``default.hubs[2]``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class AllocationError(Exception):
    """Base of the errors that become an HTTP answer."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(AllocationError):
    """The body is not a DPS allocation request."""

    code = "invalid_request"

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class RequestTooLarge(AllocationError):
    code = "too_large"


class Denied(AllocationError):
    """A rule of the policy refuses the device."""

    code = "denied"

    def __init__(self, rule: str, trace: Sequence[str] = ()) -> None:
        super().__init__(f"denied by {rule}")
        self.rule = rule
        self.trace = tuple(trace)


class PolicyUnavailable(AllocationError):
    """The policy could not be loaded, or a strategy of it failed: DPS should try again later."""

    code = "policy_unavailable"


class StrategyFailed(PolicyUnavailable):
    """A strategy (in practice, a plug-in) raised, or answered something it may not."""

    def __init__(self, strategy: str, message: str) -> None:
        super().__init__(message)
        self.strategy = strategy


class LookupUnavailable(AllocationError):
    """A lookup's store could not answer and the lookup says ``onError: unavailable``: DPS
    should try again later rather than allocate without the row."""

    code = "lookup_unavailable"

    def __init__(self, lookup: str, cause: str = "") -> None:
        # The answer names neither the lookup nor its table (policy content) nor the cause
        # (the store's address): the log line has all three.
        super().__init__("a lookup could not read its table; DPS retries")
        self.lookup = lookup
        self.cause = cause


class NoEligibleHub(AllocationError):
    """Filters and drain left no linked hub for this device."""

    code = "no_eligible_hub"


class PolicyError(Exception):
    """A policy document breaks the rules of policy version 1."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))
