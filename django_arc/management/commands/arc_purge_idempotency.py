"""``manage.py arc_purge_idempotency``: delete expired idempotency records (cron's way to do
what the Celery task ``django_arc.purge_idempotency`` does)."""

from __future__ import annotations

from typing import Any

from ...idempotency import purge
from ._purge import PurgeCommand


class Command(PurgeCommand):
    help = "Delete expired IdempotencyRecord rows (ARC['IDEMPOTENCY']['TTL_SECONDS'] after use)."
    batch_help = (
        "Expired rows deleted per statement (default 1000): each batch commits on its own, "
        "so a large backlog never holds all its rows' locks at once."
    )

    def purge(self, batch_size: int | None, options: dict[str, Any]) -> str:
        return f"Deleted {purge(batch_size)} expired idempotency record(s)."
