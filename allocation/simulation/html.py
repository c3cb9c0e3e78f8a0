"""The report as one self-contained HTML page: inline SVG and CSS, no script, nothing fetched.

Drawn from the JSON report, so each number on the page is one of the report's. A content
security policy forbids every fetch, which a browser test checks. What a reader should see at
once: bars of each hub before and after, a heat map of who moved where, and for phases each
hub's devices across the steps and each step's time at the DPS quota.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, Final

from allocation.simulation.text import short_names

PALETTE: Final = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
                  "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
BEFORE_COLOUR: Final = "#c9ced6"
CSS: Final = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 6px; }
.lead { font-size: 16px; margin: 6px 0 12px; } .muted { color: #666; }
svg text { font: 12px system-ui, sans-serif; fill: #222; } svg .small { font-size: 11px; }
.grid { display: flex; flex-wrap: wrap; gap: 24px; }
"""


def page(report: Mapping[str, Any], labels: Sequence[str]) -> str:
    steps: Sequence[Mapping[str, Any]] = report["steps"]
    hubs = [row["hub"] for row in steps[0]["hubs"]]
    names = short_names(hubs)
    colours = {hub: PALETTE[i % len(PALETTE)] for i, hub in enumerate(hubs)}
    last = steps[-1]
    start = report["start"]["hubs"]
    after = {row["hub"]: row["after"] for row in last["hubs"]}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may be fetched: no script, image, font or style from anywhere.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        "<title>Fleet simulation</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Fleet simulation</h1>",
        f'<p class="lead">{escape(_headline(report, names))}</p>',
        f'<p class="muted">{report["devices"]:,} devices; reprovision policy '
        f"{escape(report['reprovision'])}; {escape(_share(report))}; DPS "
        f"{report['dps']['units']} unit(s) at {report['dps']['registrationsPerMinutePerUnit']:,}"
        " registrations per minute each.</p>",
        "<h2>Devices per hub, before and after</h2>",
        _bars(
            hubs,
            names=names,
            colours=colours,
            before=start,
            after=after,
            before_label="before",
            after_label="after" if len(steps) == 1 else f"after step {len(steps)}",
        ),
    ]
    parts.append("<h2>Who moved where</h2>")
    parts.append('<div class="grid">')
    for number, step in enumerate(steps, 1):
        parts.append(_heat_map(step, names, f"step {number}: {_file(labels[number - 1])}"))
    parts.append("</div>")
    if len(steps) > 1:
        parts.append("<h2>Devices per hub across the phases</h2>")
        parts.append(_phases(report, hubs, names, colours, labels))
        parts.append("<h2>Time at the DPS quota, per phase</h2>")
        parts.append(_quota(report, labels))
    else:
        dps = last["dps"]
        parts.append(
            f'<p id="quota">DPS: {dps["registrations"]:,} registrations take at least '
            f"{_minutes(dps['minutesAtQuota'])} at the quota; asking only the "
            f"{dps['onlyMoved']['registrations']:,} devices that move, "
            f"{_minutes(dps['onlyMoved']['minutesAtQuota'])}.</p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _headline(report: Mapping[str, Any], names: Mapping[str, str]) -> str:
    steps = report["steps"]
    moved = sum(step["moved"] for step in steps)
    sources: dict[str, int] = {}
    for step in steps:
        for hub, number in step["movedFrom"].items():
            sources[hub] = sources.get(hub, 0) + number
    origin = ", ".join(f"{n:,} from {names.get(hub, hub)}" for hub, n in sources.items())
    minutes = sum(step["dps"]["minutesAtQuota"] for step in steps)
    only = sum(step["dps"]["onlyMoved"]["minutesAtQuota"] for step in steps)
    return (
        f"{moved:,} devices move ({100 * moved / max(report['devices'], 1):.1f}% of the fleet"
        + (f": {origin}" if origin else "")
        + f") over {len(steps)} step{'s' if len(steps) != 1 else ''}; "
        f"{report['movedTwice']:,} move twice. At the DPS quota: {_minutes(minutes)} for every "
        f"registration, {_minutes(only)} asking only the devices that move."
    )


def _share(report: Mapping[str, Any]) -> str:
    share = report["share"]
    return "every device re-registers" if share >= 100 else f"{share:g}% of devices re-register"


def _file(label: str) -> str:
    return label.split(" (fingerprint", maxsplit=1)[0].rsplit("/", 1)[-1]


def _minutes(minutes: float) -> str:
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _bars(
    hubs: Sequence[str],
    *,
    names: Mapping[str, str],
    colours: Mapping[str, str],
    before: Mapping[str, int],
    after: Mapping[str, int],
    before_label: str,
    after_label: str,
) -> str:
    label_width, width, bar = 190, 520, 16
    top = max([*before.values(), *after.values(), 1])
    height = 30 + len(hubs) * (2 * bar + 14)
    out = [f'<svg id="hub-bars" width="{label_width + width + 90}" height="{height}" '
           'role="img" aria-label="devices per hub before and after">']  # fmt: skip
    out.append(f'<rect x="{label_width}" y="4" width="12" height="12" fill="{BEFORE_COLOUR}"/>')
    out.append(f'<text x="{label_width + 16}" y="15">{escape(before_label)}</text>')
    out.append(f'<rect x="{label_width + 90}" y="4" width="12" height="12" fill="#4e79a7"/>')
    out.append(f'<text x="{label_width + 106}" y="15">{escape(after_label)}</text>')
    y = 26
    for hub in hubs:
        out.append(f'<text x="{label_width - 8}" y="{y + bar + 4}" text-anchor="end">'
                   f"{escape(names[hub])}</text>")  # fmt: skip
        for when, count, colour in (
            ("before", before.get(hub, 0), BEFORE_COLOUR),
            ("after", after.get(hub, 0), colours[hub]),
        ):
            length = width * count / top
            out.append(
                f'<rect class="bar" data-hub="{escape(hub)}" data-when="{when}" '
                f'data-count="{count}" x="{label_width}" y="{y}" width="{length:.1f}" '
                f'height="{bar}" fill="{colour}"><title>{escape(hub)} {when}: {count:,}'
                "</title></rect>"
            )
            out.append(f'<text class="count" x="{label_width + length + 6:.1f}" '
                       f'y="{y + bar - 3}">{count:,}</text>')  # fmt: skip
            y += bar
        y += 14
    out.append("</svg>")
    return "\n".join(out)


def _heat_map(step: Mapping[str, Any], names: Mapping[str, str], title: str) -> str:
    matrix: Mapping[str, Mapping[str, int]] = step["matrix"]
    rows = [row["hub"] for row in step["hubs"]]
    if "(unassigned)" in matrix or any("(unassigned)" in row for row in matrix.values()):
        rows.append("(unassigned)")
    label = {**names, "(unassigned)": "(unassigned)"}
    cell, tall, left, top = 124, 44, 150, 70
    size = len(rows) * tall
    wide = left + len(rows) * cell + 10
    # Moves and stays on scales of their own: a phase that moves 5 % still shows in red.
    moves = [n for b, row in matrix.items() for a, n in row.items() if a != b]
    stays = [n for b, row in matrix.items() for a, n in row.items() if a == b]
    peaks = {True: max([*moves, 1]), False: max([*stays, 1])}
    out = [f'<svg class="heat-map" width="{wide}" height="{top + size + 10}" '
           f'role="img" aria-label="{escape(title)}">',
           f'<text x="0" y="14">{escape(title)}</text>',
           f'<text x="{left}" y="34" class="small">after the step →</text>',
           f'<text x="0" y="{top - 6}" class="small">before ↓</text>']  # fmt: skip
    for i, hub in enumerate(rows):
        out.append(f'<text class="small" x="{left + i * cell + cell / 2}" y="{top - 6}" '
                   f'text-anchor="middle">{escape(_fit(label[hub]))}</text>')  # fmt: skip
        out.append(f'<text class="small" x="{left - 6}" y="{top + i * tall + tall / 2 + 4}" '
                   f'text-anchor="end">{escape(label[hub])}</text>')  # fmt: skip
    for i, before in enumerate(rows):
        for j, after in enumerate(rows):
            number = matrix.get(before, {}).get(after, 0)
            # Moves in red, devices that stayed in grey: the eye goes to what moved.
            strength = 0.15 + 0.85 * number / peaks[before != after] if number else 0.0
            colour = "225,87,89" if before != after else "120,120,120"
            fill = f"rgba({colour},{strength:.3f})" if number else "#f6f6f6"
            x, y = left + j * cell, top + i * tall
            out.append(
                f'<rect class="cell" data-from="{escape(before)}" data-to="{escape(after)}" '
                f'data-count="{number}" x="{x}" y="{y}" width="{cell - 2}" height="{tall - 2}" '
                f'fill="{fill}"><title>{escape(before)} → {escape(after)}: {number:,}</title>'
                "</rect>"
            )
            ink = "#fff" if strength > 0.55 else "#222"
            shown = _compact(number) if number else "-"
            out.append(f'<text x="{x + cell / 2 - 1}" y="{y + tall / 2 + 4}" text-anchor="middle" '
                       f'style="fill:{ink}">{shown}</text>')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)


def _fit(name: str) -> str:
    # Hub names of one fleet often share their start: keep the end, which tells them apart.
    return name if len(name) <= 18 else "\u2026" + name[-17:]


def _compact(number: int) -> str:
    if number >= 1_000_000:
        return f"{number / 1_000_000:.1f}M"
    if number >= 10_000:
        return f"{number / 1000:.0f}k"
    return f"{number:,}"


def _phases(
    report: Mapping[str, Any],
    hubs: Sequence[str],
    names: Mapping[str, str],
    colours: Mapping[str, str],
    labels: Sequence[str],
) -> str:
    steps = report["steps"]
    columns = [("start", report["start"]["hubs"])] + [
        (_file(label), {row["hub"]: row["after"] for row in step["hubs"]})
        for label, step in zip(labels, steps, strict=True)
    ]
    group, bar, left, height = 40 + 18 * len(hubs), 16, 60, 240
    top = max([n for _, counts in columns for n in counts.values()] + [1])
    width = left + len(columns) * group + 200
    out = [f'<svg id="phase-bars" width="{width}" height="{height + 60}" role="img" '
           'aria-label="devices per hub after each phase">']  # fmt: skip
    for k, (name, counts) in enumerate(columns):
        x0 = left + k * group
        for i, hub in enumerate(hubs):
            count = counts.get(hub, 0)
            h = height * count / top
            out.append(
                f'<rect class="phase-bar" data-step="{k}" data-hub="{escape(hub)}" '
                f'data-count="{count}" x="{x0 + i * (bar + 2)}" y="{20 + height - h:.1f}" '
                f'width="{bar}" height="{h:.1f}" fill="{colours[hub]}"><title>{escape(name)}, '
                f"{escape(hub)}: {count:,}</title></rect>"
            )
        out.append(f'<text class="small" x="{x0}" y="{height + 36}">{escape(name[:14])}</text>')
    out.append(f'<text class="small" x="0" y="26">{top:,}</text>')
    out.append(f'<text class="small" x="0" y="{20 + height}">0</text>')
    for i, hub in enumerate(hubs):
        y = 30 + i * 18
        x = left + len(columns) * group + 10
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colours[hub]}"/>')
        out.append(f'<text x="{x + 16}" y="{y}">{escape(names[hub])}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _quota(report: Mapping[str, Any], labels: Sequence[str]) -> str:
    steps = report["steps"]
    left, width, bar = 190, 480, 18
    figures = [
        (step["dps"]["minutesAtQuota"], step["dps"]["onlyMoved"]["minutesAtQuota"], step)
        for step in steps
    ]
    top = max([m for m, _, _ in figures] + [1e-9])
    rows = 46 + (16 if "reference" in steps[0] else 0)
    out = [f'<svg id="quota-bars" width="{left + width + 260}" height="{30 + len(steps) * rows}" '
           'role="img" aria-label="time at the DPS quota per phase">',
           f'<text x="{left}" y="14" class="small">every re-registering device (dark) and only '
           "the devices that move (light), at the quota</text>"]  # fmt: skip
    y = 24
    for label, (minutes, moved, step) in zip(labels, figures, strict=True):
        out.append(f'<text x="{left - 8}" y="{y + bar}" text-anchor="end">'
                   f"{escape(_file(label))}</text>")  # fmt: skip
        for kind, value, colour, registrations in (
            ("all", minutes, "#4e79a7", step["dps"]["registrations"]),
            ("moved", moved, "#a0cbe8", step["dps"]["onlyMoved"]["registrations"]),
        ):
            length = width * value / top
            out.append(
                f'<rect class="quota-bar" data-kind="{kind}" data-minutes="{value:.3f}" '
                f'data-registrations="{registrations}" x="{left}" y="{y}" '
                f'width="{length:.1f}" height="{bar}" fill="{colour}"/>'
            )
            out.append(f'<text class="small" x="{left + length + 6:.1f}" y="{y + bar - 5}">'
                       f"{_minutes(value)} ({registrations:,})</text>")  # fmt: skip
            y += bar + 2
        reference = step.get("reference")
        if reference is not None:
            asked, away = reference["askedToReprovision"], reference["turnedAway"]
            out.append(
                f'<text class="small reference" x="{left}" y="{y + 10}">reference client: '
                f"{_minutes(asked['minutes'])} asked to reprovision "
                f"({asked['refused']:,} calls refused and retried), "
                f"{_minutes(away['minutes'])} turned away by its hub</text>"
            )
            y += 16
        y += 6
    out.append("</svg>")
    return "\n".join(out)
