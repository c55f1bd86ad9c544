"""``run_relay()``: the one relay loop, shared by ``manage.py arc_relay``, the Celery task
``relay_outbox`` and the admin's "Relay now".

They differ only in when to stop: the command runs until SIGTERM (``should_stop``) and sleeps
when there is nothing to do; the task and the admin stop once the backlog is drained or after
``max_batches``, so neither pins a worker slot or a request.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connections

from ..logs import FailureStreak, log_text
from .configured import get_outbox
from .relay import (
    MAX_BATCH_SIZE,
    EventOutbox,
    RelayResult,
    check_worker_id,
    default_worker_id,
)

logger = logging.getLogger("django_arc.outbox")

#: The summed counters: every integer field of :class:`RelayResult`.
COUNTERS = tuple(f.name for f in dataclasses.fields(RelayResult) if f.type in ("int", int))


def recycle_connections() -> None:
    """Between two batches, what Django does between two requests for a connection that
    keeps itself across requests (``CONN_MAX_AGE`` not 0): close it once older than its
    ``CONN_MAX_AGE``, or when an error left it unusable, and have ``CONN_HEALTH_CHECKS``
    check it again before its next use. A loop that runs for days otherwise kept its first
    connection for ever, and met a connection the server had closed while it idled (a
    restart, ``idle_session_timeout``, a pooler) as a failed batch. A connection at the
    default ``CONN_MAX_AGE = 0`` is kept for the loop, as a management command keeps it
    (closing it after every poll would reconnect once a second); one inside a transaction
    (``run_relay`` called in an ``atomic()`` block) is left alone."""
    for connection in connections.all(initialized_only=True):
        if connection.settings_dict.get("CONN_MAX_AGE", 0) == 0 or connection.in_atomic_block:
            continue
        connection.close_if_unusable_or_obsolete()


def close_failed_connections() -> None:
    """After a failed batch, Django's ``close_old_connections()`` (the next batch connects
    again), but for a connection inside a transaction: the caller's (``run_relay`` inside
    its ``atomic()`` block, an eager Celery task under ``ATOMIC_REQUESTS``), whose close
    broke that transaction, its writes lost and every later query of the block refused
    (``TransactionManagementError``). The batch's own savepoint was rolled back already."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


@dataclass
class RelayTotals:
    """What one :func:`run_relay` call did: ``batches`` (failed ones included), ``errors``
    (batches that raised a database error) and the sum of every :class:`RelayResult`
    counter."""

    worker_id: str
    batches: int = 0
    errors: int = 0
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def add(self, result: RelayResult) -> None:
        for name in COUNTERS:
            self.counters[name] += getattr(result, name)

    def __getattr__(self, name: str) -> int:
        counters = self.__dict__.get("counters", {})
        if name in counters:
            return counters[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker": self.worker_id,
            "batches": self.batches,
            "errors": self.errors,
            **self.counters,
        }


def run_relay(
    outbox: EventOutbox | None = None,
    *,
    batch_size: int | None = None,
    worker_id: str | None = None,
    max_batches: int | None = None,
    until_drained: bool = False,
    interval: float = 1.0,
    should_stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[int, RelayResult, float], Any] | None = None,
    on_error: Callable[[int, DatabaseError], Any] | None = None,
    streak: FailureStreak | None = None,
    stop_on_error: bool = False,
) -> RelayTotals:
    """Relay batches of pending events until told to stop; return the totals.

    ``batch_size`` (default the outbox's ``BATCH_SIZE``) below 1 is a ``ValueError``; above
    :data:`~django_arc.outbox.relay.MAX_BATCH_SIZE` it is that, as a batch claims no more.
    Stops when ``should_stop()`` is true (checked before every batch and while idle), after
    ``max_batches`` batches, or, with ``until_drained``, after the first batch that claims
    fewer than ``batch_size`` rows. Otherwise an empty batch sleeps ``interval`` seconds. A
    database error (lost connection) is reported to ``on_error`` and retried after at least
    0.5 s, never raised: a relay must outlive a PostgreSQL restart. ``on_batch(number,
    result, seconds)`` sees every successful batch. With ``stop_on_error``, a database
    error ends the call instead: a caller called again soon retries it (a Celery beat tick,
    the admin's "Relay now"), and retrying within the call kept it waiting half-seconds up
    to ``max_batches`` to report one outage that many times.

    Failed batches are logged through ``streak`` (:class:`~django_arc.logs.FailureStreak`:
    the first, then one a minute, and a WARNING when batches succeed again), by default one
    of this call's own. A caller that runs the loop again and again (the Celery task, once
    per beat tick) gives one that outlives the call, so an outage is logged once a minute
    across its calls, not once per call; such a streak is the caller's, left as it is when
    the call stops mid-outage.
    """
    if outbox is None:
        outbox = get_outbox()
    size = int(outbox.batch_size if batch_size is None else batch_size)
    if size < 1:  # a batch of no rows: never short, so the loop idled to max_batches
        raise ValueError(f"batch_size must be an integer from 1, got {size!r}.")
    # a batch claims at most MAX_BATCH_SIZE rows: a larger size made every batch look short
    # (until_drained stopped after the first, the backlog left behind)
    size = min(size, MAX_BATCH_SIZE)
    totals = RelayTotals(worker_id=check_worker_id(worker_id or default_worker_id()))
    own_streak = streak is None
    if streak is None:
        streak = FailureStreak()

    def idle(seconds: float) -> None:
        # Short steps, so a stop request during an idle wait is seen promptly.
        deadline = time.monotonic() + seconds
        while not should_stop():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.05))

    while not should_stop():
        if totals.batches:
            recycle_connections()
        started = time.monotonic()
        try:
            result = outbox.relay_batch(limit=size, worker_id=totals.worker_id)
        except DatabaseError as exc:
            close_failed_connections()
            totals.batches += 1
            totals.errors += 1
            logged = streak.failed()  # an outage: its first batch, then one a minute
            if logged:
                logger.error(
                    "relay batch %d failed: %s: %s%s",
                    totals.batches,
                    type(exc).__name__,
                    log_text(exc),  # a database's message may quote a value: no raw lines
                    streak.note(logged),
                )
            if on_error is not None:
                on_error(totals.batches, exc)
            if stop_on_error or (max_batches is not None and totals.batches >= max_batches):
                break
            idle(max(interval, 0.5))
            continue
        totals.batches += 1
        totals.add(result)
        failures = streak.ended()
        if failures:
            logger.warning("relay batches succeed again after %d failed in a row", failures)
        if on_batch is not None:
            on_batch(totals.batches, result, time.monotonic() - started)
        if max_batches is not None and totals.batches >= max_batches:
            break
        if until_drained and result.attempted < size:
            break
        if result.attempted == 0:
            idle(interval)
    failures = streak.ended() if own_streak else 0
    if failures:  # stopped mid-outage: the failures since its last line are counted here
        logger.warning("relay stopped after %d batches failed in a row", failures)
    return totals
