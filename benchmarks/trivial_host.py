"""The floor of the local-host benchmark: a fixed 200 on the same server stack as the real host.

``python -m benchmarks.trivial_host --port P`` serves an ASGI app that reads the request body
and answers a fixed allocation, on uvicorn configured exactly as ``python -m allocation serve``
configures it (allocation/cli/server.py: one worker, the same protocol and limits, uvicorn's
own access log off, warnings only, lifespan on), with the same logging set-up, and the real
host's own application class (lifespan, access log) around a route that answers at once.
"""

from __future__ import annotations

import argparse
import logging
import sys

from allocation.cli import server
from allocation.local_host import AccessLog, LocalHost, Receive, Scope, Send

BODY = b'{"iotHubHostName":"contoso-bench-hub-00.azure-devices.net"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


class TrivialHost(LocalHost):
    """The real host's ASGI application (lifespan, access log) with a route that reads the body
    and answers a fixed 200: everything the real host adds on top is keys, routing and the
    webhook."""

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> int:
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False) and message["type"] == "http.request"
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})
        return 200


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trivial_host")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    app = TrivialHost(access=AccessLog(sys.stderr))
    server.Server(server.config(app, host=args.host, port=args.port)).run()


if __name__ == "__main__":
    main()
