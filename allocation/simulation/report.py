"""A walk's counts as one JSON document, and as text. The HTML page is drawn from the same
document (allocation.simulation.html), so the three never disagree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from allocation.candidates import linked_candidates
from allocation.policy import Policy
from allocation.simulation.quota import (
    QUOTA_SOURCE,
    REGISTRATIONS_PER_MINUTE_PER_UNIT,
    minutes_at_quota,
    reference_steps,
)
from allocation.simulation.reregister import ALLOCATED as CHOSEN
from allocation.simulation.reregister import NEVER, STICKY
from allocation.simulation.text import aligned, percent, short_names
from allocation.simulation.walk import NOT_ASKED, StepCounts, Walk

UNASSIGNED: Final = "(unassigned)"
_KEPT: Final = {CHOSEN, STICKY, NEVER, NOT_ASKED}

REPROVISION_NAMES: Final = {
    "never": "never reprovision",
    "reset": "reprovision and reset to initial state",
    "migrate": "reprovision and migrate data",
}


def _row(hub: str | None) -> str:
    return UNASSIGNED if hub is None else hub


def document(
    walk: Walk,
    *,
    fleet: Mapping[str, Any],
    policies: Sequence[tuple[Policy, Mapping[str, Any]]],
    linked_hubs: Sequence[str],
    reprovision: str,
    units: int,
) -> dict[str, Any]:
    """Everything the report shows. ``policies`` are the steps' policies with their source
    documents (file, fingerprint)."""
    seen: set[str] = {hub for hub in walk.start if hub is not None}
    for counts in walk.steps:
        seen.update(after for _, after, _ in counts.transitions if after is not None)
    hubs = [*linked_hubs, *sorted(seen - set(linked_hubs))]
    start = walk.start
    steps = []
    before: Counter[str | None] = Counter(start)
    for (policy, source), counts in zip(policies, walk.steps, strict=True):
        after = _after(counts)
        steps.append(
            _step(
                walk,
                counts=counts,
                policy=policy,
                source=source,
                hubs=hubs,
                linked_hubs=linked_hubs,
                before=before,
                after=after,
                units=units,
            )
        )
        before = after
    return {
        "devices": walk.devices,
        "fleet": dict(fleet),
        "reprovision": reprovision,
        "share": walk.share,
        "linkedHubs": list(linked_hubs),
        "dps": {
            "units": units,
            "registrationsPerMinutePerUnit": REGISTRATIONS_PER_MINUTE_PER_UNIT,
            "source": QUOTA_SOURCE,
        },
        "start": {
            "hubs": {hub: start[hub] for hub in hubs},
            "unassigned": start[None],
        },
        "steps": steps,
        "movedTwice": sum(step["movedTwice"] for step in steps),
    }


def _after(counts: StepCounts) -> Counter[str | None]:
    after: Counter[str | None] = Counter()
    for (_, hub, _), number in counts.transitions.items():
        after[hub] += number
    return after


def _step(
    walk: Walk,
    *,
    counts: StepCounts,
    policy: Policy,
    source: Mapping[str, Any],
    hubs: Sequence[str],
    linked_hubs: Sequence[str],
    before: Counter[str | None],
    after: Counter[str | None],
    units: int,
) -> dict[str, Any]:
    devices = walk.devices
    settings = {hub.name: hub.settings for hub in linked_candidates(linked_hubs, policy.hubs)}
    expected = counts.expected(devices)
    outcomes: Counter[str] = Counter()
    moved = placed = same = 0
    moved_from: Counter[str] = Counter()
    matrix: dict[str, dict[str, int]] = {}
    for (old, new, code), number in sorted(
        counts.transitions.items(), key=lambda item: (_row(item[0][0]), _row(item[0][1]))
    ):
        outcomes[code] += number
        row = matrix.setdefault(_row(old), {})
        row[_row(new)] = row.get(_row(new), 0) + number
        if old is None and new is not None:
            placed += number
        elif old is not None and new != old:
            moved += number
            moved_from[old] += number
        elif code == CHOSEN:
            same += number
    registrations = devices - outcomes[NOT_ASKED]
    step: dict[str, Any] = {
        "policy": dict(source),
        "hubs": [
            {
                "hub": hub,
                "weight": settings[hub].weight if hub in settings else None,
                "drain": settings[hub].drain if hub in settings else None,
                "before": before[hub],
                "after": after[hub],
                "share": after[hub] / devices if devices else 0.0,
                "expectedShare": None if expected is None else expected.get(hub, 0.0),
            }
            for hub in hubs
        ],
        "unassigned": {"before": before[None], "after": after[None]},
        "registrations": registrations,
        "notAsked": outcomes[NOT_ASKED],
        "moved": moved,
        "movedFrom": {hub: moved_from[hub] for hub in hubs if moved_from[hub]},
        "movedTwice": counts.moved_twice,
        "placed": placed,
        "stayed": {
            "sticky": outcomes[STICKY],
            "neverReprovision": outcomes[NEVER],
            "sameHub": same,
        },
        "refused": {
            "denied": outcomes["denied"],
            "no_eligible_hub": outcomes["no_eligible_hub"],
            **{code: n for code, n in sorted(outcomes.items()) if code not in _KEPT},
        },
        "matrix": matrix,
        "dps": {
            "registrations": registrations,
            "minutesAtQuota": minutes_at_quota(registrations, units),
            "onlyMoved": {"registrations": moved, "minutesAtQuota": minutes_at_quota(moved, units)},
        },
    }
    if walk.reference is not None:
        step["reference"] = reference_steps(walk.reference, counts.slots, units)
    return step


# -- text --------------------------------------------------------------------------------------


def text(report: Mapping[str, Any], labels: Sequence[str], header: Sequence[str]) -> str:
    """The report for a terminal: ``labels`` name each step's policy, ``header`` comes first."""
    lines = list(header)
    devices = report["devices"]
    units = report["dps"]["units"]
    rate = report["dps"]["registrationsPerMinutePerUnit"] * units
    for number, (label, step) in enumerate(zip(labels, report["steps"], strict=True), 1):
        lines += ["", f"step {number}: {label}"]
        lines += _hub_table(step, devices)
        moved_from = ", ".join(
            f"{percent(n / _before(step, hub))} of {short_names([hub])[hub]}'s "
            f"{_before(step, hub):,}"
            for hub, n in step["movedFrom"].items()
        )
        lines.append(
            f"moved: {step['moved']:,} ({percent(step['moved'] / devices)} of the fleet"
            + (f"; {moved_from}" if moved_from else "")
            + f"); moved for the second time: {step['movedTwice']:,}"
        )
        stayed = step["stayed"]
        refused = step["refused"]
        lines.append(
            f"stayed: {stayed['sticky']:,} sticky, {stayed['neverReprovision']:,} never "
            f"reprovision, {stayed['sameHub']:,} given the same hub again; "
            f"{step['notAsked']:,} not re-registering; {step['placed']:,} placed for the first "
            "time"
        )
        lines.append(
            "refused (the device keeps its hub): "
            + ", ".join(f"{n:,} {code.replace('_', ' ')}" for code, n in refused.items())
        )
        dps = step["dps"]
        lines.append(
            f"DPS: {dps['registrations']:,} registrations, {_duration(dps['minutesAtQuota'])} "
            f"at {rate:,}/min ({units} unit{'s' if units != 1 else ''}); asking only the "
            f"{dps['onlyMoved']['registrations']:,} that move: "
            f"{_duration(dps['onlyMoved']['minutesAtQuota'])}"
        )
        reference = step.get("reference")
        if reference is not None:
            lines += _reference_lines(reference)
        lines.append("from (rows: before the step) to (columns: after):")
        lines += _matrix(step)
    if len(report["steps"]) > 1:
        lines += ["", "phases:"]
        lines += _summary(report, labels)
    return "\n".join(lines)


def _reference_lines(reference: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, how in (
        ("askedToReprovision", "asked to reprovision, all at once"),
        ("turnedAway", f"turned away by its hub, over {reference['retry']['spreadSeconds']:g} s"),
    ):
        figures = reference[key]
        lines.append(
            f"reference client, {how}: all registered in {_duration(figures['minutes'])}, "
            f"{figures['dpsCalls']:,} DPS calls ({figures['refused']:,} refused over the quota, "
            f"retried), peak {figures['peakPerMinute']:,} calls/min"
        )
    return lines


def _before(step: Mapping[str, Any], hub: str) -> int:
    return next(int(row["before"]) for row in step["hubs"] if row["hub"] == hub) or 1


def _duration(minutes: float) -> str:
    if minutes < 120:
        return f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"


def _hub_table(step: Mapping[str, Any], devices: int) -> list[str]:
    table = [["hub", "weight", "drain", "before", "after", "change", "share", "expected"]]
    for row in step["hubs"]:
        expected = row["expectedShare"]
        table.append(
            [
                row["hub"],
                "" if row["weight"] is None else str(row["weight"]),
                f"{row['drain']:g}%" if row["drain"] else "",
                f"{row['before']:,}",
                f"{row['after']:,}",
                f"{row['after'] - row['before']:+,}",
                percent(row["share"]),
                "-" if expected is None else percent(expected),
            ]
        )
    unassigned = step["unassigned"]
    if unassigned["before"] or unassigned["after"]:
        table.append(
            [
                UNASSIGNED,
                "",
                "",
                f"{unassigned['before']:,}",
                f"{unassigned['after']:,}",
                f"{unassigned['after'] - unassigned['before']:+,}",
                percent(unassigned["after"] / devices),
            ]
        )
    table.append(["total", "", "", f"{devices:,}", f"{devices:,}", "", percent(1.0), ""])
    return aligned(table, left={0})


def _matrix(step: Mapping[str, Any]) -> list[str]:
    matrix: Mapping[str, Mapping[str, int]] = step["matrix"]
    rows = [row["hub"] for row in step["hubs"]]
    if any(UNASSIGNED in row for row in matrix.values()) or UNASSIGNED in matrix:
        rows.append(UNASSIGNED)
    labels = short_names(rows)
    table = [["", *(labels[row] for row in rows)]]
    for before in rows:
        cells = [labels[before]]
        for after in rows:
            number = matrix.get(before, {}).get(after, 0)
            cells.append(f"{number:,}" if number else "-")
        table.append(cells)
    return aligned(table, left={0})


def _summary(report: Mapping[str, Any], labels: Sequence[str]) -> list[str]:
    hubs = [row["hub"] for row in report["steps"][0]["hubs"]]
    names = short_names(hubs)
    table = [["step", "policy", "moved", "twice", "registrations", "at quota", "only movers"]]
    table[0] += [names[hub] for hub in hubs]
    start = report["start"]["hubs"]
    table.append(["start", "", "", "", "", "", "", *(f"{start[hub]:,}" for hub in hubs)])
    for number, (label, step) in enumerate(zip(labels, report["steps"], strict=True), 1):
        dps = step["dps"]
        table.append(
            [
                str(number),
                label.split(" (fingerprint")[0],
                f"{step['moved']:,}",
                f"{step['movedTwice']:,}",
                f"{dps['registrations']:,}",
                _duration(dps["minutesAtQuota"]),
                _duration(dps["onlyMoved"]["minutesAtQuota"]),
                *(f"{row['after']:,}" for row in step["hubs"]),
            ]
        )
    return aligned(table, left={0, 1})
