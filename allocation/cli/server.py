"""uvicorn as ``serve`` runs it: the limits a server on a network needs, and a clean exit.

uvicorn alone waits forever for a request's headers and keeps every connection it accepts, so
slow clients could hold every file descriptor the process has (nginx's ``client_header_timeout``
and ``limit_conn`` are the model here). The limits, documented in the README:

- at most ``MAX_CONNECTIONS`` connections open; any more are closed as soon as accepted;
- a request's headers must arrive within ``HEADER_SECONDS`` of its first byte (of the
  connection, for the first request), its body within ``BODY_SECONDS`` (allocation.local_host);
- an idle keep-alive connection is closed after ``KEEP_ALIVE_SECONDS``;
- a body over the limit gets its 413 at once and the connection is closed, unread;
- when ``accept()`` fails (no file descriptor left), one line says so at most every
  ``ACCEPT_ERROR_LOG_SECONDS``, instead of a traceback per attempt.

This module imports uvicorn: only ``serve`` (and the local-host benchmark) import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Final

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from allocation.local_host import MAX_CONNECTIONS

HEADER_SECONDS: Final = 5.0
KEEP_ALIVE_SECONDS: Final = 5
# Connections the kernel queues before the server accepts them.
BACKLOG: Final = 128
ACCEPT_ERROR_LOG_SECONDS: Final = 10.0

logger = logging.getLogger("allocation.serve")


class LimitedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a connection limit and a deadline for headers."""

    _refused = False
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if len(self.connections) >= MAX_CONNECTIONS:
            self._refused = True
            transport.close()
            return
        super().connection_made(transport)  # type: ignore[arg-type]
        self._header_deadline = self.loop.call_later(HEADER_SECONDS, self._headers_too_slow)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Still IDLE after data: a request has begun and its headers are not complete. The
        # deadline is set once per request, so trickling bytes never extends it. A request that
        # arrives whole (the usual case) sets no timer at all.
        waiting = self.conn.their_state is h11.IDLE
        if waiting and self._header_deadline is None:
            self._header_deadline = self.loop.call_later(HEADER_SECONDS, self._headers_too_slow)
        elif not waiting and self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class AcceptErrors:
    """An event-loop exception handler: failed ``accept()`` calls are counted and reported in
    one line at most every ``interval`` seconds; anything else goes to asyncio's default
    handler. asyncio already waits a second before it accepts again."""

    def __init__(self, interval: float = ACCEPT_ERROR_LOG_SECONDS) -> None:
        self.interval = interval
        self.failures = 0
        self._reported_at: float | None = None

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        accepting = str(context.get("message", "")).startswith("socket.accept")
        if not (accepting and isinstance(error, OSError)):
            loop.default_exception_handler(context)
            return
        self.failures += 1
        now = time.monotonic()
        if self._reported_at is not None and now - self._reported_at < self.interval:
            return
        self._reported_at = now
        reason = errno.errorcode.get(error.errno or 0, "") or str(error)
        logger.warning(
            json.dumps(
                {
                    "event": "accept_failed",
                    "reason": f"{reason}: {error.strerror}",
                    "failures": self.failures,
                    "nextReportSeconds": self.interval,
                }
            )
        )
        self.failures = 0


class Server(uvicorn.Server):
    """Reports accept() failures in a line per interval, and exits with status 0 on SIGINT or
    SIGTERM once in-flight requests finish.

    uvicorn re-raises the signal after its graceful shutdown, so the process would end
    "killed by SIGTERM"; a service manager or a test expects a normal exit.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(AcceptErrors())
        await super().startup(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def config(app: Any, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the local host (and for its benchmark floor)."""
    return uvicorn.Config(
        app,
        http=LimitedH11Protocol,
        backlog=BACKLOG,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        access_log=False,  # ours redacts function keys from the query
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=10,
        **options,
    )
