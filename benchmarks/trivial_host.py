"""The floor of the local-host benchmark: a fixed 200 on the same server stack as the real host.

``python -m benchmarks.trivial_host --port P`` serves an ASGI app that reads the request body
and answers a fixed allocation, on uvicorn configured exactly as ``python -m allocation serve``
configures it (allocation/cli/serve.py: one worker, uvicorn's own access log off, warnings
only, lifespan on), with the same logging set-up and one access line per request in the real
host's format. Everything the real host adds on top is the webhook itself.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

import uvicorn

from allocation.local_host import redact_query

BODY = b'{"iotHubHostName":"contoso-bench-hub-00.azure-devices.net"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

access_log = logging.getLogger("allocation.access")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    started = time.perf_counter()
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False) and message["type"] == "http.request"
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
    query = scope.get("query_string", b"").decode("latin-1")
    target = scope["path"] + (f"?{redact_query(query)}" if query else "")
    client = scope.get("client") or ("-", 0)
    elapsed = (time.perf_counter() - started) * 1000
    access_log.info('%s "%s %s" %d %.2fms', client[0], scope["method"], target, 200, elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trivial_host")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
