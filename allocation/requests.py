"""Request bytes to a validated request: parse, validate, and enforce the documented limits.

The body's size is checked first. The faster of two JSON parsers for it then reads it
(``json_parsers``: both refuse NaN and Infinity anywhere, which are not JSON, and their own
nesting limit keeps any body from making them work hard), the body's nesting is checked
against ours, the contract's schema validates it, and last come the device payload's size in
keys and its numbers.

A device controls up to 96 KiB of the body, so the checks cost less than parsing it
(``benchmarks/worst_body.py``): a body of few values is walked once parsed; one of many values
in few containers has each container looked at in C; one of many containers is checked on its
raw bytes in C (bytes methods, one regular expression), and its payload walked in Python only
when counts taken on the raw bytes cannot rule out too many keys or a number beyond a double's
range.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

from pydantic_core import ValidationError

from allocation.contract import REQUEST, AllocationRequest
from allocation.errors import InvalidRequest, Problem, RequestTooLarge
from allocation.json_parsers import parse_json
from allocation.limits import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD_KEYS,
    MAX_REGISTRATION_ID_LENGTH,
)
from allocation.paths import format_path

_BOM: Final = b"\xef\xbb\xbf"
# JSON's whitespace (RFC 8259): a body of only these is as empty as no body.
_JSON_WHITESPACE: Final = b" \t\r\n"
# What the raw-byte checks keep of a body: brackets and colons (nesting and object keys), what a
# number beyond a double's range needs (an exponent after a digit, or 309 digits in a row; commas
# keep the numbers of a list apart), and the quotes that say whether all those are inside a
# string. In UTF-8 every byte of a multi-byte character is >= 0x80, so all of them can be found
# byte by byte. Digits are kept as "0", "E" as "e".
_NOT_KEPT: Final = bytes(sorted(set(range(256)) - set(b'[]{}:",0123456789eE')))
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789E", b"000000000e")
# bytes.translate deletes before it maps: brackets are kept, then made parentheses.
_BRACKETS_AS_PARENTHESES: Final = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS: Final = bytes(sorted(set(range(256)) - set(b"[]{}")))
_HUGE_NUMBER_DIGITS: Final = b"0" * 309
_INFINITIES: Final = (math.inf, -math.inf)
# How many values a parsed body may hold for its limits to be checked by walking it; past that,
# on the raw bytes (see parse_request). Walking costs about 0.2 us per value, so giving up
# costs at most about 100 us, less than json.loads takes to build that many values.
_WALK_BUDGET: Final = 512


def _at_most(depth: int) -> re.Pattern[bytes]:
    """Balanced parentheses nested at most ``depth`` deep."""
    pattern = ""
    for _ in range(depth):
        pattern = rf"(?:\({pattern}\))*"
    return re.compile(pattern.encode())


# One pass of replace(b"()", b"") removes the innermost level at C speed, but a pass per level
# over long chains of single-key objects cost 1.4 ms; the expression checks what one pass
# leaves in one scan (the parser has refused unbalanced brackets by then).
_NESTED_WITHIN_LIMIT_LESS_ONE: Final = _at_most(MAX_JSON_DEPTH - 1)
# A run costs about as much as ten bytes of the regular expression.
_BYTES_PER_RUN_BOUNDARY: Final = 12


class _Shape(NamedTuple):
    """What the limits need to know of a body: whether it nests deeper than the limit, how many
    object keys there are (at every level), and whether a number may be beyond a double's
    range. From the raw bytes, keys and numbers are counted over the whole body, an upper bound
    for the payload; from the parsed document, for the payload exactly."""

    deeper_than_limit: bool
    keys: int
    huge_number_syntax: bool


def parse_request(body: bytes) -> AllocationRequest:
    if len(body) > MAX_BODY_BYTES:
        raise RequestTooLarge(
            f"the body is {len(body)} bytes; an allocation request is at most {MAX_BODY_BYTES}"
        )
    if body.startswith(_BOM):  # as some editors save files: harmless
        body = body[len(_BOM) :]
    if not body.strip(_JSON_WHITESPACE):
        # What `curl --data @missing-file` sends; the parser would say "EOF while parsing".
        raise InvalidRequest("the request body is empty: send the DPS allocation request as JSON")
    few_containers = _brackets_at_most(body, MAX_JSON_DEPTH)
    try:
        document = parse_json(body, few_containers)
    except RecursionError:
        raise InvalidRequest(_TOO_DEEP) from None
    # Most bodies hold few values and are checked by walking them; a body of many values costs
    # the parser far more than its bytes cost the raw checks (benchmarks/worst_body.py).
    payload = _payload_of(document)
    if few_containers:
        # Too few brackets to nest past the limit, as in nearly every real request: only the
        # payload is left to walk, and the envelope's fifty-odd values are not (a quarter of
        # the local host's throughput, measured with benchmarks/local_host.py).
        walked = (
            _walk(payload, payload)
            if isinstance(payload, (dict, list))
            else _Shape(False, 0, isinstance(payload, float) and not math.isfinite(payload))
        )
        shape = walked
    else:
        walked = _walk(document, payload)
        shape = walked if walked is not None else _shape(body)
    if shape is not None and shape.deeper_than_limit:
        raise InvalidRequest(_TOO_DEEP)
    try:
        request: AllocationRequest = REQUEST.validate_python(document)
    except ValidationError as error:
        raise _invalid(error) from None
    if walked is not None:
        if walked.huge_number_syntax:
            raise _not_finite()
        if walked.keys > MAX_PAYLOAD_KEYS:
            raise _too_many_keys(walked.keys)
    elif shape is None:
        # Many values in few containers: each container is looked at in C, and the raw checks
        # would cost more (a payload of 10,000 short strings: 1.8 times json.loads).
        _check_payload(payload)
    else:
        # The raw shape counts every key as sent, the envelope's too, and any exponent.
        if shape.keys > MAX_PAYLOAD_KEYS:
            outside = _keys_outside(document, payload)
            if outside is None:
                _check_payload(payload)
            elif shape.keys - outside > MAX_PAYLOAD_KEYS:
                raise _too_many_keys(shape.keys - outside)
        if shape.huge_number_syntax:
            _check_payload(payload)
    return request


_TOO_DEEP: Final = f"the body nests deeper than {MAX_JSON_DEPTH} levels"


def _brackets_at_most(body: bytes, limit: int) -> bool:
    """Whether ``body`` holds at most ``limit`` opening brackets. bytes.find scans with memchr
    and stops at the limit; bytes.count reads every byte, which on a 96 KiB body of few
    brackets cost three quarters of what json.loads takes on it."""
    seen = 0
    for bracket in (b"[", b"{"):
        at = body.find(bracket)
        while at >= 0:
            seen += 1
            if seen > limit:
                return False
            at = body.find(bracket, at + 1)
    return True


def _payload_of(document: Any) -> Any:
    runtime = document.get("deviceRuntimeContext") if isinstance(document, dict) else None
    return runtime.get("payload") if isinstance(runtime, dict) else None


def _walk(document: Any, payload: Any) -> _Shape | None:
    """The body's shape from the parsed document: nesting, and the payload's keys and whether it
    holds a number that is not finite (as huge_number_syntax); None, having checked nothing,
    when the body holds more than _WALK_BUDGET values."""
    budget = _WALK_BUDGET
    keys = 0
    if not isinstance(document, (dict, list)):  # not a request: the schema says why
        return _Shape(False, 0, False)
    pending: list[tuple[Any, int, bool]] = [(document, 1, document is payload)]
    while pending:
        value, depth, in_payload = pending.pop()
        budget -= len(value)
        if budget < 0:
            return None
        if isinstance(value, dict):
            if in_payload:
                keys += len(value)
            value = value.values()
        for item in value:
            if isinstance(item, (dict, list)):
                if depth >= MAX_JSON_DEPTH:
                    return _Shape(True, keys, False)
                pending.append((item, depth + 1, in_payload or item is payload))
            elif in_payload and isinstance(item, float) and not math.isfinite(item):
                return _Shape(False, keys, True)
    return _Shape(False, keys, isinstance(payload, float) and not math.isfinite(payload))


def _keys_outside(document: Any, payload: Any) -> int | None:
    """Object keys outside the payload; None past _WALK_BUDGET values."""
    budget = _WALK_BUDGET
    keys = 0
    pending = [document]
    while pending:
        value = pending.pop()
        budget -= len(value)
        if budget < 0:
            return None
        if isinstance(value, dict):
            keys += len(value)
            value = value.values()
        pending.extend(
            item for item in value if isinstance(item, (dict, list)) and item is not payload
        )
    return keys


def _invalid(error: ValidationError) -> InvalidRequest:
    details = error.errors(include_url=False)
    first = details[0]
    if first["type"] == "dict_type" and not first["loc"]:
        return InvalidRequest(f"the body must be a JSON object, not {_json_type(first['input'])}")
    problems = [
        Problem(
            format_path(tuple(detail["loc"])),
            _reworded(detail["type"], detail["loc"], detail["msg"]),
        )
        for detail in details
    ]
    return InvalidRequest(
        "the body is not a DPS allocation request: " + "; ".join(map(str, problems[:5])),
        problems,
    )


def _reworded(error_type: str, at: tuple[int | str, ...], message: str) -> str:
    # Host names and registration IDs are the only patterned or length-limited strings of the
    # contract.
    if error_type == "string_too_long" and at[-1:] == ("registrationId",):
        return (
            f"must be at most {MAX_REGISTRATION_ID_LENGTH} characters, the longest registration "
            "ID DPS supports"
        )
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


def _shape(body: bytes) -> _Shape:
    """The shape of a body that parsed, from calls of bytes methods and one regular
    expression, which run in C: a Python loop over every byte took 40 to 50 times as long as
    json.loads of the same 96 KiB. Escaped backslashes, then escaped quotes, are dropped, so
    every quote left opens or closes a string. Of what is kept, two adjacent quotes are dropped
    (an empty string, or two strings joined: nothing outside strings changes), then what lies
    between the quotes of each pair that remains. Of the brackets outside strings, one pass of
    ``replace(b"()", b"")`` removes the innermost level, and what is left must nest at most
    MAX_JSON_DEPTH - 1 deep."""
    # Escaped backslashes first, then escaped quotes; each pass only where one can be.
    if b"\\\\" in body:
        body = body.replace(b"\\\\", b"")
    if b'\\"' in body:
        body = body.replace(b'\\"', b"")
    kept = body.translate(_DIGITS_AS_ZERO, _NOT_KEPT).replace(b'""', b"")
    outside = b"".join(kept.split(b'"')[::2]) if b'"' in kept else kept
    huge = b"0e" in outside or _HUGE_NUMBER_DIGITS in outside
    keys = outside.count(b":")
    brackets = outside.translate(_BRACKETS_AS_PARENTHESES, _NOT_BRACKETS).replace(b"()", b"")
    return _Shape(_nests_deeper_than_limit_less_one(brackets), keys, huge)


def _nests_deeper_than_limit_less_one(brackets: bytes) -> bool:
    """Whether balanced parentheses nest deeper than MAX_JSON_DEPTH - 1.

    Where they form few runs, as long chains of objects do, the depth is summed over the runs,
    all of it in C: split at each ``)(``, every piece is a run of ``(`` then a run of ``)``
    (the one of each that a split drops cancel out in the sums). Where runs are many and short,
    a regular expression checks every byte (15 ns each: 0.4 ms for 26,000 bytes of chains,
    against about 0.1 ms by runs)."""
    if not brackets:
        return False
    if brackets.count(b")(") * _BYTES_PER_RUN_BOUNDARY > len(brackets):
        return _NESTED_WITHIN_LIMIT_LESS_ONE.fullmatch(brackets) is None
    pieces = brackets.split(b")(")
    opened = list(map(bytes.count, pieces, itertools.repeat(b"(")))
    closed = map(operator.sub, map(len, pieces), opened)
    steps = itertools.chain.from_iterable(zip(opened, map(operator.neg, closed), strict=True))
    deepest: int = max(itertools.accumulate(steps))
    return deepest > MAX_JSON_DEPTH - 1


def _check_payload(payload: Any) -> None:
    """At most MAX_PAYLOAD_KEYS object keys, counted at every level, and only finite numbers.

    The parser reads a number beyond the double range (JSON, but with no value a double can
    hold, such as 1e400) as infinity, which no JSON answer or log line could carry; such a
    payload is refused rather than silently changed. Each container's items are looked at by
    C code (their types, and infinity among floats); only containers that hold containers are
    gone through in Python.
    """
    keys = 0
    pending = [payload]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            keys += len(item)
            if keys > MAX_PAYLOAD_KEYS:
                raise _too_many_keys(keys)
            item = item.values()
        elif not isinstance(item, list):
            if isinstance(item, float) and not math.isfinite(item):
                raise _not_finite()
            continue
        if _all_strings(item):
            continue
        kinds = set(map(type, item))
        if float in kinds and any(infinity in item for infinity in _INFINITIES):
            raise _not_finite()
        if dict in kinds or list in kinds:
            pending.extend(value for value in item if isinstance(value, (dict, list)))


def _all_strings(values: Iterable[Any]) -> bool:
    """Whether every one of ``values`` is a string: joining them, in C, cost a quarter of
    taking the set of their types."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


def _not_finite() -> InvalidRequest:
    return InvalidRequest(
        "the payload holds a number that is not finite (NaN, Infinity, or beyond the range of "
        "a double)",
        [Problem("deviceRuntimeContext.payload", "numbers must be finite")],
    )


def _too_many_keys(keys: int) -> InvalidRequest:
    # Counting stops past the limit: ``keys`` is a lower bound.
    return InvalidRequest(
        f"the payload has {keys} object keys or more; at most {MAX_PAYLOAD_KEYS} are accepted",
        [Problem("deviceRuntimeContext.payload", f"more than {MAX_PAYLOAD_KEYS} keys")],
    )
