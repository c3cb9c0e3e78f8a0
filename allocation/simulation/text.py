"""Plain-text tables: aligned columns, percentages, short hub names."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from allocation.hostnames import host_key


def aligned(rows: Sequence[Sequence[str]], left: set[int]) -> list[str]:
    """Rows of cells as lines of aligned columns: those in ``left`` to the left, the rest (the
    numbers) to the right. Rows may differ in length."""
    columns = max(len(row) for row in rows)
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(columns)]
    return [
        "  ".join(
            cell.ljust(widths[i]) if i in left else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def percent(share: float) -> str:
    return f"{100 * share:.2f}%"


def short_names(rows: Sequence[str]) -> dict[str, str]:
    """Host names by their first label, where that is unambiguous."""
    first = {row: row.split(".", 1)[0] if not row.startswith("(") else row for row in rows}
    unique = Counter(host_key(label) for label in first.values())
    return {row: label if unique[host_key(label)] == 1 else row for row, label in first.items()}
