"""A bounded soak of the local host: a fixed request rate for a fixed time, every answer checked.

``python -m benchmarks.soak [--seconds 60] [--rate R | --fraction 0.5] [--devices 2000]``

It starts ``python -m allocation serve`` on a free loopback port with a function key and the
fuzzing's *rich* policy (every strategy, rules, templates echoing device values, drain, sticky),
prepares ``--devices`` different DPS requests (first registrations and reprovisionings, with
payloads), and computes each one's answer in process with the core (``allocation.webhook.handle``
under the same policy). It then sends them round-robin at a fixed rate over keep-alive
connections, as ``benchmarks.fixed_rate`` does (latency from when a request was due, so a stall
shows), and compares every answer, status and body byte for byte, with the core's.

Without ``--rate`` it first measures the host's saturation with a short closed loop (every
connection sends as fast as answers come back) and soaks at ``--fraction`` of it. Bounded: only
loopback, a fixed duration, and the host is stopped at the end. Exit status 1 on any error or
wrong answer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from allocation.policy import compile_policy
from allocation.webhook import handle
from benchmarks.fixed_rate import Exchange, load
from benchmarks.local_host import serving, wait_until_ready
from fuzz.bodies import encode, request
from fuzz.policies import POLICY_HUBS, RICH_POLICY

DRAIN_SECONDS = 5.0


def exchanges(devices: int, port: int, key: str, seed: int = 7) -> list[Exchange]:
    rng = random.Random(seed)
    policy = compile_policy(RICH_POLICY)
    # The core's own decision lines would only repeat what the host logs.
    logging.getLogger("allocation").setLevel(logging.CRITICAL)
    prepared = []
    for index in range(devices):
        linked = rng.sample(POLICY_HUBS, rng.randint(1, len(POLICY_HUBS)))
        current = rng.choice([None, None, *POLICY_HUBS])
        payload = {
            "echo": f"e{index}",
            "siteId": f"site-{rng.randint(1, 40)}",
            "firmware": rng.choice(["11.2", "12.0.2.5", "13.1"]),
            "region": rng.choice(["westeurope", "eastus", "japaneast", "nowhere"]),
        }
        body = encode(request(f"soak-{index:05d}", linked, current_hub=current, payload=payload))
        expected = handle(body, policy)
        head = (
            f"POST /api/allocate?code={key} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        prepared.append(Exchange(head.encode() + body, (expected.status, expected.body_bytes())))
    return prepared


def soak(
    port: int, plan: list[Exchange], rate: float, seconds: float, connections: int
) -> dict[str, Any]:
    """``rate`` 0 is a closed loop: each connection sends as soon as its answer is back."""
    result = load(port, plan, rate, seconds, connections)
    return {
        "rate": rate,
        "seconds": seconds,
        "connections": connections,
        "requests": result["requests"],
        "achieved_rate": round(result["achieved_rate"], 1),
        "statuses": result["statuses"],
        "wrong_answers": result["wrong_answers"],
        "wrong_examples": result["wrong_examples"],
        "errors": result["errors"],
        "latency_ms": {k: round(v / 1000, 3) for k, v in result["latency_us"].items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, help="requests per second (default: measured)")
    parser.add_argument("--fraction", type=float, default=0.5, help="of saturation (default 0.5)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)

    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as work:
        policy_file = Path(work) / "policy.json"
        policy_file.write_text(json.dumps(RICH_POLICY))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")}
        env["ALLOCATION_FUNCTION_KEYS"] = key
        command = [sys.executable, "-m", "allocation", "serve", "--policy", str(policy_file)]
        log = Path(work) / "serve.log"
        with serving("allocation serve", command, env, log) as server:
            port = server.port
            plan = exchanges(args.devices, port, key)
            first = plan[0].raw.split(b"\r\n\r\n", 1)[1]
            expected_status = handle(first, compile_policy(RICH_POLICY)).status
            wait_until_ready(server, first, key, log, expect=expected_status)
            if len(os.sched_getaffinity(0)) > 1:
                # The host is pinned to CPU 0 (benchmarks.local_host.serving): keep off it.
                os.sched_setaffinity(0, os.sched_getaffinity(0) - {0})
            result: dict[str, Any] = {}
            rate = args.rate
            if rate is None:
                saturation = soak(port, plan, 0, 5, args.connections)
                result["saturation"] = saturation
                rate = round(saturation["achieved_rate"] * args.fraction, 1)
            result["soak"] = soak(port, plan, rate, args.seconds, args.connections)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    run = result["soak"]
    failed = run["errors"] or run["wrong_answers"] or run["requests"] == 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
