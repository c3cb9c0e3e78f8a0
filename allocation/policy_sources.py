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
from allocation.limits import POLICY_RETRY_SECONDS
from allocation.policy import Policy, default_policy, parse_policy

POLICY_SETTING: Final = "ALLOCATION_POLICY"
POLICY_FILE_SETTING: Final = "ALLOCATION_POLICY_FILE"

# function_app.py sits beside the allocation package: that directory is the function app root.
APP_ROOT: Final = Path(__file__).resolve().parent.parent

SourceKind = Literal["setting", "file", "default"]


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    source: SourceKind
    location: str | None  # the file's path for a file source; never the policy text


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
        try:
            file_text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise PolicyUnavailable(
                f"cannot read the policy file {path} ({POLICY_FILE_SETTING}): {reason}"
            ) from None
        return LoadedPolicy(_parse(file_text, f"policy file {path}"), "file", str(path))
    return LoadedPolicy(default_policy(), "default", None)


def _parse(text: str, origin: str) -> Policy:
    try:
        return parse_policy(text)
    except PolicyError as error:
        raise PolicyUnavailable(f"invalid policy in {origin}: {error}") from None


class PolicyCache:
    """The policy of this process: loaded once; a failed load is tried again at most every
    few seconds, so fixing a file doesn't need a restart and a broken one costs no I/O per
    request."""

    def __init__(
        self,
        loader: Callable[[], LoadedPolicy] = load_policy,
        retry_seconds: float = POLICY_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: LoadedPolicy | None = None
        self._failure: str | None = None
        self._failed_at = 0.0

    def get(self) -> LoadedPolicy:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            if self._failure is not None and self._clock() - self._failed_at < self._retry_seconds:
                raise PolicyUnavailable(self._failure)
            try:
                self._loaded = self._loader()
            except PolicyUnavailable as error:
                self._failure, self._failed_at = error.message, self._clock()
                raise
            self._failure = None
            return self._loaded

    @property
    def attempted(self) -> bool:
        """Whether this process has tried to load the policy yet."""
        return self._loaded is not None or self._failure is not None

    def clear(self) -> None:
        """Forget the loaded policy: the next request loads it again."""
        with self._lock:
            self._loaded = None
            self._failure = None


policy_cache: Final = PolicyCache()
