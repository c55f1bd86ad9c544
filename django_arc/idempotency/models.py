"""``IdempotencyRecord``: one row per scoped ``Idempotency-Key`` (the ``database`` store).

The unique ``key`` is the lock: the first request inserts the row (committed at once, in its
own short transaction), every concurrent repeat's insert inserts nothing and it reads the row
instead.
``locked_until`` bounds how long a claim holds when its request never finishes (a crashed
worker): after it, a retry takes the key over. A finished request stores its status, the
exact bytes it answered and the headers of its own, which every later repeat replays until
``expires_at``.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class IdempotencyRecord(models.Model):
    id = models.BigAutoField(primary_key=True)
    #: SHA-256 (hex) of namespace, caller, method, path and the client's key; unique by the
    #: constraint below (``unique=True`` also built a pattern index on PostgreSQL that no
    #: query uses and every write maintained)
    key = models.CharField(max_length=64)
    #: SHA-256 (hex) of method, path and canonical body: a repeat must match it
    fingerprint = models.CharField(max_length=64)
    #: the claim's owner: only the request holding it may finish or release the key
    token = models.CharField(max_length=32)
    method = models.CharField(max_length=10)
    path = models.TextField()
    #: in flight until then (null once the response is stored)
    locked_until = models.DateTimeField(null=True, blank=True)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    #: the answer's ``Content-Type`` as sent (its parameters may run past 255 characters)
    content_type = models.TextField(blank=True, default="")
    body = models.BinaryField(null=True, blank=True)
    #: the answer's own headers (``Location``, ``Content-Disposition``…) as a JSON list of
    #: ``[name, value]`` pairs; null when it had none (and in flight, like ``body``). With
    #: the answer's document kept beside a body a project renderer wrote under other names,
    #: ``{"h": pairs, "d": document}`` (``stores.Claim.data``)
    headers = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        app_label = "django_arc"
        verbose_name = "idempotency record"
        verbose_name_plural = "idempotency records"
        indexes = [models.Index(fields=["expires_at"], name="arc_idem_expires_at")]
        constraints = [models.UniqueConstraint(fields=["key"], name="arc_idem_unique_key")]

    def __str__(self) -> str:
        state = "in flight" if self.status is None else str(self.status)
        return f"{self.method} {self.path} ({state})"
