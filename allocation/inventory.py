"""A device inventory as a CSV file: what ``inventory load`` uploads, and what ``explain`` and
``simulate`` read offline with ``--lookup NAME=FILE``.

The first line names the columns: ``PartitionKey,RowKey`` and then the row's properties, e.g.
``PartitionKey,RowKey,customer,hub``. Every value is a string; an empty cell leaves the property
out of that row. A row that breaks a rule of Azure Table Storage is an error naming its line,
found before anything is uploaded.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from allocation.lookups import valid_key

KEY_COLUMNS: Final = ("PartitionKey", "RowKey")
# Property names (learn.microsoft.com, "Understanding the Table service data model"): C#
# identifiers of at most 255 characters; Timestamp is the service's own.
_PROPERTY_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}\Z")
RESERVED: Final = frozenset({"Timestamp", "ETag", "odata.etag"})


class InventoryError(Exception):
    """A file that cannot be an inventory; the message names the line."""


@dataclass(frozen=True)
class InventoryRow:
    line: int
    partition_key: str
    row_key: str
    properties: Mapping[str, str]

    def entity(self) -> dict[str, Any]:
        return {"PartitionKey": self.partition_key, "RowKey": self.row_key, **self.properties}


def read_rows(path: Path) -> Iterator[InventoryRow]:
    """The file's rows, checked one by one; raises InventoryError at the first bad one."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                raise InventoryError(f"{path}: empty file; line 1 names the columns")
            columns = _columns(path, header)
            for fields in reader:
                line = reader.line_num
                if not fields or fields == [""]:
                    continue
                yield _row(path, line, columns, fields)
    except OSError as error:
        raise InventoryError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InventoryError(f"{path}: not UTF-8 text") from None
    except csv.Error as error:
        raise InventoryError(f"{path}: not a CSV file: {error}") from None


def _columns(path: Path, header: list[str]) -> list[str]:
    columns = [name.strip() for name in header]
    if tuple(columns[:2]) != KEY_COLUMNS:
        raise InventoryError(
            f"{path}, line 1: the first columns must be PartitionKey,RowKey, not "
            f"{','.join(columns[:2]) or 'nothing'}"
        )
    seen: set[str] = set(KEY_COLUMNS)
    for name in columns[2:]:
        if not _PROPERTY_NAME.match(name) or name in RESERVED:
            raise InventoryError(
                f"{path}, line 1: column '{name}' is not a property name (letters, digits and "
                "_, not starting with a digit; not Timestamp)"
            )
        if name in seen:
            raise InventoryError(f"{path}, line 1: column '{name}' is named twice")
        seen.add(name)
    return columns


def _row(path: Path, line: int, columns: list[str], fields: list[str]) -> InventoryRow:
    where = f"{path}, line {line}"
    if len(fields) != len(columns):
        raise InventoryError(f"{where}: {len(fields)} values for {len(columns)} columns")
    partition_key, row_key = fields[0], fields[1]
    for name, key in zip(KEY_COLUMNS, (partition_key, row_key), strict=True):
        if not key:
            raise InventoryError(f"{where}: {name} is empty")
        if not valid_key(key):
            raise InventoryError(
                f"{where}: {name} {key!r} has a character a table key cannot hold "
                "(/ \\ # ? or a control character), or is over 1 KiB"
            )
    properties = {
        name: value for name, value in zip(columns[2:], fields[2:], strict=True) if value != ""
    }
    return InventoryRow(line, partition_key, row_key, properties)


def check_file(path: Path) -> int:
    """Every row checked, duplicates included; returns how many rows the file has."""
    first_line: dict[tuple[str, str], int] = {}
    for row in read_rows(path):
        key = (row.partition_key, row.row_key)
        if key in first_line:
            raise InventoryError(
                f"{path}, line {row.line}: the same PartitionKey and RowKey as line "
                f"{first_line[key]}"
            )
        first_line[key] = row.line
    return len(first_line)


class InventoryRows:
    """A CSV inventory held in memory, read like a table (allocation.lookups.RowStore)."""

    def __init__(self, rows: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        self._rows = dict(rows)

    @classmethod
    def from_csv(cls, path: Path) -> InventoryRows:
        check_file(path)
        return cls({(row.partition_key, row.row_key): row.entity() for row in read_rows(path)})

    def __len__(self) -> int:
        return len(self._rows)

    def get(
        self, table: str, partition_key: str, row_key: str, timeout: float
    ) -> Mapping[str, Any] | None:
        return self._rows.get((partition_key, row_key))
