"""The sample settings a developer copies to local.settings.json: they must work as they are."""

from __future__ import annotations

import json

from allocation.cli.serve import KEYS_SETTING
from allocation.cli.settings import apply_local_settings
from allocation.sources import (
    CHECK_SETTING,
    POLICY_BLOB_SETTING,
    POLICY_FILE_SETTING,
    POLICY_SETTING,
    load_policy,
)
from allocation.storage.connection import BLOB_URI_SETTING, CLIENT_ID_SETTING, STORAGE_SETTING
from tests.conftest import ROOT

SAMPLE = ROOT / "local.settings.sample.json"


def test_the_sample_documents_every_allocation_setting() -> None:
    values = json.loads(SAMPLE.read_text())["Values"]
    for setting in (
        POLICY_SETTING,
        POLICY_BLOB_SETTING,
        POLICY_FILE_SETTING,
        CHECK_SETTING,
        STORAGE_SETTING,
        BLOB_URI_SETTING,
        CLIENT_ID_SETTING,
        KEYS_SETTING,
    ):
        assert setting in values
        assert f"_comment_{setting}" in values
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"


def test_the_sample_as_is_serves_the_built_in_policy() -> None:
    environ: dict[str, str] = {}
    applied = apply_local_settings(SAMPLE, environ)
    assert POLICY_SETTING in applied
    assert not any(name.startswith("_comment") for name in environ)
    assert load_policy(environ).source == "default"


def test_a_variable_already_set_wins_over_the_file() -> None:
    environ = {POLICY_SETTING: '{"default": {"strategy": "static", "hub": "a.b"}}'}
    apply_local_settings(SAMPLE, environ)
    assert load_policy(environ).source == "setting"
