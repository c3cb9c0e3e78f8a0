"""Where the policy comes from, and the per-process cache of the loaded policy.

In order (policy.md, "Where the policy comes from"): the app setting ``ALLOCATION_POLICY`` (the
JSON text), else ``ALLOCATION_POLICY_FILE`` (a path; relative paths are relative to the function
app root), else the built-in default. The policy is loaded on first use, never at import time,
so a broken policy costs a 503 (which DPS retries), not a function host that fails to start.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from allocation.errors import PolicyError, PolicyUnavailable
from allocation.limits import POLICY_CHECK_SECONDS
from allocation.policy import Policy, default_policy, parse_policy

POLICY_SETTING: Final = "ALLOCATION_POLICY"
POLICY_FILE_SETTING: Final = "ALLOCATION_POLICY_FILE"

# function_app.py sits beside the allocation package: that directory is the function app root.
APP_ROOT: Final = Path(__file__).resolve().parent.parent

SourceKind = Literal["setting", "file", "default"]


FileSignature = tuple[int, int, int]


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    source: SourceKind
    location: str | None = None  # the file's path for a file source; never the policy text
    # The file as it was just before it was read: a different one means the file changed.
    signature: FileSignature | None = None


def file_signature(path: str | Path) -> FileSignature | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size, status.st_ino)


def load_policy(environ: Mapping[str, str] | None = None) -> LoadedPolicy:
    """Read the policy from the environment; raises PolicyUnavailable saying why it can't."""
    env = os.environ if environ is None else environ
    text = env.get(POLICY_SETTING, "").strip()
    if text:
        return LoadedPolicy(_parse(text, f"app setting {POLICY_SETTING}"), "setting", None)
    file_name = env.get(POLICY_FILE_SETTING, "").strip()
    if file_name:
        path = Path(file_name)
        if not path.is_absolute():
            path = APP_ROOT / path
        signature = file_signature(path)
        try:
            file_text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise PolicyUnavailable(
                f"cannot read the policy file {path} ({POLICY_FILE_SETTING}): {reason}"
            ) from None
        policy = _parse(file_text, f"policy file {path}")
        return LoadedPolicy(policy, "file", str(path), signature)
    return LoadedPolicy(default_policy(), "default", None)


def _parse(text: str, origin: str) -> Policy:
    try:
        return parse_policy(text)
    except PolicyError as error:
        raise PolicyUnavailable(f"invalid policy in {origin}: {error}") from None


class PolicyCache:
    """The policy of this process.

    Loaded on first use. A policy from a file is checked for changes at most every
    ``interval`` seconds (a stat, never a read per request): a changed file is loaded again, and
    a deleted, unreadable, half-written or invalid one answers 503 until it is valid again, with
    no restart. A failed load is tried again at most every ``interval`` seconds. A policy from
    the app setting or the built-in default cannot change while the process runs (in Azure,
    changing an app setting restarts the function app).
    """

    def __init__(
        self,
        loader: Callable[[], LoadedPolicy] = load_policy,
        interval: float = POLICY_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: LoadedPolicy | None = None
        self._checked_at = 0.0
        self._failure: str | None = None
        self._failed_at = 0.0

    def get(self) -> LoadedPolicy:
        loaded = self._loaded
        if loaded is not None and self._fresh(loaded, self._clock()):
            return loaded
        with self._lock:
            now = self._clock()
            loaded = self._loaded
            if loaded is not None:
                if self._fresh(loaded, now):
                    return loaded
                if file_signature(loaded.location or "") == loaded.signature:
                    self._checked_at = now
                    return loaded
                self._loaded = None
            elif self._failure is not None and now - self._failed_at < self._interval:
                raise PolicyUnavailable(self._failure)
            try:
                loaded = self._loader()
            except PolicyUnavailable as error:
                self._failure, self._failed_at = error.message, now
                raise
            self._loaded, self._checked_at, self._failure = loaded, now, None
            return loaded

    def current(self) -> LoadedPolicy | None:
        """The loaded policy if it can be used without a load or a check of its file, else None:
        never waits, so an event loop may call it."""
        loaded = self._loaded
        if loaded is not None and self._fresh(loaded, self._clock()):
            return loaded
        return None

    def _fresh(self, loaded: LoadedPolicy, now: float) -> bool:
        return loaded.location is None or now - self._checked_at < self._interval

    @property
    def attempted(self) -> bool:
        """Whether this process has tried to load the policy yet."""
        return self._loaded is not None or self._failure is not None

    def clear(self) -> None:
        """Forget the loaded policy: the next request loads it again."""
        with self._lock:
            self._loaded = None
            self._failure = None


CHECK_SETTING: Final = "ALLOCATION_POLICY_CHECK_SECONDS"


def _check_interval() -> float:
    try:
        seconds = float(os.environ.get(CHECK_SETTING, POLICY_CHECK_SECONDS))
    except ValueError:
        return POLICY_CHECK_SECONDS
    return seconds if 0 < seconds < 3600 else POLICY_CHECK_SECONDS


policy_cache: Final = PolicyCache(interval=_check_interval())
