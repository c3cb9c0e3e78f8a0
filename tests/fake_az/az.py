"""A stand-in for the Azure CLI in tests: answers the few commands infra/hooks/postdeploy.py
runs from a JSON state file (FAKE_AZ_STATE), as az would, and records every argv (FAKE_AZ_LOG).

State: {"dps": {"name", "resourceGroup", "iotHubs": [host names]} | null,
        "functionApp": {"name", "resourceGroup", "defaultHostName", "keys": {function: key}},
        "enrollmentGroups": {id: enrollment group as the DPS service returns it}}
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

NOT_FOUND = 3  # the Azure CLI's exit code for a resource that does not exist


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def values(argv: list[str], name: str) -> list[str]:
    if name not in argv:
        return []
    taken = []
    for arg in argv[argv.index(name) + 1 :]:
        if arg.startswith("--"):
            break
        taken.append(arg)
    return taken


def missing(what: str) -> int:
    print(f"ERROR: (ResourceNotFound) {what} was not found.", file=sys.stderr)
    return NOT_FOUND


def answer(document: Any) -> int:
    print(json.dumps(document))
    return 0


def main(argv: list[str]) -> int:
    with Path(os.environ["FAKE_AZ_LOG"]).open("a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")
    state_file = Path(os.environ["FAKE_AZ_STATE"])
    state = json.loads(state_file.read_text(encoding="utf-8"))
    dps, app = state.get("dps"), state["functionApp"]
    command = [arg for arg in argv if not arg.startswith("-")][:4]

    if command[:3] == ["iot", "dps", "show"]:
        if not dps or option(argv, "--name") != dps["name"]:
            return missing(
                f"The Resource 'Microsoft.Devices/provisioningServices/{option(argv, '--name')}'"
            )
        if option(argv, "--resource-group") != dps["resourceGroup"]:
            return missing(f"Resource group '{option(argv, '--resource-group')}'")
        return answer(
            {
                "name": dps["name"],
                "properties": {
                    "iotHubs": [{"name": h, "location": "westeurope"} for h in dps["iotHubs"]]
                },
            }
        )
    if command[:4] == ["functionapp", "function", "keys", "list"]:
        key = app["keys"].get(option(argv, "--function-name"))
        if option(argv, "--name") != app["name"] or key is None:
            return missing("The function")
        return answer({"default": key})
    if command[:2] == ["functionapp", "show"]:
        return answer(app["defaultHostName"])
    if command[:3] == ["iot", "dps", "enrollment-group"]:
        if not dps or option(argv, "--dps-name") != dps["name"]:
            return missing("The DPS")
        groups = state.setdefault("enrollmentGroups", {})
        group_id = option(argv, "--enrollment-id")
        verb = command[3]
        if verb == "show":
            return (
                answer(groups[group_id])
                if group_id in groups
                else missing(f"Enrollment group {group_id}")
            )
        if verb in ("create", "update"):
            if verb == "update" and group_id not in groups:
                return missing(f"Enrollment group {group_id}")
            group = groups.get(group_id) or {
                "enrollmentGroupId": group_id,
                "attestation": {"type": "symmetricKey"},
                "provisioningStatus": "enabled",
            }
            group["allocationPolicy"] = option(argv, "--allocation-policy")
            group["iotHubs"] = values(argv, "--iot-hubs")
            group["customAllocationDefinition"] = {
                "webhookUrl": option(argv, "--webhook-url"),
                "apiVersion": option(argv, "--api-version"),
            }
            groups[group_id] = group
            state_file.write_text(json.dumps(state), encoding="utf-8")
            # As az does without --output none, the result echoes the URL: the hook must not.
            return answer(group) if option(argv, "--output") != "none" else 0
    print(f"ERROR: fake az does not know: {' '.join(argv)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
