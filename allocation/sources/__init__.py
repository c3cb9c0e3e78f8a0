"""Where the policy comes from, and the process's cache of it (see order.py and cache.py)."""

from __future__ import annotations

from typing import Final

from allocation.sources.base import (
    APP_ROOT,
    CHECK_SETTING,
    POLICY_BLOB_SETTING,
    POLICY_FILE_SETTING,
    POLICY_SETTING,
    LoadedPolicy,
    Source,
    SourceKind,
)
from allocation.sources.cache import PolicyCache, PolicyStatus, Refusal
from allocation.sources.file import file_signature
from allocation.sources.order import check_seconds, load_policy, select_source

__all__ = [
    "APP_ROOT",
    "CHECK_SETTING",
    "POLICY_BLOB_SETTING",
    "POLICY_FILE_SETTING",
    "POLICY_SETTING",
    "LoadedPolicy",
    "PolicyCache",
    "PolicyStatus",
    "Refusal",
    "Source",
    "SourceKind",
    "check_seconds",
    "file_signature",
    "load_policy",
    "policy_cache",
    "select_source",
]

policy_cache: Final = PolicyCache()
