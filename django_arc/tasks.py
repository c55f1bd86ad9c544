"""Celery tasks that drive the outbox, ``relay_outbox`` (schedule it with beat) and
``purge_outbox`` (``manage.py arc_purge_outbox`` for cron), and ``purge_idempotency``, which
deletes expired idempotency records.

The relay is safe to run from several workers (and next to ``manage.py arc_relay``) at once:
claiming is atomic, so overlapping beat ticks only share the work. Each call is bounded by
``max_batches`` so a large backlog never pins a worker slot: the next tick continues.

Beat schedule (see ``docs/events.md``)::

    CELERY_BEAT_SCHEDULE = {
        "arc-relay-outbox": {"task": "django_arc.relay_outbox", "schedule": 1.0,
                             "options": {"expires": 10}},
        "arc-purge-outbox": {"task": "django_arc.purge_outbox", "schedule": 3600.0},
        "arc-purge-idempotency": {"task": "django_arc.purge_idempotency", "schedule": 3600.0},
    }
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from .logs import FailureStreak, log_text
from .outbox import (
    EventOutbox,
    OutboxSettingError,
    RelayTotals,
    default_worker_id,
    get_outbox,
    run_relay,
)
from .outbox.relay import check_worker_id, retention_age
from .settings import arc_settings

logger = logging.getLogger("django_arc.outbox")

#: This worker process's relay ticks that could not build the outbox (its transport, its
#: failure policy or an ``ARC["OUTBOX"]`` value it cannot run with), its ticks refused for
#: their arguments, and its ticks' failed batches: an outage spans many ticks, and is logged
#: once a minute across them as ``arc_relay`` logs it, not once a tick. Ticks run at once
#: in a thread pool share them (:class:`~django_arc.logs.FailureStreak` is thread-safe);
#: :func:`reset_relay_streaks` forgets them (a project's tests running the task eagerly).
_unbuilt = FailureStreak()
#: no tick ends this one (a tick with good arguments may be another beat entry's): a refusal
#: a minute or more after the last one starts a new streak, so a much later refusal is said
#: as the first, not as "N failed in a row" of refusals long past
_refused = FailureStreak(lapse=60.0)
_failed_batches = FailureStreak()


def reset_relay_streaks() -> None:
    """Forget this process's relay streaks: call it between tests that run
    ``relay_outbox`` eagerly (``CELERY_TASK_ALWAYS_EAGER``, ``.apply()``, a direct call).
    The streaks outlive a tick on purpose (an outage is logged once a minute across ticks),
    so without it one test's failed tick silenced the next test's ERROR for a minute, and
    its "succeed again" WARNING came in a later test."""
    for streak in (_unbuilt, _refused, _failed_batches):
        streak.reset()


def _count(name: str, value: Any) -> int:
    """A tick's ``batch_size`` or ``max_batches``: an integer from 1 (a string of one read
    as ``int()`` reads it, as a beat entry's kwargs from a JSON or YAML file may hold it; a
    float only when whole), or ``ValueError`` naming it. One rule for both: ``max_batches``
    below 1 was made 1 where ``batch_size`` below 1 raised."""
    number: int | None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, float):
        number = int(value) if value.is_integer() else None
    else:
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = None
    if number is None or number < 1:
        raise ValueError(f"{name} must be an integer from 1, got {value!r}.")
    return number


@shared_task(name="django_arc.relay_outbox")
def relay_outbox(
    batch_size: int | None = None, max_batches: int = 10, worker_id: str | None = None
) -> dict[str, Any]:
    """Relay up to ``max_batches`` batches of pending events with :func:`run_relay`, stopping
    early once a batch comes back short (the backlog is drained). Returns the summed counters
    (JSON, for the result backend and flower).

    Its arguments (a beat entry's ``kwargs``) follow one rule: ``batch_size`` (default
    ``BATCH_SIZE``) and ``max_batches`` are integers from 1, ``batch_size`` capped at
    10,000 as a batch claims no more, and ``worker_id`` text of at most 200 characters with
    no NUL character or lone surrogate (the lease column stores neither). A tick given
    others relays nothing and says why, as a tick that cannot build the outbox does: an
    ERROR naming the argument for the first, then one a minute across the process's ticks
    (a tick with good arguments, another beat entry's, does not start it again; a refusal a
    minute or more after the last one does), never a traceback (it raised: a traceback a
    tick, every second); the task succeeds with ``errors: 1``."""
    # each call owns its leases, as a worker process does (``host:pid:random``): Celery's
    # threads, gevent and eventlet pools run several of these at once in one process, and
    # a lease named after the process alone was all of theirs — a call's late failure
    # cleared the lease of the call that had taken its row over, whose acknowledgement was
    # then refused (the row published again)
    worker = worker_id or f"celery:{default_worker_id()}"
    try:
        size = None if batch_size is None else _count("batch_size", batch_size)
        batches = _count("max_batches", max_batches)
        check_worker_id(worker)
    except ValueError as exc:
        logged = _refused.failed()
        if logged:
            logger.error(
                "relay_outbox refuses its arguments; nothing relayed: %s%s",
                log_text(exc),
                _refused.note(logged),
            )
        totals = RelayTotals(worker_id=worker)
        totals.errors = 1
        return totals.to_dict()
    try:
        outbox = get_outbox()
    except Exception as exc:  # noqa: BLE001 - a broker down, a bad plug: the next tick retries
        # raised, it was a traceback in the worker's log every tick (every second) for as
        # long as the broker was down: the first tick's, then one a minute
        logged = _unbuilt.failed()
        if logged:
            logger.error(
                "relay_outbox cannot build the outbox relay; nothing relayed: %s: %s%s",
                type(exc).__name__,
                log_text(exc),
                _unbuilt.note(logged),
                # a setting it cannot run with is said by its message alone
                exc_info=logged == 1 and not isinstance(exc, OutboxSettingError),
            )
        totals = RelayTotals(worker_id=worker)
        totals.errors = 1
        return totals.to_dict()
    failures = _unbuilt.ended()
    if failures:
        logger.warning(
            "relay_outbox builds the outbox relay again after %d tick(s) failed", failures
        )
    totals = run_relay(
        outbox,
        batch_size=size,
        worker_id=worker,
        max_batches=batches,
        until_drained=True,
        # a database down: the tick ends at its first failed batch (the next tick retries;
        # retrying within it made each tick last max_batches half-seconds while beat sent
        # one a second), logged on the streak the process's ticks share
        stop_on_error=True,
        streak=_failed_batches,
    )
    logger.info(
        "relay_outbox worker=%s batches=%d attempted=%d relayed=%d failed=%d dead=%d",
        log_text(worker),
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
