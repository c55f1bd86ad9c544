"""``manage.py arc_purge_idempotency``: delete expired idempotency records (cron's way to do
what the Celery task ``django_arc.purge_idempotency`` does)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ...idempotency import purge


class Command(BaseCommand):
    help = "Delete expired IdempotencyRecord rows (ARC['IDEMPOTENCY']['TTL_SECONDS'] after use)."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = purge()
        self.stdout.write(f"Deleted {deleted} expired idempotency record(s).")
