"""Which clock django-arc's stored times are stamped and compared with.

Application servers, relay workers and Celery workers run on several hosts whose clocks
differ (seconds to minutes of skew, an NTP step, a container started with a wrong clock).
A time one host writes and another compares — a relay lease, an idempotency claim's lock,
a new outbox row's ``visible_at``, a delivered row's age — is therefore stamped and judged
by one clock: the database's (``statement_timestamp()``, Django's ``Now()``) on PostgreSQL,
which those hosts share. SQLite lives on one host, whose clock Python reads: its ``Now()``
is UTC text, while Django stores naive ``TIME_ZONE`` times there under ``USE_TZ = False``.
"""

from __future__ import annotations

from typing import Any

from django.db.models.functions import Now
from django.utils import timezone


def database_clock(connection: Any) -> bool:
    """Whether stored times on ``connection`` are the database's clock (PostgreSQL, which
    servers on several hosts share) rather than this server's (SQLite, on one host)."""
    return connection.vendor == "postgresql"


def now_on(connection: Any) -> Any:
    """Now, for the ORM's writes and filters of rows on ``connection``: the database's time
    (``Now()``; plus a ``timedelta`` where a later time is meant) where it is the rows'
    clock, else this server's."""
    return Now() if database_clock(connection) else timezone.now()
