"""``serve``: the webhook on a production-grade ASGI server (uvicorn), where Core Tools are absent.

Keys work as the Functions host does them (see allocation.local_host). Keys come from
``ALLOCATION_FUNCTION_KEYS`` (comma-separated), which ``local.settings.json``'s ``Values`` may
hold, read the way ``func start`` reads them. Without a key the host answers anonymously, and
only on a loopback address: bound anywhere else without a key, it refuses to start.

The address is bound before anything is said about it: a port in use, a port out of range or a
host that does not resolve is one line on stderr and exit code 2, and "listening" is only
printed once the socket listens. Limits on connections and time: allocation.cli.server.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any, Final

from allocation.cli import EXIT_OK, CommandError
from allocation.cli.settings import apply_local_settings
from allocation.errors import PolicyUnavailable
from allocation.local_host import AccessLog, LocalHost
from allocation.sources import (
    POLICY_BLOB_SETTING,
    POLICY_FILE_SETTING,
    POLICY_SETTING,
    policy_cache,
)

KEYS_SETTING: Final = "ALLOCATION_FUNCTION_KEYS"


def register(subcommands: Any) -> None:
    parser: argparse.ArgumentParser = subcommands.add_parser(
        "serve",
        help="run the webhook locally (POST /api/allocate, GET /api/health)",
        description=__doc__,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="port (default 7071, as func start)")
    parser.add_argument(
        "--policy", metavar="FILE", help=f"policy file (sets {POLICY_FILE_SETTING} for this run)"
    )
    parser.set_defaults(run=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    try:
        # Imported here: the CLI's other commands, and the Function, never need a server.
        from allocation.cli import server  # noqa: PLC0415
    except ImportError:
        raise CommandError(
            "the local host needs uvicorn: pip install -r requirements-local.txt"
        ) from None
    apply_local_settings()
    if args.policy:
        policy_file = Path(args.policy).resolve()
        # --policy names the policy: the settings that would come before a file give way.
        os.environ.pop(POLICY_SETTING, None)
        os.environ.pop(POLICY_BLOB_SETTING, None)
        os.environ[POLICY_FILE_SETTING] = str(policy_file)
    keys = [k.strip() for k in os.environ.get(KEYS_SETTING, "").split(",") if k.strip()]
    if not keys and not is_loopback(args.host):
        raise CommandError(
            f"refusing to serve {args.host} without a function key: set {KEYS_SETTING} "
            "(comma-separated keys), or bind a loopback address such as 127.0.0.1"
        )
    sockets = listen(args.host, args.port, server.BACKLOG)

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    say = logging.getLogger("allocation.serve").info
    if keys:
        say(f"function keys: {len(keys)} configured ({KEYS_SETTING})")
    else:
        say(f"no function key ({KEYS_SETTING}): /api/allocate is anonymous, on loopback only")
    policy_cache.clear()
    try:
        loaded = policy_cache.get()
        where = f"{loaded.source} {loaded.location}" if loaded.location else loaded.source
        say(f"policy: {where}, fingerprint {loaded.policy.fingerprint}")
    except PolicyUnavailable as error:
        # Served anyway, as the Function would be: 503 until the policy is fixed.
        say(f"policy unavailable, answering 503: {error.message}")
    port = sockets[0].getsockname()[1]
    say(f"listening on http://{_url_host(args.host)}:{port}/api/allocate")

    app = LocalHost(keys, AccessLog(sys.stderr))
    server.Server(server.config(app)).run(sockets=sockets)
    say("stopped")
    return EXIT_OK


def listen(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to (``localhost``: IPv4 and IPv6,
    as uvicorn would bind them), or a CommandError that says why not in one line."""
    if not 0 <= port < 65536:
        raise CommandError(f"cannot listen on port {port}: a port is a number from 0 to 65535")
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as error:
        reason = error.strerror if isinstance(error, socket.gaierror) else str(error)
        raise CommandError(f"cannot listen on {host}: {reason}") from None
    sockets: list[socket.socket] = []
    unique = list(dict.fromkeys(addresses))
    # Port 0 lets the system choose a free port: one address, so that there is one port to say.
    for family, kind, protocol, _, address in unique[:1] if port == 0 else unique:
        sock = socket.socket(family, kind, protocol)
        sockets.append(sock)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # As asyncio does: the IPv6 socket must not also claim the IPv4 port.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
        except OSError as error:
            for opened in sockets:
                opened.close()
            where = f"[{address[0]}]" if family == socket.AF_INET6 else address[0]
            reason = (error.strerror or str(error)).lower()
            raise CommandError(f"cannot listen on {where}:{port}: {reason}") from None
    return sockets


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
