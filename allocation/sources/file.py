"""The policy in a file, ``ALLOCATION_POLICY_FILE``: checked with a stat, read when it changed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from allocation.errors import PolicyUnavailable
from allocation.limits import POLICY_CHECK_SECONDS
from allocation.sources.base import (
    POLICY_FILE_SETTING,
    FileSignature,
    LoadedPolicy,
    content_hash,
    parse,
)

FILE_CHECK_SECONDS: Final = POLICY_CHECK_SECONDS


def file_signature(path: str | Path) -> FileSignature | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size, status.st_ino)


@dataclass
class FileSource:
    path: Path
    kind: Literal["file"] = "file"
    check_seconds: float | None = FILE_CHECK_SECONDS
    # The signature of the last version looked at, good or bad: an unchanged file is not read
    # (nor refused, nor logged) again.
    _seen: FileSignature | None = field(default=None, repr=False)

    def load(self) -> LoadedPolicy:
        signature = file_signature(self.path)
        self._seen = signature
        try:
            data = self.path.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise PolicyUnavailable(
                f"cannot read the policy file {self.path} ({POLICY_FILE_SETTING}): {reason}",
                "policy_file_unreadable",
                "deleted" if signature is None else None,
            ) from None
        version = content_hash(data)
        policy = parse(text, f"policy file {self.path}", version)
        return LoadedPolicy(policy, "file", str(self.path), signature)

    def check(self, live: LoadedPolicy) -> LoadedPolicy | None:
        signature = file_signature(self.path)
        if signature == self._seen:
            return None
        return self.load()
