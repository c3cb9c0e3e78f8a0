"""Which source the policy comes from, in order, and how often it is checked for changes.

1. ``ALLOCATION_POLICY``: the policy as JSON text in an app setting;
2. ``ALLOCATION_POLICY_BLOB``: ``<container>/<path>`` of a blob, read through the
   ``ALLOCATION_STORAGE`` connection;
3. ``ALLOCATION_POLICY_FILE``: a path; relative paths start at the function app root;
4. the built-in default.

The blob comes before the file: the file ships inside the deployed package, and naming a blob
says the policy is to change without a deployment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from allocation.errors import PolicyUnavailable
from allocation.sources.base import (
    APP_ROOT,
    CHECK_SETTING,
    POLICY_BLOB_SETTING,
    POLICY_FILE_SETTING,
    POLICY_SETTING,
    LoadedPolicy,
    Source,
)
from allocation.sources.blob import BlobSource, split_blob_name
from allocation.sources.default import DefaultSource
from allocation.sources.file import FileSource
from allocation.sources.setting import SettingSource
from allocation.storage.connection import StorageClients, connection_from_settings


def select_source(environ: Mapping[str, str] | None = None) -> Source:
    """The source the settings name; PolicyUnavailable if a setting is malformed."""
    env = os.environ if environ is None else environ
    text = env.get(POLICY_SETTING, "").strip()
    if text:
        return SettingSource(text)
    blob_name = env.get(POLICY_BLOB_SETTING, "").strip()
    if blob_name:
        try:
            container, path = split_blob_name(blob_name)
        except ValueError as error:
            raise PolicyUnavailable(str(error), "storage_not_configured") from None
        return BlobSource(container, path, StorageClients(connection_from_settings(env)))
    file_name = env.get(POLICY_FILE_SETTING, "").strip()
    if file_name:
        file = Path(file_name)
        return FileSource(file if file.is_absolute() else APP_ROOT / file)
    return DefaultSource()


def load_policy(environ: Mapping[str, str] | None = None) -> LoadedPolicy:
    """Read the policy the settings name; raises PolicyUnavailable saying why it can't."""
    return select_source(environ).load()


def check_seconds(source: Source, environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between checks of ``source``: ALLOCATION_POLICY_CHECK_SECONDS if it is set to a
    number of seconds under an hour, else the source's own default; None if it cannot change."""
    if source.check_seconds is None:
        return None
    env = os.environ if environ is None else environ
    try:
        seconds = float(env.get(CHECK_SETTING, "").strip() or source.check_seconds)
    except ValueError:
        return source.check_seconds
    return seconds if 0 < seconds < 3600 else source.check_seconds
