"""Celery tasks that drive the outbox, ``relay_outbox`` (schedule it with beat) and
``purge_outbox`` (``manage.py arc_purge_outbox`` for cron), and ``purge_idempotency``, which
deletes expired idempotency records.

The relay is safe to run from several workers (and next to ``manage.py arc_relay``) at once:
claiming is atomic, so overlapping beat ticks only share the work. Each call is bounded by
``max_batches`` so a large backlog never pins a worker slot: the next tick continues.

Beat schedule (see ``docs/events.md``)::

    CELERY_BEAT_SCHEDULE = {
        "arc-relay-outbox": {"task": "django_arc.relay_outbox", "schedule": 1.0},
        "arc-purge-outbox": {"task": "django_arc.purge_outbox", "schedule": 3600.0},
        "arc-purge-idempotency": {"task": "django_arc.purge_idempotency", "schedule": 3600.0},
    }
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from .outbox import EventOutbox, default_worker_id, run_relay
from .outbox.relay import retention_age
from .settings import arc_settings

logger = logging.getLogger("django_arc.outbox")


@shared_task(name="django_arc.relay_outbox")
def relay_outbox(
    batch_size: int | None = None, max_batches: int = 10, worker_id: str | None = None
) -> dict[str, Any]:
    """Relay up to ``max_batches`` batches of pending events with :func:`run_relay`, stopping
    early once a batch comes back short (the backlog is drained). Returns the summed counters
    (JSON, for the result backend and flower)."""
    size = int(batch_size or arc_settings.OUTBOX.get("BATCH_SIZE", 100))
    # each call owns its leases, as a worker process does (``host:pid:random``): Celery's
    # threads, gevent and eventlet pools run several of these at once in one process, and
    # a lease named after the process alone was all of theirs — a call's late failure
    # cleared the lease of the call that had taken its row over, whose acknowledgement was
    # then refused (the row published again)
    worker = worker_id or f"celery:{default_worker_id()}"
    totals = run_relay(
        batch_size=size, worker_id=worker, max_batches=max(1, int(max_batches)), until_drained=True
    )
    logger.info(
        "relay_outbox worker=%s batches=%d attempted=%d relayed=%d failed=%d dead=%d",
        worker,
        totals.batches,
        totals.attempted,
        totals.relayed,
        totals.publish_failed,
        totals.dead_lettered,
    )
    return totals.to_dict()


@shared_task(name="django_arc.purge_outbox")
def purge_outbox(days: float | None = None, batch_size: int | None = None) -> int:
    """Delete delivered rows older than ``days`` (default ``OUTBOX.DELIVERED_RETENTION_DAYS``),
    ``batch_size`` per statement (default 1000), each batch committed on its own.

    Pending and dead rows are never purged. Returns the number of rows deleted.
    """
    retention = days if days is not None else arc_settings.OUTBOX.get("DELIVERED_RETENTION_DAYS", 7)
    # as arc_purge_outbox (retention_age: a number of days, 0 or more, a cut-off after the
    # year 1); and no transport: purging publishes nothing, and a broker that is down (a
    # transport whose constructor connects) must not keep the table from being purged
    age = retention_age(
        retention, "days" if days is not None else "ARC['OUTBOX']['DELIVERED_RETENTION_DAYS']"
    )
    deleted = EventOutbox(None).purge(older_than=age, batch_size=batch_size)
    logger.info("purge_outbox retention_days=%s deleted=%d", retention, deleted)
    return deleted


@shared_task(name="django_arc.purge_idempotency")
def purge_idempotency(batch_size: int | None = None) -> int:
    """Delete expired ``IdempotencyRecord`` rows (the ``database`` store; schedule it hourly
    or daily), ``batch_size`` per statement (default 1000). Returns the number deleted."""
    from .idempotency import purge

    deleted = purge(batch_size)
    logging.getLogger("django_arc.idempotency").info("purge_idempotency deleted=%d", deleted)
    return deleted
