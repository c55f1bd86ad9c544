"""Domain events: the envelope, publishing through the outbox, subscribing, transports.

``from django_arc import events`` then ``events.publish(...)``, ``events.subscribe(...)``.
Importing this package connects the ``scope_elevated`` receiver (``django_arc.apps`` does it
at start-up), so every elevation is recorded as ``arc.scope.elevated``.
"""

from .bus import emit, get_transport, publish, reset_transport, subscribe
from .event import Event, EventMeta, create_child_event, create_event
from .retry import DeadLetteredEvent, exponential_backoff, with_retry

__all__ = [
    "DeadLetteredEvent",
    "Event",
    "EventMeta",
    "create_child_event",
    "create_event",
    "emit",
    "exponential_backoff",
    "get_transport",
    "publish",
    "reset_transport",
    "subscribe",
    "with_retry",
]
