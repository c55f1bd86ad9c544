"""``MemoryTransport``: in-process, synchronous delivery, for tests and the demo."""

from __future__ import annotations

import threading
from typing import Any

from ..event import DeadLetteredEvent, Event
from .base import Transport


class MemoryTransport(Transport):
    """In-process transport: ``publish`` appends to :attr:`published` and delivers at once.

    A failing subscriber is logged, not raised to the publisher: with the outbox, re-publishing
    would redeliver to every *other* subscriber too. Wrap handlers in ``with_retry`` to retry
    and dead-letter them.
    """

    def __init__(self, **_options: Any) -> None:
        super().__init__()
        self.published: list[Event] = []
        self.dead_letters: list[DeadLetteredEvent] = []
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        with self._lock:
            self.published.append(event)
        self.dispatch(event)

    def dead_letter(self, dead: DeadLetteredEvent) -> None:
        super().dead_letter(dead)
        with self._lock:
            self.dead_letters.append(dead)

    def clear(self) -> None:
        """Forget published events and dead letters (between tests)."""
        with self._lock:
            self.published.clear()
            self.dead_letters.clear()
