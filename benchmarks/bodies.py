"""The requests the benchmarks send: a captured DPS request, with 10 linked hubs.

Every body starts from ``tests/fixtures/group-symmetric-key-initial.json`` (a real DPS request)
and only swaps in the linked hubs and the device payload each case needs, so its size and shape
are a real request's.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
POLICIES: Final = Path(__file__).resolve().parent / "policies"
SAMPLE: Final = ROOT / "tests" / "fixtures" / "group-symmetric-key-initial.json"

HUBS: Final = tuple(f"contoso-bench-hub-{n:02d}.azure-devices.net" for n in range(10))


def _request(payload: Any = None) -> dict[str, Any]:
    request: dict[str, Any] = copy.deepcopy(json.loads(SAMPLE.read_text(encoding="utf-8")))
    request["linkedHubs"] = list(HUBS)
    request["enrollmentGroup"]["iotHubs"] = list(HUBS)
    if payload is not None:
        request["deviceRuntimeContext"]["payload"] = payload
    return request


def request(registration_id: str, payload: Any = None) -> dict[str, Any]:
    """The captured request for another device of the same group."""
    document = _request(payload)
    document["deviceRuntimeContext"]["registrationId"] = registration_id
    return document


def encode(document: Any) -> bytes:
    # Indented, as the captured requests are: DPS's bodies are not minified.
    return json.dumps(document, indent=2).encode()


def default_body() -> bytes:
    """For the built-in policy (weighted over every linked hub)."""
    return encode(_request())


def rules_body() -> bytes:
    """For policies/rules-50.json: only the last of its 50 rules holds for this device."""
    return encode(_request({"model": "toaster-49"}))


def latency_body() -> bytes:
    """For policies/latency.json: the device measured every linked hub."""
    measured = {hub: 18.0 + 7.5 * n for n, hub in enumerate(HUBS)}
    return encode(_request({"latencyMs": measured}))
