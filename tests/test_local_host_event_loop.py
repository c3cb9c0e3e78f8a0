"""Policy code never blocks the local host's event loop: a hanging plug-in costs only its own
requests their time, never health's or other enrollments'."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
from pathlib import Path

from tests.conftest import encode, make_request
from tests.test_local_host import Host, start_host

HANGING = "hangs"


def hanging_plugin_policy(directory: Path) -> Path:
    policy = directory / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "default": {"strategy": "weighted"},
                "enrollments": {HANGING: {"strategy": "tests.plugin_strategies:Hangs"}},
            }
        )
    )
    return policy


def timed(host: Host, method: str, path: str, body: bytes | None = None) -> tuple[int, float]:
    started = time.perf_counter()
    status = host.request(method, path, body)[0]
    return status, time.perf_counter() - started


def test_a_hanging_plugin_leaves_health_and_other_enrollments_their_latency(
    tmp_path: Path,
) -> None:
    host = start_host("--policy", str(hanging_plugin_policy(tmp_path)))
    hung = encode(make_request("device-hung", enrollment_group=HANGING))
    other = encode(make_request("device-other", enrollment_group="fleet"))
    try:
        with concurrent.futures.ThreadPoolExecutor(12) as clients:
            waiting = [
                clients.submit(timed, host, "POST", "/api/allocate", hung) for _ in range(12)
            ]
            time.sleep(0.3)  # the twelve are in the plug-in now

            health = timed(host, "GET", "/api/health")
            allocated = timed(host, "POST", "/api/allocate", other)

            assert health[0] == 200 and health[1] < 0.5, health
            assert allocated[0] == 200 and allocated[1] < 0.5, allocated
            # The hanging requests themselves end at the plug-in timeout, together.
            answers = [call.result(timeout=30) for call in waiting]
        assert {status for status, _ in answers} == {503}
        assert max(seconds for _, seconds in answers) < 6
    finally:
        host.process.kill()
        host.process.communicate()


def test_a_table_store_that_never_answers_leaves_health_and_other_devices_their_latency(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "lookups": {
                    "inventory": {
                        "table": "devices",
                        "partitionKey": "{enrollmentId}",
                        "rowKey": "{registrationId}",
                        "timeoutMs": 2000,
                    }
                },
                "default": {
                    "strategy": "rules",
                    "rules": [
                        {
                            "name": "gateways",
                            "when": {"registrationId": {"startsWith": "gw-"}},
                            "then": {"strategy": "static", "hub": "hub-a.azure-devices.net"},
                        },
                        {
                            "name": "listed",
                            "when": {"lookup.inventory": {"exists": True}},
                            "then": {"strategy": "weighted"},
                        },
                    ],
                },
            }
        )
    )
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # the kernel accepts connections; nothing ever reads or answers
        store = (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
            + "a" * 88
            + f";TableEndpoint=http://127.0.0.1:{silent.getsockname()[1]}/devstoreaccount1;"
        )
        host = start_host("--policy", str(policy), env={"ALLOCATION_STORAGE": store})
        try:
            # The first lookup loads the storage SDK: that is not what is measured.
            warm = encode(make_request("device-0"))
            assert timed(host, "POST", "/api/allocate", warm)[0] == 503
            with concurrent.futures.ThreadPoolExecutor(12) as clients:
                waiting = [
                    clients.submit(
                        timed, host, "POST", "/api/allocate", encode(make_request(f"device-{n}"))
                    )
                    for n in range(1, 13)
                ]
                time.sleep(0.3)  # the twelve wait on the store now

                health = timed(host, "GET", "/api/health")
                gateway = timed(host, "POST", "/api/allocate", encode(make_request("gw-1")))

                assert health[0] == 200 and health[1] < 0.5, health
                assert gateway[0] == 200 and gateway[1] < 0.5, gateway
                answers = [call.result(timeout=30) for call in waiting]
            assert {status for status, _ in answers} == {503}
        finally:
            host.process.kill()
            host.process.communicate()
