"""A transport that drops events: for the benchmark's "events off" configuration.

With ``ARC["EVENTS"]["OUTBOX"] = False`` django-arc publishes each event to the transport
after commit. The default ``MemoryTransport`` keeps every event in a list, which would grow
without bound inside a gunicorn worker under load (and cost an append + dispatch); this one
does nothing, so "events off" measures the framework without any event delivery.
"""

from __future__ import annotations

from typing import Any

from django_arc.events.transports import Transport


class NullTransport(Transport):
    """Accepts and forgets every event."""

    def __init__(self, **_options: Any) -> None:
        super().__init__()

    def publish(self, event: Any) -> None:
        return None
