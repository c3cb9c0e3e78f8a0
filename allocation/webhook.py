"""The core entry point: a raw request body in, a status code and a JSON body out.

Every host (the Azure Function, the local host, the command line) calls :func:`handle`, so they
all answer alike. This is also the one place where error types become status codes
(policy.md, "Status codes"). Our own logic never answers 401: DPS reads 401 as a key problem.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pydantic_core

from allocation.context import LookupRows, RequestContext, context_from_request
from allocation.decision import Decision, decide
from allocation.errors import (
    REASONS,
    AllocationError,
    Denied,
    InvalidRequest,
    LookupUnavailable,
    NoEligibleHub,
    PolicyUnavailable,
    RequestTooLarge,
    StrategyFailed,
    without_secrets,
)
from allocation.limits import (
    MAX_BODY_BYTES,
    RETRY_AFTER_SECONDS,
)
from allocation.policy import Policy
from allocation.requests import parse_request
from allocation.response import render_response
from allocation.sources import PolicyStatus, policy_cache

logger = logging.getLogger("allocation")

STATUS: Final[dict[type[AllocationError], int]] = {
    InvalidRequest: 400,
    Denied: 403,
    RequestTooLarge: 413,
    PolicyUnavailable: 503,
    NoEligibleHub: 503,
    LookupUnavailable: 503,
}

JSON_HEADERS: Final = {"Content-Type": "application/json"}

# One encoder, made once: json.dumps with options builds a new one per call. ASCII escapes keep
# log lines ASCII (no character a log viewer could read as a line break) and carry lone
# surrogates, which UTF-8 cannot.
COMPACT_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)
# A str as a JSON string, escaped as COMPACT_JSON escapes it.
_string: Final = json.encoder.encode_basestring_ascii


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=lambda: JSON_HEADERS)
    # The decision behind a 200, for explanations; never serialised.
    decision: Decision | None = field(default=None, compare=False, repr=False)
    # The request's lookups (what each found, and how), for explanations; never serialised.
    lookups: LookupRows | None = field(default=None, compare=False, repr=False)

    def body_bytes(self) -> bytes:
        try:
            # pydantic-core's encoder: a tenth of the time of the json module's, in UTF-8.
            return pydantic_core.to_json(self.body)
        except pydantic_core.PydanticSerializationError:
            # A lone surrogate, which UTF-8 cannot carry: requests holding one are refused, and
            # so are policy twins and payloads, but a rule's name in a 403 may still hold one.
            # ASCII escapes carry it.
            return COMPACT_JSON.encode(self.body).encode("ascii")


# Where the one line per answer goes: (level, line). The Function's go through the "allocation"
# logger, which the Functions host ships to Application Insights; the local host batches them
# with its access lines (allocation.local_host.AccessLog), as a LogRecord per request costs it
# about a tenth of its throughput.
LogLine = Callable[[int, str], None]


def log_through_logging(level: int, line: str) -> None:
    # The record is made directly: logger.log() would also walk the stack to find its caller,
    # on every request.
    logger.handle(logger.makeRecord(logger.name, level, __file__, 0, line, (), None))


def handle(
    body: bytes, policy: Policy | None = None, log: LogLine = log_through_logging
) -> WebhookResponse:
    """Answer one allocation request. ``policy`` defaults to the process's loaded policy; the
    answer's line goes to ``log``, if the ``allocation`` logger is enabled for its level."""
    started = time.perf_counter()
    context: RequestContext | None = None
    try:
        request = parse_request(body)
        context = context_from_request(request)
        if policy is None:
            policy = policy_cache.get().policy
        if policy.lookups is not None:
            context = policy.lookups.attach(context)
        decision = decide(policy, context)
        response = WebhookResponse(
            200, render_response(decision, context), JSON_HEADERS, decision, context.lookups
        )
        _log_decision(context, decision, policy.fingerprint, started, log)
        return response
    except AllocationError as error:
        fingerprint = _live_fingerprint(policy)
        _log_refusal(context, error, fingerprint, started, log)
        refusal = error_response(error, fingerprint)
        session = None if context is None else context.lookups
        if session is not None:
            return WebhookResponse(refusal.status, refusal.body, refusal.headers, None, session)
        return refusal
    except Exception:
        # A defect of ours. 500 makes DPS retry, as for any 5xx, and the device is not lost.
        logger.exception(
            json.dumps(
                {"event": "internal_error", "registrationId": context and context.registration_id}
            )
        )
        return WebhookResponse(500, {"error": "internal_error", "message": "internal error"})


def status_of(error: AllocationError) -> int:
    return next(STATUS[kind] for kind in type(error).__mro__ if kind in STATUS)


def _live_fingerprint(policy: Policy | None) -> str | None:
    if policy is not None:
        return policy.fingerprint
    live = policy_cache.live
    return live.policy.fingerprint if live is not None else None


def error_response(error: AllocationError, fingerprint: str | None = None) -> WebhookResponse:
    """The answer to a refusal. A 503 for the policy is seen by whoever calls, and /api/health
    by anyone: it names a reason code, the live policy's fingerprint and a correlation ID that
    the log line with the full reason also holds, never a path, a policy's content or an error's
    text (a plug-in's error can quote anything, a connection string included)."""
    status = status_of(error)
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    headers = JSON_HEADERS
    if isinstance(error, PolicyUnavailable):
        body.update(
            message=REASONS.get(error.reason, REASONS["policy_unavailable"]),
            reason=error.reason,
            correlationId=error.correlation_id,
        )
        if fingerprint is not None:
            body["policy"] = fingerprint
    elif isinstance(error, InvalidRequest):
        body["details"] = [{"path": p.path, "message": p.message} for p in error.problems]
    elif isinstance(error, Denied):
        body["rule"] = error.rule
    elif isinstance(error, RequestTooLarge):
        body["limit"] = MAX_BODY_BYTES
    if status == 503:
        headers = {**JSON_HEADERS, "Retry-After": str(RETRY_AFTER_SECONDS)}
    return WebhookResponse(status, body, headers)


def health(
    status: PolicyStatus | None = None, log: LogLine = log_through_logging
) -> WebhookResponse:
    """Whether the policy loads: ``ok``, ``degraded`` (answering from the last good version
    while a newer one is refused or the store is unreachable), or 503 ``unavailable``. Its
    fingerprint, size and reason codes, never its content, paths or errors' text; a 503 writes
    the refusal line that holds the full reason and the same correlation ID."""
    if status is None:
        try:
            policy_cache.get()
        except PolicyUnavailable as error:
            _log_refusal(None, error, None, time.perf_counter(), log)
            return WebhookResponse(
                503,
                {
                    "status": "unavailable",
                    "error": error.code,
                    "reason": error.reason,
                    "correlationId": error.correlation_id,
                },
                {**JSON_HEADERS, "Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        status = policy_cache.status()
    loaded = status.live
    assert loaded is not None  # get() returned it
    policy = loaded.policy
    body: dict[str, Any] = {
        "status": "degraded" if status.degraded else "ok",
        "policy": {
            "source": loaded.source,
            "fingerprint": policy.fingerprint,
            "hubs": len(policy.hubs),
            "enrollments": len(policy.enrollments),
            "strategies": sorted(policy.strategies),
        },
    }
    if loaded.etag is not None:
        body["policy"]["etag"] = loaded.etag
    for name, refusal in (("rejected", status.rejected), ("unreachable", status.unreachable)):
        if refusal is not None:
            body[name] = {
                "version": refusal.version,
                "reason": refusal.reason,
                "correlationId": refusal.correlation_id,
                "secondsAgo": round(status.now - refusal.since, 1),
            }
    if status.last_good_check is not None:
        body["lastGoodCheckSecondsAgo"] = round(status.now - status.last_good_check, 1)
    return WebhookResponse(200, body)


# -- logging: one line per decision ------------------------------------------------------------


def _log_decision(
    context: RequestContext, decision: Decision, fingerprint: str, started: float, log: LogLine
) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    # The line every allocation writes, so it is formatted directly: a third of the cost of a
    # dict through the JSON encoder. The same escaping as _log's; tests read it back as JSON.
    current = context.current_hub
    log(
        logging.INFO,
        f'{{"event":"allocated","registrationId":{_string(context.registration_id)},'
        f'"enrollment":{_string(context.enrollment_id)},"path":{_string(decision.path)},'
        f'"candidates":{len(decision.steps[-1].after_drain)},"hub":{_string(decision.hub.name)},'
        f'"reprovision":{"false" if current is None else "true"},'
        f'"currentHub":{"null" if current is None else _string(current)},'
        f"{_lookups_field(context)}"
        f'"policy":"{fingerprint}","durationMs":{_elapsed_ms(started)!r}}}',
    )


def _lookups_field(context: RequestContext) -> str:
    """``"lookups":{...},`` when a lookup ran for this request, else nothing."""
    if context.lookups is None or not context.lookups.outcomes:
        return ""
    outcomes = context.lookups.outcomes
    # Formatted directly, as the rest of the line: lookup names are ASCII identifiers and
    # outcomes fixed words, so nothing needs escaping (the JSON encoder cost 3 us here).
    return '"lookups":{' + ",".join(f'"{n}":"{o}"' for n, o in outcomes.items()) + "},"


def _log_refusal(
    context: RequestContext | None,
    error: AllocationError,
    fingerprint: str | None,
    started: float,
    log: LogLine,
) -> None:
    level = (
        logging.WARNING
        if isinstance(error, (PolicyUnavailable, NoEligibleHub, LookupUnavailable))
        else logging.INFO
    )
    if not logger.isEnabledFor(level):
        return
    record: dict[str, Any] = {"event": error.code, "status": status_of(error)}
    if context is not None:
        record.update(
            registrationId=context.registration_id,
            enrollment=context.enrollment_id,
            reprovision=context.reprovision,
        )
    if isinstance(error, Denied):
        record.update(rule=error.rule, path=" > ".join(error.trace))
    if isinstance(error, StrategyFailed):
        record["strategy"] = error.strategy
        if error.__cause__ is not None:
            cause = f"{type(error.__cause__).__name__}: {error.__cause__}"
            record["cause"] = without_secrets(cause)[:300]
    if isinstance(error, LookupUnavailable):
        record.update(lookup=error.lookup, cause=without_secrets(error.cause))
    if context is not None and context.lookups is not None and context.lookups.outcomes:
        record["lookups"] = dict(context.lookups.outcomes)
    record["message"] = without_secrets(error.message)
    if isinstance(error, PolicyUnavailable):
        record.update(reason=error.reason, correlationId=error.correlation_id)
    if fingerprint is not None:
        record["policy"] = fingerprint
    record["durationMs"] = _elapsed_ms(started)
    _log(log, level, record)


def _log(log: LogLine, level: int, record: dict[str, Any]) -> None:
    # One JSON object per line: App Insights, `func start` and the local host all keep it whole,
    # and JSON escaping keeps device-controlled strings from forging log lines.
    log(level, COMPACT_JSON.encode(record))


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
