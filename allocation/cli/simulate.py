"""``python -m allocation simulate``: where N devices would go under a policy, and what moves.

Every simulated device is allocated by :func:`allocation.decision.decide`, the function the
webhook answers with, on a :class:`RequestContext` made by
:func:`allocation.context.context_from_request` from a DPS request: a first registration
through a symmetric-key enrollment group (``--enrollment``), with ``--hubs`` as ``linkedHubs``
and ``--payload`` as every device's payload. Only the registration ID differs between devices.
Registration IDs come from a seeded generator, so a run can be repeated, and with ``--against``
both policies see the same devices.

Expected share: computed from the candidates each device actually had, after rules, hub
filters and drain (allocation.simulation.walk.StepCounts.expected): a device placed by weighted
hashing counts weight / (total weight) for each hub it was eligible for, a device placed by
``static`` or refused counts for its outcome. Where a strategy's odds cannot be stated (latency,
plug-ins) no share is expected.

Movement (``--against OLD``): *moved* counts the devices whose outcome differs between the two
policies; the *minimum* is the fewest moves that turn the old counts into the new ones,
``1/2 x sum over outcomes of |new - old|``. A policy that moves no more than the minimum moves
only the devices that must move.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from allocation.candidates import Candidate, HubSettings, linked_candidates
from allocation.cli import EXIT_OK, CommandError
from allocation.cli.settings import (
    add_lookup_option,
    apply_local_settings,
    offline_lookups,
    read_policy,
)
from allocation.cli.simulate_fleet import run_fleet
from allocation.cli.simulate_inputs import PROGRESS_EVERY, Progress, linked_hubs, parse_payload
from allocation.cli.validate import describe_source, source_document
from allocation.context import RequestContext, context_from_request
from allocation.decision import decide
from allocation.errors import AllocationError
from allocation.lookups import with_lookups
from allocation.policy import Policy
from allocation.requests import parse_request
from allocation.simulation.fleet import seeded_ids
from allocation.simulation.quota import REGISTRATIONS_PER_MINUTE_PER_UNIT
from allocation.simulation.reregister import CERTAIN, REPROVISION_POLICIES, result_of
from allocation.simulation.text import aligned, percent, short_names
from allocation.simulation.walk import StepCounts
from allocation.sources import LoadedPolicy

DEFAULT_ENROLLMENT: Final = "simulated"

# Outcomes other than a hub, as error codes in parentheses: no host name has parentheses.
DENIED: Final = "(denied)"
NO_ELIGIBLE_HUB: Final = "(no_eligible_hub)"
ALWAYS_SHOWN: Final = (DENIED, NO_ELIGIBLE_HUB)
INTERNAL_ERROR: Final = "(internal_error)"


def register(subcommands: Any) -> None:
    command: argparse.ArgumentParser = subcommands.add_parser(
        "simulate",
        help="allocate N simulated devices, or re-register a fleet through phases",
        description=(
            "Allocate N simulated devices (seeded registration IDs) with the webhook's own "
            "decision code and print how many land on each hub, their share, and the share "
            "expected from the candidates each device had. With --against, the same devices are "
            "allocated under the old policy too: how many move, from where to where. With a "
            "fleet that already exists (--from OLD_POLICY with --devices N, or --fleet "
            "devices.csv), the fleet re-registers under --policy, or under each of --phases in "
            "turn, from its current hubs: devices per hub before and after, the movement "
            "matrix, devices kept by sticky or never-reprovision, refusals, the registrations "
            "asked of DPS and their time at its quota."
        ),
        epilog=(
            "exit codes: 0 simulated (denied devices and devices with no eligible hub are "
            "counted, not failures); 1 a policy is invalid; 2 usage error, or a file cannot "
            "be read"
        ),
    )
    command.add_argument(
        "--policy",
        metavar="FILE",
        help="the policy file (default: the policy of this host's settings)",
    )
    command.add_argument("--devices", metavar="N", type=_positive, help="how many devices")
    command.add_argument(
        "--hubs",
        metavar="H1,H2,...",
        help=(
            "the linked hubs, comma-separated (default: the hubs the policies name, "
            "--policy's first)"
        ),
    )
    command.add_argument(
        "--against", metavar="OLD_POLICY", help="a policy file to compare with: what would move"
    )
    command.add_argument(
        "--payload", metavar="JSON", help="the registration payload of every device (an object)"
    )
    command.add_argument(
        "--enrollment",
        metavar="ID",
        default=DEFAULT_ENROLLMENT,
        help=f"the enrollment group ID (default: {DEFAULT_ENROLLMENT})",
    )
    command.add_argument(
        "--seed", type=int, default=0, help="seed of the registration IDs (default: 0)"
    )
    add_lookup_option(command)
    command.add_argument("--json", action="store_true", help="print one JSON document")

    fleet = command.add_argument_group("a fleet that already exists, re-registering")
    fleet.add_argument(
        "--from",
        dest="from_policy",
        metavar="OLD_POLICY",
        help="--devices N seeded devices, first placed by this policy",
    )
    fleet.add_argument(
        "--fleet",
        metavar="DEVICES.csv",
        help="the fleet as registrationId,enrollmentId,currentHub[,payload JSON] lines",
    )
    fleet.add_argument(
        "--phases",
        metavar="DIR_OR_FILE",
        nargs="+",
        help=(
            "policies deployed in turn, the fleet re-registering after each: files in this "
            "order, a directory's *.json in natural order (drain-5 before drain-25)"
        ),
    )
    fleet.add_argument(
        "--reprovision",
        choices=sorted(REPROVISION_POLICIES),
        default="migrate",
        help="the enrollment's reprovision policy (default: migrate, as DPS's own default)",
    )
    fleet.add_argument(
        "--share",
        metavar="P",
        type=_percent_option,
        default=100.0,
        help="the stable P%% of the fleet that re-registers (default: 100)",
    )
    fleet.add_argument(
        "--dps-units",
        metavar="U",
        type=_positive,
        default=1,
        help=(
            f"DPS units, for the time at the quota ({REGISTRATIONS_PER_MINUTE_PER_UNIT:,} "
            "registrations per minute per unit; default: 1)"
        ),
    )
    fleet.add_argument(
        "--device-behaviour",
        choices=("instant", "reference"),
        default="instant",
        help=(
            "when devices call DPS: all at once (instant), or as the reference client in "
            "device/ spreads them (reference)"
        ),
    )
    fleet.add_argument(
        "--outcomes",
        metavar="FILE.csv",
        help="write every registration: registrationId,step,before,after,outcome",
    )
    fleet.add_argument(
        "--html", metavar="REPORT.html", help="also write the report as a self-contained page"
    )
    # Options that add inputs to the simulated requests (device inventories, ...) go here.
    command.set_defaults(run=run)


def _percent_option(text: str) -> float:
    try:
        number = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if not 0 < number <= 100:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 100, not {text}")
    return number


def _positive(text: str) -> int:
    try:
        number = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def run(args: argparse.Namespace) -> int:
    apply_local_settings()
    if args.from_policy is not None or args.fleet is not None or args.phases is not None:
        return run_fleet(args)
    if args.devices is None:
        raise CommandError("give --devices N (or a fleet: --from OLD_POLICY, --fleet FILE)")
    for name in ("outcomes", "html"):
        if getattr(args, name) is not None:
            raise CommandError(f"--{name} reports a fleet: give --from OLD_POLICY or --fleet")
    loaded = offline_lookups(read_policy(args.policy), args.lookup)
    against = read_policy(args.against) if args.against is not None else None
    if against is not None:
        against = offline_lookups(against, args.lookup, strict=False)
    policies = [loaded.policy] if against is None else [loaded.policy, against.policy]
    payload = parse_payload(args.payload)
    template = device_template(args.enrollment, linked_hubs(args.hubs, policies), payload)

    started = time.perf_counter()
    progress = Progress(args.devices, sys.stderr) if sys.stderr.isatty() else None
    outcomes, odds = allocate(
        loaded.policy,
        template,
        registration_ids(args.seed, args.devices),
        old=None if against is None else against.policy,
        progress=progress,
    )
    seconds = time.perf_counter() - started

    result = Simulation(
        devices=args.devices,
        seed=args.seed,
        enrollment=args.enrollment,
        payload=payload,
        linked=template.linked_hubs,
        loaded=loaded,
        against=against,
        outcomes=outcomes,
        expected=odds.expected(args.devices),
    )
    if args.json:
        print(json.dumps(result.document(), indent=2))
    else:
        print(result.text(seconds))
    return EXIT_OK


# -- the devices -------------------------------------------------------------------------------


registration_ids = seeded_ids


def device_template(enrollment: str, linked: Sequence[str], payload: Any) -> RequestContext:
    """The context of a simulated device, made from a DPS request as the webhook makes it."""
    document = {
        "enrollmentGroup": {
            "enrollmentGroupId": enrollment,
            "attestation": {"type": "symmetricKey"},
        },
        "deviceRuntimeContext": {"registrationId": "sim", "symmetricKey": {}, "payload": payload},
        "linkedHubs": list(linked),
    }
    try:
        request = parse_request(json.dumps(document).encode())
    except AllocationError as error:  # an empty --enrollment, a payload nested too deep, ...
        raise CommandError(f"the simulated devices' request is not valid: {error}") from None
    return context_from_request(request)


# -- allocating --------------------------------------------------------------------------------


def outcome(policy: Policy, context: RequestContext) -> tuple[str, tuple[Candidate, ...] | None]:
    """The hub the webhook would answer, or the refusal in parentheses (``(denied)``, ...), and
    the odds of that outcome (see allocation.simulation.reregister.Result)."""
    try:
        result = result_of(decide(policy, with_lookups(policy.lookups, context)))
    except AllocationError as error:
        return f"({error.code})", CERTAIN
    except Exception:
        # A defect, which the webhook answers with 500; count it rather than stop.
        return INTERNAL_ERROR, CERTAIN
    assert result.hub is not None
    return result.hub, result.odds


def allocate(
    policy: Policy,
    template: RequestContext,
    ids: Iterator[str],
    old: Policy | None = None,
    progress: Progress | None = None,
) -> tuple[Counter[tuple[str, str]], StepCounts]:
    """How many devices have each (outcome under ``old``, outcome under ``policy``), without
    ``old`` the first is the second; and the odds of the outcomes under ``policy``."""
    counts: Counter[tuple[str, str]] = Counter()
    odds = StepCounts()
    # The template with another registration ID; faster than template._replace().
    fixed = template._asdict()
    del fixed["registration_id"]
    device = functools.partial(RequestContext, **fixed)
    try:
        for index, registration_id in enumerate(ids):
            context = device(registration_id=registration_id)
            new, eligible = outcome(policy, context)
            counts[(new if old is None else outcome(old, context)[0], new)] += 1
            if eligible is CERTAIN:
                odds.certain[new] += 1
            elif eligible:
                odds.weighted[eligible] += 1
            else:
                odds.unknown += 1
            if progress is not None and index % PROGRESS_EVERY == 0:
                progress.show(index)
    finally:
        if progress is not None:
            progress.close()
    return counts, odds


# -- the report --------------------------------------------------------------------------------


def minimum_moves(old: Mapping[str, int], new: Mapping[str, int]) -> int:
    """The fewest devices that must move to turn the ``old`` counts into the ``new`` ones."""
    return sum(abs(new.get(key, 0) - old.get(key, 0)) for key in {*old, *new}) // 2


@dataclass(frozen=True)
class Simulation:
    devices: int
    seed: int
    enrollment: str
    payload: Any
    linked: tuple[str, ...]
    loaded: LoadedPolicy
    against: LoadedPolicy | None
    outcomes: Counter[tuple[str, str]]  # see allocate()
    expected: Mapping[str | None, float] | None  # each outcome's expected share, if meaningful

    def counts(self, which: int) -> Counter[str]:
        """Devices per outcome under the new policy (1) or the old one (0)."""
        counts: Counter[str] = Counter()
        for pair, number in self.outcomes.items():
            counts[pair[which]] += number
        return counts

    def settings(self) -> dict[str, HubSettings]:
        """What the policy says about each linked hub."""
        return {
            hub.name: hub.settings
            for hub in linked_candidates(self.linked, self.loaded.policy.hubs)
        }

    @property
    def moved(self) -> int:
        return sum(number for (old, new), number in self.outcomes.items() if old != new)

    def seen(self) -> set[str]:
        """Every outcome of some device under either policy."""
        return {outcome for pair in self.outcomes for outcome in pair}

    def rows(self) -> list[str]:
        """Every outcome to report: the linked hubs, then the refusals."""
        refusals = sorted(self.seen() - set(self.linked) - set(ALWAYS_SHOWN))
        return [*self.linked, *ALWAYS_SHOWN, *refusals]

    # -- JSON

    def document(self) -> dict[str, Any]:
        new = self.counts(1)
        settings = self.settings()
        expected = self.expected
        document: dict[str, Any] = {
            "devices": self.devices,
            "seed": self.seed,
            "enrollment": self.enrollment,
            "payload": self.payload,
            "linkedHubs": list(self.linked),
            "policy": source_document(self.loaded),
            "hubs": [
                {
                    "hub": hub,
                    "weight": settings[hub].weight,
                    "drain": settings[hub].drain,
                    "devices": new[hub],
                    "share": new[hub] / self.devices,
                    "expectedShare": None if expected is None else expected.get(hub, 0.0),
                }
                for hub in self.linked
            ],
            "refused": self._refused(new),
        }
        if self.against is not None:
            old = self.counts(0)
            matrix: dict[str, dict[str, int]] = {}
            for (before, after), number in sorted(self.outcomes.items()):
                matrix.setdefault(before, {})[after] = number
            document["against"] = {
                "policy": source_document(self.against),
                "hubs": [
                    {"hub": hub, "devices": old[hub], "share": old[hub] / self.devices}
                    for hub in self.linked
                ],
                "refused": self._refused(old),
                "moved": self.moved,
                "minimumMoves": minimum_moves(old, new),
                "matrix": matrix,
            }
        return document

    def _refused(self, counts: Mapping[str, int]) -> dict[str, int]:
        return {row[1:-1]: counts.get(row, 0) for row in self.rows() if row not in self.linked}

    # -- text

    def text(self, seconds: float) -> str:
        new = self.counts(1)
        old = self.counts(0) if self.against is not None else None
        expected = self.expected
        settings = self.settings()
        lines = [
            f"{self.devices:,} devices (seed {self.seed}) of enrollment "
            f"{json.dumps(self.enrollment)} over {len(self.linked)} linked hubs, "
            f"in {seconds:.1f} s",
            f"policy: {_source(self.loaded)}"
            + (f"; against: {_source(self.against)}" if self.against is not None else ""),
            "",
        ]
        header = ["hub", "weight", "drain", "devices", "share", "expected"]
        if old is not None:
            header += ["before", "change"]
        table = [header]
        for row in self.rows():
            hub = settings.get(row)
            cells = [
                row,
                "" if hub is None else str(hub.weight),
                "" if hub is None or not hub.drain else f"{hub.drain:g}%",
                f"{new[row]:,}",
                percent(new[row] / self.devices),
                "-" if expected is None else percent(expected.get(row, 0.0)),
            ]
            if old is not None:
                cells += [f"{old[row]:,}", f"{new[row] - old[row]:+,}"]
            table.append(cells)
        total = ["total", "", "", f"{self.devices:,}", percent(1.0), ""]
        if old is not None:
            total += [f"{self.devices:,}", ""]
        table.append(total)
        lines += aligned(table, left={0})

        if old is not None:
            minimum = minimum_moves(old, new)
            lines += [
                "",
                f"moved: {self.moved:,} devices ({percent(self.moved / self.devices)}); "
                f"the fewest moves between these counts: {minimum:,} "
                f"({percent(minimum / self.devices)})",
                "from (rows: --against) to (columns: --policy):",
            ]
            lines += self._matrix_text()
        return "\n".join(lines)

    def _matrix_text(self) -> list[str]:
        seen = self.seen()
        rows = [row for row in self.rows() if row in self.linked or row in seen]
        labels = short_names(rows)
        table = [["", *(labels[row] for row in rows)]]
        for before in rows:
            cells = [labels[before]]
            for after in rows:
                number = self.outcomes.get((before, after), 0)
                cells.append(f"{number:,}" if number else "-")
            table.append(cells)
        return aligned(table, left={0})


def _source(loaded: LoadedPolicy) -> str:
    return f"{describe_source(loaded)} (fingerprint {loaded.policy.fingerprint})"
