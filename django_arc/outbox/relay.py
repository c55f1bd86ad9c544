"""``EventOutbox``: store events with the write, relay them to a transport, at least once.

The relay works in three short steps so that no database transaction is ever held open while
talking to the transport:

1. **claim** — in one short transaction, pick up to ``limit`` rows that are pending, visible
   (``visible_at <= now``) and not leased by a live worker, oldest first, and stamp them with
   our lease (``lease_owner``, ``lease_expires_at``). On PostgreSQL the rows are selected with
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

import dataclasses
import hashlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connections, router, transaction
from django.db.models import Q, QuerySet
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from ..events.event import Event, EventMeta
from .models import OutboxEvent, OutboxStatus

logger = logging.getLogger("django_arc.outbox")

#: Longest ``last_error`` kept on a row; transports sometimes put whole payloads in messages.
MAX_ERROR_LENGTH = 2000
#: Upper bound for one batch: keeps ``id IN (...)`` under the drivers' parameter limits.
MAX_BATCH_SIZE = 10_000
#: Dedupe keys longer than the column are replaced by their SHA-256 (still unique, stable).
MAX_DEDUPE_KEY_LENGTH = 512


class _Dead:
    """Sentinel a failure policy returns to send a row to the dead-letter state."""

    _instance: _Dead | None = None

    def __new__(cls) -> _Dead:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEAD"

    def __reduce__(self) -> str:
        return "DEAD"


DEAD = _Dead()

FailurePolicy = Callable[[int, BaseException], "datetime | _Dead"]


def _seconds(value: float | int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def exponential_backoff(
    base: float | timedelta = 1.0,
    max: float | timedelta = 600.0,  # noqa: A002  (SPEC names the argument ``max``)
    max_attempts: int = 8,
    jitter: bool = True,
) -> FailurePolicy:
    """Build a failure policy: retry after ``base * 2**(attempts-1)`` capped at ``max``, and
    give up (``DEAD``) once ``attempts`` reaches ``max_attempts``.

    Jitter is "equal jitter" (a random point in the upper half of the delay), which spreads a
    burst of failures over time while keeping successive delays non-decreasing, so a row's
    ``visible_at`` always moves further out with each failure.
    """
    base_s, max_s = _seconds(base), _seconds(max)
    if base_s < 0 or max_s < 0 or max_attempts < 1:
        raise ValueError("exponential_backoff needs base >= 0, max >= 0 and max_attempts >= 1")

    def policy(attempts: int, error: BaseException | str | None = None) -> datetime | _Dead:
        if attempts >= max_attempts:
            return DEAD
        exponent = attempts - 1 if attempts > 1 else 0  # ``max`` is shadowed here
        delay = min(max_s, base_s * (2**exponent))
        if jitter:
            delay = delay / 2 + random.uniform(0, delay / 2)
        return timezone.now() + timedelta(seconds=delay)

    policy.max_attempts = max_attempts  # type: ignore[attr-defined]
    return policy


#: ``ARC["OUTBOX"]["FAILURE_POLICY"]`` may name a *factory* like this one; factories are called
#: with ``max_attempts=ARC["OUTBOX"]["MAX_ATTEMPTS"]`` to build the policy.
exponential_backoff.arc_policy_factory = True  # type: ignore[attr-defined]


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


def _dedupe_key(event: Event) -> str | None:
    key = event.meta.idempotency_key
    if not key:
        return None
    key = str(key)
    if len(key) > MAX_DEDUPE_KEY_LENGTH:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _error_text(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text[:MAX_ERROR_LENGTH]


_META_FIELDS = tuple(f.name for f in dataclasses.fields(EventMeta))


def _meta_dict(meta: EventMeta) -> dict[str, Any]:
    """``EventMeta.to_dict()`` without ``dataclasses.asdict``'s deep copies: the row is
    serialised once at INSERT time, so a shallow dict is enough (and this is the write path
    of every resource request)."""
    data = {name: getattr(meta, name) for name in _META_FIELDS}
    timestamp = data["timestamp"]
    if isinstance(timestamp, datetime):
        data["timestamp"] = timestamp.isoformat()
    return data


def _require_event(event: Any) -> None:
    if not isinstance(event, Event):
        raise TypeError(f"the outbox stores django_arc.events.Event objects, not {type(event)!r}")


def _partition_key(event: Event) -> str | None:
    partition = event.meta.partition_key
    return None if partition is None else str(partition)[:255]


def _row_for(event: Event) -> OutboxEvent:
    _require_event(event)
    now = timezone.now()
    return OutboxEvent(
        event_id=str(event.meta.id),
        type=event.type,
        payload=event.payload,
        meta=_meta_dict(event.meta),
        status=OutboxStatus.PENDING,
        visible_at=now,
        created_at=now,
        dedupe_key=_dedupe_key(event),
        partition_key=_partition_key(event),
    )


#: What the INSERT of a new row sets from the event. The other columns hold the constants of
#: a new row (status pending, no attempts, no error) or NULL (dedupe key: rows that have one
#: take the ``ON CONFLICT`` path; lease; delivery).
_INSERT_COLUMNS = (
    "event_id",
    "type",
    "payload",
    "meta",
    "visible_at",
    "created_at",
    "partition_key",
)
_insert_sql: dict[str, str] = {}


def _insert_statement(connection: Any) -> str:
    sql = _insert_sql.get(connection.alias)
    if sql is None:
        qn = connection.ops.quote_name
        opts = OutboxEvent._meta
        columns = [opts.get_field(name).column for name in _INSERT_COLUMNS]
        columns += [opts.get_field(name).column for name in ("status", "attempts", "last_error")]
        returning = connection.features.can_return_columns_from_insert
        sql = "INSERT INTO {} ({}) VALUES ({}, '{}', 0, ''){}".format(
            qn(opts.db_table),
            ", ".join(qn(c) for c in columns),
            ", ".join(["%s"] * len(_INSERT_COLUMNS)),
            OutboxStatus.PENDING.value,
            f" RETURNING {qn(opts.pk.column)}" if returning else "",
        )
        _insert_sql[connection.alias] = sql
    return sql


def _insert(event: Event, db: str, *, want_row: bool) -> OutboxEvent | None:
    """Insert ``event`` (which has no dedupe key) as a new pending row.

    This is the write path of every resource request, so it skips ``Model.save()`` and the
    SQL compiler (the statement is built once per database) and, unless ``want_row`` or
    something listens to ``pre_save``/``post_save``, the model instance too: skipping them
    took the store's CPU per resource write from about 0.22 to 0.15 ms
    (``docs/benchmarks.md``). Values go through the backend's own adapters, as the fields
    would send them.
    """
    listened = pre_save.has_listeners(OutboxEvent) or post_save.has_listeners(OutboxEvent)
    row = _row_for(event) if want_row or listened else None
    if row is not None:
        if pre_save.has_listeners(OutboxEvent):
            pre_save.send(sender=OutboxEvent, instance=row, raw=False, using=db, update_fields=None)
        values = [getattr(row, name) for name in _INSERT_COLUMNS]
    else:
        now = timezone.now()
        values = [
            str(event.meta.id),
            event.type,
            event.payload,
            _meta_dict(event.meta),
            now,
            now,
            _partition_key(event),
        ]
    connection = connections[db]
    ops = connection.ops
    values[2] = ops.adapt_json_value(values[2], OutboxEvent._meta.get_field("payload").encoder)
    values[3] = ops.adapt_json_value(values[3], OutboxEvent._meta.get_field("meta").encoder)
    values[4] = ops.adapt_datetimefield_value(values[4])
    values[5] = ops.adapt_datetimefield_value(values[5])
    with connection.cursor() as cursor:
        cursor.execute(_insert_statement(connection), values)
        if row is None:
            return None
        returning = connection.features.can_return_columns_from_insert
        row.pk = cursor.fetchone()[0] if returning else cursor.lastrowid
    row._state.adding = False
    row._state.db = db
    if post_save.has_listeners(OutboxEvent):
        post_save.send(
            sender=OutboxEvent, instance=row, created=True, update_fields=None, raw=False, using=db
        )
    return row


def store_event(event: Event, using: str | None = None) -> OutboxEvent:
    """Insert ``event`` in the current transaction (see :meth:`EventOutbox.store`)."""
    _require_event(event)
    db = using or router.db_for_write(OutboxEvent)
    if _dedupe_key(event) is None:
        return _insert(event, db, want_row=True)
    return _store_deduplicated(_row_for(event), db)


def store_event_without_row(event: Event, using: str | None = None) -> None:
    """:func:`store_event` for the ``resource_event`` receiver, which needs no row back."""
    _require_event(event)
    db = using or router.db_for_write(OutboxEvent)
    if _dedupe_key(event) is None:
        _insert(event, db, want_row=False)
    else:
        _store_deduplicated(_row_for(event), db)


def _store_deduplicated(row: OutboxEvent, db: str) -> OutboxEvent:
    # ON CONFLICT DO NOTHING (PostgreSQL) / INSERT OR IGNORE (SQLite): a duplicate is not an
    # error, so the caller's transaction stays usable without a savepoint round trip.
    OutboxEvent.objects.using(db).bulk_create([row], ignore_conflicts=True)
    existing = (
        OutboxEvent.objects.using(db)
        .filter(Q(event_id=row.event_id) | Q(dedupe_key=row.dedupe_key))
        .order_by("id")
        .first()
    )
    if existing is None:  # pragma: no cover - only if the conflicting row was deleted meanwhile
        raise DatabaseError("outbox insert was ignored but no conflicting row exists")
    return existing


def decode_row(row: OutboxEvent) -> Event:
    """Rebuild the Event from a row; raises ``ValueError``/``TypeError`` on malformed data.

    The row's ``event_id`` wins over ``meta["id"]`` so a re-published event keeps the id that
    consumers deduplicate on.
    """
    if not isinstance(row.type, str) or not row.type:
        raise ValueError("event type is empty or not a string")
    if not isinstance(row.payload, dict):
        raise TypeError(f"payload must be a JSON object, got {type(row.payload).__name__}")
    meta = row.meta if row.meta is not None else {}
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a JSON object, got {type(meta).__name__}")
    meta = {**meta, "id": row.event_id}
    if "timestamp" in meta and not isinstance(meta["timestamp"], str):
        raise TypeError("meta.timestamp must be an ISO 8601 string")
    return Event(type=row.type, payload=row.payload, meta=EventMeta.from_dict(meta))


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
        self._fallback_policy = exponential_backoff(
            base=1.0,
            max=600.0,
            max_attempts=getattr(self.failure_policy, "max_attempts", 8),
        )

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
        """
        rows = [_row_for(e) for e in events]
        OutboxEvent.objects.using(self.db).bulk_create(rows, batch_size=1000, ignore_conflicts=True)
        return len(rows)

    # -- relaying --------------------------------------------------------------------------

    def _claimable(self, now: datetime) -> QuerySet[OutboxEvent]:
        return (
            OutboxEvent.objects.using(self.db)
            .filter(status=OutboxStatus.PENDING, visible_at__lte=now)
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
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

    def explain_claim(self, limit: int | None = None, **options: Any) -> str:
        """``EXPLAIN`` of the claim query exactly as ``relay_batch`` runs it (benchmarks,
        docs, plan tests). ``options`` go to ``QuerySet.explain`` (``analyze=True``...)."""
        with transaction.atomic(using=self.db):
            self._prefer_index_order()
            return self.claim_queryset(limit or self.batch_size).explain(**options)

    def _claim(self, limit: int, worker_id: str) -> list[OutboxEvent]:
        now = timezone.now()
        expires = now + timedelta(seconds=self.lease_seconds)
        db = self.db
        with transaction.atomic(using=db):
            if connections[db].features.has_select_for_update_skip_locked:
                self._prefer_index_order()
                rows = list(self.claim_queryset(limit, now))
                if rows:
                    OutboxEvent.objects.using(db).filter(id__in=[r.id for r in rows]).update(
                        lease_owner=worker_id, lease_expires_at=expires
                    )
            else:
                ids = list(self._claimable(now).values_list("id", flat=True)[:limit])
                if not ids:
                    return []
                # Optimistic claim: the condition is re-checked by the UPDATE itself, so a
                # row another worker leased in between is simply not ours.
                self._claimable(now).filter(id__in=ids).update(
                    lease_owner=worker_id, lease_expires_at=expires
                )
                rows = list(
                    OutboxEvent.objects.using(db)
                    .filter(id__in=ids, lease_owner=worker_id, lease_expires_at=expires)
                    .order_by("visible_at", "id")
                )
        for row in rows:
            row.lease_owner, row.lease_expires_at = worker_id, expires
        return rows

    def _ours(self, ids: list[int], worker_id: str) -> QuerySet[OutboxEvent]:
        return OutboxEvent.objects.using(self.db).filter(
            id__in=ids, status=OutboxStatus.PENDING, lease_owner=worker_id
        )

    def _publish(
        self, pairs: list[tuple[OutboxEvent, Event]], result: RelayResult
    ) -> tuple[list[OutboxEvent], list[tuple[OutboxEvent, BaseException]], list[OutboxEvent]]:
        """Publish in order; returns (published, failed, deferred-by-partition)."""
        publish_many = getattr(self.transport, "publish_many", None)
        if callable(publish_many) and pairs:
            result.used_publish_many = True
            try:
                publish_many([event for _, event in pairs])
                return [row for row, _ in pairs], [], []
            except Exception:  # noqa: BLE001 - find the culprit(s) one event at a time
                logger.warning(
                    "publish_many failed for a batch of %d; retrying one by one", len(pairs)
                )
        published: list[OutboxEvent] = []
        failed: list[tuple[OutboxEvent, BaseException]] = []
        deferred: list[OutboxEvent] = []
        blocked: set[str] = set()
        for row, event in pairs:
            if row.partition_key is not None and row.partition_key in blocked:
                deferred.append(row)
                continue
            try:
                self.transport.publish(event)
            except Exception as exc:  # noqa: BLE001 - any transport error is a failed publish
                failed.append((row, exc))
                if row.partition_key is not None:
                    blocked.add(row.partition_key)
            else:
                published.append(row)
        return published, failed, deferred

    def _decide(self, row: OutboxEvent, error: BaseException, result: RelayResult) -> Any:
        attempts = row.attempts + 1
        try:
            decision = self.failure_policy(attempts, error)
            if decision is not DEAD and not isinstance(decision, datetime):
                raise TypeError(f"failure policy returned {decision!r}, not a datetime or DEAD")
        except Exception:  # noqa: BLE001 - a broken policy must not wedge the relay
            result.fail_hook_errors += 1
            logger.exception("outbox failure policy raised for event %s", row.event_id)
            decision = self._fallback_policy(attempts, error)
        return decision

    def relay_batch(self, limit: int | None = None, worker_id: str | None = None) -> RelayResult:
        """Claim, publish and acknowledge up to ``limit`` events; see the module docstring."""
        limit = min(self.batch_size if limit is None else int(limit), MAX_BATCH_SIZE)
        worker_id = worker_id or default_worker_id()
        result = RelayResult()
        if limit <= 0:
            return result
        rows = self._claim(limit, worker_id)
        result.attempted = len(rows)
        if not rows:
            return result

        pairs: list[tuple[OutboxEvent, Event]] = []
        malformed: list[tuple[OutboxEvent, BaseException]] = []
        for row in rows:
            try:
                pairs.append((row, decode_row(row)))
            except Exception as exc:  # noqa: BLE001 - any decoding error makes the row dead
                malformed.append((row, exc))

        published, failed, deferred = self._publish(pairs, result)
        now = timezone.now()

        if published:
            ids = [row.id for row in published]
            try:
                updated = self._ours(ids, worker_id).update(
                    status=OutboxStatus.DELIVERED,
                    delivered_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            except DatabaseError:
                logger.exception("outbox ack failed for %d events", len(ids))
                result.ack_failed += len(ids)
            else:
                result.relayed += updated
                result.ownership_mismatches += len(ids) - updated

        for row, exc in malformed:
            result.malformed += 1
            self._finish(
                row,
                worker_id,
                result,
                status=OutboxStatus.DEAD,
                attempts=row.attempts + 1,
                last_error=_error_text(f"malformed event: {_error_text(exc)}"),
            )

        retry_at_by_partition: dict[str, datetime] = {}
        for row, exc in failed:
            result.publish_failed += 1
            decision = self._decide(row, exc, result)
            if decision is DEAD:
                result.dead_lettered += 1
                self._finish(
                    row,
                    worker_id,
                    result,
                    status=OutboxStatus.DEAD,
                    attempts=row.attempts + 1,
                    last_error=_error_text(exc),
                )
            else:
                if row.partition_key is not None:
                    retry_at_by_partition[row.partition_key] = decision
                self._finish(
                    row,
                    worker_id,
                    result,
                    status=OutboxStatus.PENDING,
                    attempts=row.attempts + 1,
                    last_error=_error_text(exc),
                    visible_at=decision,
                )

        for row in deferred:
            # Released, not failed: attempts unchanged. They become visible together with the
            # failed event that blocked them, which sorts first (lower id), keeping FIFO.
            result.deferred += 1
            self._finish(
                row,
                worker_id,
                result,
                status=OutboxStatus.PENDING,
                visible_at=retry_at_by_partition.get(row.partition_key or "", now),
            )
        return result

    def _finish(self, row: OutboxEvent, worker_id: str, result: RelayResult, **values: Any) -> None:
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
            visible_at=timezone.now(),
            lease_owner=None,
            lease_expires_at=None,
        )

    def purge(self, older_than: datetime | timedelta) -> int:
        """Delete *delivered* rows delivered before the cut-off (a datetime, or an age).

        Pending and dead rows are never purged: they are work still to do or evidence an
        operator needs. Returns the number of rows deleted.
        """
        cutoff = timezone.now() - older_than if isinstance(older_than, timedelta) else older_than
        deleted, _ = (
            OutboxEvent.objects.using(self.db)
            .filter(status=OutboxStatus.DELIVERED, delivered_at__lt=cutoff)
            .delete()
        )
        return deleted
