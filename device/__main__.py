"""Reference device: `python -m device --id-scope ... --registration-id ... --symmetric-key ...`.

Boots the way `device.boot` describes, stays connected, and reprovisions whenever the
`reprovision` direct method is invoked, until Ctrl-C. Needs azure-iot-device
(`pip install -r requirements-device.txt`); `--help` works without it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from device.boot import Device
from device.cache import AssignmentCache
from device.latency_probe import NoProbe, TcpConnectProbe
from device.transport import REPROVISION_METHOD

EXIT_USAGE = 2
KEY_VARIABLE = "DPS_SYMMETRIC_KEY"


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m device",
        description="Reference DPS device: cached assignment, correct retries, reprovisioning "
        "on demand, latency evidence for the allocation webhook.",
    )
    parser.add_argument("--id-scope", required=True, help="the DPS instance's ID scope")
    parser.add_argument("--registration-id", required=True, help="the device's registration ID")
    parser.add_argument(
        "--symmetric-key",
        default=os.environ.get(KEY_VARIABLE),
        help=f"the device's symmetric key (default: ${KEY_VARIABLE}, which keeps it out of ps)",
    )
    parser.add_argument(
        "--provisioning-host",
        default="global.azure-devices-provisioning.net",
        help="DPS global endpoint (default: %(default)s)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        help="assignment cache file (default: ./.dps-assignment-<registration-id>.json)",
    )
    parser.add_argument("--region", help="the device's Azure region, e.g. westeurope")
    parser.add_argument(
        "--payload",
        type=json_object,
        default={},
        help='further registration payload fields, as a JSON object, e.g. \'{"modelId": "..."}\'',
    )
    parser.add_argument(
        "--no-latency", action="store_true", help="do not measure the hubs listed in the payload"
    )
    parser.add_argument("--websockets", action="store_true", help="MQTT over WebSockets (port 443)")
    parser.add_argument(
        "--reprovision", action="store_true", help="register through DPS now, ignoring the cache"
    )
    parser.add_argument("--once", action="store_true", help="exit once connected")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every decision")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.symmetric_key:
        parser.error(f"--symmetric-key is required (or set {KEY_VARIABLE})")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("azure.iot.device").setLevel(logging.WARNING)  # -v: our decisions only
    try:
        from device.azure_transport import AzureTransport  # noqa: PLC0415 (optional dependency)
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("azure"):
            raise
        print(
            "python -m device needs azure-iot-device: pip install -r requirements-device.txt",
            file=sys.stderr,
        )
        return EXIT_USAGE

    transport = AzureTransport(
        id_scope=args.id_scope,
        registration_id=args.registration_id,
        symmetric_key=args.symmetric_key,
        provisioning_host=args.provisioning_host,
        websockets=args.websockets,
    )
    cache_path = args.cache or Path(f".dps-assignment-{args.registration_id}.json")
    device = Device(
        transport,
        AssignmentCache(cache_path, args.registration_id),
        region=args.region,
        payload=args.payload,
        probe=NoProbe() if args.no_latency else TcpConnectProbe(),
    )
    return run(device, reprovision=args.reprovision, once=args.once)


def run(device: Device, *, reprovision: bool, once: bool) -> int:
    try:
        if reprovision:
            device.reprovision()
        else:
            device.boot()
        report(device)
        while not once:
            device.reprovision_requested.wait()
            device.reprovision()
            report(device)
    except KeyboardInterrupt:
        pass
    finally:
        if device.session is not None:
            device.session.close()
    return 0


def report(device: Device) -> None:
    assignment = device.assignment
    if assignment is None:
        return
    summary: dict[str, Any] = {
        "assignedHub": assignment.hub,
        "deviceId": assignment.device_id,
        "payload": dict(assignment.payload),
    }
    print(json.dumps(summary), flush=True)
    print(f"connected; invoke direct method {REPROVISION_METHOD!r} to reprovision", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
