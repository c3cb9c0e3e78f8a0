"""``python -m allocation publish FILE``: put a policy live in Blob Storage, safely.

The webhook reads ``ALLOCATION_POLICY_BLOB`` and takes a new version within a check interval,
without a restart. Publishing validates FILE exactly as the webhook will (a policy that fails
there would only be refused, but an operator should hear it now), shows the live and the new
fingerprints, and with ``--simulate N`` how many of N simulated devices would move, with
simulate's own comparison. The upload is conditional on the ETag read (``If-Match``, or
``If-None-Match: *`` when there is no blob yet): if another operator published in between,
the upload is refused and nothing changes.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from allocation.cli import EXIT_FAILED, EXIT_OK, CommandError
from allocation.cli.settings import apply_local_settings
from allocation.cli.simulate import (
    DEFAULT_ENROLLMENT,
    Simulation,
    _positive,
    allocate,
    device_template,
    minimum_moves,
    registration_ids,
)
from allocation.cli.simulate_inputs import linked_hubs
from allocation.errors import PolicyError
from allocation.policy import Policy, parse_policy
from allocation.sources import POLICY_BLOB_SETTING, LoadedPolicy
from allocation.sources.blob import REQUEST_OPTIONS, split_blob_name
from allocation.storage.connection import (
    STORAGE_SETTING,
    StorageClients,
    StorageNotConfigured,
    connection_from_settings,
)

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

EXIT_LOST_RACE: Final = 3


def register(subcommands: Any) -> None:
    command: argparse.ArgumentParser = subcommands.add_parser(
        "publish",
        help="validate a policy and put it live in Blob Storage",
        description=(
            "Validate FILE as the webhook would, read the live policy blob and its ETag, show "
            "both fingerprints (and with --simulate how many devices would move), then upload "
            "FILE only if the live blob is still the one read: two operators cannot overwrite "
            f"each other's change. The blob is --blob, else {POLICY_BLOB_SETTING}; the storage "
            f"connection is {STORAGE_SETTING} (or its __blobServiceUri form), as for the "
            "webhook, after local.settings.json."
        ),
        epilog=(
            "exit codes: 0 published, unchanged, or checked (--dry-run); 1 FILE is not a valid "
            "policy; 2 usage error, FILE cannot be read, or the storage is not configured or "
            "cannot be reached; 3 the live blob changed since it was read (someone else "
            "published): nothing was changed, run publish again"
        ),
    )
    command.add_argument("file", metavar="FILE", help="the policy file (JSON)")
    command.add_argument(
        "--blob",
        metavar="CONTAINER/PATH",
        help=f"the policy blob (default: {POLICY_BLOB_SETTING})",
    )
    command.add_argument(
        "--dry-run", action="store_true", help="validate and compare; upload nothing"
    )
    command.add_argument(
        "--simulate",
        metavar="N",
        type=_positive,
        help="allocate N simulated devices under both policies and count those that move",
    )
    command.add_argument(
        "--hubs",
        metavar="H1,H2,...",
        help="the linked hubs for --simulate (default: the hubs the policies name)",
    )
    command.set_defaults(run=run)


@dataclass(frozen=True)
class Live:
    """The live blob as read: its ETag (None: no blob yet) and its policy (None: invalid)."""

    etag: str | None
    policy: Policy | None = None
    problem: str | None = None


class LostRace(Exception):
    """The blob changed after it was read: the conditional upload was refused."""


def run(args: argparse.Namespace) -> int:
    apply_local_settings()
    data = _read_bytes(Path(args.file))
    new = validated(data, args.file)
    blob = policy_blob(args.blob)
    live = read_live(blob)

    where = f"{blob.container_name}/{blob.blob_name}"
    if live.etag is None:
        print(f"live: none ({where} does not exist yet)")
    elif live.policy is None:
        print(f"live: {where} (ETag {live.etag}) is not a valid policy: {live.problem}")
    else:
        print(f"live: {where} fingerprint {live.policy.fingerprint} (ETag {live.etag})")
    print(f"new:  {args.file} fingerprint {new.fingerprint}")

    if args.simulate is not None:
        print(simulated_moves(new, live.policy, args.simulate, args.hubs))
    if live.policy is not None and live.policy.fingerprint == new.fingerprint:
        print("unchanged: the live policy already has this fingerprint; nothing uploaded")
        return EXIT_OK
    if args.dry_run:
        print("dry run: nothing uploaded")
        return EXIT_OK
    try:
        etag = upload(blob, data, live)
    except LostRace as error:
        raise CommandError(str(error), EXIT_LOST_RACE) from None
    print(f"published: {where} fingerprint {new.fingerprint} (ETag {etag})")
    return EXIT_OK


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read the policy file {path}: {error}") from None


def validated(data: bytes, name: str) -> Policy:
    """The policy in ``data``, read exactly as the webhook reads a policy blob (UTF-8, with or
    without a byte order mark, then parse_policy); every problem on its own line, exit 1."""
    try:
        return parse_policy(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise CommandError(
            f"invalid policy {name}: not UTF-8 text ({error})", EXIT_FAILED
        ) from None
    except PolicyError as error:
        lines = "\n".join(f"  {problem}" for problem in error.problems)
        raise CommandError(f"invalid policy {name}:\n{lines}", EXIT_FAILED) from None


def policy_blob(option: str | None) -> BlobClient:
    name = option or os.environ.get(POLICY_BLOB_SETTING, "").strip()
    if not name:
        raise CommandError(f"which blob? pass --blob CONTAINER/PATH or set {POLICY_BLOB_SETTING}")
    try:
        container, path = split_blob_name(name)
    except ValueError as error:
        raise CommandError(str(error)) from None
    try:
        service = StorageClients(connection_from_settings()).blob()
    except StorageNotConfigured as error:
        raise CommandError(str(error)) from None
    return service.get_blob_client(container, path)


def read_live(blob: BlobClient) -> Live:
    from azure.core.exceptions import AzureError, ResourceNotFoundError  # noqa: PLC0415

    try:
        downloader = blob.download_blob(**REQUEST_OPTIONS)
        data = downloader.readall()
    except ResourceNotFoundError:
        return Live(None)
    except (AzureError, OSError, ValueError) as error:
        raise CommandError(f"cannot read the live policy blob: {_first_line(error)}") from None
    etag: str = downloader.properties.etag
    try:
        return Live(etag, parse_policy(data.decode("utf-8-sig")))
    except (PolicyError, UnicodeDecodeError) as error:
        return Live(etag, None, _first_line(error))


def upload(blob: BlobClient, data: bytes, live: Live) -> str:
    """Upload ``data`` if the blob is still as read; its new ETag. LostRace if it is not."""
    from azure.core import MatchConditions  # noqa: PLC0415
    from azure.core.exceptions import (  # noqa: PLC0415
        AzureError,
        ResourceExistsError,
        ResourceModifiedError,
    )
    from azure.storage.blob import ContentSettings  # noqa: PLC0415

    conditions: dict[str, Any]
    if live.etag is None:
        conditions = {"overwrite": False}  # If-None-Match: *
    else:
        conditions = {
            "overwrite": True,
            "etag": live.etag,
            "match_condition": MatchConditions.IfNotModified,  # If-Match
        }
    try:
        result = blob.upload_blob(
            data,
            content_settings=ContentSettings(content_type="application/json"),
            **conditions,
            **REQUEST_OPTIONS,
        )
    except (ResourceModifiedError, ResourceExistsError):
        read = "no blob" if live.etag is None else f"ETag {live.etag}"
        raise LostRace(
            f"the live policy changed since it was read ({read}): someone else published. "
            "Nothing was changed; run publish again to compare with the new live policy"
        ) from None
    except AzureError as error:
        raise CommandError(f"cannot upload the policy: {_first_line(error)}") from None
    etag: str = result["etag"]
    return etag


def simulated_moves(new: Policy, old: Policy | None, devices: int, hubs: str | None) -> str:
    """How many of ``devices`` simulated devices the new policy moves, against the fewest that
    must move: simulate's own comparison (``simulate --against``), on the same seeded devices."""
    if old is None:
        return "simulate: no valid live policy to compare with"
    template = device_template(DEFAULT_ENROLLMENT, linked_hubs(hubs, [new, old]), None)
    outcomes, odds = allocate(new, template, registration_ids(0, devices), old=old)
    simulation = Simulation(
        devices=devices,
        seed=0,
        enrollment=DEFAULT_ENROLLMENT,
        payload=None,
        linked=template.linked_hubs,
        loaded=LoadedPolicy(new, "file"),
        against=LoadedPolicy(old, "blob"),
        outcomes=outcomes,
        expected=odds.expected(devices),
    )
    moved = simulation.moved
    minimum = minimum_moves(simulation.counts(0), simulation.counts(1))
    return (
        f"simulate: {moved} of {devices} devices would move "
        f"({100 * moved / devices:.1f}%; minimum {minimum})"
    )


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
