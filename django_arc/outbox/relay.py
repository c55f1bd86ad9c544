"""``EventOutbox``: store events with the write, relay them to a transport, at least once.

The relay works in three short steps so that no database transaction is ever held open while
talking to the transport:

1. **claim** — in one short transaction, pick up to ``limit`` rows that are pending, visible
   (``visible_at <= now``) and not leased by a live worker, oldest first, and stamp them with
   our lease (``lease_owner``, ``lease_expires_at``). A lease is stamped and judged run out
   by the database's clock (on SQLite, which lives on one host, that host's through Python),
   never a relay host's: workers on hosts whose clocks differ by
   more than the lease would otherwise take over each other's batches mid-publish, or leave
   a dead worker's batch leased for as long as its clock ran ahead (on PostgreSQL
   ``visible_at`` is the database's time too). On PostgreSQL the rows are selected with
   ``FOR UPDATE SKIP LOCKED`` so concurrent workers never block on, or claim, each other's rows.
   Other backends (SQLite) use an optimistic conditional ``UPDATE``; SQLite serialises every
   write, so run one relay worker there.
2. **publish** — outside any transaction, with ``transport.publish_many`` when available.
3. **ack / fail** — conditional ``UPDATE``\\ s that only touch rows whose lease is still ours;
   a row whose lease ran out and was re-claimed by another worker is left alone and counted
   in ``ownership_mismatches``.

A worker killed between 1 and 3 loses nothing: its rows stay ``pending`` and become claimable
when the lease expires, so they are published again (the only source of duplicates, bounded
by the batch size of the dead worker).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import re
import socket
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import DatabaseError, connections, router, transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.utils import timezone

from ..clock import database_clock, now_on
from ..events import wire
from ..events.event import Event, EventMeta
from ..events.transports.base import publishes_in_one_call, takes_wire
from ..logs import log_text
from .models import OutboxEvent, OutboxStatus
from .policy import DEAD, FailurePolicy, exponential_backoff
from .store import expire_dedupe_keys, row_for, store_event

logger = logging.getLogger("django_arc.outbox")

#: Longest ``last_error`` kept on a row; transports sometimes put whole payloads in messages.
MAX_ERROR_LENGTH = 2000
#: Upper bound for one batch: keeps ``id IN (...)`` under the drivers' parameter limits.
MAX_BATCH_SIZE = 10_000
#: Rows one UPDATE leaves failed, dead or released (a ``CASE`` per column they differ in: a
#: few parameters per row: under SQLite's oldest limit of 999 per statement).
FINISH_CHUNK = 100
#: Delivered rows one purge statement deletes (:func:`purge_delivered`), by default; a
#: larger ``batch_size`` is capped at :data:`MAX_BATCH_SIZE`.
PURGE_BATCH_SIZE = 1000
#: What the relay reads of a claimed row (:class:`Claimed`).
_CLAIMED_COLUMNS = ("id", "event_id", "type", "payload", "meta", "partition_key", "attempts")
_claim_sql: dict[str, str] = {}


@dataclass
class RelayResult:
    """Counters of one ``relay_batch`` call.

    ``attempted`` rows were claimed; of those ``relayed`` were published and acknowledged,
    ``publish_failed`` raised in the transport (``dead_lettered`` of them went dead, the rest
    were scheduled for retry), ``malformed`` could not be decoded into an Event and went dead
    without a publish attempt, ``deferred`` were not published because an earlier event of
    the same ``partition_key`` failed in this batch (FIFO), ``ack_failed`` were published but
    the acknowledging UPDATE failed (they will be published again after the lease), and
    ``ownership_mismatches`` were acknowledged/failed after another worker took them over.
    """

    relayed: int = 0
    attempted: int = 0
    publish_failed: int = 0
    ack_failed: int = 0
    ownership_mismatches: int = 0
    malformed: int = 0
    fail_hook_errors: int = 0
    dead_lettered: int = 0
    used_publish_many: bool = False
    deferred: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_worker_id() -> str:
    """``host:pid:random``: unique per process, readable in the admin's lease column."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


#: What the ``lease_owner`` column holds (characters).
MAX_WORKER_ID_LENGTH = OutboxEvent._meta.get_field("lease_owner").max_length


#: what no lease column can be sent: a NUL (PostgreSQL's text cannot hold one) and a lone
#: surrogate (no UTF-8; an undecodable byte in ``--worker-id``'s argv is read as one)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def check_worker_id(worker_id: Any) -> str:
    """``worker_id`` if the lease column can hold it, else ``ValueError``: on PostgreSQL a
    longer one failed every claim with a ``DataError``, which the relay loop takes for a
    database outage and retries forever, relaying nothing (SQLite stored it). So did a NUL
    character there, and a lone surrogate (no UTF-8) failed every claim on both databases;
    text it must be (a beat entry's ``worker_id: 5`` raised ``TypeError`` out of every tick,
    where the task's argument rule refuses a ``ValueError`` without raising)."""
    if not isinstance(worker_id, str):
        raise ValueError(f"worker id must be text, got {type(worker_id).__name__}")
    found = _UNSTORABLE.search(worker_id)
    if found is not None:
        what = "a NUL character" if found.group() == "\x00" else "a lone surrogate"
        raise ValueError(
            f"worker id {worker_id[:40]!r} holds {what}, which the outbox's lease column "
            "cannot store"
        )
    if len(worker_id) > MAX_WORKER_ID_LENGTH:
        raise ValueError(
            f"worker id {worker_id[:40]!r}… is {len(worker_id)} characters; the outbox's "
            f"lease column holds at most {MAX_WORKER_ID_LENGTH}"
        )
    return worker_id


def _error_text(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text[:MAX_ERROR_LENGTH]


#: the event ids a batch's retry warning names; the rest are counted
RETRY_LOG_IDS = 20


def _log_retried(retried: list[tuple[Any, BaseException, datetime]]) -> None:
    """One WARNING for a batch's failed publishes that will be retried (an outage fails
    every row of every batch: one line a batch, not one an event), naming the events (up to
    :data:`RETRY_LOG_IDS`) and the first one's error and retry time; never the payload."""
    row, exc, retry_at = retried[0]
    ids = ", ".join(str(r.event_id) for r, _, _ in retried[:RETRY_LOG_IDS])
    more = len(retried) - RETRY_LOG_IDS
    logger.warning(
        "publishing %d outbox event(s) failed; retried later: %s%s (first: attempt %d, "
        "next at %s: %s)",
        len(retried),
        ids,
        f" and {more} more" if more > 0 else "",
        row.attempts + 1,
        retry_at.isoformat(),
        log_text(_error_text(exc)),
    )


def _log_broken_policy(broken: list[tuple[Any, BaseException]]) -> None:
    """One ERROR for a batch's events whose failure policy raised (or returned garbage):
    a policy with a bug raises for every failed event of every batch, and an outage fails
    them all, so one traceback an event was a batch's worth of the same traceback. Names
    the events (up to :data:`RETRY_LOG_IDS`), with the first one's traceback."""
    first = broken[0][1]
    ids = ", ".join(str(r.event_id) for r, _ in broken[:RETRY_LOG_IDS])
    more = len(broken) - RETRY_LOG_IDS
    logger.error(
        "outbox failure policy raised for %d event(s): %s%s; the default backoff decided "
        "instead (first: %s)",
        len(broken),
        ids,
        f" and {more} more" if more > 0 else "",
        log_text(_error_text(first)),
        exc_info=(type(first), first, first.__traceback__),
    )


class Claimed(NamedTuple):
    """A claimed row, as the relay reads it: the JSON columns as the database returns them
    (text through Django's cursor on PostgreSQL and SQLite)."""

    id: int
    event_id: str
    type: str
    payload: Any
    meta: Any
    partition_key: str | None
    attempts: int


def _json(value: Any, column: str) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8")
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ValueError(f"{column} is not JSON: {exc}") from None


def event_from_columns(
    event_id: str, event_type: Any, payload: Any, meta: Any, *, keep_text: bool = True
) -> Event:
    """Rebuild the Event from a row's columns; ``ValueError``/``TypeError`` on malformed data.

    The row's ``event_id`` wins over ``meta["id"]`` so a re-published event keeps the id that
    consumers deduplicate on. When ``payload`` arrives as JSON text (and ``keep_text``), the
    event carries that text, which a Redis transport splices into the envelope as it is:
    the payload is not encoded a second time on the way out. A change made to the payload
    in place is then not seen: ``keep_text=False`` for an event handed to a project's code.
    """
    if not isinstance(event_type, str) or not event_type:
        raise ValueError("event type is empty or not a string")
    payload_value = _json(payload, "payload")
    if not isinstance(payload_value, dict):
        raise TypeError(f"payload must be a JSON object, got {type(payload_value).__name__}")
    meta_value = _json(meta, "meta") if meta is not None else {}
    if not isinstance(meta_value, dict):
        raise TypeError(f"meta must be a JSON object, got {type(meta_value).__name__}")
    if not isinstance(meta_value.get("timestamp", ""), str):
        raise TypeError("meta.timestamp must be an ISO 8601 string")
    event = Event(
        type=event_type,
        payload=payload_value,
        meta=EventMeta.from_dict({**meta_value, "id": event_id}),
    )
    if keep_text and isinstance(payload, str):
        wire.with_payload_json(event, payload)
    return event


def wire_message(row: Claimed, *, check_payload: bool) -> tuple[str, str]:
    """``(type, data)`` in arc's wire form for a claimed row, spliced from its JSON columns
    without building an ``Event`` (what :func:`event_from_columns` plus :func:`wire.encoded`
    produce, for a fraction of the work). ``check_payload`` parses the payload text, needed
    where the database does not guarantee valid JSON (PostgreSQL's ``jsonb`` does)."""
    payload = row.payload
    if isinstance(payload, bytes | bytearray | memoryview):
        payload = bytes(payload).decode("utf-8")
    meta = _json(row.meta, "meta") if row.meta is not None else {}
    if (
        not isinstance(payload, str)
        or not isinstance(meta, dict)
        or not isinstance(meta.get("timestamp"), str)
    ):
        event = event_from_columns(row.event_id, row.type, row.payload, row.meta)
        return event.type, wire.encode(event)
    if not isinstance(row.type, str) or not row.type:
        raise ValueError("event type is empty or not a string")
    if check_payload and not isinstance(_json(payload, "payload"), dict):
        raise TypeError("payload must be a JSON object")
    if not payload.lstrip().startswith("{"):
        raise TypeError("payload must be a JSON object")
    meta_json = wire.dumps(wire.meta_dict_to_wire({**meta, "id": row.event_id}))
    return row.type, wire.splice(row.type, payload, meta_json)


def decode_row(row: OutboxEvent) -> Event:
    """The Event stored in ``row`` (see :func:`event_from_columns`)."""
    return event_from_columns(row.event_id, row.type, row.payload, row.meta)


def _expression(value: Any) -> bool:
    return hasattr(value, "resolve_expression")


class EventOutbox:
    """Stores events transactionally and relays them to ``transport`` (any object with
    ``publish(event)``, optionally ``publish_many(events)``).

    ``failure_policy(attempts, error)`` decides what happens after a failed publish: a
    ``datetime`` to retry at, or ``DEAD``.
    """

    def __init__(
        self,
        transport: Any,
        failure_policy: FailurePolicy | None = None,
        *,
        lease_seconds: float = 30,
        batch_size: int = 100,
        using: str | None = None,
    ) -> None:
        self.transport = transport
        self.failure_policy = failure_policy or exponential_backoff(
            base=1.0, max=600.0, max_attempts=8
        )
        self.lease_seconds = float(lease_seconds)
        self.batch_size = int(batch_size)
        self.using = using
        # the policy used when the configured one raises: its limit, when it names one arc's
        # policy can run with; a project's policy naming 0 or less (its "never dead") made
        # this refuse to be built, and the outbox with it (a ``ValueError`` every tick)
        limit = getattr(self.failure_policy, "max_attempts", 8)
        if isinstance(limit, bool) or not isinstance(limit, numbers.Real) or not limit >= 1:
            limit = 8
        self._fallback_policy = exponential_backoff(base=1.0, max=600.0, max_attempts=limit)

    # -- storing ---------------------------------------------------------------------------

    @property
    def db(self) -> str:
        return self.using or router.db_for_write(OutboxEvent)

    def store(self, event: Event) -> OutboxEvent:
        """Insert ``event`` as a pending row inside the caller's transaction.

        Nothing is published here: if the surrounding transaction rolls back the row goes
        with it. An event whose ``meta.idempotency_key`` is already stored (or whose id is)
        is a no-op that returns the existing row, without aborting the caller's transaction.
        """
        return store_event(event, using=self.db)

    def store_many(self, events: Iterable[Event]) -> int:
        """Insert many events in one statement; duplicates (id or dedupe key) are skipped.

        Returns the number of events handed to the database (duplicates included), since
        ``INSERT ... ON CONFLICT DO NOTHING`` does not report how many rows it skipped.

        A dedupe key makes an event a repeat only within the idempotency TTL, as for
        :meth:`store`: a row holding the key that is older has its key cleared
        (:func:`~django_arc.outbox.store.expire_dedupe_keys`) and the event is stored.
        """
        events = list(events)
        now = now_on(connections[self.db])
        rows = [row_for(e, now) for e in events]
        manager = OutboxEvent.objects.using(self.db)
        manager.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
        keyed = [event for event, row in zip(events, rows, strict=True) if row.dedupe_key]
        if keyed and expire_dedupe_keys(keyed, self.db):
            # the rows stored by the first insert skip by their event id
            manager.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
        return len(rows)

    # -- relaying --------------------------------------------------------------------------

    def _claimable(self, now: datetime) -> QuerySet[OutboxEvent]:
        """Pending rows visible at ``now`` whose lease, if any, ran out by the clock that
        stamped it (:meth:`_claim`, :func:`~django_arc.clock.now_on`)."""
        lease_now = now_on(connections[self.db])
        return (
            OutboxEvent.objects.using(self.db)
            .filter(status=OutboxStatus.PENDING, visible_at__lte=now)
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=lease_now))
            .order_by("visible_at", "id")
        )

    def claim_queryset(self, limit: int, now: datetime | None = None) -> QuerySet[OutboxEvent]:
        """The claim's SELECT (exposed for EXPLAIN in benchmarks and docs)."""
        qs = self._claimable(now or timezone.now())
        if connections[self.db].features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True)
        return qs[:limit]

    def _prefer_index_order(self) -> None:
        """Make PostgreSQL walk the pending index in claim order for this transaction.

        Queue tables defeat the planner's statistics: right after a burst of inserts it may
        still believe a handful of rows are pending and pick a bitmap scan plus a sort. Under
        ``FOR UPDATE`` that sort cannot be bounded by the LIMIT, so every claim sorts the whole
        backlog (measured: 50,000 pending rows spilled to disk, 180 ms per claim). Disabling
        sorts for the claim transaction (``SET LOCAL`` semantics) leaves only the ordered
        scan of the partial ``(visible_at, id)`` index, which stops after ``limit`` rows.
        """
        connection = connections[self.db]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('enable_sort', 'off', true),"
                    " set_config('enable_incremental_sort', 'off', true)"
                )

    def _columns(self, *names: str) -> str:
        opts = OutboxEvent._meta
        qn = connections[self.db].ops.quote_name
        return ", ".join(qn(opts.get_field(name).column) for name in names)

    def _claim_sql(self, connection: Any) -> str:
        """``UPDATE … WHERE id = ANY(ARRAY(SELECT … FOR UPDATE SKIP LOCKED)) RETURNING …``: the
        claim and the lease in one statement. ``ARRAY(...)`` makes the subquery an InitPlan
        that runs once; as ``IN (...)`` the planner may rescan it inside a join and lease more
        than ``limit`` rows. Rows come back unordered, with ``visible_at`` for the sort.

        The lease is the database's ``statement_timestamp()`` plus the lease's seconds, and
        a lease has run out when it is before that: one clock writes and reads every lease,
        whatever the relays' hosts' clocks say. A row is visible once ``visible_at`` is
        past by that clock too, the one that stamped it when stored (a failure policy's
        retry time is the relay's clock's)."""
        sql = _claim_sql.get(connection.alias)
        if sql is None:
            qn = connection.ops.quote_name
            opts = OutboxEvent._meta

            def col(name: str) -> str:
                return qn(opts.get_field(name).column)

            table = qn(opts.db_table)
            sql = (
                f"UPDATE {table} SET {col('lease_owner')} = %s, {col('lease_expires_at')} = "
                "statement_timestamp() + make_interval(secs => %s) "
                f"WHERE {col('id')} = ANY(ARRAY(SELECT {col('id')} FROM {table} "
                f"WHERE {col('status')} = '{OutboxStatus.PENDING.value}' "
                f"AND {col('visible_at')} <= statement_timestamp() "
                f"AND ({col('lease_expires_at')} IS NULL "
                f"OR {col('lease_expires_at')} < statement_timestamp()) "
                f"ORDER BY {col('visible_at')}, {col('id')} LIMIT %s FOR UPDATE SKIP LOCKED)) "
                f"RETURNING {self._columns(*_CLAIMED_COLUMNS)}, {col('visible_at')}"
            )
            _claim_sql[connection.alias] = sql
        return sql

    def explain_claim(
        self, limit: int | None = None, *, analyze: bool = False, buffers: bool = False
    ) -> str:
        """``EXPLAIN`` of the claim exactly as ``relay_batch`` runs it on PostgreSQL
        (benchmarks, docs, plan tests); with ``analyze`` it runs and is rolled back."""
        connection = connections[self.db]
        options = ", ".join(name for name, on in (("ANALYZE", analyze), ("BUFFERS", buffers)) if on)
        prefix = f"EXPLAIN ({options}) " if options else "EXPLAIN "
        params = ["explain", self.lease_seconds, limit or self.batch_size]
        with transaction.atomic(using=self.db):
            self._prefer_index_order()
            with connection.cursor() as cursor:
                cursor.execute(prefix + self._claim_sql(connection), params)
                plan = "\n".join(row[0] for row in cursor.fetchall())
            transaction.set_rollback(True, using=self.db)
        return plan

    def _claim(self, limit: int, worker_id: str) -> list[Claimed]:
        now = timezone.now()
        lease = timedelta(seconds=self.lease_seconds)
        db = self.db
        connection = connections[db]
        if connection.vendor == "postgresql":
            with transaction.atomic(using=db):
                self._prefer_index_order()
                with connection.cursor() as cursor:
                    cursor.execute(
                        self._claim_sql(connection), [worker_id, self.lease_seconds, limit]
                    )
                    rows = cursor.fetchall()
            rows.sort(key=lambda row: (row[-1], row[0]))
            return [Claimed(*row[:-1]) for row in rows]
        with transaction.atomic(using=db):
            if connection.features.has_select_for_update_skip_locked:
                ids = list(
                    self._claimable(now)
                    .select_for_update(skip_locked=True)
                    .values_list("id", flat=True)[:limit]
                )
            else:
                ids = list(self._claimable(now).values_list("id", flat=True)[:limit])
            if not ids:
                return []
            # Optimistic claim: the condition is re-checked by the UPDATE itself, so a row
            # another worker leased in between is simply not ours.
            self._claimable(now).filter(id__in=ids).update(
                lease_owner=worker_id, lease_expires_at=now_on(connection) + lease
            )
            qn = connection.ops.quote_name
            opts = OutboxEvent._meta
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {self._columns(*_CLAIMED_COLUMNS)} FROM {qn(opts.db_table)} "
                    f"WHERE {qn('id')} IN ({', '.join(['%s'] * len(ids))}) "
                    f"AND {self._columns('lease_owner')} = %s "
                    f"ORDER BY {self._columns('visible_at')}, {qn('id')}",
                    [*ids, worker_id],
                )
                return [Claimed(*row) for row in cursor.fetchall()]

    def _mark_delivered(self, ids: list[int], worker_id: str, now: datetime) -> int:
        """One ``UPDATE`` for the batch, only where the lease is still ours; returns the count.
        ``delivered_at`` is the database's time on PostgreSQL (the clock :meth:`purge` counts
        the retention with), else ``now``."""
        connection = connections[self.db]
        qn = connection.ops.quote_name
        opts = OutboxEvent._meta
        database_time = database_clock(connection)
        delivered_at = "statement_timestamp()" if database_time else "%s"
        sql = (
            f"UPDATE {qn(opts.db_table)} SET {self._columns('status')} = %s, "
            f"{self._columns('delivered_at')} = {delivered_at}, "
            f"{self._columns('lease_owner')} = NULL, "
            f"{self._columns('lease_expires_at')} = NULL "
            # The ids are integers the claim just read: written into the statement, they cost
            # nothing to bind (a parameter each costs quoting on a client-side-binding cursor).
            f"WHERE {qn('id')} IN ({', '.join(str(int(pk)) for pk in ids)}) "
            f"AND {self._columns('status')} = %s AND {self._columns('lease_owner')} = %s"
        )
        params = [
            OutboxStatus.DELIVERED.value,
            *([] if database_time else [connection.ops.adapt_datetimefield_value(now)]),
            OutboxStatus.PENDING.value,
            worker_id,
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    def _ours(self, ids: list[int], worker_id: str) -> QuerySet[OutboxEvent]:
        return OutboxEvent.objects.using(self.db).filter(
            id__in=ids, status=OutboxStatus.PENDING, lease_owner=worker_id
        )

    def _messages(
        self, rows: list[Claimed]
    ) -> tuple[list[tuple[Claimed, Any]], list[tuple[Claimed, BaseException]], Any, Any]:
        """Each row as what the transport takes, the rows that cannot be decoded, and the
        transport's batch and single publish. A transport with ``publish_wire`` (the Redis
        ones, unless a subclass overrides ``publish`` or ``publish_many``: ``takes_wire``)
        gets ``(type, data)`` spliced from the row; any other gets ``Event`` s."""
        publish_wire = takes_wire(self.transport)
        if publish_wire is not None:
            check = connections[self.db].vendor != "postgresql"

            def convert(row: Claimed) -> Any:
                return wire_message(row, check_payload=check)

            def send_one(message: Any) -> Any:
                return publish_wire([message])

            send_many = publish_wire
        else:

            def convert(row: Claimed) -> Any:
                # the transport's own publish may change the payload in place (a subclass
                # redacting a field): encoded afresh from it, never the row's text
                return event_from_columns(
                    row.event_id, row.type, row.payload, row.meta, keep_text=False
                )

            send_one = self.transport.publish
            # a transport publishing event by event anyway is published so from the start:
            # retrying its batch one by one after a failure would publish some twice
            send_many = (
                self.transport.publish_many if publishes_in_one_call(self.transport) else None
            )
        pairs: list[tuple[Claimed, Any]] = []
        malformed: list[tuple[Claimed, BaseException]] = []
        for row in rows:
            try:
                pairs.append((row, convert(row)))
            except Exception as exc:  # noqa: BLE001 - any decoding error makes the row dead
                malformed.append((row, exc))
        return pairs, malformed, send_many, send_one

    def _publish(
        self, pairs: list[tuple[Claimed, Any]], send_many: Any, send_one: Any, result: RelayResult
    ) -> tuple[list[Claimed], list[tuple[Claimed, BaseException]], list[Claimed]]:
        """Publish in order; returns (published, failed, deferred-by-partition)."""
        if callable(send_many) and pairs:
            result.used_publish_many = True
            try:
                send_many([message for _, message in pairs])
                return [row for row, _ in pairs], [], []
            except Exception as exc:  # noqa: BLE001 - find the culprit(s) one event at a time
                logger.warning(
                    "publish_many failed for a batch of %d; retrying one by one: %s",
                    len(pairs),
                    log_text(_error_text(exc)),
                )
        published: list[Claimed] = []
        failed: list[tuple[Claimed, BaseException]] = []
        deferred: list[Claimed] = []
        blocked: set[str] = set()
        for row, message in pairs:
            if row.partition_key is not None and row.partition_key in blocked:
                deferred.append(row)
                continue
            try:
                send_one(message)
            except Exception as exc:  # noqa: BLE001 - any transport error is a failed publish
                failed.append((row, exc))
                if row.partition_key is not None:
                    blocked.add(row.partition_key)
            else:
                published.append(row)
        return published, failed, deferred

    def _decide(
        self,
        row: Claimed,
        error: BaseException,
        result: RelayResult,
        broken: list[tuple[Claimed, BaseException]],
    ) -> Any:
        """The failure policy's decision for ``row``; the default backoff's when the policy
        raises or returns garbage (that row and error appended to ``broken``, logged once
        for the batch by :func:`_log_broken_policy`)."""
        attempts = row.attempts + 1
        try:
            decision = self.failure_policy(attempts, error)
            if decision is not DEAD and not isinstance(decision, datetime):
                raise TypeError(f"failure policy returned {decision!r}, not a datetime or DEAD")
        except Exception as exc:  # noqa: BLE001 - a broken policy must not wedge the relay
            result.fail_hook_errors += 1
            broken.append((row, exc))
            decision = self._fallback_policy(attempts, error)
        return decision

    def relay_batch(self, limit: int | None = None, worker_id: str | None = None) -> RelayResult:
        """Claim, publish and acknowledge up to ``limit`` events; see the module docstring."""
        limit = min(self.batch_size if limit is None else int(limit), MAX_BATCH_SIZE)
        worker_id = check_worker_id(worker_id or default_worker_id())
        result = RelayResult()
        if limit <= 0:
            return result
        rows = self._claim(limit, worker_id)
        result.attempted = len(rows)
        if not rows:
            return result

        pairs, malformed, send_many, send_one = self._messages(rows)
        published, failed, deferred = self._publish(pairs, send_many, send_one, result)
        now = timezone.now()

        if published:
            ids = [row.id for row in published]
            try:
                updated = self._mark_delivered(ids, worker_id, now)
            except DatabaseError:
                logger.exception("outbox ack failed for %d events", len(ids))
                result.ack_failed += len(ids)
            else:
                result.relayed += updated
                result.ownership_mismatches += len(ids) - updated

        # the malformed, failed and deferred rows, each with the values it is left with:
        # written together (one UPDATE per chunk), not one UPDATE per row
        finished: list[tuple[Claimed, dict[str, Any]]] = []
        retried: list[tuple[Claimed, BaseException, datetime]] = []
        for row, exc in malformed:
            result.malformed += 1
            logger.error(
                "outbox event %s (%s) is malformed; dead-lettered: %s",
                row.event_id,
                log_text(row.type),
                log_text(_error_text(exc)),
            )
            finished.append(
                (
                    row,
                    {
                        "status": OutboxStatus.DEAD,
                        "attempts": row.attempts + 1,
                        "last_error": _error_text(f"malformed event: {_error_text(exc)}"),
                    },
                )
            )

        retry_at_by_partition: dict[str, datetime] = {}
        shift: timedelta | None = None
        broken: list[tuple[Claimed, BaseException]] = []
        for row, exc in failed:
            result.publish_failed += 1
            decision = self._decide(row, exc, result, broken)
            if decision is not DEAD:
                if shift is None:
                    shift = self._clock_shift()
                try:
                    decision += shift
                except OverflowError:  # a retry as far out as a datetime goes stays there
                    pass
            if decision is DEAD:
                result.dead_lettered += 1
                logger.error(
                    "outbox event %s (%s) dead-lettered after %d attempts: %s",
                    row.event_id,
                    log_text(row.type),
                    row.attempts + 1,
                    log_text(_error_text(exc)),
                )
                values = {
                    "status": OutboxStatus.DEAD,
                    "attempts": row.attempts + 1,
                    "last_error": _error_text(exc),
                }
            else:
                if row.partition_key is not None:
                    retry_at_by_partition[row.partition_key] = decision
                retried.append((row, exc, decision))
                values = {
                    "status": OutboxStatus.PENDING,
                    "attempts": row.attempts + 1,
                    "last_error": _error_text(exc),
                    "visible_at": decision,
                }
            finished.append((row, values))

        for row in deferred:
            # Released, not failed: attempts unchanged. They become visible together with the
            # failed event that blocked them, which sorts first (lower id), keeping FIFO.
            result.deferred += 1
            finished.append(
                (
                    row,
                    {
                        "status": OutboxStatus.PENDING,
                        "visible_at": retry_at_by_partition.get(
                            row.partition_key or "", now_on(connections[self.db])
                        ),
                    },
                )
            )
        if broken:
            _log_broken_policy(broken)
        if retried:
            _log_retried(retried)
        self._finish_many(finished, worker_id, result)
        if result.ownership_mismatches:
            # which rows is not known (the UPDATEs count them); the worker and the size say
            # where to look, and that LEASE_SECONDS is shorter than a batch takes
            logger.warning(
                "outbox worker %s lost the lease of %d of its %d claimed events before "
                "recording them (another worker took them over: a published one may be "
                "published again); the lease is %g s",
                log_text(worker_id),
                result.ownership_mismatches,
                result.attempted,
                self.lease_seconds,
            )
        return result

    def _clock_shift(self) -> timedelta:
        """The database's time minus this relay's, where rows are timed by the database
        (one ``SELECT``, in a batch with retries only): a failure policy computes a retry's
        time on the relay's clock, and the claim compares ``visible_at`` with the database's,
        so a relay whose clock ran behind would schedule its retries in the past (claimed
        again at once, the backoff lost) and one ahead would delay them."""
        connection = connections[self.db]
        if not database_clock(connection):
            return timedelta(0)
        try:
            with connection.cursor() as cursor:
                before = timezone.now()
                cursor.execute("SELECT statement_timestamp()")
                (database_now,) = cursor.fetchone()
                after = timezone.now()
        except DatabaseError:  # the row's update that follows reports the database's failure
            return timedelta(0)
        return database_now - (before + (after - before) / 2)

    def _finish_many(
        self, finished: list[tuple[Claimed, dict[str, Any]]], worker_id: str, result: RelayResult
    ) -> None:
        """Leave each row of ``finished`` with its values and no lease, if this worker still
        holds it: one ``UPDATE`` per ``FINISH_CHUNK`` rows, a column the rows differ in set
        with a ``CASE`` on the id (a row not given it keeps its own)."""
        for start in range(0, len(finished), FINISH_CHUNK):
            chunk = finished[start : start + FINISH_CHUNK]
            if len(chunk) == 1:
                row, values = chunk[0]
                self._finish(row, worker_id, result, **values)
                continue
            opts = OutboxEvent._meta
            update: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
            for name in sorted({name for _, values in chunk for name in values}):
                field = opts.get_field(name)
                given = [(row, values[name]) for row, values in chunk if name in values]
                first = given[0][1]
                if len(given) == len(chunk) and all(value == first for _, value in given):
                    update[name] = first
                    continue
                update[name] = Case(
                    *(
                        # an expression as it is (a released row's ``Now()``, the database's
                        # clock), a value as a parameter of the column's type
                        When(
                            id=row.id,
                            then=value if _expression(value) else Value(value, output_field=field),
                        )
                        for row, value in given
                    ),
                    default=F(name),
                    output_field=field,
                )
            try:
                updated = self._ours([row.id for row, _ in chunk], worker_id).update(**update)
            except DatabaseError:
                logger.exception("outbox fail/release update failed for %d events", len(chunk))
                result.ack_failed += len(chunk)
                continue
            result.ownership_mismatches += len(chunk) - updated

    def _finish(self, row: Claimed, worker_id: str, result: RelayResult, **values: Any) -> None:
        values.setdefault("lease_owner", None)
        values.setdefault("lease_expires_at", None)
        try:
            updated = self._ours([row.id], worker_id).update(**values)
        except DatabaseError:
            logger.exception("outbox fail/release update failed for event %s", row.event_id)
            result.ack_failed += 1
            return
        if updated == 0:
            result.ownership_mismatches += 1

    # -- operating -------------------------------------------------------------------------

    def get_dead_lettered(self, limit: int = 100) -> list[OutboxEvent]:
        """Dead rows, oldest first, with ``last_error`` for the operator to inspect."""
        return list(
            OutboxEvent.objects.using(self.db)
            .filter(status=OutboxStatus.DEAD)
            .order_by("id")[: max(0, int(limit))]
        )

    def requeue(self, ids: Iterable[int | str] | QuerySet[OutboxEvent]) -> int:
        """Make dead rows pending again (attempts reset, visible now, lease cleared).

        ``ids`` are primary keys (ints or digit strings), event ids, or a queryset. Only
        ``dead`` rows are touched; returns how many were requeued. ``last_error`` is kept as
        a record of why the row died.
        """
        qs = OutboxEvent.objects.using(self.db).filter(status=OutboxStatus.DEAD)
        if isinstance(ids, QuerySet):
            qs = qs.filter(pk__in=ids.values("pk"))
        else:
            pks: list[int] = []
            event_ids: list[str] = []
            for value in ids:
                if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
                    pks.append(int(value))
                else:
                    event_ids.append(str(value))
            if not pks and not event_ids:
                return 0
            qs = qs.filter(Q(pk__in=pks) | Q(event_id__in=event_ids))
        return qs.update(
            status=OutboxStatus.PENDING,
            attempts=0,
            visible_at=now_on(connections[self.db]),
            lease_owner=None,
            lease_expires_at=None,
        )

    def purge(self, older_than: datetime | timedelta, batch_size: int | None = None) -> int:
        """Delete *delivered* rows delivered before the cut-off (a datetime, or an age),
        ``batch_size`` per statement (default :data:`PURGE_BATCH_SIZE`, :func:`purge_delivered`).

        Pending and dead rows are never purged: they are work still to do or evidence an
        operator needs. Returns the number of rows deleted. An age counts back from the
        database's time on PostgreSQL, the clock that wrote ``delivered_at``.
        """
        return purge_delivered(
            OutboxEvent.objects.using(self.db).all(), older_than, batch_size=batch_size
        )


def retention_age(days: Any, name: str = "days") -> timedelta:
    """``days`` (a purge's retention: ``--days``, the task's ``days``, the setting) as the
    age :func:`purge_delivered` takes, or ``ValueError`` naming ``name``: a number of days
    (an int, a float, a ``Decimal``; neither a bool nor a string such as ``"7"``), 0 or more
    (a negative one purged rows delivered a moment ago), whose cut-off is after the year 1
    (SQLite's is this server's datetime, which overflowed out of the purge; PostgreSQL's
    went out of its range). The command, the Celery task, the admin and arc.E008 (of the
    setting) read it here alike: one rule for every reader."""
    too_large = ValueError(
        f"{name} is too large: {_shown(days)} days back reaches before the year 1."
    )
    try:
        number = (
            float(days)
            if isinstance(days, numbers.Number) and not isinstance(days, bool)
            else math.nan
        )
    except (TypeError, ValueError):  # a complex number, Decimal("sNaN")
        number = math.nan
    except OverflowError:  # an int past a float's range (10**400): far too many days, or < 0
        if days > 0:
            raise too_large from None
        number = -math.inf
    if number == math.inf:  # inf, Decimal("1e400"), which float() reads without overflow
        raise too_large
    if not (number >= 0 and math.isfinite(number)):  # NaN fails the comparison
        raise ValueError(f"{name} must be a number of days, 0 or more, got {_shown(days)}.")
    try:
        age = timedelta(days=number)
        timezone.now() - age
    except OverflowError:
        raise too_large from None
    return age


def _shown(value: Any) -> str:
    """``repr(value)`` for a refusal's message, at most 60 characters (an int past
    ``sys.get_int_max_str_digits()`` has no repr at all: it raises ValueError)."""
    try:
        text = repr(value)
    except ValueError:
        return "an integer too long to print"
    return text if len(text) <= 60 else f"{text[:57]}..."


def purge_delivered(
    queryset: QuerySet[OutboxEvent],
    older_than: datetime | timedelta,
    batch_size: int | None = None,
) -> int:
    """Delete the rows of ``queryset`` (on its database: give it ``using()`` the alias the
    outbox is written to) that are *delivered* before the cut-off (a datetime,
    or an age counted back from the database's time on PostgreSQL), ``batch_size`` (default
    :data:`PURGE_BATCH_SIZE`) at a time;
    returns how many. The relay's :meth:`EventOutbox.purge`, the ``purge_outbox`` task,
    ``manage.py arc_purge_outbox`` and the admin's purge action all come here.

    Each batch is one ``SELECT`` of ids, oldest first along the ``delivered_at`` index from
    the last batch's ``delivered_at`` on (so it never walks the index entries of the rows
    deleted before, which stay until a vacuum), and one ``DELETE`` of those ids that checks
    status and cut-off again as it deletes, committed on its own
    outside a transaction: a purge of a week of events holds the locks (and writes the WAL)
    of one batch at a time, never of every row it deletes until it ends (called inside a
    transaction, every batch is that transaction's: call it outside one). No
    ``pre_delete``/``post_delete`` signal is sent (the ORM's ``delete()`` would load every
    row first, payloads included, wherever a receiver listens to every model)."""
    if batch_size is None:
        batch_size = PURGE_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    db = queryset.db
    connection = connections[db]
    if isinstance(older_than, timedelta):
        if database_clock(connection):
            with connection.cursor() as cursor:
                cursor.execute("SELECT statement_timestamp()")
                now = cursor.fetchone()[0]
        else:
            now = timezone.now()
        cutoff: Any = now - older_than
    else:
        cutoff = older_than
    ops = connection.ops
    meta = OutboxEvent._meta
    # a batch's ids, the status and the cut-off are the statement's parameters; at most a
    # relay batch's (MAX_BATCH_SIZE) where the backend takes more: one statement must never
    # hold every row's lock, whatever batch_size is asked for
    batch_size = min(batch_size, MAX_BATCH_SIZE)
    limit = connection.features.max_query_params
    if limit is not None:
        batch_size = max(1, min(batch_size, limit - 2))
    candidates = (
        queryset.filter(status=OutboxStatus.DELIVERED, delivered_at__lt=cutoff)
        .order_by("delivered_at")
        .values_list("pk", "delivered_at")
    )
    column = meta.get_field
    condition = (
        f"{ops.quote_name(column('status').column)} = %s "
        f"AND {ops.quote_name(column('delivered_at').column)} < %s"
    )
    params = [OutboxStatus.DELIVERED.value, ops.adapt_datetimefield_value(cutoff)]
    deleted = 0
    since = None
    while True:
        batch = list(
            (candidates if since is None else candidates.filter(delivered_at__gte=since))[
                :batch_size
            ]
        )
        if not batch:
            return deleted
        ids = [pk for pk, _ in batch]
        since = batch[-1][1]
        sql = (
            f"DELETE FROM {ops.quote_name(meta.db_table)} "
            f"WHERE {ops.quote_name(meta.pk.column)} IN ({', '.join(['%s'] * len(ids))}) "
            f"AND {condition}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*ids, *params])
            count = cursor.rowcount
        deleted += count
        # a short batch was the last; a batch whose every row changed since its SELECT
        # leaves what is left to the next purge rather than risk selecting it again
        if len(ids) < batch_size or count == 0:
            return deleted
