"""Figures, their ratios to the baselines measured in the same run, and how they are shown.

A :class:`Figure` is one measured quantity: the median over repeated runs, with min and max.
A figure with a ``baseline`` is divided by that baseline's median (``ratio``); a figure with a
``target`` says whether it met it. A benchmark that could not run on this machine gives a
figure with ``skipped`` set to the reason, which is not a failure.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

Unit = Literal["us", "ms", "s", "MiB", "req/s", "%"]

TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Target:
    """``ratio <= limit`` (or ``>=``), or the same on the figure's own value."""

    limit: float
    op: Literal["<=", ">="] = "<="
    on: Literal["ratio", "value"] = "ratio"

    def met(self, value: float, ratio: float | None) -> bool | None:
        measured = ratio if self.on == "ratio" else value
        if measured is None:
            return None
        return measured <= self.limit if self.op == "<=" else measured >= self.limit

    def describe(self, unit: str) -> str:
        sign = "≤" if self.op == "<=" else "≥"
        amount = f"{self.limit:g}{TIMES}" if self.on == "ratio" else f"{self.limit:g} {unit}"
        return f"{sign} {amount}"


@dataclass
class Figure:
    group: str  # the benchmark: in-process, cold-start, local-host, simulation
    id: str  # stable key in the JSON, e.g. "in-process.default"
    label: str  # what the table says
    unit: Unit
    samples: list[float] = field(default_factory=list)
    baseline: str | None = None  # the id of the figure this one is divided by
    target: Target | None = None
    note: str = ""
    skipped: str | None = None  # why this figure was not measured here
    # Filled by Report.finish():
    ratio: float | None = None
    met: bool | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def minimum(self) -> float | None:
        return min(self.samples) if self.samples else None

    @property
    def maximum(self) -> float | None:
        return max(self.samples) if self.samples else None


def skipped(group: str, id: str, label: str, unit: Unit, reason: str, **kw: Any) -> Figure:
    return Figure(group, id, label, unit, skipped=reason, **kw)


@dataclass
class Report:
    mode: Literal["quick", "full"]
    command: str
    figures: list[Figure] = field(default_factory=list)

    def add(self, figures: Sequence[Figure]) -> None:
        self.figures.extend(figures)

    def finish(self) -> None:
        by_id = {f.id: f for f in self.figures}
        for figure in self.figures:
            base = by_id.get(figure.baseline) if figure.baseline else None
            if figure.median is not None and base is not None and base.median:
                figure.ratio = figure.median / base.median
            # Quick runs are too short to judge a target by.
            if figure.target is not None and figure.median is not None and self.mode == "full":
                figure.met = figure.target.met(figure.median, figure.ratio)

    @property
    def missed(self) -> list[Figure]:
        return [f for f in self.figures if f.met is False]

    # -- output ------------------------------------------------------------------------------

    def table(self) -> str:
        """A Markdown table: readable in a terminal, pasted as is into BENCHMARKS.md."""
        header = ("benchmark", "figure", "median", "min", "max", "ratio", "target", "met")
        rows = [header, tuple("---" for _ in header)]
        for f in self.figures:
            if f.skipped is not None:
                rows.append((f.group, f.label, f"skipped: {f.skipped}", "", "", "", "", ""))
                continue
            target = f.target.describe(f.unit) if f.target else ""
            ratio = f"{f.ratio:.2f}{TIMES}" if f.ratio is not None else ""
            if (
                f.ratio is None
                and f.baseline is None
                and any(g.baseline == f.id for g in self.figures)
            ):
                ratio = "baseline"
            met = {True: "yes", False: "**no**", None: ""}[f.met]
            rows.append(
                (
                    f.group,
                    f.label,
                    _amount(f.median, f.unit),
                    _amount(f.minimum, f.unit),
                    _amount(f.maximum, f.unit),
                    ratio,
                    target,
                    met,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = []
        for row in rows:
            cells = (
                ("-" * w if row[0] == "---" else cell.ljust(w))
                for cell, w in zip(row, widths, strict=True)
            )
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def notes(self) -> str:
        return "\n".join(f"- {f.label}: {f.note}" for f in self.figures if f.note)

    def to_json(self) -> dict[str, Any]:
        figures = []
        for f in self.figures:
            entry = asdict(f)
            entry.update(median=f.median, min=f.minimum, max=f.maximum, runs=len(f.samples))
            entry["target"] = (
                {**asdict(f.target), "text": f.target.describe(f.unit)} if f.target else None
            )
            figures.append(entry)
        return {
            "command": self.command,
            "mode": self.mode,
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
            "figures": figures,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": cpu or platform.processor(),
    }


def _amount(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    if unit == "%":
        return f"{value:.0f}%"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    digits = 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:,.{digits}f} {'µs' if unit == 'us' else unit}"
