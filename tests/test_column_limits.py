"""Bounded columns against the values that reach them.

SQLite stores a string of any length in a ``varchar(n)``; PostgreSQL refuses it with a
``DataError`` that aborts the write's transaction (a 500). So every value django-arc writes
into a bounded column is either one it bounds itself, or one it checks before any SQL is
sent, on every backend — or the column holds any length. These tests pass values at and
past each bound; they matter most under ``ARC_TEST_DB=postgres``.
"""

from __future__ import annotations

import hashlib
import secrets
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from django_arc import Resource, ResourceSite, action, audit, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.checks import check_resource
from django_arc.clients import ServiceClient
from django_arc.events import create_event, publish
from django_arc.events.transports import MemoryTransport
from django_arc.outbox import EventOutbox, run_relay, store_event
from django_arc.outbox.models import OutboxEvent
from tests.factories import AuthorFactory, UserFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Book, Export

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

#: resources named at the limits arc.E015 and Audited()'s check allow: a non-audited name whose
#: ``<name>.created`` is exactly the outbox's 200 characters, an audited one of the audit
#: log's 100 (a site of their own, which ``manage.py check`` sees and passes)
AT_TYPE_LIMIT = "t" * 192
AT_AUDIT_LIMIT = "a" * 100
limits_site = ResourceSite(name="limits")
for _name, _presets in ((AT_TYPE_LIMIT, []), (AT_AUDIT_LIMIT, [presets.Audited()])):
    limits_site.register(
        type(
            f"Limit{len(_name)}Resource",
            (Resource,),
            {
                "model": Book,
                "name": _name,
                "fields": ["id", "title", "isbn", "author"],
                "presets": _presets,
                "permissions": {"create": P.allow_public()},
            },
        )
    )


#: exports addressed by their path: a text a client writes, as long as it likes, names the row
long_ids_site = ResourceSite(name="long-ids")
long_ids_site.register(
    type(
        "ExportResource",
        (Resource,),
        {
            "model": Export,
            "name": "exports",
            "fields": ["id", "path", "title"],
            "lookup_field": "path",
            "presets": [presets.Audited()],
            "permissions": {"create": P.allow_public(), "delete": P.allow_public()},
        },
    )
)


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


def test_an_object_id_past_what_the_audit_index_takes_is_stored_shortened_on_every_database():
    """``object_id`` is text (0010), but it is also the middle of the ``(resource, object_id,
    id)`` btree index, whose entries PostgreSQL caps at 2,704 bytes: an id of 2,800 bytes
    that does not compress (a signed URL, a digest list) was an ``OperationalError`` there,
    and then a ``ValueError`` on every database, failing the write it recorded. An id at the
    limit is stored whole, with the longest resource name; a longer one as its head and the
    SHA-256 of the whole, within the limit, on both (single and bulk paths)."""
    request = RequestFactory().post("/")
    request.user = LongIdPrincipal("7")
    at_limit = secrets.token_hex(1000)  # 2,000 bytes
    resource = "\N{MATHEMATICAL DOUBLE-STRUCK CAPITAL A}" * 100  # 400 bytes in UTF-8
    past = "\N{EURO SIGN}" + secrets.token_hex(1400)  # 2,803 bytes; the cut splits no character
    with transaction.atomic():
        row = audit.custom(request, "stored", resource=resource, object_id=at_limit)
        audit.record_many(
            request, "stored", [(at_limit, None, None), (past, None, None)], resource=resource
        )
        audit.custom(request, "sent", resource=resource, object_id=past)
    assert AuditLog.objects.get(pk=row.pk).object_id == at_limit
    assert AuditLog.objects.filter(resource=resource, object_id=at_limit).count() == 2
    shortened = audit.stored_object_id(past)
    digest = hashlib.sha256(past.encode()).hexdigest()
    assert shortened.endswith("~sha256:" + digest) and past.startswith(shortened[:-72])
    assert len(shortened.encode()) <= audit.MAX_OBJECT_ID_BYTES
    assert AuditLog.objects.filter(resource=resource, object_id=shortened).count() == 2
    assert audit.stored_object_id(past + "x") != shortened  # the digest is of the whole id


@pytest.fixture
def long_ids_api(settings):
    with site_mounted(settings, "long", long_ids_site):
        yield client_for(UserFactory())


def test_an_audited_write_of_a_row_with_a_long_id_is_recorded_not_a_500(long_ids_api):
    """A resource looked up by a text column a client writes: a create whose id is past
    what the audit index takes was a 500 (the audit entry refused it, rolling the write
    back). It is created and audited under the shortened id, the delete by that URL too,
    and the admin's search by the whole id finds both entries. (The path repeats itself,
    so PostgreSQL's own unique index on it compresses it and takes it.)"""
    path = "exports-2026-" + "report-" * 400  # 2,813 bytes
    r = long_ids_api.post("/long/exports/", {"path": path, "title": "Q4"}, format="json")
    assert r.status_code == 201, r.content
    assert long_ids_api.delete(f"/long/exports/{path}/").status_code == 200
    assert not Export.objects.exists()
    stored = audit.stored_object_id(path)
    assert len(stored.encode()) <= audit.MAX_OBJECT_ID_BYTES < len(path)
    assert list(AuditLog.objects.order_by("id").values_list("action", "object_id")) == [
        ("created", stored),
        ("deleted", stored),
    ]
    created = AuditLog.objects.get(action="created")
    assert created.after["path"] == path  # the whole id, as the resource renders it
    long_ids_api.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = long_ids_api.get("/admin/django_arc/auditlog/", {"q": path})
    assert page.status_code == 200
    assert len(page.context["cl"].result_list) == 2


# -- names a project chooses: resource and action names, event types, audit actions ----------


def _resource(name: str, **attrs):
    attrs.setdefault("model", Book)
    attrs["name"] = name
    return type("Named", (Resource,), attrs)()


def test_a_resource_name_whose_event_type_cannot_be_stored_is_a_check_error():
    """``<name>.created`` past the outbox's ``type`` column made every create of the
    resource a 500 on PostgreSQL (SQLite stored it); ``manage.py check`` says so first,
    naming the type and the limit. At the limit the resource is fine."""
    assert _e015(_resource("n" * 192)) == []
    errors = _e015(_resource("n" * 193))
    assert len(errors) == 3  # created, updated, deleted
    assert any("`" + "n" * 193 + ".created` is 201 characters" in e.msg for e in errors)
    assert all("at most 200" in e.msg for e in errors)
    assert len(_e015(_resource("n" * 192, presets=[presets.SoftDelete()]))) == 1  # restored


def test_an_audited_resource_or_action_name_past_the_audit_columns_is_a_check_error():
    """An ``Audited()`` resource writes its name and each action's name into the audit
    log's ``resource`` and ``action`` columns on every write: the preset's own check
    (arc.E011) refuses one longer than its column."""

    def long_action(self, request, instance, data):
        return instance

    assert _e011(_resource("a" * 100, presets=[presets.Audited()])) == []
    (error,) = _e011(_resource("a" * 101, presets=[presets.Audited()]))
    assert "`name` is 101 characters; the audit log stores at most 100" in error.msg
    errors = _e011(
        _resource("audited", presets=[presets.Audited()], go=action(name="g" * 101)(long_action))
    )
    assert ["the audit log stores at most 100" in e.msg for e in errors] == [True]
    # the same action on a resource that is not audited stores only its event type
    assert _e011(_resource("plain", go=action(name="g" * 101)(long_action))) == []
    assert _e015(_resource("plain", go=action(name="g" * 101)(long_action))) == []


def _e015(resource):
    return [e for e in check_resource(resource) if e.id == "arc.E015"]


def _e011(resource):
    return [e for e in check_resource(resource) if e.id == "arc.E011"]


@pytest.fixture
def long_named_api(settings):
    with site_mounted(settings, "limits", limits_site):
        yield client_for(UserFactory())


def test_a_resource_named_at_the_limit_stores_its_events_and_audit_rows(long_named_api):
    """What arc.E015 lets through is what the columns hold, on PostgreSQL too: a name of
    192 characters makes 200-character event types, an audited name of 100 an audit row
    naming it whole."""
    author = AuthorFactory()
    r = long_named_api.post(
        f"/limits/{AT_TYPE_LIMIT}/", {"title": "t", "isbn": "1", "author": author.pk}
    )
    assert r.status_code == 201, r.content
    r = long_named_api.post(
        f"/limits/{AT_AUDIT_LIMIT}/", {"title": "u", "isbn": "2", "author": author.pk}
    )
    assert r.status_code == 201, r.content
    types = set(OutboxEvent.objects.values_list("type", flat=True))
    assert types == {f"{AT_TYPE_LIMIT}.created", f"{AT_AUDIT_LIMIT}.created"}
    assert max(map(len, types)) == 200
    assert list(AuditLog.objects.values_list("resource", flat=True)) == [AT_AUDIT_LIMIT]


def test_audit_custom_refuses_an_action_or_resource_past_its_column_on_every_database():
    """A project's own ``audit.custom()`` action or resource past the column was stored by
    SQLite and refused by PostgreSQL, whose error aborted the caller's transaction; it is a
    ``ValueError`` naming the limit everywhere, before any SQL, and nothing is written."""
    request = RequestFactory().post("/")
    request.user = LongIdPrincipal("7")
    audit.custom(request, "x" * 100, resource="r" * 100)
    with pytest.raises(ValueError, match="audit action 'xxx.*101 characters; at most 100"):
        audit.custom(request, "x" * 101)
    with pytest.raises(ValueError, match="audit resource 'rrr.*101 characters; at most 100"):
        audit.custom(request, "sent", resource="r" * 101)
    assert AuditLog.objects.count() == 1


def test_an_event_whose_type_or_id_cannot_be_stored_is_refused_before_any_sql():
    """``events.publish()`` of a type past the outbox's ``type`` column (or an id past
    ``event_id``) was stored by SQLite and refused by PostgreSQL inside the caller's
    transaction; it is a ``ValueError`` on every database, and the transaction stays
    usable."""
    publish(create_event("t" * 200, {"n": 1}))
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        with pytest.raises(ValueError, match="201 characters; the outbox stores at most 200"):
            publish(create_event("t" * 201, {"n": 2}))
        with pytest.raises(ValueError, match="the outbox stores at most 64"):
            publish(create_event("ok", {"n": 3}, id="i" * 65))
        publish(create_event("ok", {"n": 4}, id="i" * 64))
    assert len([q for q in queries if "outbox" in q["sql"]]) == 1
    assert sorted(OutboxEvent.objects.values_list("payload__n", flat=True)) == [1, 4]


# -- the relay's lease owner ------------------------------------------------------------------


def test_a_worker_id_the_lease_column_cannot_hold_is_refused_before_any_claim():
    """``relay_batch(worker_id=...)`` writes the id into ``lease_owner`` when it claims
    rows. Past the column, PostgreSQL failed every claim with a ``DataError``, which the
    relay loop retries as a database outage — forever, relaying nothing. It is a
    ``ValueError`` on every database, and the rows stay pending and unleased; an id at the
    limit relays."""
    store_event(create_event("products.created", {"n": 1}))
    outbox = EventOutbox(MemoryTransport())
    with pytest.raises(ValueError, match="holds at most 200"):
        outbox.relay_batch(worker_id="w" * 201)
    with pytest.raises(ValueError, match="holds at most 200"):
        run_relay(outbox, worker_id="w" * 201, max_batches=1)
    row = OutboxEvent.objects.get()
    assert (row.status, row.lease_owner, row.attempts) == ("pending", None, 0)
    assert outbox.relay_batch(worker_id="w" * 200).relayed == 1
    assert OutboxEvent.objects.get().status == "delivered"


@override_settings(ARC={"EVENTS": {"TRANSPORT": "django_arc.events.transports.MemoryTransport"}})
def test_arc_relay_refuses_a_worker_id_the_lease_column_cannot_hold():
    """``manage.py arc_relay --worker-id`` past the column is a usage error naming the
    option, not a worker that logs a database error every half second and relays
    nothing."""
    store_event(create_event("products.created", {"n": 1}))
    with pytest.raises(CommandError, match="worker-id"):
        call_command("arc_relay", "--once", "--worker-id", "w" * 201, stdout=StringIO())
    assert OutboxEvent.objects.get().status == "pending"
    call_command("arc_relay", "--once", "--worker-id", "w" * 200, stdout=StringIO())
    assert OutboxEvent.objects.get().status == "delivered"


@pytest.mark.parametrize(
    ("worker", "said"),
    [
        ("w\x00x", "holds a NUL character"),
        ("w\ud800", "holds a lone surrogate"),
        ("w\udcff", "holds a lone surrogate"),  # an undecodable byte of argv, as Python reads it
    ],
    ids=["nul", "surrogate", "argv-byte"],
)
def test_a_worker_id_holding_what_no_lease_column_stores_is_refused_before_any_claim(worker, said):
    """A worker id holding a NUL failed every claim on PostgreSQL with a ``DataError``
    (the relay loop's "database outage", retried for ever, nothing relayed), and one
    holding a lone surrogate (``--worker-id`` given a byte that is no UTF-8) failed on both
    databases (a ``UnicodeEncodeError`` traceback). Both are refused as a worker id past
    the column is: a ``ValueError`` before any claim, a usage error of ``arc_relay``; the
    rows stay pending and unleased, and the same id is refused on every database."""
    store_event(create_event("products.created", {"n": 1}))
    outbox = EventOutbox(MemoryTransport())
    with pytest.raises(ValueError, match=said):
        outbox.relay_batch(worker_id=worker)
    with pytest.raises(ValueError, match=said):
        run_relay(outbox, worker_id=worker, max_batches=1)
    with override_settings(ARC={"EVENTS": {"TRANSPORT": MemoryTransport}}):
        with pytest.raises(CommandError, match="worker-id"):
            call_command("arc_relay", "--once", "--worker-id", worker, stdout=StringIO())
    row = OutboxEvent.objects.get()
    assert (row.status, row.lease_owner, row.attempts) == ("pending", None, 0)


# -- X-Request-Id -----------------------------------------------------------------------------


def test_a_request_id_with_a_trailing_newline_is_replaced_not_stored():
    """``X-Request-Id`` is reused when it is 1-128 of ``[A-Za-z0-9_.:-]``; the pattern's
    ``$`` also matched before a trailing newline, so 128 characters and a newline passed:
    129 characters for the audit log's ``request_id`` (a ``DataError`` on PostgreSQL) and a
    newline for the response header (Django refuses it, a 500 on every database). Such an id
    is not well formed: the request gets a fresh one, as for any other."""
    api = client_for(UserFactory())
    sent = "r" * 128 + "\n"
    r = api.post(
        "/api/audited-articles/", {"slug": "s", "title": "T"}, format="json", HTTP_X_REQUEST_ID=sent
    )
    assert r.status_code == 201, r.content
    rid = r["X-Request-Id"]
    assert rid != sent and rid != sent.strip() and len(rid) == 36
    assert AuditLog.objects.get().request_id == rid
    assert OutboxEvent.objects.get().meta["correlation_id"] == rid
    kept = api.post(
        "/api/audited-articles/",
        {"slug": "t", "title": "T"},
        format="json",
        HTTP_X_REQUEST_ID="r" * 128,
    )
    assert kept["X-Request-Id"] == "r" * 128


# -- service clients --------------------------------------------------------------------------


def test_create_with_key_refuses_a_name_or_organization_past_its_column():
    """``ServiceClient.objects.create_with_key()`` is how a project makes clients in
    Python (``arc_create_client`` checks its options itself): a name over 100 characters or
    an organization id over 128 was stored by SQLite and a ``DataError`` on PostgreSQL that
    aborted the caller's transaction. Both are a ``ValueError`` everywhere, nothing
    written; at the limits the client is created."""
    with transaction.atomic():
        with pytest.raises(ValueError, match="name is 101 characters; at most 100"):
            ServiceClient.objects.create_with_key(name="n" * 101, organization_id=1)
        with pytest.raises(ValueError, match="organization_id is 129 characters; at most 128"):
            ServiceClient.objects.create_with_key(name="c", organization_id="o" * 129)
        client, _ = ServiceClient.objects.create_with_key(name="n" * 100, organization_id="o" * 128)
    assert list(ServiceClient.objects.values_list("pk", flat=True)) == [client.pk]


@pytest.mark.parametrize("type_", ["", None, 5])
def test_an_event_without_a_type_is_refused_not_stored_for_the_relay_to_dead_letter(type_):
    """The relay takes a row whose type is empty or not a string for malformed and
    dead-letters it without publishing; the outbox stored such an event (an empty type on
    every database). It is refused when published, before any SQL."""
    with CaptureQueriesContext(connection) as queries:
        with pytest.raises(ValueError, match="type is a non-empty string"):
            publish(create_event(type_, {"n": 1}))
    assert not [q for q in queries if "outbox" in q["sql"]]
    assert not OutboxEvent.objects.exists()
