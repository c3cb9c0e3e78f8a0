"""Calling an ASGI application in the test's own process, as a server would call it."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from allocation.local_host import AccessLog, LocalHost


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    app: Any,
    method: str,
    raw_path: bytes,
    query: bytes = b"",
    *,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Answer:
    """One HTTP request through ``app``: the scope uvicorn builds, the body in one message."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 7071),
    }
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return Answer(
        start["status"],
        dict(start["headers"]),
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
    )


class LoggedHost:
    """A LocalHost whose access log is kept in memory, read back line by line."""

    def __init__(self, keys: tuple[str, ...] = ()) -> None:
        self.stream = io.StringIO()
        self.app = LocalHost(keys, AccessLog(self.stream))

    def request(self, method: str, raw_path: bytes, query: bytes = b"", **kwargs: Any) -> Answer:
        return asyncio.run(call(self.app, method, raw_path, query, **kwargs))

    def lines(self) -> list[str]:
        self.app.access.flush()
        lines = self.stream.getvalue().splitlines()
        self.stream.seek(0)
        self.stream.truncate()
        return lines
