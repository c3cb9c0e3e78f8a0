"""The policy of this process, and the last-known-good rule for sources that change.

The policy is loaded on the first request, never at import time, so a broken policy costs a 503
(which DPS retries), not a function host that fails to start. That first load is the only time a
request waits for a source: a source that can change (a file, a blob) is then checked by a
background thread, and requests keep answering from the live version meanwhile.

Last-known-good, after Envoy's xDS, which rejects (NACKs) a bad configuration and keeps serving
the last accepted one: a new version that fails to load never replaces a working one. It is
logged as a WARNING ``policy_rejected`` with the full reason, and :meth:`PolicyCache.status` says
the process is degraded until a good version loads. A store that cannot be reached is stale, not
down: the live version keeps answering (``policy_source_unreachable``). Only a process that never
loaded a good version answers 503; it tries again at most every check interval.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from allocation.errors import PolicyUnavailable, SourceUnreachable, without_secrets
from allocation.limits import POLICY_CHECK_SECONDS
from allocation.sources.base import LoadedPolicy, Source
from allocation.sources.order import check_seconds, select_source

logger = logging.getLogger("allocation")

_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class Refusal:
    """A version that failed to load, or a store that did not answer, as health reports it."""

    reason: str  # a code of allocation.errors.REASONS
    correlation_id: str  # also in the WARNING line that holds the full reason
    since: float  # clock time
    version: str | None = None  # a content hash or ETag, or "deleted"


@dataclass(frozen=True)
class PolicyStatus:
    live: LoadedPolicy | None
    rejected: Refusal | None
    unreachable: Refusal | None
    last_good_check: float | None  # clock time the source last showed the live version
    now: float

    @property
    def degraded(self) -> bool:
        return self.live is not None and (self.rejected or self.unreachable) is not None


class PolicyCache:
    def __init__(
        self,
        select: Callable[[], Source] = select_source,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        """``interval`` overrides the settings' check interval; without ``background`` no
        thread checks the source, and :meth:`check_now` is the only way to look again."""
        self._select = select
        self._interval = interval
        self._clock = clock
        self._background = background
        self._lock = threading.Lock()  # held by first loads, clear, and briefly by checks
        self._checking = threading.Lock()  # one check at a time: a source remembers what it saw
        self._generation = 0  # a check that began before clear() must not write after it
        self._stop = threading.Event()
        self._reset()

    def _reset(self) -> None:
        self._live: LoadedPolicy | None = None
        self._source: Source | None = None
        self._failure: PolicyUnavailable | None = None
        self._failed_at = 0.0
        self._rejected: Refusal | None = None
        self._unreachable: Refusal | None = None
        self._last_good: float | None = None

    # -- the request path

    def get(self) -> LoadedPolicy:
        """The live policy; PolicyUnavailable if none has ever loaded."""
        live = self._live
        if live is not None:
            return live
        with self._lock:
            if self._live is not None:
                return self._live
            now = self._clock()
            if self._failure is not None and now - self._failed_at < self._retry_seconds():
                raise self._failure
            self._source = None
            try:
                self._source = source = self._select()
                loaded = source.load()
            except PolicyUnavailable as error:
                # No line here: the request's own refusal line holds the reason, so that one
                # request stays one line.
                self._failure, self._failed_at = error, now
                raise
            self._live, self._failure, self._last_good = loaded, None, now
            seconds = self._check_seconds(source)
            if seconds is not None:
                _log(
                    logging.INFO,
                    event="policy_loaded",
                    source=source.kind,
                    fingerprint=loaded.policy.fingerprint,
                    previous=None,
                )
                if self._background:
                    self._start_checks(seconds, self._generation)
            return loaded

    @property
    def live(self) -> LoadedPolicy | None:
        return self._live

    @property
    def attempted(self) -> bool:
        """Whether this process has tried to load the policy yet."""
        return self._live is not None or self._failure is not None

    def status(self) -> PolicyStatus:
        return PolicyStatus(
            self._live, self._rejected, self._unreachable, self._last_good, self._clock()
        )

    # -- checks, off the request path

    def check_now(self) -> None:
        """Look at the source once: take a new good version, refuse a bad one."""
        with self._checking:
            self._check()

    def _check(self) -> None:
        with self._lock:
            live, source, generation = self._live, self._source, self._generation
        if live is None or source is None:
            return
        try:
            new = source.check(live)
        except SourceUnreachable as error:
            with self._lock:
                if generation != self._generation:
                    return
                if self._unreachable is None:
                    self._unreachable = Refusal(error.reason, error.correlation_id, self._clock())
                    _log_refusal(error, source.kind, live)
            return
        except PolicyUnavailable as error:
            with self._lock:
                if generation != self._generation:
                    return
                self._unreachable = None
                self._rejected = Refusal(
                    error.reason, error.correlation_id, self._clock(), error.version
                )
                _log_refusal(error, source.kind, live)
            return
        with self._lock:
            if generation != self._generation:
                return
            now = self._clock()
            self._unreachable = None
            if new is None:
                if self._rejected is None:
                    self._last_good = now
                return
            self._live, self._rejected, self._last_good = new, None, now
            if new.policy.fingerprint != live.policy.fingerprint:
                _log(
                    logging.INFO,
                    event="policy_loaded",
                    source=source.kind,
                    fingerprint=new.policy.fingerprint,
                    previous=live.policy.fingerprint,
                )

    def _start_checks(self, seconds: float, generation: int) -> None:
        stop = self._stop

        def run() -> None:
            while not stop.wait(seconds):
                try:
                    self.check_now()
                except Exception:
                    # A defect of ours must not end the checks: the live policy stays.
                    logger.exception(_JSON.encode({"event": "policy_check_failed"}))

        threading.Thread(target=run, name=f"policy-checks-{generation}", daemon=True).start()

    def _check_seconds(self, source: Source) -> float | None:
        if source.check_seconds is None:
            return None
        return self._interval if self._interval is not None else check_seconds(source)

    def _retry_seconds(self) -> float:
        if self._interval is not None:
            return self._interval
        source = self._source
        return (check_seconds(source) if source else None) or POLICY_CHECK_SECONDS

    def clear(self) -> None:
        """Forget the loaded policy and stop checking: the next request loads it again."""
        with self._lock:
            self._stop.set()
            self._stop = threading.Event()
            self._generation += 1
            self._reset()


def _log_refusal(error: PolicyUnavailable, source: str | None, live: LoadedPolicy | None) -> None:
    event = (
        "policy_source_unreachable" if isinstance(error, SourceUnreachable) else "policy_rejected"
    )
    record: dict[str, Any] = {"event": event, "source": source}
    if event == "policy_rejected":
        record["rejected"] = error.version
    record.update(
        live=live.policy.fingerprint if live else None,
        reason=without_secrets(error.message),
        reasonCode=error.reason,
        correlationId=error.correlation_id,
    )
    _log(logging.WARNING, **record)


def _log(level: int, **record: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, _JSON.encode(record))
