"""The soak with a lookup policy while the inventory's store goes away and comes back.

``python -m benchmarks.soak_lookups [--seconds 60] [--rate R | --fraction 0.5] [--outage 5]
[--devices 2000]``

Like ``benchmarks.soak``: ``python -m allocation serve`` on loopback with a function key, a
fixed request rate (without ``--rate``, half the saturation measured first with the store
up), every answer compared byte for byte. The policy is example 05's (an
allow-list and each device's hub from table ``devices``) with short cache windows, so the
store is read all along; the table lives in an Azurite of its own, on disk, loaded with a row
for 9 devices of 10 (the tenth is refused). A third of the way in, Azurite is stopped for
``--outage`` seconds and started again on the same ports: the host is not restarted.

Each answer must be the one the core gives with the inventory read from the same rows in
process, or, while the store is away, the exact 503 ``lookup_unavailable`` answer. Reported:
wrong answers (must be 0), 500s (must be 0), and how many 503s the outage caused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from allocation.errors import LookupUnavailable
from allocation.inventory import InventoryRows
from allocation.policy import compile_policy
from allocation.webhook import error_response, handle
from benchmarks.fixed_rate import Exchange, load
from benchmarks.local_host import serving, wait_until_ready
from fuzz.bodies import encode, request

HUBS = [f"soak-hub-{n}.azure-devices.net" for n in range(4)]
ENROLLMENT = "meters-2024"


def policy_document() -> dict[str, Any]:
    return {
        "lookups": {
            "inventory": {
                "table": "devices",
                "cacheSeconds": 2,
                "missingCacheSeconds": 2,
                "timeoutMs": 500,
            }
        },
        "default": {
            "strategy": "rules",
            "rules": [
                {
                    "name": "not-in-inventory",
                    "when": {"lookup.inventory": {"exists": False}},
                    "then": "deny",
                }
            ],
            "otherwise": {
                "strategy": "static",
                "hub": "{lookup.inventory.hub}",
                "initialTwin": {"tags": {"customer": "{lookup.inventory.customer}"}},
                "fallback": {"strategy": "weighted"},
            },
        },
    }


def inventory(devices: int) -> dict[tuple[str, str], dict[str, Any]]:
    rows = {}
    for index in range(devices):
        if index % 10 == 9:
            continue  # not in the inventory: refused
        row: dict[str, Any] = {
            "PartitionKey": ENROLLMENT,
            "RowKey": f"meter-{index:05d}",
            "customer": f"customer-{index % 7}",
        }
        if index % 5:
            row["hub"] = HUBS[index % len(HUBS)]
        rows[ENROLLMENT, row["RowKey"]] = row
    return rows


def exchanges(devices: int, port: int, key: str) -> list[Exchange]:
    rows = inventory(devices)
    policy = compile_policy(policy_document()).with_lookup_stores(
        {"inventory": InventoryRows(rows)}
    )
    logging.getLogger("allocation").setLevel(logging.CRITICAL)
    outage = error_response(LookupUnavailable("inventory"))
    also = frozenset({(outage.status, outage.body_bytes())})
    prepared = []
    for index in range(devices):
        body = encode(
            request(f"meter-{index:05d}", HUBS, enrollment_id=ENROLLMENT, individual=False)
        )
        expected = handle(body, policy)
        head = (
            f"POST /api/allocate?code={key} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        prepared.append(
            Exchange(head.encode() + body, (expected.status, expected.body_bytes()), also)
        )
    return prepared


def summary(
    args: argparse.Namespace,
    rate: float,
    result: dict[str, Any],
    timeline: dict[str, float],
    began: float,
) -> dict[str, Any]:
    statuses = result["statuses"]
    return {
        "rate": rate,
        "seconds": args.seconds,
        "requests": result["requests"],
        "achieved_rate": round(result["achieved_rate"], 1),
        "statuses": statuses,
        "outage": {
            "stopped_at_s": round(timeline["stopped"] - began, 1),
            "restarted_at_s": round(timeline["started"] - began, 1),
            "answers_503": statuses.get("503", 0),
        },
        "answers_500": statuses.get("500", 0),
        "wrong_answers": result["wrong_answers"],
        "wrong_examples": result["wrong_examples"],
        "errors": result["errors"],
        "latency_ms": {k: round(v / 1000, 3) for k, v in result["latency_us"].items()},
    }


def fill_table(connection_string: str, devices: int) -> None:
    from azure.data.tables import TableServiceClient  # noqa: PLC0415

    service = TableServiceClient.from_connection_string(connection_string)
    table = service.create_table_if_not_exists("devices")
    for row in inventory(devices).values():
        table.upsert_entity(row)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak_lookups", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, help="requests per second (default: measured)")
    parser.add_argument("--fraction", type=float, default=0.5, help="of saturation (default 0.5)")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds Azurite is away")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the result here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from tests.azurite import AzuriteServer  # noqa: PLC0415

    args = parse_arguments(argv)
    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as work:
        store = AzuriteServer(location=Path(work) / "azurite")
        store.start()
        try:
            fill_table(store.connection_string, args.devices)
            policy_file = Path(work) / "policy.json"
            policy_file.write_text(json.dumps(policy_document()))
            env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")}
            env["ALLOCATION_FUNCTION_KEYS"] = key
            env["ALLOCATION_STORAGE"] = store.connection_string
            command = [sys.executable, "-m", "allocation", "serve", "--policy", str(policy_file)]
            log = Path(work) / "serve.log"
            with serving("allocation serve", command, env, log) as server:
                plan = exchanges(args.devices, server.port, key)
                first = plan[0].raw.split(b"\r\n\r\n", 1)[1]
                assert plan[0].expected is not None
                wait_until_ready(server, first, key, log, expect=plan[0].expected[0])
                timeline: dict[str, float] = {}

                def outage() -> None:
                    time.sleep(args.seconds / 3)
                    timeline["stopped"] = time.monotonic()
                    store.stop()
                    time.sleep(args.outage)
                    store.start()
                    timeline["started"] = time.monotonic()

                rate = args.rate
                if rate is None:
                    # Saturation with the store up: a closed loop of 5 s.
                    saturation = load(server.port, plan, 0, 5, args.connections)
                    rate = round(saturation["achieved_rate"] * args.fraction, 1)
                began = time.monotonic()
                restarter = threading.Thread(target=outage)
                restarter.start()
                result = load(server.port, plan, rate, args.seconds, args.connections)
                restarter.join()
        finally:
            store.stop()
    report = summary(args, rate, result, timeline, began)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    failed = report["errors"] or report["wrong_answers"] or report["answers_500"]
    return 1 if failed or result["requests"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
