"""Device inventory lookups: a row of a table that the policy reads as ``lookup.<name>`` fields.

A policy's ``lookups`` section names each lookup, its table, and the templates of the row's
partition and row keys, e.g. ``{"inventory": {"table": "devices", "partitionKey":
"{enrollmentId}", "rowKey": "{registrationId}"}}``. A condition or template then reads
``lookup.inventory.customer`` (a property of the row) or ``lookup.inventory`` (the row: absent
when the table has none for this device).

When a lookup runs: only when the path being evaluated reads one of its fields, and at most once
per request (:class:`LookupSession` keeps the row for the rest of the request). Rows are kept by
a bounded LRU cache per lookup: found rows for ``cacheSeconds``, missing ones for
``missingCacheSeconds``; concurrent requests for the same key wait on one call to the store
(single flight), so a cold cache under load costs the store one read per device, not one per
request.

A store that fails (unreachable, too slow, throttling) follows ``onError``: ``unavailable``
answers 503 ``lookup_unavailable`` with Retry-After, so DPS retries; ``absent`` goes on as if the
table had no row. Failures are never cached: the next request asks the store again.

Calls to the store are synchronous and bounded by ``timeoutMs``; nothing here needs an event
loop, so a host runs the core on a worker thread.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypedDict

from pydantic_core import core_schema as cs

from allocation.context import LOOKUP_PREFIX, RequestContext
from allocation.errors import LookupUnavailable, PolicyError, Problem
from allocation.options import options_validator, parse_options
from allocation.paths import JsonPath, format_path
from allocation.templates import REQUEST_FIELDS, Field, TemplateString, parse_template

Row = Mapping[str, Any]
Outcome = Literal["hit", "miss", "cached_hit", "cached_miss", "error"]
OnError = Literal["unavailable", "absent"]

# Rows kept per lookup. An entry is a few hundred bytes: 100,000 devices stay under ~50 MB.
CACHE_CAPACITY: Final = 100_000

# Azure Table keys (learn.microsoft.com, "Understanding the Table service data model"): at most
# 1 KiB, without / \ # ? or control characters. No row can have any other key, so a request
# whose key breaks these rules is a miss without asking the store.
_FORBIDDEN_KEY: Final = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
MAX_KEY_BYTES: Final = 1024

# Table names: 3-63 alphanumeric characters, starting with a letter.
TABLE_NAME_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9]{2,62}$"


class LookupDocument(TypedDict):
    table: str
    partitionKey: str
    rowKey: str
    cacheSeconds: int
    missingCacheSeconds: int
    timeoutMs: int
    onError: str


_SECONDS: Final = cs.int_schema(strict=True, ge=0, le=86_400)

LOOKUP: Final = options_validator(
    LookupDocument,
    {
        "table": cs.str_schema(strict=True, pattern=TABLE_NAME_PATTERN),
        "partitionKey": cs.with_default_schema(
            cs.str_schema(strict=True), default="{enrollmentId}"
        ),
        "rowKey": cs.with_default_schema(cs.str_schema(strict=True), default="{registrationId}"),
        "cacheSeconds": cs.with_default_schema(_SECONDS, default=300),
        "missingCacheSeconds": cs.with_default_schema(_SECONDS, default=30),
        "timeoutMs": cs.with_default_schema(
            cs.int_schema(strict=True, ge=1, le=10_000), default=1500
        ),
        "onError": cs.with_default_schema(
            cs.literal_schema(["unavailable", "absent"]), default="unavailable"
        ),
    },
)


@dataclass(frozen=True)
class LookupSpec:
    """One lookup of the policy, compiled."""

    name: str
    table: str
    partition_key: str | TemplateString
    row_key: str | TemplateString
    cache_seconds: float
    missing_cache_seconds: float
    timeout: float  # seconds
    on_error: OnError

    def keys(self, context: RequestContext) -> tuple[str, str]:
        """The partition and row keys of this request's row."""
        return _render(self.partition_key, context), _render(self.row_key, context)


def _render(template: str | TemplateString, context: RequestContext) -> str:
    return template if isinstance(template, str) else template.render_text(context.value)


def valid_key(key: str) -> bool:
    if _FORBIDDEN_KEY.search(key) is not None:
        return False
    # At most 4 bytes a character in UTF-8: a short key needs no encoding to be measured.
    return len(key) <= MAX_KEY_BYTES // 4 or len(key.encode("utf-8", "replace")) <= MAX_KEY_BYTES


class RowStore(Protocol):
    """Where a lookup's rows live: Azure Table Storage (allocation.storage.tables), or a CSV
    file for offline explanations. ``get`` raises on any failure to answer."""

    def get(self, table: str, partition_key: str, row_key: str, timeout: float) -> Row | None: ...


# -- the cache ---------------------------------------------------------------------------------


class StoreFailed(Exception):
    """The store did not answer; the reason is safe to log (no keys, no query strings)."""


class _Flight:
    __slots__ = ("done", "failure", "row")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.row: Row | None = None
        self.failure: str | None = None


class RowCache:
    """A bounded LRU of rows and misses, each kept until it expires, with one call to the store
    in flight per key. ``clock`` is monotonic seconds; tests pass their own."""

    def __init__(
        self, capacity: int = CACHE_CAPACITY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[float, Row | None]] = OrderedDict()
        self._flights: dict[tuple[str, str], _Flight] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self,
        key: tuple[str, str],
        fetch: Callable[[], Row | None],
        hit_seconds: float,
        miss_seconds: float,
        wait: float,
    ) -> tuple[Row | None, Outcome]:
        """The row for ``key``: from the cache, else from ``fetch`` (called by one thread while
        the others asking for the same key wait for its answer). Raises StoreFailed."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                expires, row = entry
                if expires > self.clock():
                    self._entries.move_to_end(key)
                    return row, "cached_miss" if row is None else "cached_hit"
                del self._entries[key]
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leading:
            if not flight.done.wait(wait):
                raise StoreFailed(f"no answer within {wait:g} s (waiting on another request)")
            if flight.failure is not None:
                raise StoreFailed(flight.failure)
            return flight.row, "miss" if flight.row is None else "hit"
        try:
            row = fetch()
        except Exception as error:
            flight.failure = _reason(error)
            raise StoreFailed(flight.failure) from error
        else:
            flight.row = row
            keep = miss_seconds if row is None else hit_seconds
            with self._lock:
                if keep > 0:
                    self._entries[key] = (self.clock() + keep, row)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self.capacity:
                        self._entries.popitem(last=False)
            return row, "miss" if row is None else "hit"
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()


def _reason(error: Exception) -> str:
    # The SDK's messages may quote a URL; a SAS token would sit in its query string.
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = re.sub(r"\?\S*", "?...", text)[:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# -- the policy's lookups, and one request's -----------------------------------------------------


class Lookups:
    """The lookups of one loaded policy: their specs, caches and stores. The stores default to
    Azure Table Storage on the ``ALLOCATION_STORAGE`` connection, made on first use."""

    def __init__(
        self,
        specs: Mapping[str, LookupSpec],
        stores: Mapping[str, RowStore] | None = None,
        clock: Callable[[], float] = time.monotonic,
        capacity: int = CACHE_CAPACITY,
    ) -> None:
        self.specs = dict(specs)
        self._stores = dict(stores or {})
        self._clock = clock
        self._capacity = capacity
        self._lock = threading.Lock()
        self._table_store: RowStore | None = None
        self.caches = {name: RowCache(capacity, clock) for name in self.specs}

    def with_stores(
        self, stores: Mapping[str, RowStore], clock: Callable[[], float] | None = None
    ) -> Lookups:
        """The same lookups reading some tables elsewhere (a CSV file), with empty caches."""
        return Lookups(self.specs, {**self._stores, **stores}, clock or self._clock, self._capacity)

    def store(self, name: str) -> RowStore:
        store = self._stores.get(name)
        if store is not None:
            return store
        with self._lock:
            if self._table_store is None:
                # Only a policy with lookups gets here: the storage SDK stays out of the
                # default policy's cold start.
                from allocation.storage.tables import TableRowStore  # noqa: PLC0415

                self._table_store = TableRowStore()
            return self._table_store

    def session(self) -> LookupSession:
        return LookupSession(self)

    def attach(self, context: RequestContext) -> RequestContext:
        """The context with a fresh session of these lookups."""
        # RequestContext(*fields, session) rather than _replace(): a third of the cost.
        return RequestContext(*context[:-1], LookupSession(self))

    def fetch(self, name: str, context: RequestContext) -> tuple[Row | None, Outcome]:
        """This request's row of lookup ``name``; raises LookupUnavailable under
        ``onError: unavailable`` when the store fails."""
        spec = self.specs[name]
        key = spec.keys(context)
        if not (valid_key(key[0]) and valid_key(key[1])):
            return None, "miss"
        try:
            return self.caches[name].get(
                key,
                # The store is found only on a cache miss: a hit takes no lock but the cache's.
                lambda: self.store(name).get(spec.table, key[0], key[1], spec.timeout),
                spec.cache_seconds,
                spec.missing_cache_seconds,
                # A waiter gives the leader its call's connect and read timeouts, and a margin.
                2 * spec.timeout + 1,
            )
        except StoreFailed as failure:
            if spec.on_error == "absent":
                return None, "error"
            raise LookupUnavailable(name, f"table '{spec.table}': {failure}") from None


class LookupSession:
    """One request's lookups: each runs the first time a field names it, then is remembered."""

    __slots__ = ("_lookups", "outcomes", "rows")

    def __init__(self, lookups: Lookups) -> None:
        self._lookups = lookups
        self.rows: dict[str, Row | None] = {}
        self.outcomes: dict[str, Outcome] = {}

    def row(self, name: str, context: RequestContext) -> Row | None:
        if name in self.rows:
            return self.rows[name]
        try:
            row, outcome = self._lookups.fetch(name, context)
        except LookupUnavailable:
            self.outcomes[name] = "error"
            raise
        self.rows[name] = row
        self.outcomes[name] = outcome
        return row


# Lookups.attach builds the context with its session as the last field.
assert RequestContext._fields[-1] == "lookups"


def with_lookups(lookups: Lookups | None, context: RequestContext) -> RequestContext:
    """The context with a fresh session of the policy's lookups (unchanged without any)."""
    return context if lookups is None else lookups.attach(context)


# -- compiling the ``lookups`` section -------------------------------------------------------------

_NAME_RULE: Final = "a lookup name is an identifier such as 'inventory' (letters, digits, _)"


def _is_name(name: str) -> bool:
    return name.isascii() and name.isidentifier()


def compile_lookups(raw: Any, at: JsonPath = ("lookups",)) -> Lookups | None:
    """The ``lookups`` section compiled; None for an empty one. Raises PolicyError."""
    if not isinstance(raw, dict):
        raise PolicyError([Problem(format_path(at), "must be an object: lookup name -> lookup")])
    problems: list[Problem] = []
    specs: dict[str, LookupSpec] = {}
    for name, options in raw.items():
        here: JsonPath = (*at, name)
        if not _is_name(name):
            problems.append(Problem(format_path(here), _NAME_RULE))
            continue
        if not isinstance(options, dict):
            problems.append(
                Problem(
                    format_path(here),
                    'must be an object, e.g. {"table": "devices", "rowKey": "{registrationId}"}',
                )
            )
            continue
        try:
            document: LookupDocument = parse_options(LOOKUP, options, here)
        except PolicyError as error:
            problems.extend(error.problems)
            continue
        keys = []
        for option, text in (
            ("partitionKey", document["partitionKey"]),
            ("rowKey", document["rowKey"]),
        ):
            try:
                keys.append(_key_template(text, (*here, option)))
            except PolicyError as error:
                problems.extend(error.problems)
        if len(keys) == 2:
            specs[name] = LookupSpec(
                name=name,
                table=document["table"],
                partition_key=keys[0],
                row_key=keys[1],
                cache_seconds=document["cacheSeconds"],
                missing_cache_seconds=document["missingCacheSeconds"],
                timeout=document["timeoutMs"] / 1000,
                on_error="absent" if document["onError"] == "absent" else "unavailable",
            )
    if problems:
        raise PolicyError(problems)
    return Lookups(specs) if specs else None


def _key_template(text: str, at: JsonPath) -> str | TemplateString:
    # A key comes from the request alone: a key read from another lookup would chain store
    # calls on the request path.
    template = parse_template(text, at, REQUEST_FIELDS)
    if isinstance(template, TemplateString) and any(
        isinstance(part, Field) and part.name.startswith(LOOKUP_PREFIX) for part in template.parts
    ):
        raise PolicyError(
            [Problem(format_path(at), "a key is made of request fields, not of another lookup")]
        )
    return template
