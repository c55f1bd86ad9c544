"""``manage.py arc_purge_outbox``: delete delivered outbox events past retention (cron's way
to do what the Celery task ``django_arc.purge_outbox`` does, for projects that relay with
``manage.py arc_relay``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from ...outbox.relay import PURGE_BATCH_SIZE, EventOutbox, retention_age
from ...settings import arc_settings
from ._purge import PurgeCommand


class Command(PurgeCommand):
    help = (
        "Delete delivered OutboxEvent rows delivered more than ARC['OUTBOX']"
        "['DELIVERED_RETENTION_DAYS'] days ago. Pending and dead rows are kept."
    )
    batch_help = (
        f"Rows deleted per statement (default {PURGE_BATCH_SIZE}): each batch commits on "
        "its own, so a large outbox never holds all its rows' locks at once."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help="Keep delivered rows this many days (default DELIVERED_RETENTION_DAYS, 7). "
            "Keep them at least as long as IDEMPOTENCY['TTL_SECONDS'] (arc.W008).",
        )
        super().add_arguments(parser)

    def purge(self, batch_size: int | None, options: dict[str, Any]) -> str:
        days, source = options["days"], "--days"
        if days is None:
            days = arc_settings.OUTBOX.get("DELIVERED_RETENTION_DAYS", 7)
            source = "ARC['OUTBOX']['DELIVERED_RETENTION_DAYS']"
        try:
            age = retention_age(days, source)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        # the rows' database only: purging needs no transport (one that cannot be built,
        # a broker down, must not keep the table from being purged)
        deleted = EventOutbox(None).purge(older_than=age, batch_size=batch_size)
        return f"Deleted {deleted} delivered outbox event(s) older than {float(days):g} day(s)."
