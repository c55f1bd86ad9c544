"""``manage.py arc_relay``: the outbox relay as a long-running worker process.

Run as many as you like on PostgreSQL (claims use ``FOR UPDATE SKIP LOCKED``); run one on
SQLite. SIGTERM/SIGINT stop the loop *after* the current batch has been acknowledged, so a
normal shutdown (deploy, scale-down) produces no duplicates; only a hard kill does, bounded by
one batch, which is re-published after its lease expires.
"""

from __future__ import annotations

import json
import logging
import signal
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from django_arc.logs import log_text
from django_arc.outbox import RelayResult, default_worker_id, get_outbox, run_relay
from django_arc.outbox.relay import MAX_BATCH_SIZE, check_worker_id

logger = logging.getLogger("django_arc.outbox.relay")

#: exit status when the relay cannot be configured (bad transport path, bad options, ...).
CONFIG_ERROR_EXIT = 2


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be >= 1")
    return number


def _worker_id(value: str) -> str:
    return check_worker_id(value)


def _non_negative_float(value: str) -> float:
    number = float(value)
    if number < 0 or number != number:
        raise ValueError("must be >= 0")
    return number


class Command(BaseCommand):
    help = "Relay pending outbox events to the configured transport until SIGTERM/SIGINT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Relay one batch and exit.")
        parser.add_argument(
            "--batch-size",
            type=_positive_int,
            default=None,
            help="Events per batch (default ARC['OUTBOX']['BATCH_SIZE']).",
        )
        parser.add_argument(
            "--interval",
            type=_non_negative_float,
            default=1.0,
            help="Seconds to sleep when there is nothing to relay (default 1).",
        )
        parser.add_argument(
            "--worker-id",
            type=_worker_id,
            default=None,
            help="Lease owner name, at most 200 characters (default host:pid:random).",
        )
        parser.add_argument(
            "--max-batches",
            type=_positive_int,
            default=None,
            help="Exit after this many batches (polls that found nothing count too).",
        )

    def _stop(self, signum: int, frame: Any) -> None:
        if self.stopping:
            # Second signal: the operator does not want to wait for a stuck batch. Its rows
            # stay leased and are re-published by another worker after the lease expires.
            raise SystemExit(128 + signum)
        self.stopping = True

    def _log(
        self, fields: dict[str, Any], verbosity: int, level: int | None = logging.INFO
    ) -> None:
        """``fields`` as a ``key=value`` line on the ``django_arc.outbox.relay`` logger at
        ``level`` (``None``: not logged, already reported) and, from verbosity 1, as one JSON
        line on stdout. The logged values are escaped (:func:`~django_arc.logs.log_text`),
        as the relay's other lines are: ``--worker-id`` is operator text, and one holding a
        newline wrote a second, forged line into the log (JSON escapes it already)."""
        if level is not None:
            logger.log(level, " ".join(f"{k}={log_text(v)}" for k, v in fields.items()))
        if verbosity >= 1:
            self.stdout.write(json.dumps(fields, separators=(",", ":")))

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = int(options.get("verbosity", 1))
        try:
            outbox = get_outbox()
        except (ImportError, ImproperlyConfigured, TypeError, ValueError) as exc:
            raise CommandError(
                f"arc_relay: cannot configure the outbox relay: {type(exc).__name__}: {exc}",
                returncode=CONFIG_ERROR_EXIT,
            ) from exc
        # what a batch claims at most (run_relay caps it too): the start line says so
        batch_size = min(options.get("batch_size") or outbox.batch_size, MAX_BATCH_SIZE)
        interval = float(options.get("interval") if options.get("interval") is not None else 1.0)
        worker_id = options.get("worker_id") or default_worker_id()
        max_batches = 1 if options.get("once") else options.get("max_batches")

        self.stopping = False
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                previous[signum] = signal.signal(signum, self._stop)
            except ValueError:  # not in the main thread (e.g. called from a test thread)
                pass

        def on_batch(number: int, result: RelayResult, seconds: float) -> None:
            if result.attempted or verbosity >= 2:
                fields = {"event": "arc_relay.batch", "worker": worker_id, "batch": number}
                fields.update(result.to_dict())
                fields["duration_ms"] = round(seconds * 1000, 1)
                self._log(fields, verbosity)

        def on_error(number: int, exc: DatabaseError) -> None:
            self._log(
                {
                    "event": "arc_relay.error",
                    "worker": worker_id,
                    "batch": number,
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                },
                verbosity,
                # run_relay logs the failure (ERROR, django_arc.outbox): a second ERROR for
                # it paged twice, every second of a database outage
                None,
            )

        self._log(
            {"event": "arc_relay.start", "worker": worker_id, "batch_size": batch_size}, verbosity
        )
        try:
            totals = run_relay(
                outbox,
                batch_size=batch_size,
                worker_id=worker_id,
                max_batches=max_batches,
                interval=interval,
                should_stop=lambda: self.stopping,
                on_batch=on_batch,
                on_error=on_error,
            )
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        counters = totals.counters
        self._log(
            {
                "event": "arc_relay.stop",
                "worker": worker_id,
                "batches": totals.batches,
                **{k: counters[k] for k in ("relayed", "attempted", "publish_failed")},
                "dead_lettered": counters["dead_lettered"],
            },
            verbosity,
        )
