"""What ``simulate`` reads from its options in every mode: linked hubs, a payload, and the
progress bar it draws on a terminal."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Final, TextIO

from allocation.cli import CommandError
from allocation.hostnames import is_host_name
from allocation.policy import Policy

PROGRESS_INTERVAL_SECONDS: Final = 0.1
PROGRESS_EVERY: Final = 1024  # devices between looks at the clock


def linked_hubs(option: str | None, policies: Sequence[Policy]) -> list[str]:
    if option is None:
        # The policies' own hubs, in their order (their keys are lower case).
        hubs = list(dict.fromkeys(name for policy in policies for name in policy.hubs))
        if not hubs:
            raise CommandError(
                "the policy names no hubs: give the linked hubs with --hubs h1,h2,..."
            )
        return hubs
    hubs = [name.strip() for name in option.split(",") if name.strip()]
    if not hubs:
        raise CommandError("--hubs names no hub")
    bad = [name for name in hubs if not is_host_name(name)]
    if bad:
        raise CommandError(
            f"--hubs: {', '.join(map(repr, bad))} "
            + ("is not an IoT hub host name" if len(bad) == 1 else "are not IoT hub host names")
            + " (such as my-hub.azure-devices.net)"
        )
    return hubs


def parse_payload(option: str | None) -> Any:
    if option is None:
        return None
    try:
        payload = json.loads(option)
    except ValueError as error:
        raise CommandError(f"--payload is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise CommandError('--payload must be a JSON object, such as \'{"siteId": "s1"}\'')
    return payload


class Progress:
    """A one-line progress bar on a terminal, redrawn at most every 0.1 s."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.started = time.monotonic()
        self.shown = 0.0

    def show(self, done: int) -> None:
        now = time.monotonic()
        if now - self.shown < PROGRESS_INTERVAL_SECONDS:
            return
        self.shown = now
        width = 30
        filled = width * done // self.total
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {100 * done // self.total:3d}% "
            f"{done:,}/{self.total:,} devices, {now - self.started:.1f} s"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\033[K")
        self.stream.flush()
