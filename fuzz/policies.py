"""The policies every fuzzed body is answered under.

``default`` is the built-in policy, the one a zero-configuration deployment runs: under it the
expected status of each hostile case is exact. ``rich`` uses every built-in strategy, conditions
of every kind (an RE2 regex, a glob, versions, numbers), templates that echo device values into
the answer, drain and sticky, so that device-controlled values reach every part of the decision;
under it only the general invariants hold (a 403 or a 503 ``no_eligible_hub`` is a right answer
there).
"""

from __future__ import annotations

from typing import Any, Final

from allocation.policy import Policy, compile_policy, default_policy

# Host names the rich policy knows: the strategies draw linked hubs from these too (in odd case),
# so that its rules, regions and drain come into play.
HUB_A: Final = "hub-a.azure-devices.net"
HUB_B: Final = "hub-b.azure-devices.net"
HUB_C: Final = "hub-c.azure-devices.net"
TOASTERS: Final = "contoso-toasters-hub-1098.azure-devices.net"
POLICY_HUBS: Final = (HUB_A, HUB_B, HUB_C, TOASTERS)

RICH_POLICY: Final[dict[str, Any]] = {
    "hubs": {
        HUB_A: {"weight": 3, "region": "westeurope", "tags": ["eu"]},
        HUB_B: {"weight": 1, "region": "eastus", "tags": ["us"], "drain": 50},
        HUB_C: {"weight": 1000, "region": "northeurope", "tags": ["eu"], "drain": True},
        TOASTERS: {"region": "westus2", "tags": ["us", "toasters"]},
    },
    "sticky": True,
    "default": {
        "strategy": "rules",
        "payload": {"echo": "{payload.echo}", "hub": "{hub}", "region": "{hub.region}"},
        "initialTwin": {
            "tags": {"site": "{payload.siteId}", "blob": "{payload.blob}",
                     "note": "v={payload.echo}!"},
            "properties": {"desired": {"registration": "{registrationId}"}},
        },
        "rules": [
            {"name": "blocked", "when": {"registrationId": {"regex": "^(a+)+b$"}}, "then": "deny"},
            {"name": "old firmware", "when": {"payload.firmware": {"versionLt": "2.0"}},
             "then": "deny"},
            {"name": "eu",
             "when": {"any": [{"payload.region": {"in": ["westeurope", "northeurope"]}},
                              {"payload.tags": {"contains": "eu"}}]},
             "then": {"strategy": "latency", "hubs": [{"tag": "eu"}]}},
            {"name": "toasters", "when": {"registrationId": {"glob": "*-tstrsd-*"}},
             "then": {"strategy": "static", "hub": "*-toasters-*"}},
            {"name": "by site", "when": {"payload.siteId": {"exists": True}},
             "then": {"strategy": "weighted", "key": "{payload.siteId}"}},
            {"name": "measured", "when": {"not": {"payload.latencyMs": {"exists": False}}},
             "then": {"strategy": "latency", "toleranceMs": 5}},
            {"name": "numbers", "when": {"payload.n": {"gte": 10, "lt": 1e300}},
             "then": {"strategy": "weighted", "key": "{registrationId}/{payload.n}"}},
            {"name": "edge", "when": {"all": [{"iotEdge": {"equals": True}},
                                              {"reprovision": {"equals": True}}]},
             "then": {"strategy": "static", "hub": HUB_B}},
        ],
        "otherwise": {"strategy": "weighted"},
    },
}  # fmt: skip

POLICIES: Final[dict[str, Policy]] = {
    "default": default_policy(),
    "rich": compile_policy(RICH_POLICY),
}
