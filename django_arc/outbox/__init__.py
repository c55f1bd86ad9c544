"""Transactional outbox: store events with the write, relay them to a transport afterwards.

``get_outbox()`` is the configured instance (``ARC["OUTBOX"]`` + the process-wide transport of
:mod:`django_arc.events.configured`) used by the built-in signal receiver and by
:func:`run_relay`, which drives ``manage.py arc_relay``, the Celery task and the admin.
"""

from __future__ import annotations

from .configured import OutboxSettingError, get_failure_policy, get_outbox
from .models import OutboxEvent, OutboxStatus
from .policy import DEAD, exponential_backoff
from .relay import EventOutbox, RelayResult, decode_row, default_worker_id
from .runner import RelayTotals, run_relay
from .store import store_event

__all__ = [
    "DEAD",
    "EventOutbox",
    "OutboxEvent",
    "OutboxSettingError",
    "OutboxStatus",
    "RelayResult",
    "RelayTotals",
    "decode_row",
    "default_worker_id",
    "exponential_backoff",
    "get_failure_policy",
    "get_outbox",
    "run_relay",
    "store_event",
]
