"""The devices of a simulation: seeded registration IDs, or a CSV of an existing fleet.

A CSV fleet has one device per line, ``registrationId,enrollmentId,currentHub[,payload JSON]``
(a first line that starts with ``registrationId`` is a header). ``enrollmentId`` is the
enrollment group's ID; empty for an individual enrollment (the device's own). ``currentHub``
is empty for a device not yet assigned. The file is read one line at a time, so a fleet of
any size runs in constant memory.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import mmh3

from allocation.hostnames import is_host_name

SHARE_BUCKETS = 1_000_000
_PER_PERCENT = SHARE_BUCKETS // 100


class FleetError(Exception):
    """A fleet file that cannot be read: the message names the line."""


class FleetDevice(NamedTuple):
    registration_id: str
    enrollment_id: str  # "" for an individual enrollment
    current_hub: str | None
    payload: Any = None


def seeded_ids(seed: int, count: int) -> Iterator[str]:
    """``count`` registration IDs, the same for the same seed on every machine."""
    bits = random.Random(seed).getrandbits
    for _ in range(count):
        yield f"sim-{bits(64):016x}"


def in_share(registration_id: str, percent: float) -> bool:
    """Whether a device belongs to the stable ``percent`` % of the fleet that re-registers.

    A hash of the registration ID alone (as drain's, with another prefix), so the same devices
    re-register in every phase and a larger share only adds devices."""
    if percent >= 100:
        return True
    data = f"share\n{registration_id}".encode("utf-8", "surrogatepass")
    return int(mmh3.hash64(data, signed=False)[0] % SHARE_BUCKETS) < percent * _PER_PERCENT


def read_csv(path: Path) -> Iterator[FleetDevice]:
    """The devices of a fleet file, in its order."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise FleetError(f"cannot read the fleet file {path}: {error.strerror or error}") from None
    with handle:
        try:
            for number, row in enumerate(csv.reader(handle), 1):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if number == 1 and row[0].strip() == "registrationId":
                    continue
                yield _device(row, f"{path}, line {number}")
        except (UnicodeDecodeError, csv.Error) as error:
            raise FleetError(f"{path}: not a CSV file of UTF-8 text: {error}") from None


def _device(row: list[str], where: str) -> FleetDevice:
    if not 3 <= len(row) <= 4:
        raise FleetError(
            f"{where}: {len(row)} columns; a device is registrationId,enrollmentId,currentHub"
            "[,payload JSON] (quote a payload that holds commas)"
        )
    registration_id, enrollment_id, current_hub = (cell.strip() for cell in row[:3])
    if not registration_id:
        raise FleetError(f"{where}: the registrationId is empty")
    if current_hub and not is_host_name(current_hub):
        raise FleetError(
            f"{where}: currentHub {current_hub!r} is not an IoT hub host name "
            "(such as my-hub.azure-devices.net)"
        )
    payload: Any = None
    if len(row) == 4 and row[3].strip():
        try:
            payload = json.loads(row[3])
        except ValueError as error:
            raise FleetError(f"{where}: the payload is not JSON: {error}") from None
    return FleetDevice(registration_id, enrollment_id, current_hub or None, payload)
