"""``manage.py arc_purge_outbox``: delete delivered outbox rows older than the retention
(cron's way to do what the Celery task ``django_arc.purge_outbox`` does)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

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
        days = options["days"]
        if days is not None and not 0 <= days < 1e6:  # NaN fails both comparisons
            raise CommandError(f"--days must be a number of days >= 0, got {days}.")
        if days is None:
            days = float(arc_settings.OUTBOX.get("DELIVERED_RETENTION_DAYS", 7))
        # the rows' database only: purging needs no transport (one that cannot be built
        # must not keep the table from being purged)
        deleted = EventOutbox(None).purge(older_than=timedelta(days=days))
        self.stdout.write(f"Deleted {deleted} delivered outbox row(s).")
