"""The JSON Schema (draft 2020-12) of policy version 1, for editors: validation and completion.

Written by hand from the policy reference (the README and policy.md), so that every property
carries the help an editor shows. ``python -m allocation schema`` prints it, and the repository
keeps it as ``policy.schema.json`` (a test fails when the two drift apart); policies point at it
with ``"$schema": "./policy.schema.json"``.

The schema is a help, not the authority: the policy loader is (allocation.policy). Everything
the loader rejects that JSON Schema can express is rejected here too; what it cannot express is
left to the loader: names unique regardless of case (hubs, enrollments, regions), unique rule
names, template syntax, RE2 syntax, and whether a plug-in can be imported.

An allocation is checked in two layers: its common fields (``hubs``, ``initialTwin``,
``payload``, ``sticky``) always, and, selected by ``strategy`` with ``if``/``then``, the options
of a built-in strategy with no other field allowed. Any other strategy names a plug-in, whose
options are its own business.
"""

from __future__ import annotations

from typing import Any, Final

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

Schema = dict[str, Any]

# allocation.hostnames: RFC 1123 host names, labels of 1-63 characters, 253 in all.
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME_PATTERN: Final = rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$"
# A glob is a host name with *, ? or [...] in it (allocation.policy._is_name_pattern).
_GLOB_LABEL: Final = r"[A-Za-z0-9*?!\[\]](?:[A-Za-z0-9*?!\[\]-]{0,61}[A-Za-z0-9*?!\[\]])?"
GLOB_PATTERN: Final = rf"^(?=.{{1,253}}$)(?=.*[*?\[]){_GLOB_LABEL}(?:\.{_GLOB_LABEL})*$"
PAYLOAD_PATH_PATTERN: Final = r"^payload\.[^.]+(\.[^.]+)*$"
LOOKUP_FIELD_PATTERN: Final = r"^lookup\.[A-Za-z_][A-Za-z0-9_]*(\.[^.]+)*$"
LOOKUP_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
TABLE_NAME_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9]{2,62}$"
VERSION_PATTERN: Final = r"^[0-9]+(\.[0-9]+)*$"

STRATEGIES: Final = ("static", "weighted", "latency", "rules")

_REF_ALLOCATION: Final = {"$ref": "#/$defs/allocation"}
_REF_CONDITION: Final = {"$ref": "#/$defs/condition"}


def policy_schema() -> Schema:
    """The schema as a JSON-serialisable dict."""
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "DPS custom allocation policy, version 1",
        "description": (
            "How the allocation webhook assigns devices to the IoT hubs DPS links to their "
            "enrollment. Anything not mentioned takes its default; with no policy at all, "
            "devices spread evenly over linkedHubs like DPS's evenly weighted distribution."
        ),
        "type": "object",
        "properties": {
            "$schema": {
                "type": "string",
                "description": (
                    "Ignored by the webhook; lets editors validate and complete the file, "
                    'e.g. "./policy.schema.json".'
                ),
            },
            "hubs": {
                "type": "object",
                "description": (
                    "Metadata about IoT hubs, by host name (compared case-insensitively). A "
                    "linked hub missing here gets the defaults; a hub listed here but not in "
                    "the request's linkedHubs is ignored for that request."
                ),
                "propertyNames": {"$ref": "#/$defs/hostName"},
                "additionalProperties": {"$ref": "#/$defs/hub"},
                "default": {},
            },
            "default": {
                **_REF_ALLOCATION,
                "description": (
                    "The allocation for devices of enrollments not listed in 'enrollments'."
                ),
                "default": {"strategy": "weighted"},
            },
            "enrollments": {
                "type": "object",
                "description": (
                    "Allocations by enrollment: the enrollmentGroupId, or an individual "
                    "enrollment's registrationId (matched case-insensitively, as DPS does)."
                ),
                "propertyNames": {"minLength": 1},
                "additionalProperties": _REF_ALLOCATION,
                "default": {},
            },
            "lookups": {
                "type": "object",
                "description": (
                    "Rows of a table (Azure Table Storage or Cosmos DB for Table) that "
                    "conditions and templates read as lookup.<name>.<property>; "
                    "lookup.<name> is the row, absent when the table has none for the device."
                ),
                "propertyNames": {"pattern": LOOKUP_NAME_PATTERN},
                "additionalProperties": {"$ref": "#/$defs/lookup"},
                "default": {},
            },
            "sticky": _sticky(
                "Keep reprovisioned devices on their current hub while it is still a candidate "
                "and not drained for them, so no device moves unless it has to."
            ),
        },
        "additionalProperties": False,
        "$defs": _definitions(),
    }


def _definitions() -> Schema:
    return {
        "hostName": {
            "type": "string",
            "pattern": HOST_NAME_PATTERN,
            "description": "An IoT hub host name, e.g. 'my-hub.azure-devices.net'.",
        },
        "hub": _hub(),
        "hubSelector": _hub_selector(),
        "initialTwin": _initial_twin(),
        "allocation": _allocation(),
        "rule": _rule(),
        "ruleOutcome": {
            "description": 'A nested allocation, or "deny" to refuse the device (HTTP 403).',
            "anyOf": [
                {"const": "deny", "description": "Refuse the device: HTTP 403 naming the rule."},
                _REF_ALLOCATION,
            ],
        },
        "condition": _condition(),
        "stringTest": _field_test(_string_operators()),
        "enrollmentTypeTest": _field_test(_enrollment_type_operators()),
        "booleanTest": _field_test(_boolean_operators()),
        "payloadTest": _field_test(_payload_operators()),
        "milliseconds": {"type": "number", "minimum": 0},
        "lookup": _lookup(),
    }


def _lookup() -> Schema:
    seconds: Schema = {"type": "integer", "minimum": 0, "maximum": 86400}
    return {
        "type": "object",
        "description": "One point read per device: the row of these partition and row keys.",
        "properties": {
            "table": {
                "type": "string",
                "pattern": TABLE_NAME_PATTERN,
                "description": "The table's name, e.g. 'devices'.",
            },
            "partitionKey": {
                "type": "string",
                "default": "{enrollmentId}",
                "description": (
                    "A template of request fields: {registrationId}, {enrollmentId}, "
                    "{currentHub}, {payload.<path>}."
                ),
            },
            "rowKey": {
                "type": "string",
                "default": "{registrationId}",
                "description": "A template of request fields, like partitionKey.",
            },
            "cacheSeconds": {
                **seconds,
                "default": 300,
                "description": "How long a found row is kept (0: not kept).",
            },
            "missingCacheSeconds": {
                **seconds,
                "default": 30,
                "description": "How long a missing row is remembered as missing (0: not kept).",
            },
            "timeoutMs": {
                "type": "integer",
                "minimum": 1,
                "maximum": 10000,
                "default": 1500,
                "description": "The limit on connecting to the store, and on reading its answer.",
            },
            "onError": {
                "enum": ["unavailable", "absent"],
                "default": "unavailable",
                "description": (
                    "When the store fails: 'unavailable' answers 503 lookup_unavailable with "
                    "Retry-After (DPS retries); 'absent' goes on as if there were no row."
                ),
            },
        },
        "required": ["table"],
        "additionalProperties": False,
    }


# -- hubs --------------------------------------------------------------------------------------


def _hub() -> Schema:
    return {
        "type": "object",
        "description": "What the policy knows about one IoT hub.",
        "properties": {
            "weight": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1000,
                "default": 1,
                "description": (
                    "Relative share of devices, 1-1000: the scale of DPS's allocation weight."
                ),
            },
            "region": {
                "type": ["string", "null"],
                "minLength": 1,
                "description": (
                    "Azure region name, e.g. 'westeurope': for {\"region\": ..} selectors and "
                    "the latency strategy."
                ),
            },
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "default": [],
                "description": 'Labels for {"tag": ..} selectors (case-sensitive).',
            },
            "drain": {
                "anyOf": [{"type": "number", "minimum": 0, "maximum": 100}, {"type": "boolean"}],
                "default": 0,
                "description": (
                    "Percentage (0-100, fractions allowed) of devices that leave and avoid this "
                    "hub, chosen by a stable hash; true means 100. Raise it in phases "
                    "(5, 25, 50, 100): no device moves twice."
                ),
            },
        },
        "additionalProperties": False,
    }


def _hub_selector() -> Schema:
    return {
        "description": (
            "A host name, a glob such as '*-toasters-*' (case-insensitive), "
            '{"tag": ..} or {"region": ..}.'
        ),
        "anyOf": [
            {"$ref": "#/$defs/hostName"},
            {
                "type": "string",
                "pattern": GLOB_PATTERN,
                "description": "A glob over host names: *, ? and [ab]; case-insensitive.",
            },
            _single("tag", "Hubs whose 'tags' hold this tag (case-sensitive).", {"minLength": 1}),
            _single(
                "region",
                "Hubs in this Azure region (case-insensitive), e.g. 'westeurope'.",
                {"minLength": 1},
            ),
        ],
    }


def _single(name: str, description: str, extra: Schema) -> Schema:
    return {
        "type": "object",
        "properties": {name: {"type": "string", **extra, "description": description}},
        "required": [name],
        "additionalProperties": False,
    }


# -- allocations -------------------------------------------------------------------------------


def _common_fields() -> Schema:
    return {
        "strategy": {
            "description": (
                "How a hub is chosen: static, weighted, latency, rules, or a plug-in "
                "('package.module:Name', or a name registered under the entry-point group "
                "dps_allocation.strategies)."
            ),
            "anyOf": [
                {"const": "static", "description": "One named hub (option 'hub')."},
                {
                    "const": "weighted",
                    "description": (
                        "Weighted rendezvous hashing over the candidates, with the hubs' weights."
                    ),
                },
                {
                    "const": "latency",
                    "description": "The candidate with the lowest expected round-trip time.",
                },
                {
                    "const": "rules",
                    "description": "The first rule whose condition holds decides.",
                },
                {
                    "type": "string",
                    "minLength": 1,
                    "description": (
                        "A plug-in: 'package.module:Name', or an entry point of "
                        "dps_allocation.strategies."
                    ),
                },
            ],
        },
        "hubs": {
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/$defs/hubSelector"},
            "description": (
                "Candidate filter: a linked hub is a candidate if any selector matches it. "
                "Nested allocations narrow their parent's candidates further. Without it, "
                "every linked hub is a candidate."
            ),
        },
        "initialTwin": {
            "$ref": "#/$defs/initialTwin",
            "description": (
                "Tags and desired properties for the device's twin; string values may hold "
                "templates. Returned only where DPS applies it: initial assignment, or a hub "
                "change under 'reprovision and reset to initial state'."
            ),
        },
        "payload": {
            "type": "object",
            "description": (
                "A JSON object returned to the device on every successful registration; "
                "string values may hold templates such as {registrationId}, {hub}, "
                "{hub.region}, {payload.<path>}."
            ),
        },
        "sticky": _sticky(
            "Overrides the policy's 'sticky' for the devices this allocation places."
        ),
    }


def _strategy_options() -> dict[str, tuple[Schema, list[str]]]:
    """Each built-in strategy's options, and which of them are required."""
    return {
        "static": (
            {
                "hub": {
                    "type": "string",
                    "minLength": 1,
                    "description": (
                        "A host name or glob: the first candidate, in linkedHubs order, that "
                        "matches it. Or a template naming one hub, e.g. "
                        "'{lookup.inventory.hub}'. No match (or an empty name) goes to "
                        "'fallback', else answers 503 no_eligible_hub."
                    ),
                },
                "fallback": {
                    **_REF_ALLOCATION,
                    "description": (
                        "The allocation for a device whose hub matches no candidate, or whose "
                        "templated hub renders empty."
                    ),
                },
            },
            ["hub"],
        ),
        "weighted": (
            {
                "key": {
                    "type": "string",
                    "minLength": 1,
                    "default": "{registrationId}",
                    "description": (
                        "A template naming what is hashed, e.g. '{payload.siteId}' keeps every "
                        "device of a site on one hub. It must name a request field; a device "
                        "whose key renders empty is hashed on its registration ID."
                    ),
                }
            },
            [],
        ),
        "latency": (
            {
                "measurements": {
                    "type": "string",
                    "pattern": PAYLOAD_PATH_PATTERN,
                    "default": "payload.latencyMs",
                    "description": (
                        "Where the device reports its own measurements: a payload path to an "
                        "object host name -> milliseconds. The strongest evidence."
                    ),
                },
                "location": {
                    "type": "string",
                    "pattern": PAYLOAD_PATH_PATTERN,
                    "default": "payload.region",
                    "description": (
                        "Where the device gives its location: a payload path to an Azure region "
                        'name or to {"lat": .., "lon": ..}, compared with the hubs\' regions.'
                    ),
                },
                "regionLatencyMs": {
                    "type": "object",
                    "description": (
                        "The operator's own table, device region -> hub region -> milliseconds "
                        "(names case-insensitive, need not be Azure regions); used before the "
                        "built-in great-circle estimate. Missing entries are taken from the "
                        "opposite direction; a region is 0 ms from itself."
                    ),
                    "propertyNames": {"minLength": 1},
                    "additionalProperties": {
                        "type": "object",
                        "propertyNames": {"minLength": 1},
                        "additionalProperties": {"$ref": "#/$defs/milliseconds"},
                    },
                },
                "toleranceMs": {
                    "$ref": "#/$defs/milliseconds",
                    "default": 10,
                    "description": (
                        "Candidates within this many milliseconds of the best are tied, and "
                        "weighted hashing of the registration ID picks among them."
                    ),
                },
                "fallback": {
                    **_REF_ALLOCATION,
                    "default": {"strategy": "weighted"},
                    "description": (
                        "The allocation for devices without usable measurements or location."
                    ),
                },
            },
            [],
        ),
        "rules": (
            {
                "rules": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/rule"},
                    "description": "Tried in order: the first rule whose condition holds decides.",
                },
                "otherwise": {
                    "$ref": "#/$defs/ruleOutcome",
                    "default": {"strategy": "weighted"},
                    "description": 'When no rule holds: an allocation, or "deny".',
                },
            },
            ["rules"],
        ),
    }


def _allocation() -> Schema:
    common = _common_fields()
    branches = []
    for strategy, (options, required) in _strategy_options().items():
        # The common fields are checked above; listing them here only allows them.
        allowed: Schema = dict.fromkeys(common, True)
        branches.append(
            {
                "if": {"properties": {"strategy": {"const": strategy}}, "required": ["strategy"]},
                "then": {
                    "properties": {**allowed, **options},
                    "required": required,
                    "additionalProperties": False,
                },
            }
        )
    return {
        "type": "object",
        "description": (
            "An allocation: a strategy and its options, with an optional hub filter, "
            "initial twin, payload and sticky override."
        ),
        "properties": common,
        "required": ["strategy"],
        "allOf": branches,
    }


def _initial_twin() -> Schema:
    return {
        "type": "object",
        "description": "Tags and desired properties: DPS ignores anything else.",
        "properties": {
            "tags": {"type": "object", "description": "Twin tags."},
            "properties": {
                "type": "object",
                "description": "Only desired properties can be set.",
                "properties": {"desired": {"type": "object", "description": "Desired properties."}},
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    }


def _sticky(description: str) -> Schema:
    return {"type": "boolean", "default": False, "description": description}


# -- rules and conditions ----------------------------------------------------------------------


def _rule() -> Schema:
    return {
        "type": "object",
        "description": "A condition and what happens to the devices it holds for.",
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "description": (
                    "Names the rule in the trace and in a 403; unique within its list. "
                    "Default: rules[<index>]."
                ),
            },
            "when": {**_REF_CONDITION, "description": "The condition; {} always holds."},
            "then": {
                "$ref": "#/$defs/ruleOutcome",
                "description": 'A nested allocation for the device, or "deny".',
            },
        },
        "required": ["when", "then"],
        "additionalProperties": False,
    }


_FIELD_DESCRIPTIONS: Final = {
    "registrationId": ("stringTest", "The device's registration ID."),
    "enrollmentId": (
        "stringTest",
        "The enrollment group ID, or the individual enrollment's registration ID.",
    ),
    "enrollmentType": ("enrollmentTypeTest", "'group' or 'individual'."),
    "attestation": ("stringTest", "'symmetricKey', 'x509' or 'tpm'."),
    "iotEdge": ("booleanTest", "Whether the device is an IoT Edge device."),
    "reprovision": ("booleanTest", "Whether the device was assigned before."),
    "currentHub": (
        "stringTest",
        "The device's current hub (case-insensitive); absent on first assignment.",
    ),
}


def _condition() -> Schema:
    properties: Schema = {
        "all": {
            "type": "array",
            "minItems": 1,
            "items": _REF_CONDITION,
            "description": "Holds when every condition of the list holds.",
        },
        "any": {
            "type": "array",
            "minItems": 1,
            "items": _REF_CONDITION,
            "description": "Holds when at least one condition of the list holds.",
        },
        "not": {**_REF_CONDITION, "description": "Holds when the condition does not."},
    }
    for field, (test, description) in _FIELD_DESCRIPTIONS.items():
        properties[field] = {"$ref": f"#/$defs/{test}", "description": description}
    return {
        "type": "object",
        "description": (
            "Each key is a field with an object of operator -> operand, or all/any/not; every "
            "key and every operator must hold. {} always holds. An absent field makes every "
            "operator false except exists: false."
        ),
        "properties": properties,
        "patternProperties": {
            PAYLOAD_PATH_PATTERN: {
                "$ref": "#/$defs/payloadTest",
                "description": (
                    "A value of the device's registration payload, by dotted path (list items "
                    "by number); any JSON type."
                ),
            },
            LOOKUP_FIELD_PATTERN: {
                "$ref": "#/$defs/payloadTest",
                "description": (
                    "lookup.<name>: the row a lookup found (exists: false for a device the "
                    "table does not list); lookup.<name>.<property>: one of its properties."
                ),
            },
        },
        "additionalProperties": False,
    }


def _field_test(operators: Schema) -> Schema:
    return {
        "type": "object",
        "description": "Operator -> operand; every operator must hold.",
        "properties": operators,
        "minProperties": 1,
        "additionalProperties": False,
    }


def _exists() -> Schema:
    return {
        "type": "boolean",
        "description": "true: the field is present; false: it is absent.",
    }


def _text_operators() -> Schema:
    return {
        "startsWith": {"type": "string", "description": "The value starts with this text."},
        "endsWith": {"type": "string", "description": "The value ends with this text."},
        "glob": {
            "type": "string",
            "description": "The whole value matches this glob: *, ?, [seq], [!seq].",
        },
        "regex": {
            "type": "string",
            "description": (
                "An RE2 regular expression found anywhere in the value (anchor with ^...$); "
                "no backreferences or lookaround."
            ),
        },
        "versionGte": {
            "type": "string",
            "pattern": VERSION_PATTERN,
            "description": "A dotted numeric version, e.g. '12.0': the value is at least it.",
        },
        "versionLt": {
            "type": "string",
            "pattern": VERSION_PATTERN,
            "description": "A dotted numeric version, e.g. '12.0': the value is below it.",
        },
    }


def _string_operators() -> Schema:
    return {
        "equals": {"type": "string", "description": "The value is exactly this."},
        "in": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string"},
            "description": "The value is one of these.",
        },
        "contains": {"type": "string", "description": "The value contains this text."},
        **_text_operators(),
        "exists": _exists(),
    }


def _enrollment_type_operators() -> Schema:
    kinds: Schema = {"enum": ["group", "individual"]}
    return {
        **_string_operators(),
        "equals": {**kinds, "description": "The enrollment type is this."},
        "in": {
            "type": "array",
            "minItems": 1,
            "items": kinds,
            "description": "The enrollment type is one of these.",
        },
    }


def _boolean_operators() -> Schema:
    return {
        "equals": {"type": "boolean", "description": "The value is this."},
        "in": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "boolean"},
            "description": "The value is one of these.",
        },
        "exists": _exists(),
    }


def _payload_operators() -> Schema:
    not_null: Schema = {"not": {"type": "null"}}
    number: Schema = {"type": "number"}
    return {
        "equals": {
            **not_null,
            "description": "JSON equality (1 equals 1.0; true is not 1); null is not allowed.",
        },
        "in": {
            "type": "array",
            "minItems": 1,
            "items": not_null,
            "description": "The value equals one of these.",
        },
        "contains": {
            **not_null,
            "description": "A substring of a string value, or an element of a list value.",
        },
        **_text_operators(),
        "gt": {**number, "description": "The value is a number greater than this."},
        "gte": {**number, "description": "The value is a number at least this."},
        "lt": {**number, "description": "The value is a number less than this."},
        "lte": {**number, "description": "The value is a number at most this."},
        "exists": _exists(),
    }
