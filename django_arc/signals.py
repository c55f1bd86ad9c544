"""Django signals django-arc sends, and the batch several of them may be sent in.

``resource_event`` is the one path by which every write reaches the outbox: it is sent
*inside* the write's transaction, and the built-in receiver stores the event in that same
transaction, so a rolled-back write leaves no event behind.

:func:`event_batch` marks signals sent together (the rows of one bulk write): the signal is
still sent once per event, so every receiver sees every event, but a receiver that can store
many at once (the outbox: one INSERT) may buffer them with :meth:`EventBatch.buffer` and
write them when the batch ends — still inside the transaction, before anything commits.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import models
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal

T = TypeVar("T")

#: sent with ``event`` (an :class:`django_arc.events.Event`) inside the write's transaction.
resource_event = Signal()

#: sent with ``request`` and ``scope`` whenever a request is elevated (``X-Arc-Scope``).
scope_elevated = Signal()

#: sent with ``event`` when a transport delivers an event to this process's subscribers.
event_received = Signal()


def arc_receiver(receiver: T) -> T:
    """Mark ``receiver`` as django-arc's own (the query cache's model-signal receivers), so
    :func:`project_listens` does not count it: what it does for a row is no project code a
    batched write (``bulk_create``) must run row by row."""
    receiver.arc_receiver = True  # type: ignore[attr-defined]
    return receiver


def project_listens(signal: Signal, sender: Any) -> bool:
    """Whether a receiver that is not django-arc's own (:func:`arc_receiver`) listens to
    ``signal`` for ``sender``: a project's ``pre_save`` (a slug set), a library's
    ``post_save`` (django-simple-history's copy of the row). Writes that batch rows
    (``bulk_create``, ``bulk_update``) send no model signal, so where one listens, the rows
    are saved one by one instead, as the single-row routes save one.

    Read through the signal's ``has_listeners()`` and its ``receivers`` entries, whose
    first two fields (``(receiver key, sender key)``, the receiver or a weak reference to
    it) Django 4.2 and 5.x share, rather than the private ``_live_receivers()``, whose
    answer changed shape in Django 5.0: a receiver counts when connected for ``sender`` or
    for every sender, and alive."""
    if not signal.has_listeners(sender):
        return False
    senders = (id(None), id(sender))  # the sender keys Django gives None and a class
    for (_, sender_key), receiver, *_ in tuple(signal.receivers):
        if sender_key not in senders:
            continue
        if isinstance(receiver, weakref.ReferenceType):  # weak (WeakMethod included)
            receiver = receiver()
            if receiver is None:
                continue  # collected, not yet cleared
        if not getattr(receiver, "arc_receiver", False):
            return True
    return False


def saves_its_own_way(model: Any) -> bool:
    """Whether saving a row of ``model`` runs code of the project's besides Django's: a
    ``save()`` override (a field derived, a total computed), or a ``pre_save``/``post_save``
    receiver that is not django-arc's own (:func:`project_listens`: a slug set,
    django-simple-history's copy). Such code may write more than the row, so a write needs
    a transaction of its own, and writes that batch rows (``bulk_create``,
    ``bulk_update``), which skip it, go row by row instead. Read at each write: receivers
    may be connected after the resource first wrote."""
    return (
        model.save is not models.Model.save
        or project_listens(pre_save, model)
        or project_listens(post_save, model)
    )


class EventBatch:
    """The events of one :func:`event_batch` block, buffered by the receivers that ask."""

    def __init__(self) -> None:
        self._buffers: dict[Any, tuple[list[Any], Callable[[list[Any]], None]]] = {}

    def buffer(self, key: Any, flush: Callable[[list[Any]], None]) -> list[Any]:
        """The list to append to under ``key``; ``flush(items)`` runs once when the batch
        ends without an exception (with ``key``'s items, in the order they came)."""
        entry = self._buffers.get(key)
        if entry is None:
            entry = self._buffers[key] = ([], flush)
        return entry[0]

    def flush(self) -> None:
        buffers, self._buffers = self._buffers, {}
        for items, flush in buffers.values():
            if items:
                flush(items)


_local = threading.local()


def current_event_batch() -> EventBatch | None:
    """The batch signals are being sent in on this thread, if any."""
    return getattr(_local, "batch", None)


@contextmanager
def event_batch() -> Iterator[EventBatch]:
    """Send the block's events as one batch; a nested block joins the outer one. Buffers
    are flushed when the outermost block ends, and dropped if it raises."""
    outer = current_event_batch()
    if outer is not None:
        yield outer
        return
    batch = _local.batch = EventBatch()
    try:
        yield batch
    finally:
        _local.batch = None
    batch.flush()
