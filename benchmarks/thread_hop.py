"""What answering on a thread costs the local host: the same request, on the loop and off it.

``python -m benchmarks.thread_hop [--seconds 1] [--runs 7]``

The local host answers on its event loop when the policy has only built-in strategies, and on
a thread when it has a plug-in (allocation/local_host.py). This drives the host's ASGI
application in one process, with no server and no sockets, so the figure is the hop alone:
``POST /api/allocate`` with the benchmark body and a function key, one request at a time and
16 at once, under the benchmark's default policy (weighted) and under the same policy with a
plug-in on another enrollment (the request never reaches it). Both variants take turns
(benchmarks.timing.interleaved). Prints microseconds per request, wall clock and CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from allocation.local_host import AccessLog, LocalHost
from allocation.sources import POLICY_FILE_SETTING, POLICY_SETTING, policy_cache
from benchmarks import bodies
from benchmarks.timing import batch, loops_for

KEY = "bench-key"
BUILT_IN = json.loads((bodies.POLICIES / "default.json").read_text(encoding="utf-8"))
WITH_PLUGIN = {
    **BUILT_IN,
    "enrollments": {"elsewhere": {"strategy": "tests.plugin_strategies:PreferredHub"}},
}


def requests_through(app: LocalHost, body: bytes, concurrent: int) -> Callable[[], object]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/api/allocate",
        "raw_path": b"/api/allocate",
        "query_string": f"code={KEY}".encode(),
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise AssertionError(f"answered {message['status']}")

    loop = asyncio.new_event_loop()

    async def requests() -> None:
        await asyncio.gather(*(app(scope, receive, send) for _ in range(concurrent)))

    def run() -> object:
        loop.run_until_complete(requests())
        app.access.flush()
        return None

    return run


def use_policy(policy: dict[str, Any]) -> None:
    os.environ[POLICY_SETTING] = json.dumps(policy)
    policy_cache.clear()
    policy_cache.get()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.thread_hop")
    parser.add_argument("--seconds", type=float, default=1.0, help="per timed batch")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    os.environ.pop(POLICY_FILE_SETTING, None)
    body = bodies.default_body()
    variants = {
        "on the loop (built-in strategies)": BUILT_IN,
        "on a thread (plug-in elsewhere)": WITH_PLUGIN,
    }
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        app = LocalHost([KEY], AccessLog(devnull))
        for concurrent in (1, 16):
            call = requests_through(app, body, concurrent)
            use_policy(BUILT_IN)
            loops = loops_for(call, args.seconds)
            wall: dict[str, list[float]] = {name: [] for name in variants}
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            # Taking turns, so that drift of the machine hits both alike.
            for _ in range(args.runs):
                for name, policy in variants.items():
                    use_policy(policy)
                    batch(call, loops)  # warm
                    started = time.process_time()
                    wall[name].append(batch(call, loops))
                    cpu[name].append((time.process_time() - started) / loops)
            base = statistics.median(wall["on the loop (built-in strategies)"])
            for name in variants:
                per_request = statistics.median(wall[name]) / concurrent * 1e6
                cpu_per_request = statistics.median(cpu[name]) / concurrent * 1e6
                print(
                    f"{concurrent:>2} at once, {name}: {per_request:6.1f} us/request "
                    f"({statistics.median(wall[name]) / base:.2f}x), CPU {cpu_per_request:6.1f} us"
                )


if __name__ == "__main__":
    main()
