"""The ``AuditLog`` table: who changed which row, how, in which request."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from ..events.event import EventJSONEncoder


class AuditLog(models.Model):
    """One audited write (or a domain entry from :func:`django_arc.audit.custom`).

    Written in the transaction of the write it records, so a rolled-back write leaves none.
    Actors and organizations are stored as strings, not foreign keys: an audit row must
    outlive the user, client or organization it names, and the organization model is the
    project's. ``before``/``after`` hold the changed fields only (the whole row on create and
    delete), as the API renders them; ``hidden()`` fields never appear.

    The indexes serve the admin's list at millions of rows: newest first by primary key,
    and one index per filter (a resource's row history, an organization, an actor, a
    request).
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    action = models.CharField(max_length=100)
    resource = models.CharField(max_length=100, blank=True, default="")
    #: text, not ``varchar(n)``: the id as the URL names it or as ``audit.custom()`` was
    #: given it (a long text primary key, a storage path); only what the object index takes
    #: bounds it (a longer id is stored shortened, ``audit.stored_object_id``)
    object_id = models.TextField(blank=True, default="")
    organization_id = models.CharField(max_length=128, null=True, blank=True)
    actor_kind = models.CharField(max_length=16, blank=True, default="")
    #: ``str(user.pk)``: text, since the user model (or a project's principal) is the
    #: project's and its primary key may be a text of any length
    actor_user_id = models.TextField(null=True, blank=True)
    actor_client_id = models.CharField(max_length=64, null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True, default="")
    before = models.JSONField(null=True, blank=True, encoder=EventJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=EventJSONEncoder)

    class Meta:
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [
            models.Index(fields=["created_at"], name="arc_audit_created"),
            models.Index(fields=["resource", "object_id", "id"], name="arc_audit_object"),
            models.Index(fields=["organization_id", "id"], name="arc_audit_org"),
            models.Index(fields=["actor_user_id", "id"], name="arc_audit_user"),
            models.Index(fields=["actor_client_id", "id"], name="arc_audit_client"),
            models.Index(fields=["request_id"], name="arc_audit_request"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.resource} {self.object_id}".strip()

    @property
    def actor(self) -> str:
        if self.actor_client_id:
            return f"service:{self.actor_client_id}"
        if self.actor_user_id:
            return f"user:{self.actor_user_id}"
        return self.actor_kind or "anonymous"
