"""Point a DPS enrollment group at the deployed webhook: azd's postdeploy hook.

After ``azd deploy`` (and so after ``azd up``), this creates or updates one enrollment group so
that DPS calls the function: allocation policy ``custom``, the ``allocate`` function's URL with
its key, the DPS request API version 2021-10-01, and the IoT hubs the group may assign. Run again,
it compares and changes only what differs, printing each change, or "no change".

Which DPS: ``DPS_NAME`` / ``DPS_RESOURCE_GROUP`` name an existing one; without them the demo DPS
that ``createDemo`` deployed (azd's ``DEMO_DPS_*`` outputs). Without either, nothing is done.
``DPS_ENROLLMENT_GROUP`` names the group (default ``allocation-webhook``); ``DPS_IOT_HUBS`` (host
names, separated by spaces or commas) limits its hubs, else every hub linked to the DPS.

The function key never reaches a file or this script's output: it is read from ``az``'s captured
stdout and shown redacted. It does reach one ``az`` process's command line (``--webhook-url``):
``az iot dps enrollment-group`` takes the URL nowhere else, and writing it to a file for ``@file``
would leave it on disk. A command line is visible to other processes of the same machine for the
moment ``az`` runs, on the deploying machine, whose user can read the key anyway.

Standard library only, any Python 3.8+: azd runs hooks with the machine's Python, not the app's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The function and its route as function_app.py registers them, under host.json's routePrefix;
# tests/test_postdeploy_hook.py checks both against the real FunctionApp.
FUNCTION_NAME = "allocate"
ROUTE = "api/allocate"
# The custom allocation request and response shapes the webhook speaks (spec/dps-webhook.md).
DPS_API_VERSION = "2021-10-01"
DEFAULT_ENROLLMENT_GROUP = "allocation-webhook"


class HookError(Exception):
    """Something the operator must fix; the message says what."""


@dataclass(frozen=True)
class Target:
    resource_group: str
    function_app: str
    function_host: str | None
    dps_name: str
    dps_resource_group: str
    enrollment_group: str
    iot_hubs: tuple[str, ...]


@dataclass(frozen=True)
class AzResult:
    returncode: int
    stdout: str
    stderr: str


def az(*args: str) -> AzResult:
    executable = shutil.which("az")
    if executable is None:
        raise HookError("the Azure CLI (az) is not on PATH: install it and run `az login`")
    done = subprocess.run(
        [executable, *args, "--only-show-errors"],
        capture_output=True,
        text=True,
        check=False,
    )
    return AzResult(done.returncode, done.stdout, done.stderr)


def az_json(*args: str, what: str) -> Any:
    result = az(*args, "--output", "json")
    if result.returncode != 0:
        raise HookError(f"{what} failed: {_first_line(result.stderr)}")
    return parse_json(result.stdout, what)


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text or "null")
    except json.JSONDecodeError:
        # Never echo the text: it may hold the key.
        raise HookError(f"{what}: az answered something that is not JSON") from None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return redact(lines[0]) if lines else "no message from az"


def _missing(result: AzResult) -> bool:
    # The Azure CLI exits 3 when a resource is not found; older extensions say so only in text.
    return result.returncode == 3 or bool(
        re.search(r"not ?found|404", result.stderr, re.IGNORECASE)
    )


def redact(text: str) -> str:
    """A text with every function key (``code=`` query value) replaced by ``***``."""
    return re.sub(r"(code=)[^&\s\"']+", r"\1***", text)


def split_hubs(value: str) -> tuple[str, ...]:
    return tuple(hub for hub in re.split(r"[\s,]+", value.strip()) if hub)


def target_from_environment(env: Mapping[str, str]) -> Target | None:
    """What to link, from azd's environment; None when no DPS is named."""

    def setting(*names: str) -> str:
        return next((env[name].strip() for name in names if env.get(name, "").strip()), "")

    dps_name = setting("DPS_NAME", "DEMO_DPS_NAME")
    if not dps_name:
        return None
    resource_group = setting("AZURE_RESOURCE_GROUP")
    function_app = setting("AZURE_FUNCTION_APP_NAME")
    if not resource_group or not function_app:
        raise HookError(
            "AZURE_RESOURCE_GROUP and AZURE_FUNCTION_APP_NAME are not set: run through azd "
            "(azd deploy), or set them to the function app's resource group and name"
        )
    return Target(
        resource_group=resource_group,
        function_app=function_app,
        function_host=setting("AZURE_FUNCTION_HOSTNAME") or None,
        dps_name=dps_name,
        dps_resource_group=setting("DPS_RESOURCE_GROUP", "DEMO_DPS_RESOURCE_GROUP")
        or resource_group,
        enrollment_group=setting("DPS_ENROLLMENT_GROUP") or DEFAULT_ENROLLMENT_GROUP,
        iot_hubs=split_hubs(setting("DPS_IOT_HUBS", "DEMO_DPS_IOT_HUBS")),
    )


def linked_hubs(target: Target) -> tuple[str, ...]:
    shown = az(
        "iot", "dps", "show", "--name", target.dps_name,
        "--resource-group", target.dps_resource_group, "--output", "json",
    )  # fmt: skip
    if shown.returncode != 0:
        if _missing(shown):
            raise HookError(
                f"no DPS named {target.dps_name!r} in resource group "
                f"{target.dps_resource_group!r}: check DPS_NAME and DPS_RESOURCE_GROUP"
            )
        raise HookError(f"reading DPS {target.dps_name!r} failed: {_first_line(shown.stderr)}")
    dps = parse_json(shown.stdout, f"reading DPS {target.dps_name!r}") or {}
    return tuple(hub["name"] for hub in (dps.get("properties") or {}).get("iotHubs") or [])


def webhook_url(target: Target) -> str:
    """The function's URL with its key; the caller must never print it unredacted."""
    keys = az_json(
        "functionapp", "function", "keys", "list", "--resource-group", target.resource_group,
        "--name", target.function_app, "--function-name", FUNCTION_NAME,
        what=f"reading the key of function {FUNCTION_NAME!r} of {target.function_app!r}",
    )  # fmt: skip
    key = (keys or {}).get("default")
    if not key:
        raise HookError(
            f"function {FUNCTION_NAME!r} of {target.function_app!r} has no 'default' key yet: "
            "wait for the deployment to finish and run `azd hooks run postdeploy`"
        )
    host = target.function_host
    if host is None:
        host = az_json(
            "functionapp", "show", "--resource-group", target.resource_group,
            "--name", target.function_app, "--query", "defaultHostName",
            what=f"reading the host name of {target.function_app!r}",
        )  # fmt: skip
    return f"https://{host}/{ROUTE}?code={key}"


def changes(current: Mapping[str, Any] | None, url: str, hubs: Sequence[str]) -> list[str]:
    """What differs between the enrollment group and what it should be, redacted for printing."""
    if current is None:
        return [
            f"created: allocationPolicy custom, webhookUrl {redact(url)}, "
            f"apiVersion {DPS_API_VERSION}, iotHubs {' '.join(hubs)}"
        ]
    found = []
    custom = current.get("customAllocationDefinition") or {}
    if current.get("allocationPolicy") != "custom":
        found.append(f"allocationPolicy: {current.get('allocationPolicy')} -> custom")
    if custom.get("webhookUrl") != url:
        found.append(f"webhookUrl: {redact(str(custom.get('webhookUrl')))} -> {redact(url)}")
    if custom.get("apiVersion") != DPS_API_VERSION:
        found.append(f"apiVersion: {custom.get('apiVersion')} -> {DPS_API_VERSION}")
    had = sorted(str(hub).lower() for hub in current.get("iotHubs") or [])
    if had != sorted(hub.lower() for hub in hubs):
        found.append(f"iotHubs: {' '.join(had) or '(none)'} -> {' '.join(hubs)}")
    return found


def link(target: Target) -> list[str]:
    """Create or update the enrollment group; returns the changes made (empty: none needed)."""
    linked = linked_hubs(target)  # first: a DPS that isn't there is the likeliest mistake
    hubs = target.iot_hubs or linked
    if not hubs:
        raise HookError(f"DPS {target.dps_name!r} has no linked IoT hub: link one first")
    url = webhook_url(target)
    where = (
        "--dps-name", target.dps_name, "--resource-group", target.dps_resource_group,
        "--enrollment-id", target.enrollment_group,
    )  # fmt: skip
    shown = az("iot", "dps", "enrollment-group", "show", *where, "--output", "json")
    if shown.returncode != 0 and not _missing(shown):
        raise HookError(
            f"reading enrollment group {target.enrollment_group!r} failed: "
            f"{_first_line(shown.stderr)}"
        )
    current = (
        parse_json(shown.stdout, f"reading enrollment group {target.enrollment_group!r}")
        if shown.returncode == 0
        else None
    )
    needed = changes(current, url, hubs)
    if not needed:
        return []
    verb = "create" if current is None else "update"
    done = az(
        "iot", "dps", "enrollment-group", verb, *where,
        "--allocation-policy", "custom", "--webhook-url", url, "--api-version", DPS_API_VERSION,
        "--iot-hubs", *hubs, "--output", "none",
    )  # fmt: skip
    if done.returncode != 0:
        raise HookError(
            f"{verb} of enrollment group {target.enrollment_group!r} failed: "
            f"{_first_line(done.stderr)}"
        )
    return needed


def main(env: Mapping[str, str] | None = None) -> int:
    environ = os.environ if env is None else env
    try:
        target = target_from_environment(environ)
        if target is None:
            print(
                "postdeploy: no DPS named (DPS_NAME, or createDemo=true): "
                "no enrollment group linked to the webhook"
            )
            return 0
        made = link(target)
    except HookError as error:
        print(f"postdeploy: {error}", file=sys.stderr)
        return 1
    group = f"enrollment group {target.enrollment_group!r} of DPS {target.dps_name!r}"
    if not made:
        print(f"postdeploy: {group}: no change")
    for change in made:
        print(f"postdeploy: {group}: {change}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
