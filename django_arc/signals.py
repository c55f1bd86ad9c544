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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.dispatch import Signal

#: sent with ``event`` (an :class:`django_arc.events.Event`) inside the write's transaction.
resource_event = Signal()

#: sent with ``request`` and ``scope`` whenever a request is elevated (``X-Arc-Scope``).
scope_elevated = Signal()

#: sent with ``event`` when a transport delivers an event to this process's subscribers.
event_received = Signal()


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
