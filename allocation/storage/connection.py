"""The storage connection, named as Azure Functions names identity-based connections.

One connection name, ``ALLOCATION_STORAGE``, read the way Functions bindings read theirs
(learn.microsoft.com, "Azure Functions developer guide", "Connections"):

- ``ALLOCATION_STORAGE``: a connection string, e.g. ``UseDevelopmentStorage=true`` (Azurite);
- or ``ALLOCATION_STORAGE__blobServiceUri`` and ``ALLOCATION_STORAGE__tableServiceUri``, with
  an optional ``ALLOCATION_STORAGE__clientId`` naming a user-assigned managed identity.

A connection string wins when both are set, as it does for bindings. Clients are built here, once
per process, and the SDKs are imported only when a client is first asked for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient

STORAGE_SETTING: Final = "ALLOCATION_STORAGE"
BLOB_URI_SETTING: Final = f"{STORAGE_SETTING}__blobServiceUri"
TABLE_URI_SETTING: Final = f"{STORAGE_SETTING}__tableServiceUri"
CLIENT_ID_SETTING: Final = f"{STORAGE_SETTING}__clientId"


class StorageNotConfigured(Exception):
    """The policy or a setting needs storage, and no ALLOCATION_STORAGE connection is set."""


@dataclass(frozen=True)
class StorageConnection:
    connection_string: str | None = None
    blob_service_uri: str | None = None
    table_service_uri: str | None = None
    client_id: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.connection_string or self.blob_service_uri or self.table_service_uri)

    def describe(self) -> str:
        """Where the connection points, for operators: never the connection string's keys."""
        if self.connection_string:
            return "connection string"
        return (
            ", ".join(uri for uri in (self.blob_service_uri, self.table_service_uri) if uri)
            or "not configured"
        )


def connection_from_settings(environ: Mapping[str, str] | None = None) -> StorageConnection:
    env = os.environ if environ is None else environ

    def setting(name: str) -> str | None:
        return env.get(name, "").strip() or None

    return StorageConnection(
        connection_string=setting(STORAGE_SETTING),
        blob_service_uri=setting(BLOB_URI_SETTING),
        table_service_uri=setting(TABLE_URI_SETTING),
        client_id=setting(CLIENT_ID_SETTING),
    )


def _credential(connection: StorageConnection) -> Any:
    # Managed identity in Azure, the developer's own sign-in locally: DefaultAzureCredential
    # tries both, and a clientId pins it to the user-assigned identity the template creates.
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only a storage setting loads the SDK

    if connection.client_id:
        return DefaultAzureCredential(managed_identity_client_id=connection.client_id)
    return DefaultAzureCredential()


def blob_service_client(connection: StorageConnection) -> BlobServiceClient:
    from azure.storage.blob import BlobServiceClient  # noqa: PLC0415 - only a storage setting loads the SDK

    if connection.connection_string:
        return BlobServiceClient.from_connection_string(connection.connection_string)
    if connection.blob_service_uri:
        return BlobServiceClient(connection.blob_service_uri, credential=_credential(connection))
    raise StorageNotConfigured(f"no blob storage: set {STORAGE_SETTING} or {BLOB_URI_SETTING}")


def table_service_client(connection: StorageConnection) -> TableServiceClient:
    from azure.data.tables import TableServiceClient  # noqa: PLC0415 - only a storage setting loads the SDK

    if connection.connection_string:
        return TableServiceClient.from_connection_string(connection.connection_string)
    if connection.table_service_uri:
        return TableServiceClient(connection.table_service_uri, credential=_credential(connection))
    raise StorageNotConfigured(f"no table storage: set {STORAGE_SETTING} or {TABLE_URI_SETTING}")


class StorageClients:
    """The process's storage clients, made on first use and reused: the Azure SDK's clients hold
    a connection pool, and one made per request would open a connection per request."""

    def __init__(self, connection: StorageConnection | None = None) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._blob: BlobServiceClient | None = None
        self._table: TableServiceClient | None = None

    @property
    def connection(self) -> StorageConnection:
        return self._connection or connection_from_settings()

    def blob(self) -> BlobServiceClient:
        with self._lock:
            if self._blob is None:
                self._blob = blob_service_client(self.connection)
            return self._blob

    def table(self) -> TableServiceClient:
        with self._lock:
            if self._table is None:
                self._table = table_service_client(self.connection)
            return self._table
