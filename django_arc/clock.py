"""Which clock django-arc's stored times are stamped and compared with.

Application servers, relay workers and Celery workers run on several hosts whose clocks
differ (seconds to minutes of skew, an NTP step, a container started with a wrong clock).
A time one host writes and another compares — a relay lease, an idempotency claim's lock,
a new outbox row's ``visible_at``, a delivered row's age — is therefore stamped and judged
by one clock: the database's (``statement_timestamp()``, Django's ``Now()``) on PostgreSQL,
which those hosts share. SQLite lives on one host, whose clock Python reads.
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


def shared_now(connection: Any) -> Any:
    """Now, for a time that processes write and compare through ``connection`` alone (a
    relay's lease): the database's ``Now()`` wherever hosts may share the database, this
    server's on SQLite. SQLite's ``Now()`` is UTC text, while Django stores the project's
    naive local time there under ``USE_TZ = False`` (or a ``DATABASES`` ``TIME_ZONE``): such
    a time was hours off as read back, and a lease any other code wrote in the project's
    time was compared with UTC (hours early or late). SQLite lives on one host, so its
    clock is this server's anyway."""
    return timezone.now() if connection.vendor == "sqlite" else Now()
