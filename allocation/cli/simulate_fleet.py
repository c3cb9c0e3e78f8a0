"""``simulate --from OLD_POLICY`` / ``--fleet devices.csv``: a fleet re-registering, step by step.

The fleet is N seeded devices placed by a starting policy (each a first registration), or the
devices of a CSV file on their current hubs. Each step deploys a policy (``--policy``, or each
of ``--phases`` in turn) and the fleet's re-registering share registers again from its current
hub, with the enrollment's reprovision policy. See allocation.simulation for the parts.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from allocation.cli import EXIT_OK, CommandError
from allocation.cli.settings import offline_lookups, read_policy
from allocation.cli.simulate_inputs import PROGRESS_EVERY, Progress, linked_hubs, parse_payload
from allocation.cli.validate import describe_source, source_document
from allocation.errors import AllocationError
from allocation.simulation import html
from allocation.simulation.fleet import FleetDevice, FleetError, read_csv, seeded_ids
from allocation.simulation.quota import ReferenceClient
from allocation.simulation.report import REPROVISION_NAMES, document, text
from allocation.simulation.reregister import Registrar, check_template
from allocation.simulation.walk import Recorder, Walk
from allocation.sources import LoadedPolicy


def run_fleet(args: argparse.Namespace) -> int:
    _check_options(args)
    steps = [
        offline_lookups(read_policy(name), args.lookup, strict=False)
        for name in (phase_files(args.phases) if args.phases else [args.policy])
    ]
    starting = (
        offline_lookups(read_policy(args.from_policy), args.lookup, strict=False)
        if args.from_policy is not None
        else None
    )
    every = [*([] if starting is None else [starting]), *steps]
    linked = linked_hubs(args.hubs, [loaded.policy for loaded in every])
    payload = parse_payload(args.payload)
    if starting is not None:
        try:
            check_template(args.enrollment, linked, payload)
        except AllocationError as error:
            raise CommandError(f"the simulated devices' request is not valid: {error}") from None

    reference = ReferenceClient() if args.device_behaviour == "reference" else None
    registrars = [Registrar(loaded.policy, linked, args.reprovision) for loaded in steps]
    started = time.perf_counter()
    with _Outcomes(args.outcomes) as outcomes:
        walk = Walk(registrars, linked, args.share, reference, outcomes.record)
        if starting is None:
            fleet: dict[str, Any] = {"file": args.fleet}
            _walk_csv(walk, Path(args.fleet))
        else:
            fleet = {
                "seed": args.seed,
                "enrollment": args.enrollment,
                "payload": payload,
                "from": source_document(starting),
            }
            first = Registrar(starting.policy, linked, args.reprovision)
            _walk_seeded(
                walk,
                first,
                seed=args.seed,
                count=args.devices,
                enrollment=args.enrollment,
                payload=payload,
            )
    seconds = time.perf_counter() - started

    report = document(
        walk,
        fleet=fleet,
        policies=[(loaded.policy, source_document(loaded)) for loaded in steps],
        linked_hubs=linked,
        reprovision=args.reprovision,
        units=args.dps_units,
    )
    labels = [_label(loaded) for loaded in steps]
    if args.html is not None:
        _write(args.html, html.page(report, labels))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(text(report, labels, _header(report, starting, seconds)))
    return EXIT_OK


def _check_options(args: argparse.Namespace) -> None:
    if args.against is not None:
        raise CommandError("--against compares first registrations; with a fleet use --phases")
    if (args.from_policy is None) == (args.fleet is None):
        raise CommandError(
            "a fleet is either --from OLD_POLICY with --devices N, or --fleet devices.csv"
        )
    if args.fleet is not None and (args.devices is not None or args.payload is not None):
        raise CommandError("--fleet lists the devices and their payloads: drop --devices/--payload")
    if args.from_policy is not None and args.devices is None:
        raise CommandError("--from OLD_POLICY needs --devices N")
    if args.phases is not None and args.policy is not None:
        raise CommandError("give either --policy (one step) or --phases, not both")


def _walk_csv(walk: Walk, path: Path) -> None:
    try:
        for device in read_csv(path):
            walk.device(device, device.current_hub, exact=True)
    except FleetError as error:
        raise CommandError(str(error)) from None
    if not walk.devices:
        raise CommandError(f"{path} lists no device")


def _walk_seeded(
    walk: Walk, first: Registrar, *, seed: int, count: int, enrollment: str, payload: Any
) -> None:
    progress = Progress(count, sys.stderr) if sys.stderr.isatty() else None
    try:
        for index, registration_id in enumerate(seeded_ids(seed, count)):
            hub = first.seeded(registration_id, enrollment, None, payload).hub
            device = FleetDevice(registration_id, enrollment, None, payload)
            walk.device(device, hub, exact=False)
            if progress is not None and index % PROGRESS_EVERY == 0:
                progress.show(index)
    finally:
        if progress is not None:
            progress.close()


class _Outcomes:
    """``--outcomes FILE.csv``: one line per registration, written as the walk goes."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.file: IO[str] | None = None
        self.record: Recorder | None = None

    def __enter__(self) -> _Outcomes:
        if self.name is None:
            return self
        try:
            self.file = open(self.name, "w", newline="", encoding="utf-8")
        except OSError as error:
            raise CommandError(f"cannot write {self.name}: {error.strerror or error}") from None
        writer = csv.writer(self.file, lineterminator="\n")
        writer.writerow(["registrationId", "step", "before", "after", "outcome"])

        def record(rid: str, step: int, before: str | None, after: str | None, code: str) -> None:
            writer.writerow([rid, step + 1, before or "", after or "", code])

        self.record = record
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


def phase_files(names: Sequence[str]) -> list[str]:
    """The phases' policy files: files as given, a directory's *.json in natural order."""
    files: list[str] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found = sorted(path.glob("*.json"), key=_natural)
            if not found:
                raise CommandError(f"--phases: {name} holds no *.json policy")
            files += [str(file) for file in found]
        else:
            files.append(name)
    return files


def _natural(path: Path) -> list[Any]:
    # drain-5 before drain-25 before drain-100: numbers compared as numbers.
    return [
        (int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", path.name)
    ]


def _write(name: str, content: str) -> None:
    try:
        Path(name).write_text(content, encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot write {name}: {error.strerror or error}") from None


def _label(loaded: LoadedPolicy) -> str:
    return f"{describe_source(loaded)} (fingerprint {loaded.policy.fingerprint})"


def _header(report: dict[str, Any], starting: LoadedPolicy | None, seconds: float) -> list[str]:
    fleet = report["fleet"]
    if starting is None:
        origin = f"from {fleet['file']}"
    else:
        origin = (
            f"seeded ({fleet['seed']}), enrollment {json.dumps(fleet['enrollment'])}, first "
            f"placed by {_label(starting)}"
        )
    share = report["share"]
    return [
        f"{report['devices']:,} devices {origin}, in {seconds:.1f} s",
        f"re-registering under {REPROVISION_NAMES[report['reprovision']]}: "
        + ("every device" if share >= 100 else f"a stable {share:g}% of the fleet")
        + f" at each step, over {len(report['linkedHubs'])} linked hubs",
    ]
