"""What the shop runs for django-arc's stores that no purge of django-arc's bounds
(docs/retention.md quotes this module): the audit log's retention, and an erasure request
for a product that was hard-deleted."""

from __future__ import annotations

import json
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from django_arc.audit import stored_object_id
from django_arc.audit.models import AuditLog
from django_arc.idempotency.models import IdempotencyRecord
from django_arc.outbox import OutboxEvent


# --8<-- [start:purge-audit-log]
def purge_audit_log(days: int = 365, batch_size: int = 1000) -> int:
    """Delete audit entries older than ``days``, ``batch_size`` per statement, so that no
    one statement holds every row's lock (``manage.py shop_purge_audit_log``, from cron)."""
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    old = AuditLog.objects.filter(created_at__lt=cutoff)
    while ids := list(old.values_list("pk", flat=True)[:batch_size]):
        deleted += AuditLog.objects.filter(pk__in=ids).delete()[0]
    return deleted


# --8<-- [end:purge-audit-log]


# --8<-- [start:erase]
def erase(resource: str, object_id: str, path: str) -> None:
    """What django-arc keeps of a hard-deleted row, found and deleted: ``resource`` is the
    resource's name, ``object_id`` the id as the URL named it, ``path`` its site's prefix
    (``erase("products", "22", "/api/products/")``)."""
    # its events, once relayed (a pending one is still owed to consumers: the `deleted` too)
    OutboxEvent.objects.filter(meta__resource=resource, meta__resource_id=object_id).exclude(
        status="pending"
    ).delete()
    # its audit entries (or keep them, emptied: .update(before=None, after=None)), under
    # the id as they store it (one past 2,000 bytes is stored shortened)
    AuditLog.objects.filter(resource=resource, object_id=stored_object_id(object_id)).delete()
    # its keyed answers (their key is a digest that names no caller): its own URLs' (an
    # update's, a delete's, an action's) and its create's, whose answer is the row; they go
    # TTL_SECONDS after their answer (arc_purge_idempotency), or now (a retry of those keys
    # then runs again). Other rows' answers, other organizations' among them, stay.
    keyed = IdempotencyRecord.objects.filter(path__startswith=path)
    creates = keyed.filter(path=path).only("body").iterator()  # a day of them: streamed
    created = [r.pk for r in creates if _holds(r.body, object_id)]
    keyed.filter(Q(path__startswith=f"{path}{object_id}/") | Q(pk__in=created)).delete()


def _holds(body: bytes | None, object_id: str) -> bool:
    """Whether a stored answer under the collection may hold the row: a create's
    ``{"data": {"id": …}}`` naming it, or an answer that is no JSON (a browsable API page)."""
    try:
        answer = json.loads(bytes(body or b"null"))
    except ValueError:
        return True
    data = answer.get("data") if isinstance(answer, dict) else None
    return isinstance(data, dict) and str(data.get("id")) == object_id


# --8<-- [end:erase]
