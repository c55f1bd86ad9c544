"""The ``OutboxEvent`` table: events written in the same transaction as the data they describe.

A row is the durable promise that an event *will* be published: the write and its row commit
together or not at all, and the relay (:class:`django_arc.outbox.EventOutbox`) turns rows into
transport messages afterwards, at least once.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..events.event import EventJSONEncoder


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "pending"
    DELIVERED = "delivered", "delivered"
    DEAD = "dead", "dead"


class OutboxEvent(models.Model):
    """One stored event.

    ``visible_at`` is when the row may next be claimed (now for fresh rows, the retry time
    after a failed publish); ``lease_owner``/``lease_expires_at`` mark a row a relay worker is
    publishing right now, so that a crashed worker's rows become claimable again once the
    lease runs out. ``partition_key`` is copied out of ``meta`` so the relay can keep FIFO
    order per key without decoding JSON.

    On PostgreSQL the table has ``fillfactor`` 50 (migration 0004): the lease ``UPDATE`` of a
    claimed row then finds room on its own page and is a HOT update, which writes no index
    entry.
    """

    Status = OutboxStatus

    id = models.BigAutoField(primary_key=True)
    # Unique through Meta.constraints, not unique=True: on PostgreSQL that would also create a
    # varchar_pattern_ops ("_like") index nothing uses, updated on every relayed event.
    event_id = models.CharField(max_length=64)
    type = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, encoder=EventJSONEncoder)
    meta = models.JSONField(default=dict, encoder=EventJSONEncoder)
    status = models.CharField(
        max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    lease_owner = models.CharField(max_length=200, null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    visible_at = models.DateTimeField(default=timezone.now)
    dedupe_key = models.CharField(max_length=512, null=True, blank=True)
    partition_key = models.CharField(max_length=255, null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "django_arc"
        ordering = ["id"]
        verbose_name = "outbox event"
        verbose_name_plural = "outbox events"
        indexes = [
            models.Index(fields=["status", "visible_at"], name="arc_outbox_status_visible"),
            models.Index(fields=["delivered_at"], name="arc_outbox_delivered_at"),
            # The claim query walks this index in (visible_at, id) order and stops after
            # `limit` rows, so it never touches delivered or dead rows however many there are.
            models.Index(
                fields=["visible_at", "id"],
                name="arc_outbox_pending_visible",
                condition=Q(status="pending"),
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event_id"], name="arc_outbox_unique_event_id"),
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(dedupe_key__isnull=False),
                name="arc_outbox_unique_dedupe_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id} ({self.status})"
