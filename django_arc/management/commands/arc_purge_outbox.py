"""``manage.py arc_purge_outbox``: delete delivered outbox events past retention (cron's way
to do what the Celery task ``django_arc.purge_outbox`` does, for projects that relay with
``manage.py arc_relay``)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ...outbox.relay import PURGE_BATCH_SIZE, EventOutbox
from ...settings import arc_settings


class Command(BaseCommand):
    help = (
        "Delete delivered OutboxEvent rows delivered more than ARC['OUTBOX']"
        "['DELIVERED_RETENTION_DAYS'] days ago. Pending and dead rows are kept."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help="Keep delivered rows this many days (default DELIVERED_RETENTION_DAYS, 7). "
            "Keep them at least as long as IDEMPOTENCY['TTL_SECONDS'] (arc.W008).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help=f"Rows deleted per statement (default {PURGE_BATCH_SIZE}): each batch "
            "commits on its own, so a large outbox never holds all its rows' locks at once.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size is not None and batch_size < 1:
            raise CommandError(f"--batch-size must be a positive integer, got {batch_size}.")
        days, source = options["days"], "--days"
        if days is None:
            days = arc_settings.OUTBOX.get("DELIVERED_RETENTION_DAYS", 7)
            source = "ARC['OUTBOX']['DELIVERED_RETENTION_DAYS']"
        try:
            number = math.nan if isinstance(days, bool) else float(days)
        except (TypeError, ValueError):  # a setting's "7d", None
            number = math.nan
        if not (number >= 0 and math.isfinite(number)):  # NaN fails the comparison
            raise CommandError(f"{source} must be a number of days, 0 or more, got {days!r}.")
        try:
            # on every database alike: SQLite's cut-off is this server's datetime, which
            # cannot go before the year 1; PostgreSQL's would, until it went out of range
            age = timedelta(days=number)
            timezone.now() - age
        except OverflowError:
            raise CommandError(
                f"{source} is too large: {days!r} days back reaches before the year 1."
            ) from None
        # the rows' database only: purging needs no transport (one that cannot be built,
        # a broker down, must not keep the table from being purged)
        deleted = EventOutbox(None).purge(older_than=age, batch_size=batch_size)
        self.stdout.write(
            f"Deleted {deleted} delivered outbox event(s) older than {number:g} day(s)."
        )
