"""``serve``: the webhook on a production-grade ASGI server (uvicorn), where Core Tools are absent.

Keys work as the Functions host does them (see allocation.local_host). Keys come from
``ALLOCATION_FUNCTION_KEYS`` (comma-separated), which ``local.settings.json``'s ``Values`` may
hold, read the way ``func start`` reads them. Without a key the host answers anonymously, and
only on a loopback address: bound anywhere else without a key, it refuses to start.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
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
        import uvicorn  # noqa: PLC0415
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
    say(f"listening on http://{args.host}:{args.port}/api/allocate")

    config = uvicorn.Config(
        LocalHost(keys, AccessLog(sys.stderr)),
        host=args.host,
        port=args.port,
        access_log=False,  # ours redacts function keys from the query
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    _server_class()(config).run()
    say("stopped")
    return EXIT_OK


def _server_class() -> Any:
    import uvicorn  # noqa: PLC0415

    class GracefulServer(uvicorn.Server):
        """Finishes in-flight requests on SIGINT/SIGTERM, then exits with status 0.

        uvicorn re-raises the signal after its graceful shutdown, so the process would end
        "killed by SIGTERM"; a service manager or a test expects a normal exit.
        """

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

    return GracefulServer
