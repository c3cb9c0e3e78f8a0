"""What the command-line tools share: ``local.settings.json`` and the ``--policy`` option."""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Final

from allocation.cli import EXIT_FAILED, CommandError
from allocation.errors import PolicyError, PolicyUnavailable
from allocation.policy import parse_policy
from allocation.sources import APP_ROOT, LoadedPolicy, load_policy

LOCAL_SETTINGS: Final = APP_ROOT / "local.settings.json"


def apply_local_settings(
    path: Path = LOCAL_SETTINGS, environ: MutableMapping[str, str] | None = None
) -> list[str]:
    """Copy ``Values`` of local.settings.json into the environment, as ``func start`` does:
    a variable already set in the environment wins. Returns the names it set."""
    env = os.environ if environ is None else environ
    if not path.is_file():
        return []
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot read {path}: {error}") from None
    values = document.get("Values", {}) if isinstance(document, dict) else {}
    if not isinstance(values, dict):
        raise CommandError(f"{path}: 'Values' must be an object of settings")
    applied = []
    for name, value in values.items():
        if name in env or name.startswith("_comment") or not isinstance(value, (str, int, bool)):
            continue
        env[name] = str(value).lower() if isinstance(value, bool) else str(value)
        applied.append(name)
    return applied


def read_policy(path: str | None) -> LoadedPolicy:
    """The policy in ``path``, or (without one) the policy the webhook would load here.

    An invalid policy raises CommandError with exit code 1 and every problem on its own line.
    """
    if path is None:
        try:
            return load_policy()
        except PolicyUnavailable as error:
            raise CommandError(error.message, EXIT_FAILED) from None
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read the policy file {file}: {error}") from None
    try:
        return LoadedPolicy(parse_policy(text), "file", str(file))
    except PolicyError as error:
        lines = "\n".join(f"  {problem}" for problem in error.problems)
        raise CommandError(f"invalid policy {file}:\n{lines}", EXIT_FAILED) from None
