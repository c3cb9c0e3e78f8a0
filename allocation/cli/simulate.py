"""``python -m allocation simulate``: where N devices would go under a policy, and what moves.

Every simulated device is allocated by :func:`allocation.decision.decide`, the function the
webhook answers with, on a :class:`RequestContext` made by
:func:`allocation.context.context_from_request` from a DPS request: a first registration
through a symmetric-key enrollment group (``--enrollment``), with ``--hubs`` as ``linkedHubs``
and ``--payload`` as every device's payload. Only the registration ID differs between devices.
Registration IDs come from a seeded generator, so a run can be repeated, and with ``--against``
both policies see the same devices.

Target share: the *weighted target*, the share the weighted strategy gives each linked hub in
expectation, drain included: each device avoids each hub at ``drain`` percent independently,
and goes to one of the hubs it may use with probability weight / (their total weight). It is
exact for the weighted strategy with no filter or rule; other strategies are compared with it
as a reference.

Movement (``--against OLD``): *moved* counts the devices whose outcome differs between the two
policies; the *minimum* is the fewest moves that turn the old counts into the new ones,
``1/2 x sum over outcomes of |new - old|``. A policy that moves no more than the minimum moves
only the devices that must move.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from allocation.candidates import HubSettings, linked_candidates
from allocation.cli import EXIT_OK, CommandError
from allocation.cli.settings import apply_local_settings, read_policy
from allocation.cli.validate import describe_source, source_document
from allocation.context import RequestContext, context_from_request
from allocation.decision import decide
from allocation.errors import AllocationError
from allocation.hostnames import host_key, is_host_name
from allocation.policy import Policy
from allocation.requests import parse_request
from allocation.sources import LoadedPolicy

DEFAULT_ENROLLMENT: Final = "simulated"

# Outcomes other than a hub, as error codes in parentheses: no host name has parentheses.
DENIED: Final = "(denied)"
NO_ELIGIBLE_HUB: Final = "(no_eligible_hub)"
ALWAYS_SHOWN: Final = (DENIED, NO_ELIGIBLE_HUB)
INTERNAL_ERROR: Final = "(internal_error)"

PROGRESS_INTERVAL_SECONDS: Final = 0.1
PROGRESS_EVERY: Final = 1024  # devices between looks at the clock


def register(subcommands: Any) -> None:
    command: argparse.ArgumentParser = subcommands.add_parser(
        "simulate",
        help="allocate N simulated devices; compare with another policy",
        description=(
            "Allocate N simulated devices (seeded registration IDs) with the webhook's own "
            "decision code and print how many land on each hub, their share, and the hub's "
            "weighted target share (the weighted strategy's expected share, drain included). "
            "With --against, the same devices are allocated under the old policy too: how many "
            "move, from where to where (a matrix), against the fewest moves that turn the old "
            "counts into the new ones. Each device is a first registration through a "
            "symmetric-key enrollment group."
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
    command.add_argument(
        "--devices", metavar="N", type=_positive, required=True, help="how many devices"
    )
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
    command.add_argument("--json", action="store_true", help="print one JSON document")
    command.set_defaults(run=run)


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
    loaded = read_policy(args.policy)
    against = read_policy(args.against) if args.against is not None else None
    policies = [loaded.policy] if against is None else [loaded.policy, against.policy]
    payload = _payload(args.payload)
    template = device_template(args.enrollment, linked_hubs(args.hubs, policies), payload)

    started = time.perf_counter()
    progress = Progress(args.devices, sys.stderr) if sys.stderr.isatty() else None
    outcomes = allocate(
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
    )
    if args.json:
        print(json.dumps(result.document(), indent=2))
    else:
        print(result.text(seconds))
    return EXIT_OK


# -- the devices -------------------------------------------------------------------------------


def registration_ids(seed: int, count: int) -> Iterator[str]:
    """``count`` registration IDs, the same for the same seed on every machine."""
    bits = random.Random(seed).getrandbits
    for _ in range(count):
        yield f"sim-{bits(64):016x}"


def linked_hubs(option: str | None, policies: Sequence[Policy]) -> list[str]:
    if option is None:
        # The policies' own hubs, in their order (their keys are lower case).
        hubs = list(dict.fromkeys(name for policy in policies for name in policy.hubs))
        if not hubs:
            raise CommandError(
                "the policy names no hubs: give the linked hubs with --hubs h1,h2,..."
            )
        return hubs
    hubs = [name.strip() for name in option.split(",") if name.strip()]
    if not hubs:
        raise CommandError("--hubs names no hub")
    bad = [name for name in hubs if not is_host_name(name)]
    if bad:
        raise CommandError(
            f"--hubs: {', '.join(map(repr, bad))} "
            + ("is not an IoT hub host name" if len(bad) == 1 else "are not IoT hub host names")
            + " (such as my-hub.azure-devices.net)"
        )
    return hubs


def _payload(option: str | None) -> Any:
    if option is None:
        return None
    try:
        payload = json.loads(option)
    except ValueError as error:
        raise CommandError(f"--payload is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise CommandError('--payload must be a JSON object, such as \'{"siteId": "s1"}\'')
    return payload


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


def outcome(policy: Policy, context: RequestContext) -> str:
    """The hub the webhook would answer, or the refusal in parentheses: ``(denied)``, ..."""
    try:
        return decide(policy, context).hub.name
    except AllocationError as error:
        return f"({error.code})"
    except Exception:
        # A defect, which the webhook answers with 500; count it rather than stop.
        return INTERNAL_ERROR


def allocate(
    policy: Policy,
    template: RequestContext,
    ids: Iterator[str],
    old: Policy | None = None,
    progress: Progress | None = None,
) -> Counter[tuple[str, str]]:
    """How many devices have each (outcome under ``old``, outcome under ``policy``); without
    ``old`` the first is the second."""
    counts: Counter[tuple[str, str]] = Counter()
    # The template with another registration ID; faster than template._replace().
    fixed = template._asdict()
    del fixed["registration_id"]
    device = functools.partial(RequestContext, **fixed)
    try:
        for index, registration_id in enumerate(ids):
            context = device(registration_id=registration_id)
            new = outcome(policy, context)
            counts[(new if old is None else outcome(old, context), new)] += 1
            if progress is not None and index % PROGRESS_EVERY == 0:
                progress.show(index)
    finally:
        if progress is not None:
            progress.close()
    return counts


class Progress:
    """A one-line progress bar on a terminal, redrawn at most every 0.1 s."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.started = time.monotonic()
        self.shown = 0.0

    def show(self, done: int) -> None:
        now = time.monotonic()
        if now - self.shown < PROGRESS_INTERVAL_SECONDS:
            return
        self.shown = now
        width = 30
        filled = width * done // self.total
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {100 * done // self.total:3d}% "
            f"{done:,}/{self.total:,} devices, {now - self.started:.1f} s"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\033[K")
        self.stream.flush()


# -- the report --------------------------------------------------------------------------------


# Partially drained hubs whose drained/undrained combinations are enumerated exactly; beyond
# this many (never seen in practice) each is approximated by its expected weight.
_EXACT_DRAIN_LIMIT = 14


def target_shares(policy: Policy, linked: Sequence[str]) -> dict[str, float]:
    """The weighted strategy's expected share of each linked hub, drain included."""
    hubs = linked_candidates(linked, policy.hubs)
    shares = dict.fromkeys((hub.name for hub in hubs), 0.0)
    steady = [h for h in hubs if h.settings.drain <= 0]
    partial = [h for h in hubs if 0 < h.settings.drain < 100]
    if len(partial) > _EXACT_DRAIN_LIMIT:
        weights = {h.name: h.weight * (1 - h.settings.drain / 100) for h in steady + partial}
        total = sum(weights.values())
        return {name: weights.get(name, 0.0) / total if total else 0.0 for name in shares}
    # Every combination of drained and undrained partial hubs, with its probability.
    for drained in itertools.product((False, True), repeat=len(partial)):
        probability = 1.0
        usable = list(steady)
        for hub, is_drained in zip(partial, drained, strict=True):
            p = hub.settings.drain / 100
            probability *= p if is_drained else 1 - p
            if not is_drained:
                usable.append(hub)
        total = sum(h.weight for h in usable)
        for hub in usable:
            shares[hub.name] += probability * hub.weight / total
    return shares


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
        targets = target_shares(self.loaded.policy, self.linked)
        settings = self.settings()
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
                    "targetShare": targets[hub],
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
        targets = target_shares(self.loaded.policy, self.linked)
        settings = self.settings()
        lines = [
            f"{self.devices:,} devices (seed {self.seed}) of enrollment "
            f"{json.dumps(self.enrollment)} over {len(self.linked)} linked hubs, "
            f"in {seconds:.1f} s",
            f"policy: {_source(self.loaded)}"
            + (f"; against: {_source(self.against)}" if self.against is not None else ""),
            "",
        ]
        header = ["hub", "weight", "drain", "devices", "share", "target"]
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
                _percent(new[row] / self.devices),
                "" if hub is None else _percent(targets[row]),
            ]
            if old is not None:
                cells += [f"{old[row]:,}", f"{new[row] - old[row]:+,}"]
            table.append(cells)
        total = ["total", "", "", f"{self.devices:,}", _percent(1.0), ""]
        if old is not None:
            total += [f"{self.devices:,}", ""]
        table.append(total)
        lines += aligned(table, left={0})

        if old is not None:
            minimum = minimum_moves(old, new)
            lines += [
                "",
                f"moved: {self.moved:,} devices ({_percent(self.moved / self.devices)}); "
                f"the fewest moves between these counts: {minimum:,} "
                f"({_percent(minimum / self.devices)})",
                "from (rows: --against) to (columns: --policy):",
            ]
            lines += self._matrix_text()
        return "\n".join(lines)

    def _matrix_text(self) -> list[str]:
        seen = self.seen()
        rows = [row for row in self.rows() if row in self.linked or row in seen]
        labels = _short_names(rows)
        table = [["", *(labels[row] for row in rows)]]
        for before in rows:
            cells = [labels[before]]
            for after in rows:
                number = self.outcomes.get((before, after), 0)
                cells.append(f"{number:,}" if number else "-")
            table.append(cells)
        return aligned(table, left={0})


def _short_names(rows: Sequence[str]) -> dict[str, str]:
    """Host names by their first label, where that is unambiguous."""
    first = {row: row.split(".", 1)[0] if not row.startswith("(") else row for row in rows}
    unique = Counter(host_key(label) for label in first.values())
    return {row: label if unique[host_key(label)] == 1 else row for row, label in first.items()}


def _source(loaded: LoadedPolicy) -> str:
    return f"{describe_source(loaded)} (fingerprint {loaded.policy.fingerprint})"


def _percent(share: float) -> str:
    return f"{100 * share:.2f}%"


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
