"""Storing events in the outbox, inside the caller's transaction.

``payload`` is stored as the JSON text the publisher encoded (once, in
:func:`django_arc.events.bus.encode_payload`), which the relay later splices into the wire
envelope as it is; ``meta`` is ``EventMeta`` as a snake_case dict.

On PostgreSQL a new row's ``visible_at`` and ``created_at`` are the database's time
(``statement_timestamp()``), which the relay compares them with: application servers whose
clocks differ neither hold their events back for as long as their clock runs ahead nor
reorder a partition's events; nor does the dedupe window (:func:`dedupe_window`) end early
or late. SQLite, on one host, takes that host's time through Python.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connections, router
from django.db.models import Q
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from ..clock import database_clock, now_on
from ..events.event import Event, EventMeta
from ..events.event import dumps as _dumps
from ..settings import arc_settings
from .models import OutboxEvent, OutboxStatus

#: Dedupe keys longer than the column are replaced by their SHA-256 (still unique, stable).
MAX_DEDUPE_KEY_LENGTH = 512


#: What the ``event_id`` and ``type`` columns hold (characters).
MAX_EVENT_ID_LENGTH = OutboxEvent._meta.get_field("event_id").max_length
MAX_TYPE_LENGTH = OutboxEvent._meta.get_field("type").max_length


def require_event(event: Any) -> None:
    """``TypeError`` for anything but an ``Event``; ``ValueError`` for an event whose type
    is not a non-empty string, or whose type or id is longer than its column, on every
    database and before any SQL is sent: SQLite would store a long one, PostgreSQL refuse it
    and abort the caller's transaction."""
    if not isinstance(event, Event):
        raise TypeError(f"the outbox stores django_arc.events.Event objects, not {type(event)!r}")
    if not isinstance(event.type, str) or not event.type:
        # the relay would take the row for malformed and dead-letter it unpublished
        raise ValueError(f"an event's type is a non-empty string, not {event.type!r}")
    if len(event.type) > MAX_TYPE_LENGTH:
        raise ValueError(
            f"event type {event.type[:40]!r}… is {len(event.type)} characters; the outbox "
            f"stores at most {MAX_TYPE_LENGTH}"
        )
    if len(str(event.meta.id)) > MAX_EVENT_ID_LENGTH:
        raise ValueError(
            f"event {event.type!r}: id {str(event.meta.id)[:40]!r}… is "
            f"{len(str(event.meta.id))} characters; the outbox stores at most "
            f"{MAX_EVENT_ID_LENGTH}"
        )


def dedupe_key(event: Event) -> str | None:
    """``meta.idempotency_key``, the key a retried request's events share (SPEC §9).

    A child event carries its parent's key unchanged (``create_child_event``, SPEC §8 and
    arc's wire form), so as it stands the outbox would take it for its parent and store
    nothing. An event with a ``causation_id`` is therefore deduped by its key, type, cause
    and payload: what tells two children of one parent apart, and what a redelivered parent
    makes again when its handler runs twice."""
    key = event.meta.idempotency_key
    if not key:
        return None
    key = str(key)
    cause = event.meta.causation_id
    if cause:
        payload = _dumps(event.payload).encode("utf-8", "surrogatepass")
        key = f"{key}:{event.type}:{cause}:{hashlib.sha256(payload).hexdigest()[:32]}"
    if len(key) > MAX_DEDUPE_KEY_LENGTH:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def partition_key(event: Event) -> str | None:
    partition = event.meta.partition_key
    return None if partition is None else str(partition)[:255]


_META_FIELDS = tuple(f.name for f in dataclasses.fields(EventMeta))


def stored_meta(meta: EventMeta) -> dict[str, Any]:
    """``EventMeta.to_dict()`` without ``dataclasses.asdict``'s deep copies: the row is
    serialised once at INSERT time, so a shallow dict is enough (and this is the write path
    of every resource request)."""
    data = {name: getattr(meta, name) for name in _META_FIELDS}
    timestamp = data["timestamp"]
    if isinstance(timestamp, datetime):
        data["timestamp"] = timestamp.isoformat()
    return data


def row_for(event: Event, now: Any = None) -> OutboxEvent:
    """An unsaved row for ``event``, new at ``now`` (default: this server's time; ``Now()``
    for the database's, from :func:`now_on`)."""
    require_event(event)
    now = timezone.now() if now is None else now
    return OutboxEvent(
        event_id=str(event.meta.id),
        type=event.type,
        payload=event.payload,
        meta=stored_meta(event.meta),
        status=OutboxStatus.PENDING,
        visible_at=now,
        created_at=now,
        dedupe_key=dedupe_key(event),
        partition_key=partition_key(event),
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
_insert_sql: dict[tuple[str, bool], str] = {}


def _insert_statement(connection: Any, keyed: bool = False) -> str:
    """Built once per database. The JSON columns take the encoded text as it is (``::jsonb``
    on PostgreSQL; SQLite stores the text), so nothing is encoded twice. ``keyed``: the row
    has a dedupe key and a duplicate is skipped (``ON CONFLICT DO NOTHING``, which both
    PostgreSQL and SQLite read, so the caller's transaction stays usable without a
    savepoint); it returns nothing, since a skipped row has no id."""
    sql = _insert_sql.get((connection.alias, keyed))
    if sql is None:
        qn = connection.ops.quote_name
        opts = OutboxEvent._meta
        names = (*_INSERT_COLUMNS, "dedupe_key") if keyed else _INSERT_COLUMNS
        columns = [opts.get_field(name).column for name in names]
        columns += [opts.get_field(name).column for name in ("status", "attempts", "last_error")]
        json_param = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
        params = [json_param if name in ("payload", "meta") else "%s" for name in names]
        returned = [qn(opts.pk.column)]
        if database_clock(connection):
            # a time given (a pre_save receiver's) is kept; none is the database's now
            for name in ("visible_at", "created_at"):
                params[names.index(name)] = "COALESCE(%s, statement_timestamp())"
                returned.append(qn(opts.get_field(name).column))
        if keyed:
            tail = " ON CONFLICT DO NOTHING"
        elif connection.features.can_return_columns_from_insert:
            tail = f" RETURNING {', '.join(returned)}"
        else:
            tail = ""
        sql = "INSERT INTO {} ({}) VALUES ({}, '{}', 0, ''){}".format(
            qn(opts.db_table),
            ", ".join(qn(c) for c in columns),
            ", ".join(params),
            OutboxStatus.PENDING.value,
            tail,
        )
        _insert_sql[(connection.alias, keyed)] = sql
    return sql


def _event_values(event: Event, connection: Any) -> list[Any]:
    """The :data:`_INSERT_COLUMNS` of a new row for ``event``, without building the model
    instance; the payload still to be encoded, the times not yet adapted (``None`` where
    the database stamps its own time)."""
    now = None if database_clock(connection) else timezone.now()
    return [
        str(event.meta.id),
        event.type,
        event.payload,
        _dumps(stored_meta(event.meta)),
        now,
        now,
        partition_key(event),
    ]


def _execute_insert(
    values: list[Any],
    payload_json: str | None,
    connection: Any,
    *,
    keyed: bool = False,
    want_id: bool = False,
) -> Any:
    """Encode the payload (unless ``payload_json`` is its encoding), adapt the times (``None``
    for the database's) and run the INSERT; with ``want_id``, return the new row's id and,
    where the database may have stamped them, its ``visible_at`` and ``created_at`` (never
    for ``keyed``), else how many rows it inserted."""
    params = list(values)
    params[2] = payload_json if payload_json is not None else _dumps(params[2])
    adapt = connection.ops.adapt_datetimefield_value
    params[4] = None if params[4] is None else adapt(params[4])
    params[5] = None if params[5] is None else adapt(params[5])
    with connection.cursor() as cursor:
        cursor.execute(_insert_statement(connection, keyed=keyed), params)
        if not want_id:
            return cursor.rowcount
        if connection.features.can_return_columns_from_insert:
            return tuple(cursor.fetchone())
        return (cursor.lastrowid,)


def _insert_keyed(event: Event, db: str, key: str, payload_json: str | None) -> None:
    """Insert ``event`` (which has a dedupe key) unless a row with its id or key exists:
    one statement, for a receiver that needs no row back (a keyed request's events). Only
    when it inserted nothing, a second: the row holding the key may be one whose key
    expired (:func:`expire_dedupe_keys`), and the insert is tried again without it."""
    connection = connections[db]
    values = [*_event_values(event, connection), key]
    if _execute_insert(values, payload_json, connection, keyed=True):
        return
    if expire_dedupe_keys([event], db):
        _execute_insert(values, payload_json, connection, keyed=True)


def dedupe_window() -> timedelta:
    """How long a dedupe key makes a second event a repeat: the idempotency key's
    ``TTL_SECONDS``, for which a request sent again is a retry. After it, a request sent
    with the same key runs again, as a new request (SPEC §10), and its events are new
    events, however long the outbox keeps the first run's rows."""
    return timedelta(seconds=float(arc_settings.IDEMPOTENCY.get("TTL_SECONDS", 86400)))


def expire_dedupe_keys(events: list[Event], db: str) -> int:
    """Clear the dedupe key of rows that hold one of ``events``' keys and are older than
    :func:`dedupe_window`, so those events can be stored; returns how many were cleared.
    Called only after an insert skipped a row, so an event never pays for it unless its key
    is already taken. Child events (``causation_id`` set) are left alone: their key is what
    keeps a dead-lettered parent, requeued any time later, from repeating its children."""
    keys = [
        key
        for event in events
        if not event.meta.causation_id and (key := dedupe_key(event)) is not None
    ]
    if not keys:
        return 0
    cutoff = now_on(connections[db]) - dedupe_window()
    return (
        OutboxEvent.objects.using(db)
        .filter(dedupe_key__in=keys, created_at__lte=cutoff)
        .update(dedupe_key=None)
    )


def _saved_values(row: OutboxEvent, db: str, connection: Any) -> list[Any]:
    """The :data:`_INSERT_COLUMNS` of ``row`` (from :func:`row_for`) after ``pre_save``,
    as a ``save()`` would send it: a receiver may change the row, and a time it gives
    (a delayed event) is kept; the times ``row_for`` gave are the database's (``None``,
    stamped by the INSERT) where it is the outbox's clock."""
    stamped = row.visible_at  # row_for's time, also created_at's
    if pre_save.has_listeners(OutboxEvent):
        pre_save.send(sender=OutboxEvent, instance=row, raw=False, using=db, update_fields=None)
    values = [getattr(row, name) for name in _INSERT_COLUMNS]
    values[3] = _dumps(row.meta)
    if database_clock(connection):  # the database's time, unless a receiver set one
        values[4:6] = [None if value is stamped else value for value in values[4:6]]
    return values


def _insert(
    event: Event, db: str, *, want_row: bool, payload_json: str | None = None
) -> OutboxEvent | None:
    """Insert ``event`` (which has no dedupe key) as a new pending row.

    This is the write path of every resource request, so it skips ``Model.save()`` and the
    SQL compiler and, unless ``want_row`` or something listens to ``pre_save``/``post_save``,
    the model instance too; ``payload_json`` is the publisher's encoding, reused as it is.
    """
    listened = pre_save.has_listeners(OutboxEvent) or post_save.has_listeners(OutboxEvent)
    row = row_for(event) if want_row or listened else None
    connection = connections[db]
    if row is not None:
        if pre_save.has_listeners(OutboxEvent):
            payload_json = None  # a receiver may change the row
        values = _saved_values(row, db, connection)
    else:
        values = _event_values(event, connection)
    returned = _execute_insert(values, payload_json, connection, want_id=row is not None)
    if row is None:
        return None
    row.pk = returned[0]
    if len(returned) == 3:  # the database's time
        row.visible_at, row.created_at = returned[1:]
    row._state.adding = False
    row._state.db = db
    if post_save.has_listeners(OutboxEvent):
        post_save.send(
            sender=OutboxEvent, instance=row, created=True, update_fields=None, raw=False, using=db
        )
    return row


def _store(
    event: Event, using: str | None, payload_json: str | None, *, want_row: bool
) -> OutboxEvent | None:
    require_event(event)
    db = using or router.db_for_write(OutboxEvent)
    key = dedupe_key(event)
    if key is None:
        return _insert(event, db, want_row=want_row, payload_json=payload_json)
    listened = pre_save.has_listeners(OutboxEvent) or post_save.has_listeners(OutboxEvent)
    if not want_row and not listened:
        _insert_keyed(event, db, key, payload_json)
        return None
    return _store_deduplicated(event, db)


def store_event(
    event: Event, using: str | None = None, payload_json: str | None = None
) -> OutboxEvent:
    """Insert ``event`` in the current transaction (see :meth:`EventOutbox.store`)."""
    row = _store(event, using, payload_json, want_row=True)
    assert row is not None  # want_row: the insert returns the row
    return row


def store_event_without_row(
    event: Event, using: str | None = None, payload_json: str | None = None
) -> None:
    """:func:`store_event` for the ``resource_event`` receiver, which needs no row back."""
    _store(event, using, payload_json, want_row=False)


def store_events_without_rows(
    items: list[tuple[Event, str | None]], using: str | None = None
) -> None:
    """Many events in the current transaction with one INSERT (``ON CONFLICT DO NOTHING``
    for the ones with a dedupe key: a second): the rows of a bulk write. ``items`` are
    ``(event, payload_json)`` pairs, ``payload_json`` as for :func:`store_event`.

    On PostgreSQL the rows travel as two JSON arrays expanded by the server
    (:func:`_insert_many_postgresql`); elsewhere through ``bulk_create``. Like Django's
    ``bulk_create``, this sends no ``pre_save``/``post_save``; when something listens to
    them, the events are stored one by one instead."""
    db = using or router.db_for_write(OutboxEvent)
    if pre_save.has_listeners(OutboxEvent) or post_save.has_listeners(OutboxEvent):
        for event, payload_json in items:
            _store(event, db, payload_json, want_row=False)
        return
    connection = connections[db]
    if connection.vendor == "postgresql":
        _insert_many_postgresql(items, connection)
        return
    rows = [(event, row_for(event)) for event, _ in items]
    plain = [row for _, row in rows if row.dedupe_key is None]
    keyed = [(event, row) for event, row in rows if row.dedupe_key is not None]
    manager = OutboxEvent.objects.using(db)
    if plain:
        manager.bulk_create(plain)
    if keyed:
        keyed_rows = [row for _, row in keyed]
        before = _changes(connection)
        manager.bulk_create(keyed_rows, ignore_conflicts=True)
        skipped = before is None or _changes(connection) - before < len(keyed_rows)
        if skipped and expire_dedupe_keys([event for event, _ in keyed], db):
            manager.bulk_create(keyed_rows, ignore_conflicts=True)  # the stored ones skip


def _changes(connection: Any) -> int | None:
    """Rows the connection has inserted, updated or deleted so far, where the backend says
    (SQLite): how :func:`store_events_without_rows` sees that ``bulk_create`` skipped a
    row; ``None`` elsewhere."""
    if connection.vendor != "sqlite":
        return None
    connection.ensure_connection()
    return connection.connection.total_changes


_insert_many_sql: dict[tuple[str, bool], str] = {}


def _insert_many_statement(connection: Any, keyed: bool) -> str:
    """PostgreSQL: insert the rows of two JSON arrays, taken in step and in order — the
    rows' other columns (``[event_id, type, meta, partition_key(, dedupe_key)]`` each) and
    their payloads. Parameters: the first array, the second (the new rows' ``visible_at`` and
    ``created_at`` are the database's ``statement_timestamp()``).

    Why not ``bulk_create``: Django sends it as ``UNNEST`` of one array parameter per
    column, and the driver quotes an array element by element in Python (every ``"`` of
    every payload's JSON escaped by a regular expression), the largest CPU cost of a bulk
    request. Two JSON texts are two string parameters, quoted in C, and the server parses
    them. ``->>`` yields SQL ``NULL`` for a JSON ``null``; the columns keep their types, so
    a too long ``type`` fails as it does for one row; ``ORDER BY`` the position gives the
    ids in the batch's order. The arrays cannot slip out of step: a spliced payload that is
    not exactly one JSON value is a syntax error or an extra element, whose row then has no
    ``event_id`` and fails the ``NOT NULL`` constraint."""
    sql = _insert_many_sql.get((connection.alias, keyed))
    if sql is None:
        qn = connection.ops.quote_name
        opts = OutboxEvent._meta
        names = (*_INSERT_COLUMNS, "dedupe_key") if keyed else _INSERT_COLUMNS
        names += ("status", "attempts", "last_error")
        columns = ", ".join(qn(opts.get_field(name).column) for name in names)
        values = {
            "event_id": "r.h->>0",
            "type": "r.h->>1",
            "payload": "r.p",
            "meta": "r.h->2",
            "visible_at": "statement_timestamp()",
            "created_at": "statement_timestamp()",
            "partition_key": "r.h->>3",
            "dedupe_key": "r.h->>4",
            "status": f"'{OutboxStatus.PENDING.value}'",
            "attempts": "0",
            "last_error": "''",
        }
        sql = (
            f"INSERT INTO {qn(opts.db_table)} ({columns}) "
            f"SELECT {', '.join(values[name] for name in names)} "
            "FROM ROWS FROM (jsonb_array_elements(%s::jsonb), jsonb_array_elements(%s::jsonb)) "
            "WITH ORDINALITY AS r(h, p, n) ORDER BY r.n"
        )
        if keyed:
            sql += " ON CONFLICT DO NOTHING"
        _insert_many_sql[(connection.alias, keyed)] = sql
    return sql


def _insert_many_postgresql(items: list[tuple[Event, str | None]], connection: Any) -> None:
    """:func:`store_events_without_rows` on PostgreSQL: one statement for the events
    without a dedupe key, one (``ON CONFLICT DO NOTHING``) for those with one. The values
    are the ones :func:`_insert` and :func:`_insert_keyed` write, the payload the
    publisher's encoding as it is; the rows' other columns are encoded in one call, and one
    time serves the whole batch."""
    groups: dict[bool, tuple[list[list[Any]], list[str]]] = {}
    keyed_events = []
    for event, payload_json in items:
        require_event(event)
        key = dedupe_key(event)
        head = [str(event.meta.id), event.type, stored_meta(event.meta), partition_key(event)]
        if key is not None:
            head.append(key)
            keyed_events.append(event)
        heads, payloads = groups.setdefault(key is not None, ([], []))
        heads.append(head)
        payloads.append(_dumps(event.payload) if payload_json is None else payload_json)
    with connection.cursor() as cursor:
        for keyed in (False, True):
            if keyed not in groups:
                continue
            heads, payloads = groups[keyed]
            params = [_dumps(heads), "[" + ",".join(payloads) + "]"]
            cursor.execute(_insert_many_statement(connection, keyed), params)
            if (
                keyed
                and cursor.rowcount < len(heads)
                and expire_dedupe_keys(keyed_events, connection.alias)
            ):
                # the rows stored by the first statement skip by their event id
                cursor.execute(_insert_many_statement(connection, keyed), params)


def _store_deduplicated(event: Event, db: str) -> OutboxEvent:
    """Insert ``event``'s row unless its id or dedupe key is stored (then return that row).
    ON CONFLICT DO NOTHING (PostgreSQL) / INSERT OR IGNORE (SQLite): a duplicate is not an
    error, so the caller's transaction stays usable without a savepoint round trip.

    ``pre_save`` is sent before the insert and ``post_save`` when it stored the row, as for
    an event without a key (:func:`_insert`): a receiver's own ``visible_at`` (a delayed
    event) is stored, the database's time otherwise on PostgreSQL. ``bulk_create`` sent
    neither, so the events of keyed requests ignored a project's delay and its receivers
    never saw them."""
    connection = connections[db]
    row = row_for(event)
    values = [*_saved_values(row, db, connection), row.dedupe_key]
    inserted = _execute_insert(values, None, connection, keyed=True)
    if not inserted and expire_dedupe_keys([event], db):
        inserted = _execute_insert(values, None, connection, keyed=True)
    existing = _stored_as(row, db)
    if inserted and post_save.has_listeners(OutboxEvent):
        post_save.send(
            sender=OutboxEvent,
            instance=existing,
            created=True,
            update_fields=None,
            raw=False,
            using=db,
        )
    return existing


def _stored_as(row: OutboxEvent, db: str) -> OutboxEvent:
    """The stored row with ``row``'s event id or dedupe key."""
    existing = (
        OutboxEvent.objects.using(db)
        .filter(Q(event_id=row.event_id) | Q(dedupe_key=row.dedupe_key))
        .order_by("id")
        .first()
    )
    if existing is None:  # pragma: no cover - only if the conflicting row was deleted meanwhile
        raise DatabaseError("outbox insert was ignored but no conflicting row exists")
    return existing
