"""``python -m allocation publish``: validate, compare with the live blob, upload only if the
live blob is still the one read. Against a real storage server (Azurite)."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from allocation.cli import main
from allocation.cli import publish as publish_command
from allocation.policy import parse_policy
from allocation.sources import POLICY_BLOB_SETTING, load_policy
from tests.azurite import AzuriteServer
from tests.conftest import assert_no_traceback, run_cli, write_policy

HUBS = {f"hub-{n}.azure-devices.net": {} for n in range(1, 5)}
THREE = {
    "hubs": {**HUBS, "hub-4.azure-devices.net": {"drain": 100}},
    "default": {"strategy": "weighted"},
}
FOUR = {"hubs": HUBS, "default": {"strategy": "weighted"}}


@pytest.fixture
def container(azurite: AzuriteServer) -> ContainerClient:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return service.create_container(f"policies-{uuid.uuid4().hex[:12]}")


def publish(azurite: AzuriteServer, container: ContainerClient, *args: str) -> tuple[int, str, str]:
    result = run_cli(
        "publish",
        *args,
        "--blob",
        f"{container.container_name}/policy.json",
        env={"ALLOCATION_STORAGE": azurite.connection_string},
    )
    assert_no_traceback(result)
    return result.returncode, result.stdout, result.stderr


def live_text(container: ContainerClient) -> str:
    return container.download_blob("policy.json").readall().decode()


def fingerprint(policy: Any) -> str:
    return parse_policy(json.dumps(policy)).fingerprint


def test_the_first_publish_creates_the_blob_the_webhook_loads(
    azurite: AzuriteServer, container: ContainerClient, tmp_path: Path
) -> None:
    file = write_policy(tmp_path, THREE)
    code, out, _ = publish(azurite, container, str(file))
    assert code == 0
    assert "live: none" in out
    assert f"published: {container.container_name}/policy.json fingerprint " in out
    assert live_text(container) == file.read_text()
    webhook_view = load_policy(
        {
            "ALLOCATION_STORAGE": azurite.connection_string,
            POLICY_BLOB_SETTING: f"{container.container_name}/policy.json",
        }
    )
    assert webhook_view.policy.fingerprint == fingerprint(THREE)


def test_publish_shows_the_live_and_the_new_fingerprints(
    azurite: AzuriteServer, container: ContainerClient, tmp_path: Path
) -> None:
    publish(azurite, container, str(write_policy(tmp_path, THREE, "three.json")))
    etag = container.get_blob_client("policy.json").get_blob_properties().etag
    code, out, _ = publish(azurite, container, str(write_policy(tmp_path, FOUR, "four.json")))
    assert code == 0
    assert f"live: {container.container_name}/policy.json fingerprint {fingerprint(THREE)}" in out
    assert f"(ETag {etag})" in out
    assert f"fingerprint {fingerprint(FOUR)}" in out
    assert json.loads(live_text(container)) == FOUR


def test_a_dry_run_uploads_nothing(
    azurite: AzuriteServer, container: ContainerClient, tmp_path: Path
) -> None:
    publish(azurite, container, str(write_policy(tmp_path, THREE, "three.json")))
    code, out, _ = publish(
        azurite, container, str(write_policy(tmp_path, FOUR, "four.json")), "--dry-run"
    )
    assert code == 0
    assert "dry run: nothing uploaded" in out
    assert json.loads(live_text(container)) == THREE


def test_an_invalid_policy_is_refused_with_its_json_path_and_nothing_uploaded(
    azurite: AzuriteServer, container: ContainerClient, tmp_path: Path
) -> None:
    publish(azurite, container, str(write_policy(tmp_path, THREE, "three.json")))
    bad = write_policy(tmp_path, {"default": {"strategy": "static"}}, "bad.json")
    code, _, err = publish(azurite, container, str(bad))
    assert code == 1
    assert "default.hub" in err
    assert json.loads(live_text(container)) == THREE


def test_the_same_policy_again_is_left_as_it_is(
    azurite: AzuriteServer, container: ContainerClient, tmp_path: Path
) -> None:
    file = write_policy(tmp_path, THREE)
    publish(azurite, container, str(file))
    etag = container.get_blob_client("policy.json").get_blob_properties().etag
    code, out, _ = publish(azurite, container, str(file))
    assert code == 0
    assert "unchanged" in out
    assert container.get_blob_client("policy.json").get_blob_properties().etag == etag


def test_simulate_counts_the_moves_as_simulate_against_does(
    azurite: AzuriteServer, container: ContainerClient, tmp_path: Path
) -> None:
    three = write_policy(tmp_path, THREE, "three.json")
    four = write_policy(tmp_path, FOUR, "four.json")
    publish(azurite, container, str(three))
    code, out, _ = publish(azurite, container, str(four), "--simulate", "4000", "--dry-run")
    assert code == 0
    simulated = run_cli(
        "simulate", "--policy", str(four), "--against", str(three), "--devices", "4000", "--json"
    )
    document = json.loads(simulated.stdout)
    moved, minimum = document["against"]["moved"], document["against"]["minimumMoves"]
    assert f"simulate: {moved} of 4000 devices would move" in out
    assert f"minimum {minimum})" in out
    # Undraining a fourth hub of four equal ones moves about a quarter, and only those.
    assert 800 < moved == minimum < 1200


def test_without_a_blob_or_a_connection_publish_says_what_is_missing(
    azurite: AzuriteServer, tmp_path: Path
) -> None:
    file = str(write_policy(tmp_path, THREE))
    no_blob = run_cli("publish", file, env={"ALLOCATION_STORAGE": azurite.connection_string})
    assert no_blob.returncode == 2
    assert POLICY_BLOB_SETTING in no_blob.stderr
    no_storage = run_cli("publish", file, "--blob", "policies/policy.json")
    assert no_storage.returncode == 2
    assert "ALLOCATION_STORAGE" in no_storage.stderr
    assert_no_traceback(no_storage)


@pytest.mark.parametrize("existing", [True, False], ids=["over a live blob", "first publish"])
def test_of_two_concurrent_publishes_exactly_one_wins(
    azurite: AzuriteServer,
    container: ContainerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    existing: bool,
) -> None:
    if existing:
        container.upload_blob("policy.json", json.dumps({"default": {"strategy": "weighted"}}))
    monkeypatch.setenv("ALLOCATION_STORAGE", azurite.connection_string)
    files = [write_policy(tmp_path, THREE, "three.json"), write_policy(tmp_path, FOUR, "four.json")]
    # Both operators read the live blob before either uploads: the race the ETag must settle.
    both_read = threading.Barrier(2, timeout=30)
    real_upload = publish_command.upload

    def upload_after_both_read(*args: Any) -> str:
        both_read.wait()
        return real_upload(*args)

    monkeypatch.setattr(publish_command, "upload", upload_after_both_read)
    codes: dict[str, int] = {}

    def operator(file: Path) -> None:
        blob = f"{container.container_name}/policy.json"
        codes[file.name] = main(["publish", str(file), "--blob", blob])

    threads = [threading.Thread(target=operator, args=(file,)) for file in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(codes.values()) == [0, publish_command.EXIT_LOST_RACE]
    [winner] = [name for name, code in codes.items() if code == 0]
    assert live_text(container) == (tmp_path / winner).read_text()


def test_validate_and_explain_read_the_published_blob_as_the_webhook_does(
    azurite: AzuriteServer, container: ContainerClient, tmp_path: Path
) -> None:
    publish(azurite, container, str(write_policy(tmp_path, THREE)))
    env = {
        "ALLOCATION_STORAGE": azurite.connection_string,
        POLICY_BLOB_SETTING: f"{container.container_name}/policy.json",
    }
    result = run_cli("validate", env=env)
    assert result.returncode == 0, result.stderr
    assert f"blob {container.container_name}/policy.json, fingerprint {fingerprint(THREE)}" in (
        result.stdout
    )
