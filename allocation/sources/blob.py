"""The policy in Azure Blob Storage, ``ALLOCATION_POLICY_BLOB=<container>/<path>``.

Read through the ``ALLOCATION_STORAGE`` connection (allocation.storage.connection). A check is
a conditional download (If-None-Match on the ETag last seen, good or bad), which the service
answers 304 with no body while the blob is unchanged. The Azure SDK is imported on first use
only: a process without this setting never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from allocation.errors import PolicyUnavailable, SourceUnreachable
from allocation.sources.base import POLICY_BLOB_SETTING, LoadedPolicy, parse
from allocation.storage.connection import StorageClients, StorageNotConfigured

BLOB_CHECK_SECONDS: Final = 30.0

# Each look at the store is one attempt with short timeouts: the next check is the retry. The
# SDK's own retries back off for 15 s and more, and the first load is the one wait a request
# ever makes.
REQUEST_OPTIONS: Final[dict[str, Any]] = {
    "retry_total": 0,
    "connection_timeout": 3,
    "read_timeout": 10,
}


def split_blob_name(value: str) -> tuple[str, str]:
    """``container/path`` as (container, path); ValueError saying what is wrong."""
    container, _, path = value.strip().strip("/").partition("/")
    if not container or not path:
        raise ValueError(
            f"{POLICY_BLOB_SETTING} must be <container>/<path>, e.g. policies/policy.json"
        )
    return container, path


@dataclass
class BlobSource:
    container: str
    path: str
    clients: StorageClients = field(default_factory=StorageClients)
    kind: Literal["blob"] = "blob"
    check_seconds: float | None = BLOB_CHECK_SECONDS
    # The ETag of the last version looked at, good or bad, or "deleted": an unchanged blob is
    # not downloaded (nor refused, nor logged) again.
    _seen: str | None = field(default=None, repr=False)

    @property
    def location(self) -> str:
        return f"{self.container}/{self.path}"

    def load(self) -> LoadedPolicy:
        loaded = self._download(None)
        # An unconditional download never answers "not modified".
        assert loaded is not None
        return loaded

    def check(self, live: LoadedPolicy) -> LoadedPolicy | None:
        return self._download(self._seen)

    def _download(self, seen: str | None) -> LoadedPolicy | None:
        from azure.core import MatchConditions  # noqa: PLC0415 - only this setting loads the SDK
        from azure.core.exceptions import (  # noqa: PLC0415
            AzureError,
            HttpResponseError,
            ResourceNotFoundError,
        )

        try:
            blob = self.clients.blob().get_blob_client(self.container, self.path)
            conditions: dict[str, Any] = {}
            if seen is not None and seen != "deleted":
                conditions = {"etag": seen, "match_condition": MatchConditions.IfModified}
            downloader = blob.download_blob(**conditions, **REQUEST_OPTIONS)
            data = downloader.readall()
            etag: str = downloader.properties.etag
        except ResourceNotFoundError:
            if seen == "deleted":
                return None
            self._seen = "deleted"
            raise PolicyUnavailable(
                f"the policy blob {self.location} ({POLICY_BLOB_SETTING}) does not exist",
                "policy_blob_not_found",
                "deleted",
            ) from None
        except StorageNotConfigured as error:
            raise PolicyUnavailable(str(error), "storage_not_configured") from None
        except (AzureError, OSError, ValueError) as error:
            # The download raises a plain HttpResponseError for 304, not the SDK's
            # ResourceNotModifiedError.
            if isinstance(error, HttpResponseError) and error.status_code == 304:
                return None
            raise SourceUnreachable(
                f"cannot read the policy blob {self.location}: {_describe(error)}"
            ) from None
        self._seen = etag
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PolicyUnavailable(
                f"the policy blob {self.location} is not UTF-8 text", "policy_invalid", etag
            ) from None
        policy = parse(text, f"policy blob {self.location} (ETag {etag})", etag)
        return LoadedPolicy(policy, "blob", self.location, etag=etag)


def _describe(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    # The SDK's messages run over several lines (request ids, XML): the first says what happened.
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    return f"HTTP {status}: {first}" if status else f"{type(error).__name__}: {first}"
