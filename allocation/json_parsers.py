"""Request bytes to Python values: the JSON parser that reads a body fastest, with one verdict.

pydantic-core's parser reads most bodies several times faster than the standard library's
(ASCII strings about eight times, numbers about twice), but escape sequences at about twice its
cost: a device payload of ``\\u00e9`` or surrogate-pair escapes, as ``json.dumps`` writes every
non-ASCII character, cost 2.1 to 2.5 times ``json.loads`` to parse alone
(``benchmarks/worst_body.py``). A large body dense in escapes is read by ``json.loads`` instead.

Both give the same values and refuse the same bodies: only JSON (no NaN or Infinity), only
UTF-8, only Unicode text (no lone surrogate, which ``json.loads`` would read), integers of at
most 4,300 digits, and a nesting limit of their own (pydantic-core's about 200 levels, the
interpreter's recursion limit for ``json.loads``), well past the request's. The messages say
what was wrong and where, in each parser's words.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from typing import Any, Final, NoReturn

import pydantic_core

from allocation.errors import InvalidRequest

# Below this size pydantic-core reads a body of escapes in tens of microseconds.
MIN_BYTES_FOR_STDLIB: Final = 16 * 1024
# One backslash in sixteen bytes: a third of the body in \u escapes, where pydantic-core's cost
# is about 1.4 times json.loads'. Denser, json.loads (with the check for lone surrogates) is the
# cheaper of the two.
BYTES_PER_BACKSLASH_FOR_STDLIB: Final = 16
# Backslashes are counted in windows of the body: counting them all cost 30 us on 96 KiB, half
# of what json.loads takes on a body of one ASCII string; the windows cost about 5 us. One is
# drawn at random in each eighth of the body, so that a sender cannot place escapes where no
# window looks.
_WINDOWS: Final = 8
_WINDOW_BYTES: Final = 512
assert MIN_BYTES_FOR_STDLIB // _WINDOWS > _WINDOW_BYTES, "each part must be wider than a window"

# Values to walk looking for lone surrogates, past which pydantic-core's encoder looks instead.
_WALK_BUDGET: Final = 512
_LONE_SURROGATE_HINT: Final = " (JSON strings must be Unicode text: no lone surrogates)"


def parse_json(body: bytes, few_containers: bool) -> Any:
    """The JSON value ``body`` holds. ``few_containers`` says that the body holds few brackets:
    then the strings of each container can be checked at once. Raises InvalidRequest, whose
    message starts "the body is not JSON", or RecursionError when the body nests deeper than
    the parser goes."""
    if few_containers and len(body) >= MIN_BYTES_FOR_STDLIB and _escape_dense(body):
        return parse_escape_dense(body)
    return parse_with_pydantic_core(body)


def _escape_dense(body: bytes) -> bool:
    """Whether one byte in BYTES_PER_BACKSLASH_FOR_STDLIB or more of ``body`` is a backslash,
    judged from _WINDOWS windows, one at a random offset in each equal part of the body."""
    part = len(body) // _WINDOWS
    span = part - _WINDOW_BYTES
    starts = [
        start + offset % span
        for start, offset in zip(
            range(0, part * _WINDOWS, part),
            memoryview(os.urandom(2 * _WINDOWS)).cast("H"),
            strict=True,
        )
    ]
    ends = [start + _WINDOW_BYTES for start in starts]
    backslashes = sum(map(body.count, itertools.repeat(b"\\"), starts, ends))
    return backslashes * BYTES_PER_BACKSLASH_FOR_STDLIB > _WINDOWS * _WINDOW_BYTES


def parse_with_pydantic_core(body: bytes) -> Any:
    try:
        # Caching strings cost a third more on a payload of 10,000 distinct keys, and a request
        # repeats few strings.
        return pydantic_core.from_json(body, allow_inf_nan=False, cache_strings=False)
    except ValueError as error:
        reason = str(error)
        if "recursion limit" in reason:
            raise RecursionError(reason) from None
        if "escape" in reason:
            reason += _LONE_SURROGATE_HINT
        raise _not_json(reason) from None


def parse_escape_dense(body: bytes) -> Any:
    try:
        # json.loads would read bytes with "surrogatepass"; UTF-8 has no surrogates.
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_json(f"invalid UTF-8 at byte {error.start}") from None
    try:
        document = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise _not_json(f"{error.msg} at line {error.lineno} column {error.colno}") from None
    except ValueError as error:  # an integer of over 4,300 digits, or _refuse_constant
        raise _not_json(str(error)) from None
    if _holds_lone_surrogate(document):
        raise _not_json("a string holds a lone surrogate" + _LONE_SURROGATE_HINT)
    return document


def _holds_lone_surrogate(document: Any) -> bool:
    """Whether a string of ``document``, key or value, holds a lone surrogate (which UTF-8
    cannot encode).

    The strings of each container are joined and encoded at once, in C; only a container that
    holds more than strings is gone through in Python, and past _WALK_BUDGET such values the
    whole document goes through pydantic-core's encoder instead. On 10,000 short strings
    joining cost 0.16 times json.loads, the encoder 0.42 times, and walking them one by one
    1.4 times. Searching the text for surrogate escapes cost 1.4 to 2 times, on the many partial
    matches of other escapes.
    """
    budget = _WALK_BUDGET
    pending = [document]
    try:
        while pending:
            value = pending.pop()
            if isinstance(value, str):  # the document itself
                _encode((value,))
                continue
            if isinstance(value, dict):
                _encode(value)
                value = value.values()
            elif not isinstance(value, list):
                continue
            try:
                _encode(value)
            except TypeError:  # not all strings
                budget -= len(value)
                if budget < 0:
                    pydantic_core.to_json(document)
                    return False
                for item in value:
                    if isinstance(item, str):
                        _encode((item,))
                    elif isinstance(item, (dict, list)):
                        pending.append(item)
    except (UnicodeEncodeError, pydantic_core.PydanticSerializationError):
        return True
    return False


def _encode(strings: Iterable[str]) -> None:
    """Raises UnicodeEncodeError if one of ``strings`` holds a lone surrogate, TypeError if one
    is not a string."""
    joined = "".join(strings)
    if not joined.isascii():
        joined.encode()


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def _not_json(reason: str) -> InvalidRequest:
    return InvalidRequest(f"the body is not JSON: {reason}")
