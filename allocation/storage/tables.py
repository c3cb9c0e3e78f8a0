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
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from allocation.storage.connection import StorageClients

if TYPE_CHECKING:
    from azure.data.tables import TableClient


class InventoryRowLike(Protocol):
    """A row to upload (allocation.inventory.InventoryRow): where it came from, and what."""

    @property
    def line(self) -> int: ...

    @property
    def partition_key(self) -> str: ...

    def entity(self) -> dict[str, Any]: ...


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


# A Table transaction holds at most 100 entities, all of one partition (learn.microsoft.com,
# "Performing entity group transactions").
MAX_BATCH: Final = 100


class UploadFailed(Exception):
    """The store refused a batch; the message names the first line of the batch's rows."""


def upsert_rows(
    table: str,
    rows: Iterable[InventoryRowLike],
    clients: StorageClients | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Upsert every row into ``table`` (created if missing) in transactions of up to 100 rows
    of one partition; ``on_batch`` hears how many rows each transaction wrote. Returns the
    count of rows written."""
    from azure.core.exceptions import AzureError  # noqa: PLC0415 - storage only
    from azure.data.tables import UpdateMode  # noqa: PLC0415 - storage only

    client = (clients or StorageClients()).table().create_table_if_not_exists(table)
    pending: dict[str, list[InventoryRowLike]] = {}
    written = 0

    def flush(batch: list[InventoryRowLike]) -> None:
        nonlocal written
        operations: list[Any] = [
            ("upsert", row.entity(), {"mode": UpdateMode.REPLACE}) for row in batch
        ]
        try:
            client.submit_transaction(operations)
        except AzureError as error:
            lines = (
                f"lines {batch[0].line}-{batch[-1].line}"
                if len(batch) > 1
                else f"line {batch[0].line}"
            )
            raise UploadFailed(
                f"the store refused the rows of {lines} (partition {batch[0].partition_key!r}): "
                f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
            ) from None
        written += len(batch)
        if on_batch is not None:
            on_batch(len(batch))

    for row in rows:
        batch = pending.setdefault(row.partition_key, [])
        batch.append(row)
        if len(batch) == MAX_BATCH:
            flush(pending.pop(row.partition_key))
    for batch in pending.values():
        flush(batch)
    return written
