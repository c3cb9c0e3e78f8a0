"""uvicorn as ``serve`` runs it: the limits a server on a network needs, and a clean exit.

uvicorn alone waits forever for a request's headers and keeps every connection it accepts, so
slow clients could hold every file descriptor the process has (nginx's ``client_header_timeout``
and ``limit_conn`` are the model here). The limits, documented in the README:

- at most ``MAX_CONNECTIONS`` connections open; any more are closed as soon as accepted;
- a request's headers must arrive within ``HEADER_SECONDS`` of its first byte (of the
  connection, for the first request), its body within ``BODY_SECONDS`` (allocation.local_host);
- an idle keep-alive connection is closed after ``KEEP_ALIVE_SECONDS``;
- a body over the limit gets its 413 at once and the connection is closed, unread: what the
  client still sends is discarded for up to ``LINGER_SECONDS`` or ``LINGER_BYTES`` (nginx's
  lingering close), so that a client busy sending reads the 413 rather than a reset;
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
LINGER_SECONDS: Final = 2.0
LINGER_BYTES: Final = 1024 * 1024

logger = logging.getLogger("allocation.serve")


class LimitedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a connection limit, a deadline for headers, and a
    lingering close after a refused body."""

    _refused = False
    _header_deadline: asyncio.TimerHandle | None = None
    _lingering: asyncio.TimerHandle | None = None
    _discarded = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if len(self.connections) >= MAX_CONNECTIONS:
            self._refused = True
            transport.close()
            return
        super().connection_made(_LingeringClose(transport, self))  # type: ignore[arg-type]
        self._header_deadline = self.loop.call_later(HEADER_SECONDS, self._headers_too_slow)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self._close_now()
            return
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
        for timer in (self._header_deadline, self._lingering):
            if timer is not None:
                timer.cancel()
        self._header_deadline = None
        super().connection_lost(exc)

    def linger(self, transport: asyncio.Transport) -> None:
        """Our side is finished (FIN sent after the answer); discard what the client still
        sends for a while, then close."""
        transport.write_eof()
        transport.resume_reading()  # uvicorn pauses reading while a body waits to be read
        self._lingering = self.loop.call_later(LINGER_SECONDS, self._close_now)

    def _close_now(self) -> None:
        transport = self.transport
        if isinstance(transport, _LingeringClose):
            transport.transport.close()

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class _LingeringClose:
    """The connection's transport, but a close while the client is still sending a body (after
    a 413 or a 408) half-closes it and lingers: closing a socket with unread data sends a TCP
    reset, which can reach the client before it has read the answer."""

    def __init__(self, transport: asyncio.BaseTransport, protocol: LimitedH11Protocol) -> None:
        self.transport: Any = transport
        self._protocol = protocol
        self._closing = False
        # What uvicorn calls for every request, bound once rather than found by __getattr__.
        real: Any = transport
        self.write = real.write
        self.pause_reading = real.pause_reading
        self.resume_reading = real.resume_reading

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        sending = self._protocol.conn.their_state is h11.SEND_BODY
        if sending and not self.transport.is_closing() and self.transport.can_write_eof():
            self._protocol.linger(self.transport)
        else:
            self.transport.close()

    def is_closing(self) -> bool:
        return self._closing or bool(self.transport.is_closing())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


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
