"""Lookups: a policy reading a device inventory in Table Storage, against a real Azurite."""

from __future__ import annotations

import dataclasses
import http.server
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation.errors import PolicyError, Problem
from allocation.inventory import InventoryRows
from allocation.lookups import RowCache
from allocation.policy import Policy, parse_policy
from allocation.storage.tables import TableRowStore
from allocation.webhook import WebhookResponse, handle
from tests.azurite import AzuriteServer
from tests.conftest import ROOT, encode, make_request

A, B, C = "hub-a.azure-devices.net", "hub-b.azure-devices.net", "hub-c.azure-devices.net"


def new_table(connection_string: str, rows: list[dict[str, Any]] = ()) -> str:  # type: ignore[assignment]
    from azure.data.tables import TableServiceClient

    name = "t" + uuid.uuid4().hex[:16]
    table = TableServiceClient.from_connection_string(connection_string).create_table(name)
    for row in rows:
        table.upsert_entity(row)
    return name


def put_row(connection_string: str, table: str, row: dict[str, Any]) -> None:
    from azure.data.tables import TableServiceClient

    client = TableServiceClient.from_connection_string(connection_string).get_table_client(table)
    client.upsert_entity(row)


def device_row(registration_id: str, **properties: Any) -> dict[str, Any]:
    return {"PartitionKey": "fleet", "RowKey": registration_id, **properties}


def inventory_policy(table: str, fallback: bool = True, **options: Any) -> Policy:
    """The allow-list plus per-customer hubs: example 05's shape."""
    known: dict[str, Any] = {
        "strategy": "static",
        "hub": "{lookup.inventory.hub}",
        "initialTwin": {"tags": {"customer": "{lookup.inventory.customer}"}},
    }
    if fallback:
        known["fallback"] = {"strategy": "weighted"}
    return parse_policy(
        json.dumps(
            {
                "lookups": {
                    "inventory": {
                        "table": table,
                        "partitionKey": "{enrollmentId}",
                        "rowKey": "{registrationId}",
                        **options,
                    }
                },
                "default": {
                    "strategy": "rules",
                    "rules": [
                        {"name": "gateways", "when": {"registrationId": {"startsWith": "gw-"}},
                         "then": {"strategy": "static", "hub": A}},
                        {"name": "unknown-device", "when": {"lookup.inventory": {"exists": False}},
                         "then": "deny"},
                        {"name": "known", "when": {}, "then": known},
                    ],
                },
            }
        )
    )  # fmt: skip


class Lines:
    """The webhook's log lines, as JSON."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def __call__(self, level: int, line: str) -> None:
        self.lines.append(json.loads(line))

    @property
    def last(self) -> dict[str, Any]:
        return self.lines[-1]


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Lines:
    caplog.set_level(logging.INFO, logger="allocation")
    return Lines()


def ask(
    policy: Policy, registration_id: str, log: Lines | None = None, **kw: Any
) -> WebhookResponse:
    body = encode(make_request(registration_id, **kw))
    return handle(body, policy) if log is None else handle(body, policy, log=log)


class Counting:
    """The real table store, counting the calls that reach it (and slowing them, if asked)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.store = TableRowStore()
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    def get(self, table: str, partition_key: str, row_key: str, timeout: float) -> Any:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.store.get(table, partition_key, row_key, timeout)


def counted(policy: Policy, delay: float = 0.0) -> tuple[Policy, Counting]:
    store = Counting(delay)
    return policy.with_lookup_stores({"inventory": store}), store


# -- rows found, rows missing -------------------------------------------------------------------


def test_a_listed_device_gets_the_hub_and_customer_of_its_row(
    storage_setting: str, lines: Lines
) -> None:
    table = new_table(storage_setting, [device_row("dev-1", hub=B, customer="contoso")])
    policy = inventory_policy(table)

    response = ask(policy, "dev-1", lines)

    assert response.status == 200
    assert response.body == {
        "iotHubHostName": B,
        "initialTwin": {"tags": {"customer": "contoso"}},
    }
    assert lines.last["event"] == "allocated"
    assert lines.last["lookups"] == {"inventory": "hit"}


def test_a_device_the_table_does_not_list_is_denied(storage_setting: str, lines: Lines) -> None:
    policy = inventory_policy(new_table(storage_setting, [device_row("dev-1", hub=B)]))

    response = ask(policy, "stranger", lines)

    assert response.status == 403
    assert response.body["rule"] == "unknown-device"
    assert lines.last["event"] == "denied"
    assert lines.last["lookups"] == {"inventory": "miss"}


def test_the_next_request_is_answered_from_the_cache(storage_setting: str, lines: Lines) -> None:
    policy = inventory_policy(new_table(storage_setting, [device_row("dev-1", hub=B)]))

    ask(policy, "dev-1", lines)
    ask(policy, "stranger", lines)
    assert ask(policy, "dev-1", lines).body["iotHubHostName"] == B
    ask(policy, "stranger", lines)

    assert [line["lookups"]["inventory"] for line in lines.lines] == [
        "hit",
        "miss",
        "cached_hit",
        "cached_miss",
    ]


def test_a_lookup_runs_only_when_the_path_needs_it(storage_setting: str, lines: Lines) -> None:
    policy, store = counted(inventory_policy(new_table(storage_setting)))

    response = ask(policy, "gw-7", lines)  # the gateways rule holds before any lookup field

    assert response.body["iotHubHostName"] == A
    assert store.calls == 0
    assert "lookups" not in lines.last


def test_a_lookup_runs_once_per_request_however_many_fields_read_it(
    storage_setting: str,
) -> None:
    table = new_table(storage_setting, [device_row("dev-1", hub=B, customer="contoso")])
    # Nothing cached: every request asks the store, and each may ask it once.
    policy, store = counted(inventory_policy(table, cacheSeconds=0, missingCacheSeconds=0))

    for n in range(1, 4):
        assert ask(policy, "dev-1").status == 200  # exists, hub and customer: three reads
        assert store.calls == n


def test_a_lookup_policy_loads_no_storage_sdk_until_a_lookup_runs() -> None:
    code = (
        "import json, sys\n"
        "SDKS = ('azure.core', 'azure.data', 'azure.storage', 'azure.identity')\n"
        "from allocation.policy import parse_policy\n"
        "from allocation.webhook import handle\n"
        "from tests.conftest import encode, make_request\n"
        "policy = parse_policy(json.dumps({'lookups': {'inventory': {'table': 'devices'}},"
        " 'default': {'strategy': 'rules', 'rules': [{'when': {'registrationId':"
        " {'equals': 'x'}}, 'then': {'strategy': 'static', 'hub': '{lookup.inventory.hub}'}}]}}))\n"
        "handle(encode(make_request('dev-1')), policy)\n"
        "print(sorted(m for m in sys.modules if m.startswith(SDKS)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# -- the cache ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def with_clock(policy: Policy, clock: Clock) -> Policy:
    assert policy.lookups is not None
    return dataclasses.replace(policy, lookups=policy.lookups.with_stores({}, clock))


def test_misses_are_kept_missing_cache_seconds_and_hits_cache_seconds(
    storage_setting: str,
) -> None:
    table = new_table(storage_setting)
    clock = Clock()
    policy = with_clock(inventory_policy(table, cacheSeconds=300, missingCacheSeconds=30), clock)

    assert ask(policy, "dev-1").status == 403
    put_row(storage_setting, table, device_row("dev-1", hub=B))
    clock.now += 29
    assert ask(policy, "dev-1").status == 403  # still the remembered miss
    clock.now += 2
    assert ask(policy, "dev-1").body["iotHubHostName"] == B

    put_row(storage_setting, table, device_row("dev-1", hub=A))
    clock.now += 299
    assert ask(policy, "dev-1").body["iotHubHostName"] == B  # still the remembered row
    clock.now += 2
    assert ask(policy, "dev-1").body["iotHubHostName"] == A


def test_the_cache_is_bounded_and_forgets_the_least_recently_used_first() -> None:
    cache = RowCache(capacity=2)
    fetched: list[str] = []

    def get(key: str) -> tuple[Any, str]:
        def fetch() -> Mapping[str, Any]:
            fetched.append(key)
            return {"RowKey": key}

        return cache.get(("p", key), fetch, 300, 30, 1)

    get("a")
    get("b")
    get("a")  # a is now the most recently used
    get("c")  # so b goes
    assert len(cache) == 2
    assert get("a")[1] == "cached_hit"
    assert get("b")[1] == "hit"
    assert fetched == ["a", "b", "c", "b"]


def test_concurrent_requests_for_one_device_wait_on_one_call(storage_setting: str) -> None:
    table = new_table(storage_setting, [device_row("dev-1", hub=B)])
    policy, store = counted(inventory_policy(table), delay=0.3)
    answers: list[WebhookResponse] = []
    start = threading.Barrier(8)

    def request() -> None:
        start.wait()
        answers.append(ask(policy, "dev-1"))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert store.calls == 1
    assert [answer.body["iotHubHostName"] for answer in answers] == [B] * 8


# -- a templated static hub ----------------------------------------------------------------------


def test_a_row_naming_no_linked_hub_goes_to_the_fallback(storage_setting: str) -> None:
    table = new_table(
        storage_setting,
        [device_row("elsewhere", hub=C), device_row("no-hub", customer="fabrikam")],
    )
    policy = inventory_policy(table)

    for device in ("elsewhere", "no-hub"):
        response = ask(policy, device)
        assert response.status == 200
        assert response.body["iotHubHostName"] in (A, B)
        assert response.decision is not None
        assert response.decision.path == 'default > rules[2] "known" > fallback > weighted'


def test_without_a_fallback_a_row_naming_no_linked_hub_is_503_no_eligible_hub(
    storage_setting: str,
) -> None:
    table = new_table(storage_setting, [device_row("elsewhere", hub=C)])

    response = ask(inventory_policy(table, fallback=False), "elsewhere")

    assert response.status == 503
    assert response.body["error"] == "no_eligible_hub"
    assert response.headers["Retry-After"]


def test_a_hub_is_compared_as_a_host_name_never_as_a_glob(storage_setting: str) -> None:
    table = new_table(
        storage_setting, [device_row("shouty", hub=B.upper()), device_row("globber", hub="*")]
    )
    policy = inventory_policy(table, fallback=False)

    assert ask(policy, "shouty").body["iotHubHostName"] == B
    assert ask(policy, "globber").status == 503


# -- the store failing -----------------------------------------------------------------------


@pytest.fixture
def private_azurite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AzuriteServer]:
    """An Azurite of this test's own, keeping its data on disk across restarts."""
    server = AzuriteServer(location=tmp_path / "azurite")
    server.start()
    monkeypatch.setenv("ALLOCATION_STORAGE", server.connection_string)
    try:
        yield server
    finally:
        server.stop()


def test_a_store_down_answers_503_lookup_unavailable_with_retry_after(
    private_azurite: AzuriteServer, lines: Lines
) -> None:
    table = new_table(private_azurite.connection_string, [device_row("dev-1", hub=B)])
    policy = inventory_policy(table)
    private_azurite.stop()

    response = ask(policy, "dev-1", lines)

    assert response.status == 503
    assert response.body["error"] == "lookup_unavailable"
    # The answer names no lookup, table or address; the log line says which and why.
    assert response.body["message"] == "a lookup could not read its table; DPS retries"
    assert lines.last["lookup"] == "inventory"
    assert lines.last["cause"].startswith(f"table '{table}': ServiceRequestError")
    assert int(response.headers["Retry-After"]) > 0
    assert lines.last["event"] == "lookup_unavailable"
    assert lines.last["status"] == 503
    assert lines.last["lookups"] == {"inventory": "error"}
    assert "AccountKey" not in json.dumps(lines.last)


def test_a_store_down_under_on_error_absent_goes_on_as_if_there_were_no_row(
    private_azurite: AzuriteServer, lines: Lines
) -> None:
    table = new_table(private_azurite.connection_string, [device_row("dev-1", hub=B)])
    policy = inventory_policy(table, onError="absent")
    private_azurite.stop()

    response = ask(policy, "dev-1", lines)

    assert response.status == 403
    assert response.body["rule"] == "unknown-device"
    assert lines.last["lookups"] == {"inventory": "error"}


def test_lookups_recover_when_the_store_comes_back_without_a_restart(
    private_azurite: AzuriteServer,
) -> None:
    table = new_table(private_azurite.connection_string, [device_row("dev-1", hub=B)])
    policy = inventory_policy(table, cacheSeconds=0)
    assert ask(policy, "dev-1").status == 200

    private_azurite.stop()
    assert ask(policy, "dev-1").status == 503
    private_azurite.start()

    assert ask(policy, "dev-1").body["iotHubHostName"] == B


def test_a_store_that_never_answers_is_given_up_after_timeout_ms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepts connections (the kernel does), never reads or answers
        port = silent.getsockname()[1]
        monkeypatch.setenv(
            "ALLOCATION_STORAGE",
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
            + "a" * 88
            + f";TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
        )
        policy = inventory_policy("devices", timeoutMs=300)
        import azure.data.tables  # noqa: F401 - the SDK's first import is not the store's time

        started = time.monotonic()
        response = ask(policy, "dev-1")
        elapsed = time.monotonic() - started

    assert response.status == 503
    assert response.body["error"] == "lookup_unavailable"
    assert elapsed < 2.0


class Throttling(http.server.BaseHTTPRequestHandler):
    """Every request answered as a throttled storage account answers: 503 ServerBusy."""

    received: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.received.append(self.path)
        body = b'{"odata.error":{"code":"ServerBusy","message":{"value":"busy"}}}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_throttled_store_is_not_retried_and_follows_on_error(
    monkeypatch: pytest.MonkeyPatch, lines: Lines
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(
            "ALLOCATION_STORAGE",
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
            + "a" * 88
            + f";TableEndpoint=http://127.0.0.1:{server.server_port}/devstoreaccount1;",
        )
        unavailable = ask(inventory_policy("devices"), "dev-1", lines)
        absent = ask(inventory_policy("devices", onError="absent"), "dev-1")
    finally:
        server.shutdown()
        server.server_close()

    assert unavailable.status == 503
    assert unavailable.body["error"] == "lookup_unavailable"
    assert "HttpResponseError" in lines.last["cause"]
    assert absent.status == 403
    assert len(Throttling.received) == 2  # one call per request: no retry spends DPS's time


def test_a_missing_table_is_an_error_not_a_missing_device(storage_setting: str) -> None:
    response = ask(inventory_policy("t" + uuid.uuid4().hex[:16]), "dev-1")

    assert response.status == 503
    assert response.body["error"] == "lookup_unavailable"


def test_without_a_storage_connection_a_lookup_is_unavailable_and_the_log_says_why(
    monkeypatch: pytest.MonkeyPatch, lines: Lines
) -> None:
    monkeypatch.delenv("ALLOCATION_STORAGE", raising=False)
    response = ask(inventory_policy("devices"), "dev-1", lines)

    assert response.status == 503
    assert response.body["error"] == "lookup_unavailable"
    assert "StorageNotConfigured" in lines.last["cause"]
    assert "ALLOCATION_STORAGE" in lines.last["cause"]


# -- validation --------------------------------------------------------------------------------

INVENTORY = {"inventory": {"table": "devices"}}


def problems(document: dict[str, Any]) -> list[Problem]:
    with pytest.raises(PolicyError) as error:
        parse_policy(json.dumps(document))
    return list(error.value.problems)


def rules(when: Any, then: Any = "deny") -> dict[str, Any]:
    return {"strategy": "rules", "rules": [{"when": when, "then": then}]}


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ({"lookups": INVENTORY, "default": rules({"lookup.stock.count": {"gt": 1}})},
         'default.rules[0].when["lookup.stock.count"]',
         "no lookup named 'stock' in the policy's 'lookups' (declared: inventory)"),
        ({"default": rules({"lookup.inventory": {"exists": False}})},
         'default.rules[0].when["lookup.inventory"]',
         "no lookup named 'inventory' in the policy's 'lookups' (declared: none)"),
        ({"lookups": INVENTORY, "default": rules({"lookup..x": {"exists": True}})},
         'default.rules[0].when["lookup..x"]',
         "'lookup..x' is not a lookup field: 'lookup.<name>' or 'lookup.<name>.<property>', "
         "e.g. 'lookup.inventory.customer'"),
        ({"lookups": INVENTORY, "default": {"strategy": "static", "hub": "{lookup.stock.hub}"}},
         "default.hub", "no lookup named 'stock' in the policy's 'lookups' (declared: inventory)"),
        ({"lookups": INVENTORY,
          "default": {"strategy": "weighted", "initialTwin": {"tags": {"c": "{lookup.invntory.c}"}}}},
         "default.initialTwin.tags.c",
         "no lookup named 'invntory' in the policy's 'lookups' (declared: inventory)"),
        ({"lookups": {"inventory": {"table": "devices", "timeoutMs": 0}}},
         "lookups.inventory.timeoutMs", "Input should be greater than or equal to 1"),
        ({"lookups": {"inventory": {"table": "devices", "onError": "retry"}}},
         "lookups.inventory.onError", "Input should be 'unavailable' or 'absent'"),
        ({"lookups": {"inventory": {"table": "my-devices"}}},
         "lookups.inventory.table", "String should match pattern '^[A-Za-z][A-Za-z0-9]{2,62}$'"),
        ({"lookups": {"inventory": {"rowKey": "{registrationId}"}}},
         "lookups.inventory.table", "required field is missing"),
        ({"lookups": {"inventory": {"table": "devices", "cache": 5}}},
         "lookups.inventory.cache", "unknown field"),
        ({"lookups": {"in-ventory": {"table": "devices"}}},
         'lookups["in-ventory"]',
         "a lookup name is an identifier such as 'inventory' (letters, digits, _)"),
        ({"lookups": {"inventory": {"table": "devices", "rowKey": "{lookup.inventory.id}"}}},
         "lookups.inventory.rowKey", "a key is made of request fields, not of another lookup"),
        ({"lookups": {"inventory": {"table": "devices", "rowKey": "{serial}"}}},
         "lookups.inventory.rowKey",
         "unknown template field '{serial}'; known: {currentHub}, {enrollmentId}, "
         "{registrationId}, {payload.<path>}, {lookup.<name>.<property>}"),
        ({"lookups": ["inventory"]}, "lookups", "must be an object: lookup name -> lookup"),
    ],
)  # fmt: skip
def test_an_invalid_lookup_or_lookup_field_is_named_by_its_json_path(
    document: dict[str, Any], path: str, message: str
) -> None:
    assert problems(document) == [Problem(path, message)]


# -- the property: never a hub outside linkedHubs --------------------------------------------------

HUBS = [A, B, C, "hub-d.azure-devices.net"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    linked=st.lists(st.sampled_from(HUBS), min_size=1, max_size=4, unique=True),
    named=st.one_of(
        st.sampled_from(HUBS),
        st.sampled_from(HUBS).map(str.upper),
        st.text(max_size=30),
        st.just("*"),
        st.just("hub-?.azure-devices.net"),
    ),
    listed=st.booleans(),
    fallback=st.booleans(),
)
def test_a_lookup_driven_policy_never_answers_a_hub_outside_linked_hubs(
    linked: list[str], named: str, listed: bool, fallback: bool
) -> None:
    rows = {("fleet", "dev-1"): {"PartitionKey": "fleet", "RowKey": "dev-1", "hub": named}}
    policy = inventory_policy("devices", fallback=fallback).with_lookup_stores(
        {"inventory": InventoryRows(rows if listed else {})}
    )

    response = ask(policy, "dev-1", linked_hubs=linked)

    assert response.status in (200, 403, 503)
    if response.status == 200:
        assert response.body["iotHubHostName"] in linked
        if not fallback:
            assert response.body["iotHubHostName"].lower() == named.strip().lower()
    if not listed:
        assert response.status == 403


def test_the_default_policy_loads_neither_lookups_nor_a_storage_sdk() -> None:
    code = (
        "import sys\n"
        "from allocation.webhook import handle\n"
        "from fuzz.bodies import encode, request\n"
        "assert handle(encode(request('dev-1'))).status == 200\n"
        "print(sorted(m for m in sys.modules if m.startswith(('azure.core', 'azure.data',"
        " 'azure.storage', 'azure.identity', 'allocation.lookups', 'allocation.inventory',"
        " 'allocation.storage.tables'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_weighted_key_and_a_payload_read_from_a_lookup() -> None:
    # Each customer's devices on one hub, and told their customer.
    rows = {
        ("fleet", f"dev-{n}"): {
            "PartitionKey": "fleet",
            "RowKey": f"dev-{n}",
            "customer": f"c{n % 5}",
        }
        for n in range(60)
    }
    policy = parse_policy(
        json.dumps(
            {
                "lookups": {"inventory": {"table": "devices"}},
                "default": {
                    "strategy": "weighted",
                    "key": "{lookup.inventory.customer}",
                    "payload": {"customer": "{lookup.inventory.customer}"},
                },
            }
        )
    ).with_lookup_stores({"inventory": InventoryRows(rows)})
    linked = [A, B, C, "hub-d.azure-devices.net"]

    hubs: dict[str, set[str]] = {}
    for n in range(60):
        answer = ask(policy, f"dev-{n}", linked_hubs=linked)
        assert answer.body["payload"] == {"customer": f"c{n % 5}"}
        hubs.setdefault(f"c{n % 5}", set()).add(answer.body["iotHubHostName"])

    assert all(len(placed) == 1 for placed in hubs.values())
    assert len(set().union(*hubs.values())) > 1


def test_a_long_indexed_rules_list_runs_no_lookup_a_linear_scan_would_not() -> None:
    rules = [
        {
            "name": "gateways",
            "when": {"registrationId": {"startsWith": "gw-"}},
            "then": {"strategy": "static", "hub": A},
        }
    ]
    rules += [{"name": f"customer-{n}", "when": {"lookup.inventory.customer": {"equals": f"c{n}"}},
               "then": {"strategy": "static", "hub": B}} for n in range(20)]  # fmt: skip
    calls: list[tuple[str, str]] = []

    class Inventory(InventoryRows):
        def get(self, table: str, pk: str, rk: str, timeout: float) -> Any:
            calls.append((pk, rk))
            return super().get(table, pk, rk, timeout)

    rows = {("fleet", "dev-1"): {"PartitionKey": "fleet", "RowKey": "dev-1", "customer": "c7"}}
    policy = parse_policy(
        json.dumps(
            {
                "lookups": {"inventory": {"table": "devices"}},
                "default": {"strategy": "rules", "rules": rules, "otherwise": "deny"},
            }
        )
    ).with_lookup_stores({"inventory": Inventory(rows)})

    assert ask(policy, "gw-1").body["iotHubHostName"] == A
    assert calls == []
    assert ask(policy, "dev-1").body["iotHubHostName"] == B
    assert calls == [("fleet", "dev-1")]
