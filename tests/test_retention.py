"""What django-arc keeps of a row after the row is gone (docs/retention.md): the recipe the
page gives for an erasure request finds, on each store, every copy django-arc made of a
hard-deleted row's values — its events in the outbox, its audit entries, a keyed write's
stored answer — and nothing else is left holding them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from django_arc.audit.models import AuditLog
from django_arc.idempotency.models import IdempotencyRecord
from django_arc.outbox import OutboxEvent, get_outbox
from tests.helpers import client_for
from tests.redis_support import arc_with

pytestmark = pytest.mark.django_db

NAME = "Jane Q. Erasable"


def _holding(name: str) -> dict[str, int]:
    """Rows of django-arc's tables whose stored text holds ``name``."""
    return {
        "outbox": sum(name in str(row.payload) for row in OutboxEvent.objects.all()),
        "audit": sum(name in str(row.before) + str(row.after) for row in AuditLog.objects.all()),
        "idempotency": sum(
            name.encode() in bytes(row.body or b"") for row in IdempotencyRecord.objects.all()
        ),
    }


def test_the_erasure_recipe_finds_every_copy_of_a_deleted_rows_values():
    user = get_user_model().objects.create_user("retention-writer", password="x")
    client = client_for(user)
    keyed = arc_with(IDEMPOTENCY={"ENABLED": True, "STORE": "database", "TTL_SECONDS": 3600})
    with override_settings(ARC=keyed):
        created = client.post(
            "/api/audited-articles/",
            {"slug": "jane", "title": NAME},
            format="json",
            HTTP_IDEMPOTENCY_KEY="create-jane",
        )
        assert created.status_code == 201, created.content
        pk = created.json()["data"]["id"]
        renamed = client.patch(
            f"/api/audited-articles/{pk}/", {"title": NAME + " Jr."}, format="json"
        )
        assert renamed.status_code == 200, renamed.content
        assert client.delete(f"/api/audited-articles/{pk}/").status_code == 200
    # the row is gone; django-arc's stores still hold its values
    assert _holding(NAME) == {"outbox": 2, "audit": 3, "idempotency": 1}
    # a retry of the key within TTL_SECONDS is still answered the stored 201, to its caller
    with override_settings(ARC=keyed):
        again = client.post(
            "/api/audited-articles/",
            {"slug": "jane", "title": NAME},
            format="json",
            HTTP_IDEMPOTENCY_KEY="create-jane",
        )
    assert again.status_code == 201 and NAME in again.content.decode()

    # the recipe of docs/retention.md, "An erasure request": once the row's events are
    # relayed (a pending one is still to be published: its consumers want the deleted)
    while get_outbox().relay_batch().attempted:
        pass
    resource, object_id = "audited-articles", str(pk)
    events = OutboxEvent.objects.filter(
        meta__resource=resource, meta__resource_id=object_id
    ).exclude(status="pending")
    assert sorted(events.values_list("type", flat=True)) == [
        "audited-articles.created",
        "audited-articles.deleted",
        "audited-articles.updated",
    ]
    mine = OutboxEvent.objects.filter(meta__user_id=str(user.pk))
    assert mine.count() == 3  # a person's own events, whatever the row
    events.delete()
    entries = AuditLog.objects.filter(resource=resource, object_id=object_id)
    assert sorted(entries.values_list("action", flat=True)) == ["created", "deleted", "updated"]
    assert AuditLog.objects.filter(actor_user_id=str(user.pk)).count() == 3
    # docs/retention.md's batched purge of old audit entries, with every entry "old"
    cutoff = timezone.now() + timedelta(days=1)
    while ids := list(
        AuditLog.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:2]
    ):
        AuditLog.objects.filter(pk__in=ids).delete()
    assert not entries.exists()
    # keyed answers: the key is a digest (of caller, method, path and key), so a record
    # names no caller; they expire TTL_SECONDS after their answer (arc_purge_idempotency),
    # or go now by the resource's paths (a retry of those keys then runs again)
    IdempotencyRecord.objects.filter(path__startswith="/api/audited-articles/").delete()
    assert _holding(NAME) == {"outbox": 0, "audit": 0, "idempotency": 0}


def test_a_soft_deleted_row_keeps_every_value_where_it_was():
    """SoftDelete keeps the row (restorable at any time): it is no erasure, and nothing
    django-arc stores of it is dropped by it."""
    user = get_user_model().objects.create_user("retention-soft", password="x")
    client = client_for(user)
    created = client.post("/api/soft-articles/", {"slug": "s", "title": NAME}, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["data"]["id"]
    assert client.delete(f"/api/soft-articles/{pk}/").json()["data"] == {"id": pk, "soft": True}
    from tests.testapp.models import Article

    assert Article.objects.get(pk=pk).title == NAME
    assert _holding(NAME)["outbox"] == 1  # the created event's payload
    past = timezone.now() - timedelta(days=3650)
    Article.objects.filter(pk=pk).update(deleted_at=past)  # still restorable however old
    assert client.post(f"/api/soft-articles/{pk}/restore/").status_code == 200
