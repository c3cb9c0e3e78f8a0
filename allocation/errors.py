"""What can go wrong while answering a request, as types.

Each error knows its JSON error code; :mod:`allocation.webhook` is the one place that maps these
types to HTTP status codes.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final


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


def correlation_id() -> str:
    """A value an anonymous answer shares with the log line that holds the full reason."""
    return secrets.token_hex(8)


class PolicyUnavailable(AllocationError):
    """The policy could not be loaded, or a strategy of it failed: DPS should try again later.

    ``message`` holds the full reason, for the log and the operator's tools; an anonymous answer
    carries only ``reason`` (a code from REASONS) and ``correlation_id``, which the log line
    shares. ``version`` names what was refused (a blob's ETag, a file's content hash), if known.
    """

    code = "policy_unavailable"

    def __init__(
        self, message: str, reason: str = "policy_unavailable", version: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.version = version
        self.correlation_id = correlation_id()


class SourceUnreachable(PolicyUnavailable):
    """The policy store did not answer: what was loaded from it is stale, not wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "policy_source_unreachable")


class StrategyFailed(PolicyUnavailable):
    """A strategy (in practice, a plug-in) raised, or answered something it may not."""

    def __init__(self, strategy: str, message: str) -> None:
        super().__init__(message, "strategy_failed")
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


# The reason codes of a 503 policy_unavailable, each with the only message an anonymous answer
# gives: the policy's paths, hub names, operands and a plug-in's error text stay in the log.
REASONS: Final[dict[str, str]] = {
    "policy_unavailable": "the policy is unavailable",
    "policy_file_unreadable": "the policy file cannot be read",
    "policy_blob_not_found": "the policy blob does not exist",
    "policy_invalid": "the policy is invalid",
    "policy_source_unreachable": "the policy store cannot be reached",
    "storage_not_configured": "the policy store's connection is not configured",
    "strategy_failed": "a strategy of the policy failed",
}


# Key material an error text may quote: a connection string's keys, a SAS signature, a function
# key in a URL. What a plug-in's exception says is beyond our control, so logs mask these.
_SECRET: Final = re.compile(
    r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|sig|code|password|pwd|secret|"
    r"token|key)=([^;&\s'\"]+)"
)


def without_secrets(text: str) -> str:
    """``text`` with the values of key-like ``name=value`` pairs masked."""
    return _SECRET.sub(r"\1=***", text)


class NoEligibleHub(AllocationError):
    """Filters and drain left no linked hub for this device."""

    code = "no_eligible_hub"


class PolicyError(Exception):
    """A policy document breaks the rules of policy version 1."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))
