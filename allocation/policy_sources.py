"""The former home of the policy sources, kept so that existing imports keep working: the
sources and the cache now live in :mod:`allocation.sources`."""

from allocation.sources import (
    APP_ROOT,
    CHECK_SETTING,
    POLICY_BLOB_SETTING,
    POLICY_FILE_SETTING,
    POLICY_SETTING,
    LoadedPolicy,
    PolicyCache,
    SourceKind,
    file_signature,
    load_policy,
    policy_cache,
)

__all__ = [
    "APP_ROOT",
    "CHECK_SETTING",
    "POLICY_BLOB_SETTING",
    "POLICY_FILE_SETTING",
    "POLICY_SETTING",
    "LoadedPolicy",
    "PolicyCache",
    "SourceKind",
    "file_signature",
    "load_policy",
    "policy_cache",
]
