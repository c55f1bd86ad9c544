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

    :attr:`published` and :attr:`dead_letters` keep the newest ``max_kept`` entries
    (:data:`MAX_KEPT` by default; ``OPTIONS={"max_kept": n}``), the older ones are
    forgotten: this is the default transport, so a relay (or, with the outbox off, a web
    worker) left on it publishes every event of its lifetime here, and a list of them all
    grew without bound.
    """

    #: how many published events (and dead letters) are kept by default
    MAX_KEPT = 10_000

    def __init__(self, max_kept: int = MAX_KEPT, **_options: Any) -> None:
        super().__init__()
        if isinstance(max_kept, bool) or not isinstance(max_kept, int) or max_kept < 0:
            raise ValueError(f"max_kept must be an integer >= 0, not {max_kept!r}")
        self.max_kept = max_kept
        self.published: list[Event] = []
        self.dead_letters: list[DeadLetteredEvent] = []
        self._lock = threading.Lock()

    def _keep(self, kept: list[Any], item: Any) -> None:
        with self._lock:
            kept.append(item)
            over = len(kept) - self.max_kept
            if over > 0:
                del kept[:over]

    def publish(self, event: Event) -> None:
        self._keep(self.published, event)
        self.dispatch(event)

    def dead_letter(self, dead: DeadLetteredEvent) -> None:
        super().dead_letter(dead)
        self._keep(self.dead_letters, dead)

    def clear(self) -> None:
        """Forget published events and dead letters (between tests)."""
        with self._lock:
            self.published.clear()
            self.dead_letters.clear()
