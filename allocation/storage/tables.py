"""Rows of Azure Table Storage (or Azure Cosmos DB for Table) for the policy's lookups.

One point read per lookup (``get_entity``: partition key and row key, the cheapest query the
service has), on the process's table client, with the lookup's timeout on connecting and on
reading, and no retries: a retry would spend the time DPS gives the webhook, and DPS itself
retries a 503.
"""

from __future__ import annotations

import base64
import datetime
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from allocation.storage.connection import StorageClients

if TYPE_CHECKING:
    from azure.data.tables import TableClient


class TableRowStore:
    def __init__(self, clients: StorageClients | None = None) -> None:
        self._clients = clients or StorageClients()
        self._lock = threading.Lock()
        self._tables: dict[str, TableClient] = {}

    def _table(self, name: str) -> TableClient:
        with self._lock:
            client = self._tables.get(name)
            if client is None:
                client = self._tables[name] = self._clients.table().get_table_client(name)
            return client

    def get(
        self, table: str, partition_key: str, row_key: str, timeout: float
    ) -> Mapping[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - storage only

        try:
            entity = self._table(table).get_entity(
                partition_key,
                row_key,
                connection_timeout=timeout,
                read_timeout=timeout,
                # Read by azure-core's RetryPolicy per request.
                retry_total=0,
            )
        except ResourceNotFoundError as error:
            # A missing table is a deployment problem, not a device the inventory lacks.
            code = getattr(error, "error_code", None)
            if getattr(code, "value", code) == "TableNotFound":
                raise
            return None
        return plain_row(entity)


def plain_row(entity: Mapping[str, Any]) -> dict[str, Any]:
    """An entity's properties as JSON values, as conditions and templates read them."""
    return {name: _json_value(value) for name, value in entity.items()}


def _json_value(value: Any) -> Any:
    # EntityProperty (an Int64, or a typed value) is a (value, edm_type) named tuple.
    if isinstance(value, tuple) and hasattr(value, "edm_type"):
        value = value[0]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value
