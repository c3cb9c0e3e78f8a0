"""Request bytes to a validated request: parse, validate, and enforce the documented limits.

pydantic-core's JSON parser reads the body (refusing NaN and Infinity anywhere, which are not
JSON), then the contract's schema validates it. Before that, the body's size and nesting are
checked on the raw bytes, so no body can make a parser work hard; after it, the device
payload's size in keys and its numbers.
"""

from __future__ import annotations

import math
from typing import Any, Final

import pydantic_core
from pydantic_core import ValidationError

from allocation.contract import REQUEST, AllocationRequest
from allocation.errors import InvalidRequest, Problem, RequestTooLarge
from allocation.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_PAYLOAD_KEYS
from allocation.paths import format_path

_BOM: Final = b"\xef\xbb\xbf"
_OPENERS: Final = frozenset(b"[{")
_CLOSERS: Final = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def parse_request(body: bytes) -> AllocationRequest:
    if len(body) > MAX_BODY_BYTES:
        raise RequestTooLarge(
            f"the body is {len(body)} bytes; an allocation request is at most {MAX_BODY_BYTES}"
        )
    if body.startswith(_BOM):  # as some editors save files: harmless
        body = body[len(_BOM) :]
    if depth_exceeds(body, MAX_JSON_DEPTH):
        raise InvalidRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        document = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as error:
        reason = str(error)
        if "escape" in reason:
            reason += " (JSON strings must be Unicode text: no lone surrogates)"
        raise InvalidRequest(f"the body is not JSON: {reason}") from None
    try:
        request: AllocationRequest = REQUEST.validate_python(document)
    except ValidationError as error:
        raise _invalid(error) from None
    _check_payload(request["deviceRuntimeContext"]["payload"])
    return request


def _invalid(error: ValidationError) -> InvalidRequest:
    details = error.errors(include_url=False)
    first = details[0]
    if first["type"] == "dict_type" and not first["loc"]:
        return InvalidRequest(f"the body must be a JSON object, not {_json_type(first['input'])}")
    problems = [
        Problem(format_path(tuple(detail["loc"])), _reworded(detail["type"], detail["msg"]))
        for detail in details
    ]
    return InvalidRequest(
        "the body is not a DPS allocation request: " + "; ".join(map(str, problems[:5])),
        problems,
    )


def _reworded(error_type: str, message: str) -> str:
    # Host names are the only patterned or length-limited strings of the contract.
    if error_type in ("string_pattern_mismatch", "string_too_long"):
        return "must be an IoT hub host name such as 'my-hub.azure-devices.net'"
    return message


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


def depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit``.

    In UTF-8 every byte of a multi-byte character is >= 0x80, so brackets, quotes and
    backslashes can be found byte by byte."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSERS:
            depth -= 1
    return False


def _check_payload(payload: Any) -> None:
    """At most MAX_PAYLOAD_KEYS object keys, counted at every level, and only finite numbers.

    The parser reads a number beyond the double range (JSON, but with no value a double can
    hold, such as 1e400) as infinity, which no JSON answer or log line could carry; such a
    payload is refused rather than silently changed.
    """
    keys = 0
    pending = [payload]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            keys += len(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidRequest(
                "the payload holds a number that is not finite (NaN, Infinity, or beyond the "
                "range of a double)",
                [Problem("deviceRuntimeContext.payload", "numbers must be finite")],
            )
    if keys > MAX_PAYLOAD_KEYS:
        raise InvalidRequest(
            f"the payload has {keys} object keys; at most {MAX_PAYLOAD_KEYS} are accepted",
            [Problem("deviceRuntimeContext.payload", f"more than {MAX_PAYLOAD_KEYS} keys")],
        )
