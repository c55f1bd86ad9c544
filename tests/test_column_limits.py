"""Bounded columns against the values that reach them.

SQLite stores a string of any length in a ``varchar(n)``; PostgreSQL refuses it with a
``DataError`` that aborts the write's transaction (a 500). So every value django-arc writes
into a bounded column is either one it bounds itself, or one it checks before any SQL is
sent, on every backend — or the column holds any length. These tests pass values at and
past each bound; they matter most under ``ARC_TEST_DB=postgres``.
"""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from django_arc import audit
from django_arc.audit.models import AuditLog
from tests.factories import AuthorFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


class LongIdPrincipal:
    """A user as a project's own authentication may hand DRF one: no Django user row, a
    text primary key far longer than an integer's (an external identity provider's subject,
    a URN). Nothing about it is a member of anything, so the scope is ``authenticated``."""

    is_authenticated = True
    is_active = True
    is_superuser = False
    arc_roles = ()

    def __init__(self, pk: str) -> None:
        self.pk = pk


LONG_USER_ID = "urn:example:idp:" + "u" * 300


def test_an_audited_write_by_a_user_with_a_long_text_pk_is_recorded_with_the_whole_id():
    """The audit row names the actor as ``str(user.pk)``, whatever its length: a user model
    (or principal) with a long text primary key must not turn every audited write of that
    user into a 500 on PostgreSQL."""
    api = client_for(LongIdPrincipal(LONG_USER_ID))
    r = api.post("/api/audited-articles/", {"slug": "s", "title": "T"}, format="json")
    assert r.status_code == 201, r.content
    row = AuditLog.objects.get()
    assert (row.action, row.actor_kind, row.actor_user_id) == (
        "created",
        "authenticated",
        LONG_USER_ID,
    )
    assert AuditLog.objects.filter(actor_user_id=LONG_USER_ID).count() == 1


def test_a_bulk_audited_write_by_a_user_with_a_long_text_pk_is_recorded():
    """The bulk path writes its audit rows with its own INSERT on PostgreSQL; the actor's
    id goes in as a parameter of that statement, into the same column."""
    author = AuthorFactory()
    items = [{"title": t, "isbn": t, "author": author.pk} for t in ("a", "b")]
    api = client_for(LongIdPrincipal(LONG_USER_ID))
    r = api.post("/api/bulk-books/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    assert list(AuditLog.objects.values_list("actor_user_id", flat=True)) == [LONG_USER_ID] * 2


def test_audit_custom_keeps_a_long_object_id_whole():
    """``audit.custom(..., object_id=...)`` records what the project names: a storage key, a
    URL, a composite id can run past 255 characters."""
    request = RequestFactory().post("/")
    request.user = LongIdPrincipal(LONG_USER_ID)
    object_id = "exports/2026/12/" + "x" * 400 + ".csv"
    row = audit.custom(request, "export.downloaded", resource="exports", object_id=object_id)
    stored = AuditLog.objects.get(pk=row.pk)
    assert (stored.object_id, stored.actor_user_id) == (object_id, LONG_USER_ID)
