"""Domain events: the envelope, publishing through the outbox, subscribing, transports.

``from django_arc import events`` then ``events.publish(...)``, ``events.subscribe(...)``.
The ``scope_elevated`` receiver (every elevation recorded as ``arc.scope.elevated``) is
connected by ``django_arc.apps.ArcConfig.ready()``.
"""

from .bus import emit, emit_many, publish, publish_many
from .configured import get_transport, reset_transport, subscribe
from .event import DeadLetteredEvent, Event, EventMeta, create_child_event, create_event
from .retry import exponential_backoff, with_retry

__all__ = [
    "DeadLetteredEvent",
    "Event",
    "EventMeta",
    "create_child_event",
    "create_event",
    "emit",
    "emit_many",
    "exponential_backoff",
    "get_transport",
    "publish",
    "publish_many",
    "reset_transport",
    "subscribe",
    "with_retry",
]
