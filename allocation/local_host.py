"""The local host: the function app's routes as a plain ASGI application.

It answers like the Azure Functions host in front of ``function_app.py``: ``POST /api/allocate``
behind a function key (``?code=<key>`` or the ``x-functions-key`` header; wrong or missing: 401)
and ``GET /api/health``, anonymous. Both call the same core entry points as the Function.
Served by ``python -m allocation serve``; this module imports no server.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final, TextIO
from urllib.parse import parse_qs

from allocation import openapi, webhook
from allocation.limits import MAX_BODY_BYTES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KEY_HEADER: Final = b"x-functions-key"

access_log = logging.getLogger("allocation.access")

_CODE_IN_QUERY = re.compile(r"(?i)((?:^|&)code=)[^&]*")


# DPS calls with one query string (the webhook URL's ?code=<key>) again and again: its key and
# its redacted form are kept rather than parsed for every request.
@functools.lru_cache(maxsize=64)
def redact_query(query: str) -> str:
    """The query string with any function key replaced: keys never reach a log."""
    return _CODE_IN_QUERY.sub(r"\1***", query)


@functools.lru_cache(maxsize=64)
def _code_in_query(query: bytes) -> bytes | None:
    codes = parse_qs(query.decode("latin-1")).get("code")
    return codes[0].encode("latin-1") if codes else None


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
            body = await _read_body(receive, MAX_BODY_BYTES)
            if body is None:
                body = b"x" * (MAX_BODY_BYTES + 1)  # answered 413 by the webhook
            return await _respond(send, webhook.handle(body, log=self.access.webhook_line))
        if path == "/api/health":
            if method != "GET":
                return await _method_not_allowed(send, "GET")
            return await _respond(send, webhook.health(log=self.access.webhook_line))
        if path == "/api/openapi.json":
            if method != "GET":
                return await _method_not_allowed(send, "GET")
            return await _send(send, 200, openapi.document_bytes(), webhook.JSON_HEADERS)
        return await _json(send, 404, {"error": "not_found", "message": f"no route {path}"})

    def _authorised(self, scope: Scope) -> bool:
        if not self.keys:
            return True
        offered = dict(scope["headers"]).get(KEY_HEADER)
        if offered is None:
            offered = _code_in_query(scope.get("query_string", b""))
        if offered is None:
            return False
        # Compare with every key, in constant time, so timing tells nothing about any key.
        matches = [hmac.compare_digest(offered, key) for key in self.keys]
        return any(matches)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes ``limit`` (nothing more is buffered)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, response: webhook.WebhookResponse) -> int:
    return await _send(send, response.status, response.body_bytes(), response.headers)


async def _json(
    send: Send, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> int:
    data = json.dumps(body, separators=(",", ":")).encode()
    return await _send(send, status, data, headers or webhook.JSON_HEADERS)


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
    query = scope.get("query_string", b"").decode("latin-1")
    target = scope["path"] + (f"?{redact_query(query)}" if query else "")
    client = scope.get("client") or ("-", 0)
    elapsed = (time.perf_counter() - started) * 1000
    return f'{client[0]} "{scope["method"]} {target}" {status} {elapsed:.2f}ms'
