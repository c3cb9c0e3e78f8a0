"""``python -m allocation inventory load devices.csv --table devices``: fill a lookup's table.

The file (allocation.inventory) is checked whole before anything is written, so a bad row is
reported by its line number and the table is left as it was. Rows are then upserted in Table
transactions of up to 100 rows of one partition, on the ``ALLOCATION_STORAGE`` connection the
webhook uses (``local.settings.json`` is read as for the other commands).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any, Final, TextIO

from allocation.cli import EXIT_FAILED, EXIT_OK, CommandError
from allocation.cli.settings import apply_local_settings
from allocation.inventory import InventoryError, check_file, read_rows
from allocation.lookups import TABLE_NAME_PATTERN

# Files this large get a progress bar on a terminal.
PROGRESS_FROM_ROWS: Final = 1000


def register(subcommands: Any) -> None:
    command: argparse.ArgumentParser = subcommands.add_parser(
        "inventory",
        help="load a device inventory (CSV) into the table a lookup reads",
        description="Manage the device inventory that the policy's lookups read.",
    )
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = actions.add_parser(
        "load",
        help="upsert the rows of a CSV file into a table",
        description=(
            "Upsert every row of a CSV file (first line: PartitionKey,RowKey,<property>...) "
            "into a table of the ALLOCATION_STORAGE connection, creating the table if needed. "
            "The whole file is checked first: a bad row is reported by its line number and "
            "nothing is written."
        ),
        epilog=(
            "exit codes: 0 every row written; 1 a bad row, or the store refused a batch; "
            "2 usage error, a file that cannot be read, or no storage connection"
        ),
    )
    load.add_argument("file", metavar="FILE.csv", help="the inventory")
    load.add_argument("--table", required=True, help="the table, e.g. devices")
    load.add_argument(
        "--progress",
        action="store_true",
        help="show a progress bar on stderr even when it is not a terminal",
    )
    load.set_defaults(run=run_load)


def run_load(args: argparse.Namespace) -> int:
    apply_local_settings()
    if not re.match(TABLE_NAME_PATTERN, args.table):
        raise CommandError(
            f"--table {args.table!r}: a table name has 3-63 letters and digits, "
            "starting with a letter"
        )
    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"cannot read {path}: no such file")
    try:
        total = check_file(path)
    except InventoryError as error:
        raise CommandError(str(error), EXIT_FAILED) from None

    from allocation.storage.connection import StorageNotConfigured  # noqa: PLC0415
    from allocation.storage.tables import UploadFailed, upsert_rows  # noqa: PLC0415

    show = args.progress or (sys.stderr.isatty() and total >= PROGRESS_FROM_ROWS)
    progress = Bar(total, sys.stderr) if show and total else None
    started = time.monotonic()
    try:
        written = upsert_rows(
            args.table, read_rows(path), on_batch=None if progress is None else progress.add
        )
    except StorageNotConfigured as error:
        raise CommandError(str(error)) from None
    except UploadFailed as error:
        raise CommandError(f"{path}: {error}", EXIT_FAILED) from None
    finally:
        if progress is not None:
            progress.close()
    print(
        f"loaded {written:,} rows from {path} into table '{args.table}' "
        f"in {time.monotonic() - started:.1f} s"
    )
    return EXIT_OK


class Bar:
    """A one-line progress bar, redrawn at most every 0.1 s."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.done = 0
        self.stream = stream
        self.shown = 0.0

    def add(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.shown < 0.1 and self.done < self.total:
            return
        self.shown = now
        filled = 30 * self.done // self.total
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {100 * self.done // self.total:3d}% "
            f"{self.done:,}/{self.total:,} rows"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
