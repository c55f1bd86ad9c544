"""The built-in ``resource_event`` receiver: the bridge from a write to the outbox.

Connected by ``django_arc.apps.ArcConfig.ready()``. With ``ARC["EVENTS"]["OUTBOX"]`` (the
default) the event is inserted in the sender's transaction, so it commits or rolls back with
the write. With the outbox off, the event is published straight to the transport once the
transactions open where it was sent have all committed (``on_commit`` on each): nothing is
published for a rolled-back write, but an event can be lost if the process dies or the
transport fails right after the commit — that is the trade the setting makes.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import connections, router, transaction

from ..events.configured import get_transport
from ..events.transports.base import publishes_in_one_call
from ..logs import log_text
from ..settings import arc_settings
from ..signals import current_event_batch
from .models import OutboxEvent
from .store import store_event_without_row, store_events_without_rows

logger = logging.getLogger("django_arc.outbox")

#: ``dispatch_uid`` of :func:`store_resource_event` on ``resource_event``.
DISPATCH_UID = "django_arc.outbox.store_resource_event"


#: the event ids a lost batch's ERROR names; the rest are counted
LOST_LOG_IDS = 20


def _publish_after_commit(event: Any) -> None:
    _publish_each([event])


def _publish_each(events: list[Any]) -> None:
    """Publish ``events`` one by one; those the transport refuses are lost (the outbox is
    off): one ERROR for them all, with the first one's traceback, naming them (up to
    :data:`LOST_LOG_IDS`) — not one traceback an event, which a broker outage turned into
    a flood as long as a bulk body."""
    lost: list[Any] = []
    first: BaseException | None = None
    try:
        transport = get_transport()
    except Exception as exc:  # noqa: BLE001 - built on first use (a broker down at connect)
        lost, first = list(events), exc
    else:
        for event in events:
            try:
                transport.publish(event)
            except Exception as exc:  # noqa: BLE001 - the write is committed; never a 500
                lost.append(event)
                if first is None:
                    first = exc
    if not lost:
        return
    more = len(lost) - LOST_LOG_IDS
    logger.error(
        "publishing %d of %d events after commit failed; they are lost (the outbox is off): %s%s",
        len(lost),
        len(events),
        log_text(", ".join(f"{event.type} ({event.id})" for event in lost[:LOST_LOG_IDS])),
        f" and {more} more" if more > 0 else "",
        exc_info=first,
    )


def store_resource_event(
    sender: Any,
    event: Any,
    using: str | None = None,
    payload_json: str | None = None,
    **kwargs: Any,
) -> None:
    """Store (outbox on) or schedule the publish of (outbox off) one resource event.

    Inside an :func:`~django_arc.signals.event_batch` the events are buffered and stored
    together when the batch ends (one INSERT), still in the sender's transaction.

    ``payload_json`` is the payload as :func:`django_arc.events.publish` encoded it; the
    outbox stores that text instead of encoding the payload again.
    """
    if arc_settings.EVENTS.get("OUTBOX", True):
        batch = current_event_batch()
        if batch is None:
            store_event_without_row(event, using=using, payload_json=payload_json)
        else:
            items = batch.buffer((DISPATCH_UID, using), partial(_store_buffered, using=using))
            db = using or router.db_for_write(OutboxEvent)
            items.append((event, payload_json, _marker(items, db)))
        return
    batch = current_event_batch()
    if batch is not None:
        # a batch's events (a bulk write's) are published together once it ends, with one
        # ``publish_many`` after the commit (one round trip on Redis) instead of one each
        items = batch.buffer(
            (DISPATCH_UID, "publish", using), partial(_publish_buffered, using=using)
        )
        aliases = (
            [using]
            if using is not None
            else [c.alias for c in connections.all(initialized_only=True) if c.in_atomic_block]
        )
        previous = items[-1][1] if items else ()
        items.append((event, tuple(_publish_marker(previous, alias) for alias in aliases)))
    elif using is not None:
        transaction.on_commit(partial(_publish_after_commit, event), using=using)
    else:
        _after_every_commit(partial(_publish_after_commit, event))


def _publish_marker(previous: tuple[Any, ...], db: str) -> _Marker | None:
    """The marker telling whether an event buffered now on ``db``'s transaction state still
    stands when its batch ends: one of the ``previous`` event's when it has the same state,
    else a new one. ``None`` outside an atomic block (nothing there can roll the event's
    write back)."""
    connection = transaction.get_connection(db)
    if not connection.in_atomic_block:
        return None
    for last in previous:
        if (
            last is not None
            and last.connection is connection
            and last.savepoints == tuple(connection.savepoint_ids)
            and not last.committed
            and last.stands()
        ):
            return last
    marker = _Marker(connection)
    transaction.on_commit(marker, using=db)
    return marker


def _publish_buffered(items: list[Any], using: str | None = None) -> None:
    """Publish a batch's buffered events, except those sent inside a savepoint or
    transaction that has since rolled back, once every transaction open now commits (or on
    ``using`` alone, as one event's publish waits)."""
    verdicts: dict[int, bool] = {}
    kept = []
    for event, markers in items:
        for marker in markers:
            if marker is None:
                continue
            stands = verdicts.get(id(marker))
            if stands is None:
                stands = verdicts[id(marker)] = marker.stands()
            if not stands:
                break
        else:
            kept.append(event)
    if not kept:
        return
    callback = partial(_publish_many_after_commit, kept)
    if using is not None:
        transaction.on_commit(callback, using=using)
    else:
        _after_every_commit(callback)


def _publish_many_after_commit(events: list[Any]) -> None:
    try:
        transport = get_transport()
    except Exception:  # noqa: BLE001 - the writes are committed; never turn this into a 500
        _publish_each(events)  # which tries once more, and logs them lost
        return
    if not publishes_in_one_call(transport):
        # one publish per event anyway: the fallback below would publish twice the events
        # before one it refused
        _publish_each(events)
        return
    try:
        transport.publish_many(events)
    except Exception:  # noqa: BLE001 - the writes are committed; never turn this into a 500
        # refused as a whole (one event too long for it, an outage): event by event, so one
        # the transport refuses does not take the others with it
        logger.warning(
            "publishing %d events after commit failed; publishing them one by one",
            len(events),
            exc_info=True,
        )
        _publish_each(events)


class _Marker:
    """Stands, in the connection's ``on_commit`` list, for the events buffered in one
    transaction state (its savepoints). Django drops it with the savepoint or transaction
    it was registered in when that rolls back, and calls it when the transaction commits:
    what tells, when the batch ends, which buffered events belong to writes that still
    stand."""

    __slots__ = ("connection", "savepoints", "committed")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.savepoints = tuple(connection.savepoint_ids)
        self.committed = False

    def __call__(self) -> None:
        self.committed = True

    def stands(self) -> bool:
        """The transaction it was registered in committed, or it is still pending (no
        rollback removed it)."""
        return self.committed or any(
            entry[1] is self for entry in reversed(self.connection.run_on_commit)
        )


def _marker(items: list[Any], db: str) -> _Marker | None:
    """The marker of an event stored on ``db`` when its batch ends: the previous event's
    when it was buffered in the same savepoints and still stands (:func:`_publish_marker`)."""
    return _publish_marker((items[-1][2],) if items else (), db)


def _store_buffered(items: list[Any], using: str | None = None) -> None:
    """Store a batch's buffered events, except those published inside a savepoint or
    transaction that has since rolled back: the batch may span ``atomic`` blocks (an import
    catching one row's error and going on), and the event of a write rolled back must not
    be stored when the batch ends after it (SPEC §8)."""
    verdicts: dict[int, bool] = {}
    kept = []
    for event, payload_json, marker in items:
        if marker is not None:
            stands = verdicts.get(id(marker))
            if stands is None:
                stands = verdicts[id(marker)] = marker.stands()
            if not stands:
                continue
        kept.append((event, payload_json))
    if kept:
        store_events_without_rows(kept, using=using)


def _after_every_commit(callback: Any) -> None:
    """Run ``callback`` once every transaction open now has committed, at once when none
    is; never when one of them rolls back. A write's rows may be on another database than
    ``default`` (a router), in a transaction that outlives the write's own (that database's
    ``ATOMIC_REQUESTS``): waiting for ``default``'s commit alone published the event of a
    row not yet committed, and of one that was then rolled back."""
    open_ = [c.alias for c in connections.all(initialized_only=True) if c.in_atomic_block]
    if not open_:
        callback()
        return
    waiting = set(open_)

    def committed(alias: str) -> None:
        waiting.discard(alias)
        if not waiting:
            callback()

    for alias in open_:
        transaction.on_commit(partial(committed, alias), using=alias)
