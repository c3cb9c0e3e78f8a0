"""What every policy source shares: the loaded policy, and the protocol a source follows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol

from allocation.errors import PolicyError, PolicyUnavailable
from allocation.policy import Policy, parse_policy

POLICY_SETTING: Final = "ALLOCATION_POLICY"
POLICY_BLOB_SETTING: Final = "ALLOCATION_POLICY_BLOB"
POLICY_FILE_SETTING: Final = "ALLOCATION_POLICY_FILE"
CHECK_SETTING: Final = "ALLOCATION_POLICY_CHECK_SECONDS"

# function_app.py sits beside the allocation package: that directory is the function app root.
APP_ROOT: Final = Path(__file__).resolve().parent.parent.parent

SourceKind = Literal["setting", "blob", "file", "default"]

FileSignature = tuple[int, int, int]


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    source: SourceKind
    # Where it came from, for operators: a file's path, a blob's container/path; never the text.
    location: str | None = None
    # The file as it was just before it was read: a different one means the file changed.
    signature: FileSignature | None = None
    etag: str | None = None  # the blob's ETag when it was read


class Source(Protocol):
    """Where the policy comes from. ``load`` raises PolicyUnavailable saying why it can't."""

    @property
    def kind(self) -> SourceKind: ...

    @property
    def check_seconds(self) -> float | None:
        """Seconds between background checks by default; None for a source that cannot change
        while the process runs (in Azure, changing an app setting restarts the function app)."""
        ...

    def load(self) -> LoadedPolicy: ...

    def check(self, live: LoadedPolicy) -> LoadedPolicy | None:
        """The source's new version, or None if it has not changed since the last look (good
        or bad). Raises PolicyUnavailable for a version that fails (SourceUnreachable when the
        store does not answer)."""
        ...


def content_hash(data: bytes) -> str:
    """Names a version that failed to load, as a fingerprint names one that loaded: a hash of
    the bytes, never the bytes."""
    return hashlib.sha256(data).hexdigest()[:16]


def parse(text: str, origin: str, version: str | None = None) -> Policy:
    try:
        return parse_policy(text)
    except PolicyError as error:
        raise PolicyUnavailable(
            f"invalid policy in {origin}: {error}", "policy_invalid", version
        ) from None
