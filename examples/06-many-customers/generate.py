"""Writes policy.json and the sample requests of example 06: 2,000 customers, one rule each.

    python examples/06-many-customers/generate.py

The output depends on nothing but this file, so running it again changes nothing; the tests
check that policy.json is exactly what it writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CUSTOMERS = 2000
REGIONS = ("eu", "us", "ap")
HUBS = {
    "contoso-eu-1.azure-devices.net": {"tags": ["eu"]},
    "contoso-eu-2.azure-devices.net": {"tags": ["eu"]},
    "contoso-us-1.azure-devices.net": {"tags": ["us"]},
    "contoso-us-2.azure-devices.net": {"tags": ["us"]},
    "contoso-ap-1.azure-devices.net": {"tags": ["ap"]},
    "contoso-lab.azure-devices.net": {"tags": ["lab"]},
}
REVOKED = ["C0666", "C1313", "C1900"]  # contracts ended: their devices are refused


def customer_id(number: int) -> str:
    return f"C{number:04d}"


def region(number: int) -> str:
    """Where the customer's data must stay (in reality, from the CRM)."""
    return REGIONS[number % len(REGIONS)]


def customer_rule(number: int) -> dict[str, Any]:
    customer = customer_id(number)
    return {
        "name": customer,
        "when": {
            "any": [
                {"payload.customerId": {"equals": customer}},
                {"registrationId": {"startsWith": customer.lower() + "-"}},
            ]
        },
        "then": {
            "strategy": "weighted",
            "hubs": [{"tag": region(number)}],
            "initialTwin": {"tags": {"customerId": customer}},
        },
    }


def policy() -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {
            "name": "lab",
            "when": {"registrationId": {"regex": "^lab-[0-9]+$"}},
            "then": {"strategy": "static", "hub": "contoso-lab.azure-devices.net"},
        },
        {"name": "revoked", "when": {"payload.customerId": {"in": REVOKED}}, "then": "deny"},
    ]
    rules.extend(customer_rule(number) for number in range(CUSTOMERS))
    return {
        "$schema": "../../policy.schema.json",
        "hubs": HUBS,
        "default": {"strategy": "rules", "rules": rules, "otherwise": "deny"},
    }


def policy_text(document: dict[str, Any]) -> str:
    """Indented down to the rules, then one rule per line: readable, and 2,000 lines long."""

    def line(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))

    hubs = ",\n".join(f"    {line(name)}: {line(hub)}" for name, hub in document["hubs"].items())
    default = document["default"]
    rules = ",\n".join(f"      {line(rule)}" for rule in default["rules"])
    return (
        "{\n"
        f'  "$schema": {line(document["$schema"])},\n'
        f'  "hubs": {{\n{hubs}\n  }},\n'
        '  "default": {\n'
        f'    "strategy": {line(default["strategy"])},\n'
        f'    "rules": [\n{rules}\n    ],\n'
        f'    "otherwise": {line(default["otherwise"])}\n'
        "  }\n"
        "}\n"
    )


def request(registration_id: str, payload: Any = None) -> dict[str, Any]:
    """A request as DPS posts it for a device of the enrollment group 'contoso-customers'."""
    hubs = list(HUBS)
    runtime: dict[str, Any] = {"registrationId": registration_id, "symmetricKey": {}}
    if payload is not None:
        runtime["payload"] = payload
    return {
        "enrollmentGroup": {
            "enrollmentGroupId": "contoso-customers",
            "attestation": {"type": "symmetricKey"},
            "capabilities": {"iotEdge": False},
            "etag": '"0b00e1c4-0000-0e00-0000-6611c3a70000"',
            "provisioningStatus": "enabled",
            "reprovisionPolicy": {"updateHubAssignment": True, "migrateDeviceData": True},
            "createdDateTimeUtc": "2024-04-06T12:40:07.3310457Z",
            "lastUpdatedDateTimeUtc": "2024-04-06T12:40:07.3310457Z",
            "allocationPolicy": "custom",
            "iotHubs": hubs,
            "customAllocationDefinition": {
                "webhookUrl": "https://contoso-allocation.azurewebsites.net/api/allocate?****",
                "apiVersion": "2021-10-01",
            },
        },
        "deviceRuntimeContext": runtime,
        "linkedHubs": hubs,
    }


REQUESTS = {
    # Newer firmware sends the customer ID in the payload: the first customer's rule.
    "first-customer-by-payload": request("meter-5501", {"customerId": "C0000"}),
    # Older devices only carry it in their registration ID: the last customer's rule.
    "last-customer-by-registration-id": request("c1999-meter-0007"),
    "revoked-customer": request("meter-8812", {"customerId": "C0666"}),
    "unknown-customer": request("meter-0001", {"customerId": "C9999"}),
    "lab-device": request("lab-17"),
}


def main() -> None:
    (HERE / "policy.json").write_text(policy_text(policy()), encoding="utf-8")
    for name, body in REQUESTS.items():
        path = HERE / "requests" / f"{name}.json"
        path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
