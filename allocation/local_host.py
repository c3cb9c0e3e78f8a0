"""The local host: the function app's routes as a plain ASGI application.

It answers like the Azure Functions host in front of ``function_app.py``: ``POST /api/allocate``
behind a function key (``?code=<key>`` or the ``x-functions-key`` header; wrong or missing: 401)
and ``GET /api/health``, anonymous. Both call the same core entry points as the Function.
Served by ``python -m allocation serve``; this module imports no server.

Policy code never runs on the event loop when it could wait: a policy with lookups (calls to a
table) or a plug-in (whose ``choose`` may take up to PLUGIN_TIMEOUT_SECONDS), and any answer that
must first load the policy (later checks of its source run in the background:
allocation.sources.cache), run on a thread, so one slow store, plug-in or load never delays
health or other requests. A policy of built-in strategies and no lookups answers on the loop:
its cost is bounded CPU time, and the hop to a thread would cost the host a large share of its
throughput (BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final, TextIO
from urllib.parse import unquote_to_bytes

from allocation import openapi, webhook
from allocation.errors import RequestTooLarge
from allocation.limits import MAX_BODY_BYTES
from allocation.policy import Policy
from allocation.sources import policy_cache
from allocation.strategies import BUILTIN

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KEY_HEADER: Final = b"x-functions-key"

# At most this many connections open at once; the server closes any more as soon as it accepts
# them. Policy code gets as many threads, so no request ever waits for a thread behind others.
MAX_CONNECTIONS: Final = 256
# A request body must arrive within this long of its headers: DPS sends at most 96 KiB at once.
BODY_SECONDS: Final = 5.0

_BUILTIN_STRATEGIES: Final = frozenset(BUILTIN)

access_log = logging.getLogger("allocation.access")

# The Functions host reads the key from the query parameter ``code`` (ASP.NET Core compares
# query names without case). Authentication and the log's redaction both use this one test, on
# the name as decoded: no spelling of a query authenticates with a key the log then shows.
KEY_PARAMETER: Final = b"code"

# What an access line may show as it is: printable ASCII but the quote and the backslash, which
# frame and escape the line. Anything else becomes \xHH, as nginx writes its access log.
_UNSAFE_IN_LOG = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


def _escape_match(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def log_escaped(raw: bytes) -> str:
    """Client bytes as an access line may show them: always one line, never a quote."""
    return _UNSAFE_IN_LOG.sub(_escape_match, raw.decode("latin-1"))


def _query_decoded(part: bytes) -> bytes:
    # As application/x-www-form-urlencoded: "+" is a space, then %XX escapes; never raises.
    return unquote_to_bytes(part.replace(b"+", b" "))


def _is_key_parameter(name: bytes) -> bool:
    return _query_decoded(name).lower() == KEY_PARAMETER


# DPS calls with one query string (the webhook URL's ?code=<key>) again and again: its key and
# its redacted form are kept rather than parsed for every request.
@functools.lru_cache(maxsize=64)
def _query(query: bytes) -> tuple[bytes | None, str]:
    offered: bytes | None = None
    logged = []
    for field in query.split(b"&"):
        name, _, value = field.partition(b"=")
        if _is_key_parameter(name):
            if offered is None:
                offered = _query_decoded(value)
            logged.append(name + b"=***")
        else:
            logged.append(field)
    return offered, log_escaped(b"&".join(logged))


def redact_query(query: bytes) -> str:
    """The query string as logged: every function key replaced, escaped to stay on one line."""
    return _query(query)[1]


def key_in_query(query: bytes) -> bytes | None:
    """The function key a query offers: its first ``code`` parameter, decoded."""
    return _query(query)[0]


class AccessLog:
    """One line per request, and before it the webhook's line for an allocation request.

    Written to ``stream`` in batches at most FLUSH_SECONDS apart, as nginx's buffered access log
    does (a write per request costs the host about a tenth of its throughput, and so does a
    LogRecord per request), and at shutdown. Without a stream, access lines go through the
    ``allocation.access`` logger and the webhook's lines through the ``allocation`` logger."""

    FLUSH_SECONDS: Final = 0.1

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lines: list[str] = []

    def write(self, line: str) -> None:
        if self._stream is None:
            access_log.info("%s", line)
        else:
            self._lines.append(line)

    def webhook_line(self, level: int, line: str) -> None:
        """A :data:`allocation.webhook.LogLine`: the level is checked by the webhook."""
        if self._stream is None:
            webhook.log_through_logging(level, line)
        else:
            self._lines.append(line)

    def flush(self) -> None:
        if self._lines and self._stream is not None:
            lines, self._lines = self._lines, []
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()

    async def flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.FLUSH_SECONDS)
            self.flush()


class LocalHost:
    def __init__(self, keys: Iterable[str] = (), access: AccessLog | None = None) -> None:
        self.keys = tuple(key.encode() for key in keys if key)
        self.access = access or AccessLog()
        # Threads start only when needed. Health has its own, so requests waiting on a plug-in
        # never keep it waiting.
        self._policy_threads = concurrent.futures.ThreadPoolExecutor(
            MAX_CONNECTIONS, thread_name_prefix="policy"
        )
        self._health_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="health")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        status = await self._route(scope, receive, send)
        self.access.write(access_line(scope, status, started))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        flusher: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                flusher = asyncio.create_task(self.access.flush_periodically())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if flusher is not None:
                    flusher.cancel()
                for threads in (self._policy_threads, self._health_thread):
                    threads.shutdown(wait=False, cancel_futures=True)
                self.access.flush()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> int:
        path, method = scope["path"], scope["method"]
        if path == "/api/allocate":
            if method != "POST":
                return await _method_not_allowed(send, "POST")
            if not self._authorised(scope):
                return await _json(
                    send,
                    401,
                    {"error": "unauthorized", "message": "a valid function key is required: "
                     "?code=<key> or the x-functions-key header"},
                )  # fmt: skip
            try:
                body = await _read_body(scope, receive, MAX_BODY_BYTES)
            except _BodyTooLarge as error:
                # Answered before the rest is read, and the connection closed: nothing more of
                # the body is ever read. The refusal is logged as the webhook logs its own.
                too_large = RequestTooLarge(
                    f"the body is {error.size} bytes; an allocation request is at most "
                    f"{MAX_BODY_BYTES}"
                )
                if webhook.logger.isEnabledFor(logging.INFO):
                    line = {"event": too_large.code, "status": 413, "message": too_large.message}
                    if policy_cache.live is not None:
                        line["policy"] = policy_cache.live.policy.fingerprint
                    self.access.webhook_line(logging.INFO, webhook.COMPACT_JSON.encode(line))
                return await _respond(send, webhook.error_response(too_large), close=True)
            except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
                return await _json(
                    send,
                    408,
                    {"error": "request_timeout", "message": "the request body did not arrive "
                     f"within {BODY_SECONDS:g} s"},
                    close=True,
                )  # fmt: skip
            except _Disconnected:
                return 499  # nginx's code for a client that left before its answer
            return await _respond(send, await self._allocate(body))
        if path == "/api/health":
            if method != "GET":
                return await _method_not_allowed(send, "GET")
            return await _respond(send, await self._health())
        if path == "/api/openapi.json":
            if method != "GET":
                return await _method_not_allowed(send, "GET")
            return await _send(send, 200, openapi.document_bytes(), webhook.JSON_HEADERS)
        return await _json(send, 404, {"error": "not_found", "message": f"no route {path}"})

    async def _allocate(self, body: bytes) -> webhook.WebhookResponse:
        live = policy_cache.live
        if live is not None and not _may_wait(live.policy):
            return webhook.handle(body, live.policy, log=self.access.webhook_line)
        return await self._off_the_loop(
            self._policy_threads, functools.partial(webhook.handle, body)
        )

    async def _health(self) -> webhook.WebhookResponse:
        if policy_cache.live is not None:
            return webhook.health(policy_cache.status(), log=self.access.webhook_line)
        # The first load (or a retry after it failed) reads the source: never on the loop.
        return await self._off_the_loop(self._health_thread, webhook.health)

    async def _off_the_loop(
        self,
        threads: concurrent.futures.Executor,
        answer: Callable[..., webhook.WebhookResponse],
    ) -> webhook.WebhookResponse:
        # The answer's line is written here, on the loop, so it stays just before its access
        # line in the same batch.
        lines: list[tuple[int, str]] = []
        response = await asyncio.get_running_loop().run_in_executor(
            threads, functools.partial(answer, log=lambda *line: lines.append(line))
        )
        for level, line in lines:
            self.access.webhook_line(level, line)
        return response

    def _authorised(self, scope: Scope) -> bool:
        if not self.keys:
            return True
        offered = next((value for name, value in scope["headers"] if name == KEY_HEADER), None)
        if offered is None:
            offered = key_in_query(scope.get("query_string", b""))
        if offered is None:
            return False
        # Compare with every key, in constant time, so timing tells nothing about any key.
        matches = [hmac.compare_digest(offered, key) for key in self.keys]
        return any(matches)


def _may_wait(policy: Policy) -> bool:
    """Whether answering with ``policy`` can wait: on a lookup's table (a synchronous call to
    the store, up to its ``timeoutMs``, or on another request's call for the same row) or on
    operator code (a plug-in strategy)."""
    return policy.lookups is not None or not policy.strategies <= _BUILTIN_STRATEGIES


class _BodyTooLarge(Exception):
    def __init__(self, size: str) -> None:
        super().__init__(size)
        self.size = size  # as the client declared it, or "over <limit>"


class _Disconnected(Exception):
    pass


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body. Raises _BodyTooLarge as soon as it is known to pass ``limit``, from
    Content-Length before any of it is read, and asyncio.TimeoutError past BODY_SECONDS."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise _BodyTooLarge(value.decode())
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")
        if len(body) > limit:
            raise _BodyTooLarge(str(len(body)))
        return body  # the whole body came with the headers: no timer to set
    return await asyncio.wait_for(_rest_of_body(message, receive, limit), BODY_SECONDS)


async def _rest_of_body(message: Message, receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge(f"over {limit}")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


async def _respond(send: Send, response: webhook.WebhookResponse, *, close: bool = False) -> int:
    headers = {**response.headers, "Connection": "close"} if close else response.headers
    return await _send(send, response.status, response.body_bytes(), headers)


async def _json(
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: Mapping[str, str] | None = None,
    *,
    close: bool = False,
) -> int:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = headers or webhook.JSON_HEADERS
    if close:
        headers = {**headers, "Connection": "close"}
    return await _send(send, status, data, headers)


async def _method_not_allowed(send: Send, allowed: str) -> int:
    return await _json(
        send,
        405,
        {"error": "method_not_allowed", "message": f"use {allowed}"},
        {**webhook.JSON_HEADERS, "Allow": allowed},
    )


def _raw(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


_JSON_HEADERS_RAW: Final = _raw(webhook.JSON_HEADERS)


async def _send(send: Send, status: int, body: bytes, headers: Mapping[str, str]) -> int:
    # Most answers carry exactly the webhook's JSON headers: those are encoded once.
    raw_headers = _JSON_HEADERS_RAW if headers is webhook.JSON_HEADERS else _raw(headers)
    raw_headers = [*raw_headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
    return status


def access_line(scope: Scope, status: int, started: float) -> str:
    client = scope.get("client") or ("-", 0)
    elapsed = (time.perf_counter() - started) * 1000
    return (
        f'{_logged_peer(str(client[0]), scope["method"])} {_target(scope)}" '
        f"{status} {elapsed:.2f}ms"
    )


# DPS calls from a few addresses, always with POST: the escaped pair is kept, not redone.
@functools.lru_cache(maxsize=256)
def _logged_peer(address: str, method: str) -> str:
    """The line's start: the client's address, then the quote and method of the request."""
    return (
        f"{log_escaped(address.encode('utf-8', 'backslashreplace'))} "
        f'"{log_escaped(method.encode("utf-8", "backslashreplace"))}'
    )


def _target(scope: Scope) -> str:
    # The path as the client sent it, still percent-encoded: the decoded one could hold a line
    # break, and the same request always logs the same way.
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "backslashreplace")
    query = scope.get("query_string", b"")
    return _logged_target(raw_path, query)


@functools.lru_cache(maxsize=64)
def _logged_target(raw_path: bytes, query: bytes) -> str:
    return log_escaped(raw_path) + (f"?{redact_query(query)}" if query else "")
