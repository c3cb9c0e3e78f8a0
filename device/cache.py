"""The device's memory of its last DPS assignment, so it need not provision on every boot.

One JSON file per device. It is replaced atomically (write a temporary file in the same
directory, fsync, rename over the old one), so a power cut leaves either the old assignment or the
new one, never half of each. Anything unreadable (missing, truncated, not JSON, wrong shape,
another registration ID) loads as "no assignment": the device provisions, which is always safe.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.transport import Assignment

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CachedAssignment:
    assignment: Assignment
    hub_failed: bool = False
    """The hub turned the device away or stayed unavailable: the next boot goes to DPS."""


class AssignmentCache:
    def __init__(self, path: Path | str, registration_id: str) -> None:
        self.path = Path(path)
        self.registration_id = registration_id

    def load(self) -> CachedAssignment | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            logger.warning("assignment cache %s is unreadable (%s): provisioning", self.path, error)
            return None
        try:
            return self._decode(json.loads(text))
        except (ValueError, TypeError, KeyError) as error:
            logger.warning("assignment cache %s is corrupt (%s): provisioning", self.path, error)
            return None

    def save(self, assignment: Assignment, *, hub_failed: bool = False) -> None:
        document = {
            "version": FORMAT_VERSION,
            "registrationId": self.registration_id,
            "assignedHub": assignment.hub,
            "deviceId": assignment.device_id,
            "payload": dict(assignment.payload),
            "hubFailed": hub_failed,
        }
        _write_atomically(self.path, json.dumps(document, indent=2, sort_keys=True) + "\n")

    def mark_hub_failed(self) -> None:
        """Remember that the cached hub cannot be used; keep the payload for the next
        registration (it lists the hubs to measure)."""
        cached = self.load()
        if cached is not None and not cached.hub_failed:
            self.save(cached.assignment, hub_failed=True)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _decode(self, document: Any) -> CachedAssignment | None:
        if not isinstance(document, Mapping):
            raise TypeError("not a JSON object")
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown format version {document.get('version')!r}")
        if document.get("registrationId") != self.registration_id:
            logger.info("assignment cache %s belongs to another registration ID", self.path)
            return None
        hub, device_id, payload = document["assignedHub"], document["deviceId"], document["payload"]
        failed = document.get("hubFailed", False)
        if not (isinstance(hub, str) and hub and isinstance(device_id, str) and device_id):
            raise ValueError("assignedHub and deviceId must be non-empty strings")
        if not isinstance(payload, Mapping) or not isinstance(failed, bool):
            raise TypeError("payload must be an object and hubFailed a boolean")
        return CachedAssignment(Assignment(hub, device_id, payload), failed)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX; Windows has no directory handles to fsync)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
