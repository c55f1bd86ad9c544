"""``manage.py arc_purge_outbox``: delete delivered outbox rows older than the retention
(cron's way to do what the Celery task ``django_arc.purge_outbox`` does)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ...outbox import EventOutbox
from ...settings import arc_settings


class Command(BaseCommand):
    help = (
        "Delete delivered outbox rows delivered more than --days ago (default "
        "ARC['OUTBOX']['DELIVERED_RETENTION_DAYS']); pending and dead rows are kept."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help="Retention in days (default ARC['OUTBOX']['DELIVERED_RETENTION_DAYS'], 7).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days, source = options["days"], "--days"
        if days is None:
            days = arc_settings.OUTBOX.get("DELIVERED_RETENTION_DAYS", 7)
            source = "ARC['OUTBOX']['DELIVERED_RETENTION_DAYS']"
        try:
            age = timedelta(days=float(days))
        except (TypeError, ValueError, OverflowError):  # a setting's "7d", NaN, inf
            age = None
        if age is None or age < timedelta(0):
            raise CommandError(f"{source} must be a number of days >= 0, got {days!r}.")
        try:
            # on every database alike: SQLite's cut-off is this server's datetime, which
            # cannot go before the year 1; PostgreSQL's would, until it went out of range
            timezone.now() - age
        except OverflowError:
            raise CommandError(
                f"{source} = {days!r} reaches back before the year 1: purge with fewer days."
            ) from None
        # the rows' database only: purging needs no transport (one that cannot be built
        # must not keep the table from being purged)
        deleted = EventOutbox(None).purge(older_than=age)
        self.stdout.write(f"Deleted {deleted} delivered outbox row(s).")
