"""The core entry point: a raw request body in, a status code and a JSON body out.

Every host (the Azure Function, the local host, the command line) calls :func:`handle`, so they
all answer alike. This is also the one place where error types become status codes
(policy.md, "Status codes"). Our own logic never answers 401: DPS reads 401 as a key problem.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from allocation.context import RequestContext, context_from_request
from allocation.contract import AllocationRequest
from allocation.decision import Decision, decide
from allocation.errors import (
    AllocationError,
    Denied,
    InvalidRequest,
    NoEligibleHub,
    PolicyUnavailable,
    Problem,
    RequestTooLarge,
    StrategyFailed,
)
from allocation.limits import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD_KEYS,
    RETRY_AFTER_SECONDS,
)
from allocation.paths import format_path
from allocation.policy import Policy
from allocation.policy_sources import LoadedPolicy, policy_cache
from allocation.response import render_response

logger = logging.getLogger("allocation")

STATUS: Final[dict[type[AllocationError], int]] = {
    InvalidRequest: 400,
    Denied: 403,
    RequestTooLarge: 413,
    PolicyUnavailable: 503,
    NoEligibleHub: 503,
}

JSON_HEADERS: Final = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=lambda: JSON_HEADERS)
    # The decision behind a 200, for explanations; never serialised.
    decision: Decision | None = field(default=None, compare=False, repr=False)

    def body_bytes(self) -> bytes:
        # ASCII escapes keep a device's lone surrogates from breaking the UTF-8 encoding.
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def handle(body: bytes, policy: Policy | None = None) -> WebhookResponse:
    """Answer one allocation request. ``policy`` defaults to the process's loaded policy."""
    started = time.perf_counter()
    context: RequestContext | None = None
    try:
        request = parse_request(body)
        context = context_from_request(request)
        if policy is None:
            policy = policy_cache.get().policy
        decision = decide(policy, context)
        response = WebhookResponse(200, render_response(decision, context), JSON_HEADERS, decision)
        _log_decision(context, decision, started)
        return response
    except AllocationError as error:
        _log_refusal(context, error, started)
        return error_response(error)
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


def error_response(error: AllocationError) -> WebhookResponse:
    status = status_of(error)
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    headers = JSON_HEADERS
    if isinstance(error, InvalidRequest):
        body["details"] = [{"path": p.path, "message": p.message} for p in error.problems]
    elif isinstance(error, Denied):
        body["rule"] = error.rule
    elif isinstance(error, RequestTooLarge):
        body["limit"] = MAX_BODY_BYTES
    if status == 503:
        headers = {**JSON_HEADERS, "Retry-After": str(RETRY_AFTER_SECONDS)}
    return WebhookResponse(status, body, headers)


def health(loaded: LoadedPolicy | None = None) -> WebhookResponse:
    """Whether the policy loads: its fingerprint and size, never its content."""
    try:
        if loaded is None:
            loaded = policy_cache.get()
    except PolicyUnavailable as error:
        response = error_response(error)
        return WebhookResponse(
            response.status, {"status": "unavailable", **response.body}, response.headers
        )
    policy = loaded.policy
    return WebhookResponse(
        200,
        {
            "status": "ok",
            "policy": {
                "source": loaded.source,
                "fingerprint": policy.fingerprint,
                "hubs": len(policy.hubs),
                "enrollments": len(policy.enrollments),
                "strategies": sorted(policy.strategies),
            },
        },
    )


# -- parsing ---------------------------------------------------------------------------------


def parse_request(body: bytes) -> AllocationRequest:
    if len(body) > MAX_BODY_BYTES:
        raise RequestTooLarge(
            f"the body is {len(body)} bytes; an allocation request is at most {MAX_BODY_BYTES}"
        )
    document = parse_json(body)
    if not isinstance(document, dict):
        raise InvalidRequest(f"the body must be a JSON object, not {_json_type(document)}")
    try:
        request = AllocationRequest.model_validate(document)
    except ValidationError as error:
        problems = [
            Problem(format_path(tuple(detail["loc"])), _reworded(detail["type"], detail["msg"]))
            for detail in error.errors(include_url=False, include_input=False)
        ]
        raise InvalidRequest(
            "the body is not a DPS allocation request: " + "; ".join(map(str, problems[:5])),
            problems,
        ) from None
    keys = count_keys(request.device_runtime_context.payload)
    if keys > MAX_PAYLOAD_KEYS:
        raise InvalidRequest(
            f"the payload has {keys} object keys; at most {MAX_PAYLOAD_KEYS} are accepted",
            [Problem("deviceRuntimeContext.payload", f"more than {MAX_PAYLOAD_KEYS} keys")],
        )
    return request


def count_keys(value: Any) -> int:
    """Object keys in a JSON value, at every level (without recursion: depth is bounded, but
    a loop is as clear)."""
    count = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            count += len(item)
            pending.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            pending.extend(v for v in item if isinstance(v, (dict, list)))
    return count


def _reworded(error_type: str, message: str) -> str:
    # Host names are the only patterned or length-limited strings of the contract.
    if error_type in ("string_pattern_mismatch", "string_too_long"):
        return "must be an IoT hub host name such as 'my-hub.azure-devices.net'"
    return message


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _keep_finite(text: str) -> Any:
    # A number beyond the double range stays as its text rather than becoming infinity, which
    # has no JSON form.
    value = float(text)
    return value if math.isfinite(value) else text


def parse_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8-sig")  # a leading BOM, as some editors save files, is harmless
    except UnicodeDecodeError as error:
        raise InvalidRequest(
            f"the body is not UTF-8 text: {error.reason} at byte {error.start}"
        ) from None
    if depth_exceeds(text, MAX_JSON_DEPTH):
        raise InvalidRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_keep_finite)
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            f"the body is not JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    except ValueError as error:  # NaN/Infinity, or an integer of more than 4300 digits
        raise InvalidRequest(f"the body is not JSON: {error}") from None


def depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit``: checked before parsing, so
    no body can make the parser recurse deeply."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


# -- logging: one line per decision ------------------------------------------------------------


def _log_decision(context: RequestContext, decision: Decision, started: float) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    last = decision.steps[-1]
    _log(
        logging.INFO,
        {
            "event": "allocated",
            "registrationId": context.registration_id,
            "enrollment": context.enrollment_id,
            "path": decision.path,
            "candidates": len(last.after_drain),
            "hub": decision.hub.name,
            "reprovision": context.reprovision,
            "currentHub": context.current_hub,
            "durationMs": _elapsed_ms(started),
        },
    )


def _log_refusal(context: RequestContext | None, error: AllocationError, started: float) -> None:
    level = (
        logging.WARNING if isinstance(error, (PolicyUnavailable, NoEligibleHub)) else logging.INFO
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
            record["cause"] = f"{type(error.__cause__).__name__}: {error.__cause__}"[:300]
    record["message"] = error.message
    record["durationMs"] = _elapsed_ms(started)
    _log(level, record)


def _log(level: int, record: dict[str, Any]) -> None:
    # One JSON object per line: App Insights, `func start` and the local host all keep it whole,
    # and JSON escaping keeps device-controlled strings from forging log lines.
    logger.log(level, json.dumps(record, separators=(",", ":"), ensure_ascii=True))


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
