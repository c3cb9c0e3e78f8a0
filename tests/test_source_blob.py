"""The policy in Blob Storage (ALLOCATION_POLICY_BLOB), against a real storage server (Azurite):
first load, changes picked up in the background, last-known-good when the blob is deleted or
broken, and a store that goes away and comes back under a running webhook."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from allocation import webhook
from allocation.sources import CHECK_SETTING, POLICY_BLOB_SETTING, policy_cache
from tests.azurite import AzuriteServer
from tests.conftest import encode, make_request

A, B = "hub-a.azure-devices.net", "hub-b.azure-devices.net"
ON_A = {"default": {"strategy": "static", "hub": A}}
ON_B = {"default": {"strategy": "static", "hub": B}}
CHECK = 0.1  # seconds between checks in these tests


def container_for(connection_string: str) -> ContainerClient:
    name = f"policies-{uuid.uuid4().hex[:12]}"
    service = BlobServiceClient.from_connection_string(connection_string)
    return service.create_container(name)


def put(container: ContainerClient, content: Any, name: str = "policy.json") -> str:
    text = content if isinstance(content, str) else json.dumps(content)
    result = container.get_blob_client(name).upload_blob(text, overwrite=True)
    etag: str = result["etag"]
    return etag


def hub() -> Any:
    response = webhook.handle(encode(make_request(linked_hubs=[A, B])))
    return response.body.get("iotHubHostName", (response.status, response.body))


def eventually(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)


@pytest.fixture
def policy_blob(monkeypatch: pytest.MonkeyPatch, storage_setting: str) -> ContainerClient:
    """An empty container; the webhook's policy is its blob policy.json, checked every 0.1 s."""
    container = container_for(storage_setting)
    monkeypatch.setenv(POLICY_BLOB_SETTING, f"{container.container_name}/policy.json")
    monkeypatch.setenv(CHECK_SETTING, str(CHECK))
    return container


def test_the_policy_is_loaded_from_the_blob_on_first_use(
    policy_blob: ContainerClient, caplog: pytest.LogCaptureFixture
) -> None:
    etag = put(policy_blob, ON_A)
    assert not policy_cache.attempted
    caplog.set_level("WARNING", logger="allocation")
    assert hub() == A
    time.sleep(5 * CHECK)  # checks of an unchanged blob: answered 304, nothing to report
    body = webhook.health().body
    assert body["status"] == "ok"
    assert body["policy"]["source"] == "blob"
    assert body["policy"]["etag"] == etag
    assert body["lastGoodCheckSecondsAgo"] < 5 * CHECK
    assert caplog.records == []


def test_a_missing_blob_before_the_first_load_answers_503_with_a_reason_code(
    policy_blob: ContainerClient,
) -> None:
    status, body = hub()
    assert status == 503
    assert body["reason"] == "policy_blob_not_found"
    assert policy_blob.container_name not in json.dumps(body)
    assert webhook.health().status == 503


def test_a_new_version_is_picked_up_in_the_background(policy_blob: ContainerClient) -> None:
    put(policy_blob, ON_A)
    assert hub() == A
    etag = put(policy_blob, ON_B)
    eventually(lambda: hub() == B)
    assert webhook.health().body["policy"]["etag"] == etag


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        (lambda container: container.delete_blob("policy.json"), "policy_blob_not_found"),
        (lambda container: put(container, '{"default": {"strat'), "policy_invalid"),
        (lambda container: put(container, {"default": {"strategy": "static"}}), "policy_invalid"),
    ],
    ids=["deleted", "invalid JSON", "invalid policy"],
)
def test_a_deleted_or_broken_blob_keeps_the_last_good_version(
    policy_blob: ContainerClient,
    break_it: Callable[[ContainerClient], Any],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    put(policy_blob, ON_A)
    assert hub() == A
    live = webhook.health().body["policy"]["fingerprint"]
    caplog.set_level("WARNING", logger="allocation")
    version = break_it(policy_blob) or "deleted"

    eventually(lambda: webhook.health().body["status"] == "degraded")
    time.sleep(3 * CHECK)  # more checks: still refused, and logged only once
    assert hub() == A
    body = webhook.health().body
    assert body["policy"]["fingerprint"] == live
    assert body["rejected"]["reason"] == reason
    assert body["rejected"]["version"] == version
    assert body["lastGoodCheckSecondsAgo"] >= 3 * CHECK
    lines = [json.loads(record.getMessage()) for record in caplog.records]
    [line] = [line for line in lines if line["event"] == "policy_rejected"]
    assert (line["source"], line["rejected"], line["live"]) == ("blob", version, live)
    assert line["correlationId"] == body["rejected"]["correlationId"]
    assert "policy.json" in line["reason"]

    put(policy_blob, ON_B)
    eventually(lambda: hub() == B)
    assert webhook.health().body["status"] == "ok"


def test_a_good_version_going_live_is_logged_with_the_previous_one(
    policy_blob: ContainerClient, caplog: pytest.LogCaptureFixture
) -> None:
    put(policy_blob, ON_A)
    caplog.set_level("INFO", logger="allocation")
    assert hub() == A
    first = webhook.health().body["policy"]["fingerprint"]
    put(policy_blob, ON_B)
    eventually(lambda: hub() == B)
    loaded = [
        line
        for line in (json.loads(record.getMessage()) for record in caplog.records)
        if line["event"] == "policy_loaded"
    ]
    second = webhook.health().body["policy"]["fingerprint"]
    assert loaded == [
        {"event": "policy_loaded", "source": "blob", "fingerprint": first, "previous": None},
        {"event": "policy_loaded", "source": "blob", "fingerprint": second, "previous": first},
    ]


def test_the_decision_line_names_the_live_policy(
    policy_blob: ContainerClient, caplog: pytest.LogCaptureFixture
) -> None:
    put(policy_blob, ON_A)
    hub()
    caplog.set_level("INFO", logger="allocation")
    hub()
    [line] = [json.loads(record.getMessage()) for record in caplog.records]
    assert line["policy"] == webhook.health().body["policy"]["fingerprint"]


# -- the store goes away under a running webhook ----------------------------------------------


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[AzuriteServer]:
    """An Azurite of this test's own, on disk so that its blobs survive a restart."""
    server = AzuriteServer(location=tmp_path / "azurite")
    server.start()
    yield server
    server.stop()


class Load:
    """Requests sent without pause from a thread, their answers counted."""

    def __init__(self) -> None:
        self.answers: Counter[Any] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            response = webhook.handle(encode(make_request(linked_hubs=[A, B])))
            self.answers[(response.status, response.body.get("iotHubHostName"))] += 1
            time.sleep(0.002)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_a_store_that_goes_away_is_stale_not_down_and_recovers_without_a_restart(
    own_azurite: AzuriteServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ALLOCATION_STORAGE", own_azurite.connection_string)
    container = container_for(own_azurite.connection_string)
    monkeypatch.setenv(POLICY_BLOB_SETTING, f"{container.container_name}/policy.json")
    monkeypatch.setenv(CHECK_SETTING, str(CHECK))
    put(container, ON_A)
    assert hub() == A
    live = webhook.health().body["policy"]["fingerprint"]
    caplog.set_level("WARNING", logger="allocation")

    with Load() as load:
        own_azurite.stop()
        eventually(lambda: "unreachable" in webhook.health().body)
        body = webhook.health().body
        assert (body["status"], body["unreachable"]["reason"]) == (
            "degraded",
            "policy_source_unreachable",
        )
        [line] = [json.loads(record.getMessage()) for record in caplog.records]
        assert line["event"] == "policy_source_unreachable"
        assert (line["source"], line["live"]) == ("blob", live)
        assert line["correlationId"] == body["unreachable"]["correlationId"]
        time.sleep(0.5)
        own_azurite.start()
        eventually(lambda: webhook.health().body["status"] == "ok")
        put(container, ON_B)  # a change made while the host kept running
        eventually(lambda: hub() == B)

    assert set(load.answers) <= {(200, A), (200, B)}, load.answers
    assert load.answers[(200, A)] > 0


# -- throttling: the one case a stub stands in for the store -----------------------------------


class ThrottlingProxy(http.server.ThreadingHTTPServer):
    """Forwards to a storage server on loopback, or answers every request 503 ServerBusy (as
    Azure Storage throttles) while ``throttling`` is set. Azurite itself never throttles."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.throttling = threading.Event()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: ThrottlingProxy

    def do_GET(self) -> None:
        self._forward()

    def do_PUT(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def _forward(self) -> None:
        if self.server.throttling.is_set():
            body = b"<Error><Code>ServerBusy</Code></Error>"
            self.send_response(503)
            self.send_header("x-ms-error-code", "ServerBusy")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.target_port, timeout=10)
        upstream.request(self.command, self.path, data, dict(self.headers))
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in {"transfer-encoding", "connection", "content-length"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def throttling_proxy(azurite: AzuriteServer) -> Iterator[ThrottlingProxy]:
    proxy = ThrottlingProxy(azurite.blob_port)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def test_a_throttling_store_is_stale_not_down(
    azurite: AzuriteServer, throttling_proxy: ThrottlingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = container_for(azurite.connection_string)
    put(container, ON_A)
    through_proxy = azurite.connection_string.replace(
        f":{azurite.blob_port}/", f":{throttling_proxy.port}/"
    )
    monkeypatch.setenv("ALLOCATION_STORAGE", through_proxy)
    monkeypatch.setenv(POLICY_BLOB_SETTING, f"{container.container_name}/policy.json")
    monkeypatch.setenv(CHECK_SETTING, str(CHECK))
    assert hub() == A

    throttling_proxy.throttling.set()
    eventually(lambda: "unreachable" in webhook.health().body)
    assert hub() == A
    throttling_proxy.throttling.clear()
    eventually(lambda: webhook.health().body["status"] == "ok")


def test_a_throttling_store_at_the_first_load_answers_503_at_once(
    azurite: AzuriteServer, throttling_proxy: ThrottlingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    through_proxy = azurite.connection_string.replace(
        f":{azurite.blob_port}/", f":{throttling_proxy.port}/"
    )
    monkeypatch.setenv("ALLOCATION_STORAGE", through_proxy)
    monkeypatch.setenv(POLICY_BLOB_SETTING, "policies/policy.json")
    throttling_proxy.throttling.set()
    started = time.perf_counter()
    status, body = hub()
    assert time.perf_counter() - started < 2  # no SDK back-off on the request path
    assert (status, body["reason"]) == (503, "policy_source_unreachable")


def test_the_local_host_serves_the_blob_policy_and_takes_a_new_version_without_a_restart(
    azurite: AzuriteServer,
) -> None:
    from tests.test_local_host import start_host

    container = container_for(azurite.connection_string)
    put(container, ON_A)
    host = start_host(
        env={
            "ALLOCATION_STORAGE": azurite.connection_string,
            POLICY_BLOB_SETTING: f"{container.container_name}/policy.json",
            CHECK_SETTING: str(CHECK),
        }
    )
    try:
        status, _, body = host.request("GET", "/api/health")
        assert (status, body["policy"]["source"]) == (200, "blob")
        put(container, ON_B)

        def answers_b() -> bool:
            _, _, body = host.request(
                "POST", "/api/allocate", encode(make_request(linked_hubs=[A, B]))
            )
            return bool(body.get("iotHubHostName") == B)

        eventually(answers_b)
    finally:
        host.stop()
