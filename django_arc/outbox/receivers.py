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

from django.db import connections, transaction

from ..events.configured import get_transport
from ..settings import arc_settings
from ..signals import current_event_batch
from .store import store_event_without_row, store_events_without_rows

logger = logging.getLogger("django_arc.outbox")

#: ``dispatch_uid`` of :func:`store_resource_event` on ``resource_event``.
DISPATCH_UID = "django_arc.outbox.store_resource_event"


def _publish_after_commit(event: Any) -> None:
    try:
        get_transport().publish(event)
    except Exception:  # noqa: BLE001 - the write is committed; never turn this into a 500
        logger.exception("publishing %s (%s) after commit failed", event.type, event.id)


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
            flush = partial(store_events_without_rows, using=using)
            batch.buffer((DISPATCH_UID, using), flush).append((event, payload_json))
    elif using is not None:
        transaction.on_commit(partial(_publish_after_commit, event), using=using)
    else:
        _after_every_commit(partial(_publish_after_commit, event))


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
