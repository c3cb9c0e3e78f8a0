from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from device_doubles import HUB_EU, REGISTRATION_ID

from device.cache import AssignmentCache, CachedAssignment
from device.transport import Assignment

ASSIGNMENT = Assignment(HUB_EU, REGISTRATION_ID, {"hubs": [HUB_EU], "site": {"id": 7}})


def test_a_saved_assignment_loads_back(cache: AssignmentCache) -> None:
    cache.save(ASSIGNMENT)
    assert cache.load() == CachedAssignment(ASSIGNMENT, hub_failed=False)


def test_the_file_is_plain_json_a_person_can_read(cache: AssignmentCache) -> None:
    cache.save(ASSIGNMENT)
    assert json.loads(cache.path.read_text(encoding="utf-8")) == {
        "version": 1,
        "registrationId": REGISTRATION_ID,
        "assignedHub": HUB_EU,
        "deviceId": REGISTRATION_ID,
        "payload": {"hubs": [HUB_EU], "site": {"id": 7}},
        "hubFailed": False,
    }


def test_a_missing_cache_means_provision(cache: AssignmentCache) -> None:
    assert cache.load() is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"version": 1, "registrationId": "breakroom499-contoso-tstrsd-007", "assignedHub": "hub',
        b"\xff\xfe not utf-8",
        b"[]",
        b"null",
        b'{"version": 2, "registrationId": "breakroom499-contoso-tstrsd-007"}',
        b'{"version": 1, "registrationId": "breakroom499-contoso-tstrsd-007"}',
        b'{"version": 1, "registrationId": "breakroom499-contoso-tstrsd-007", "assignedHub": "",'
        b' "deviceId": "d", "payload": {}}',
        b'{"version": 1, "registrationId": "breakroom499-contoso-tstrsd-007", "assignedHub": "h",'
        b' "deviceId": "d", "payload": "not an object"}',
        b'{"version": 1, "registrationId": "breakroom499-contoso-tstrsd-007", "assignedHub": "h",'
        b' "deviceId": 7, "payload": {}}',
        b'{"version": 1, "registrationId": "breakroom499-contoso-tstrsd-007", "assignedHub": "h",'
        b' "deviceId": "d", "payload": {}, "hubFailed": "yes"}',
    ],
    ids=[
        "empty",
        "truncated",
        "not-utf8",
        "array",
        "null",
        "future-version",
        "fields-missing",
        "empty-hub",
        "payload-not-object",
        "device-id-not-string",
        "flag-not-boolean",
    ],
)
def test_a_corrupt_cache_means_provision(cache: AssignmentCache, content: bytes) -> None:
    cache.path.write_bytes(content)
    assert cache.load() is None


def test_a_cache_written_for_another_registration_id_is_ignored(tmp_path: Path) -> None:
    AssignmentCache(tmp_path / "a.json", "old-identity").save(ASSIGNMENT)
    assert AssignmentCache(tmp_path / "a.json", REGISTRATION_ID).load() is None


def test_an_unreadable_cache_means_provision(cache: AssignmentCache) -> None:
    cache.path.mkdir()  # reading a directory fails with an OSError
    assert cache.load() is None


def test_saving_replaces_the_file_and_leaves_no_temporary_behind(cache: AssignmentCache) -> None:
    cache.save(ASSIGNMENT)
    cache.save(Assignment("hub-us.azure-devices.net", REGISTRATION_ID, {}))
    assert [p.name for p in cache.path.parent.iterdir()] == [cache.path.name]
    loaded = cache.load()
    assert loaded is not None
    assert loaded.assignment.hub == "hub-us.azure-devices.net"


def test_a_write_interrupted_before_the_rename_keeps_the_old_assignment(
    cache: AssignmentCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.save(ASSIGNMENT)

    def power_cut(source: str, destination: str) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError, match="power cut"):
        cache.save(Assignment("hub-us.azure-devices.net", REGISTRATION_ID, {}))
    assert cache.load() == CachedAssignment(ASSIGNMENT)
    assert [p.name for p in cache.path.parent.iterdir()] == [cache.path.name]


def test_saving_creates_the_directory(tmp_path: Path) -> None:
    cache = AssignmentCache(tmp_path / "state" / "dps" / "assignment.json", REGISTRATION_ID)
    cache.save(ASSIGNMENT)
    assert cache.load() == CachedAssignment(ASSIGNMENT)


def test_marking_the_hub_failed_keeps_the_assignment_and_its_payload(
    cache: AssignmentCache,
) -> None:
    cache.save(ASSIGNMENT)
    cache.mark_hub_failed()
    assert cache.load() == CachedAssignment(ASSIGNMENT, hub_failed=True)


def test_marking_without_a_cache_does_nothing(cache: AssignmentCache) -> None:
    cache.mark_hub_failed()
    assert cache.load() is None


def test_clear_forgets_the_assignment(cache: AssignmentCache) -> None:
    cache.save(ASSIGNMENT)
    cache.clear()
    cache.clear()
    assert cache.load() is None
