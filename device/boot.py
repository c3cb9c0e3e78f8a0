"""The boot flow the DPS reprovisioning guidance asks of a device.

1. Boot with a cached assignment: connect to that hub directly; DPS is not called.
2. The hub answers 429: retry it after Retry-After. 5xx or a network failure: retry it with
   exponential back-off and full jitter, the first retry at least 5 s later (`device.backoff`).
3. The hub turns the device away (401/403/404, the hub is gone), or stays unavailable for
   `max_hub_retries` retries: wait a random share of `reregister_spread`, then register through
   DPS again, so a fleet whose hub vanished does not hit DPS all at once.
4. No cache, or an unreadable one: register through DPS at once.
5. Registering sends `region` and, when the previous assignment's payload listed `hubs`, the
   measured `latencyMs` to each, for the allocation's `latency` strategy.
6. On demand (`Device.reprovision()`, or the `reprovision` direct method) the device registers
   through DPS again whatever its cache says.

Source: "Device-side guidance" of the DPS reprovisioning doc (how-to-reprovision).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from typing import Any

from device.backoff import RetryPolicy
from device.cache import AssignmentCache
from device.clock import Clock, SystemClock
from device.latency_probe import LatencyProbe, NoProbe
from device.transport import (
    REPROVISION_METHOD,
    Assignment,
    HubRejected,
    HubSession,
    HubThrottled,
    HubUnavailable,
    RegistrationFailed,
    Transport,
)

logger = logging.getLogger(__name__)

HTTP_ACCEPTED = 202
HTTP_NOT_FOUND = 404


class Device:
    def __init__(
        self,
        transport: Transport,
        cache: AssignmentCache,
        *,
        region: str | None = None,
        payload: Mapping[str, Any] | None = None,
        probe: LatencyProbe | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`payload` holds any further fields the allocation policy reads (`modelId`, ...)."""
        self.transport = transport
        self.cache = cache
        self.region = region
        self.payload = dict(payload or {})
        self.probe = probe or NoProbe()
        self.retry = retry or RetryPolicy()
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.reprovision_requested = threading.Event()
        """Set by the `reprovision` direct method; the application then calls `reprovision()`."""
        self.session: HubSession | None = None
        self.assignment: Assignment | None = None

    def boot(self) -> HubSession:
        """Connect to the hub, going through DPS only when the cached assignment fails."""
        cached = self.cache.load()
        if cached is None:
            logger.info("no usable cached assignment: registering through DPS")
            return self._provision_and_connect(previous=None, wait_first=False)
        if cached.hub_failed:
            logger.info("hub %s failed last time: re-registering", cached.assignment.hub)
            return self._provision_and_connect(previous=cached.assignment, wait_first=True)
        session = self._connect(cached.assignment)
        if session is not None:
            return session
        return self._provision_and_connect(previous=cached.assignment, wait_first=True)

    def reprovision(self) -> HubSession:
        """Register through DPS now, whatever the cache says, and connect to the answer."""
        self.reprovision_requested.clear()
        self._close_session()
        cached = self.cache.load()
        previous = cached.assignment if cached is not None else self.assignment
        logger.info("reprovisioning on demand")
        return self._provision_and_connect(previous=previous, wait_first=False)

    def registration_payload(self, previous: Assignment | None) -> dict[str, Any]:
        """What the device tells the allocation webhook (`deviceRuntimeContext.payload`)."""
        payload = dict(self.payload)
        if self.region is not None:
            payload["region"] = self.region
        hubs = previous.payload.get("hubs") if previous is not None else None
        if isinstance(hubs, list):
            latencies = self.probe.measure(hub for hub in hubs if isinstance(hub, str))
            if latencies:
                payload["latencyMs"] = latencies
        return payload

    def handle_direct_method(self, name: str, request: Any) -> tuple[int, Any]:
        if name != REPROVISION_METHOD:
            return HTTP_NOT_FOUND, {"error": f"unknown method {name!r}"}
        self.reprovision_requested.set()
        return HTTP_ACCEPTED, {"reprovisioning": True}

    def _provision_and_connect(
        self, previous: Assignment | None, *, wait_first: bool
    ) -> HubSession:
        while True:
            if wait_first:
                delay = self.retry.reregister_delay(self.rng)
                logger.info("re-registering through DPS in %.1f s", delay)
                self.clock.sleep(delay)
            assignment = self._register(previous)
            session = self._connect(assignment)
            if session is not None:
                return session
            previous, wait_first = assignment, True

    def _register(self, previous: Assignment | None) -> Assignment:
        payload = self.registration_payload(previous)  # measured once, not on every retry
        failures = 0
        while True:
            try:
                assignment = self.transport.register(payload)
            except RegistrationFailed as error:
                delay = self.retry.server_error_delay(failures, self.rng)
                failures += 1
                logger.warning("DPS registration failed (%s): retrying in %.1f s", error, delay)
                self.clock.sleep(delay)
                continue
            logger.info("DPS assigned %s on %s", assignment.device_id, assignment.hub)
            self.cache.save(assignment)
            return assignment

    def _connect(self, assignment: Assignment) -> HubSession | None:
        """The connected session, or None when the device must go back to DPS."""
        retries = 0
        while True:
            try:
                session = self.transport.connect(assignment)
            except HubRejected as error:
                logger.warning("hub %s turned the device away (%s)", assignment.hub, error)
                self.cache.mark_hub_failed()
                return None
            except (HubThrottled, HubUnavailable) as error:
                if retries >= self.retry.max_hub_retries:
                    logger.warning("hub %s still failing after %d retries", assignment.hub, retries)
                    self.cache.mark_hub_failed()
                    return None
                delay = self._hub_retry_delay(error, retries)
                retries += 1
                logger.info("hub %s: %s; retrying in %.1f s", assignment.hub, error, delay)
                self.clock.sleep(delay)
                continue
            session.on_direct_method(self.handle_direct_method)
            self.session, self.assignment = session, assignment
            logger.info("connected to %s as %s", assignment.hub, assignment.device_id)
            return session

    def _hub_retry_delay(self, error: HubThrottled | HubUnavailable, retry: int) -> float:
        if isinstance(error, HubThrottled):
            return self.retry.throttled_delay(error.retry_after, retry, self.rng)
        return self.retry.server_error_delay(retry, self.rng)

    def _close_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
