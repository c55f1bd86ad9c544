"""``manage.py arc_purge_idempotency``: delete expired idempotency records (cron's way to do
what the Celery task ``django_arc.purge_idempotency`` does)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...idempotency import purge


class Command(BaseCommand):
    help = "Delete expired IdempotencyRecord rows (ARC['IDEMPOTENCY']['TTL_SECONDS'] after use)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Expired rows deleted per statement (default 1000): each batch commits on "
            "its own, so a large backlog never holds all its rows' locks at once.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size is not None and batch_size < 1:
            raise CommandError(f"--batch-size must be a positive integer, got {batch_size}.")
        deleted = purge(batch_size)
        self.stdout.write(f"Deleted {deleted} expired idempotency record(s).")
