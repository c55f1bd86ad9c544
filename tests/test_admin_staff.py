"""django-arc's admin pages as staff users who are not superusers use them: only some model
permissions, a "support" group, odd query strings and tampered forms, large tables."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_arc.audit.models import AuditLog
from django_arc.clients import ServiceClient
from django_arc.outbox import OutboxEvent
from django_arc.outbox import admin as outbox_admin
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

OUTBOX = "/admin/django_arc/outboxevent/"
DEAD_LETTERS = "/admin/django_arc/outboxevent/dead-letters/"
AUDIT = "/admin/django_arc/auditlog/"
CLIENTS = "/admin/django_arc/serviceclient/"


def staff(client, django_user_model, *codenames, groups=()):
    """A logged-in staff user (not a superuser) with exactly these permissions."""
    user = django_user_model.objects.create_user(
        f"staff-{uuid.uuid4().hex[:8]}", password="pw", is_staff=True
    )
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    for group in groups:
        user.groups.add(group)
    client.force_login(user)
    return user


def dead_row(**extra) -> OutboxEvent:
    values = {
        "event_id": str(uuid.uuid4()),
        "type": "orders.created",
        "status": "dead",
        "attempts": 8,
        "last_error": "ConnectionError",
        **extra,
    }
    return OutboxEvent.objects.create(**values)


# -- service clients ------------------------------------------------------------------------


def test_a_view_only_staff_user_cannot_deactivate_service_clients(client, django_user_model):
    """Deactivating revokes a key: it needs the change permission, like any other write."""
    sc, _key = ServiceClient.objects.create_with_key(name="erp", organization_id="1")
    staff(client, django_user_model, "view_serviceclient")
    page = client.get(CLIENTS)
    assert page.status_code == 200
    form = page.context["action_form"]  # None: no action left to offer
    assert form is None or "deactivate" not in dict(form.fields["action"].choices)
    client.post(CLIENTS, {"action": "deactivate", "_selected_action": [sc.pk]})
    sc.refresh_from_db()
    assert sc.active is True
    assert not LogEntry.objects.exists()


def test_deactivating_service_clients_is_recorded_in_their_history(client, django_user_model):
    """The action writes with an UPDATE; the history still says who revoked which key."""
    active, _ = ServiceClient.objects.create_with_key(name="erp", organization_id="1")
    inactive, _ = ServiceClient.objects.create_with_key(
        name="old", organization_id="1", active=False
    )
    user = staff(client, django_user_model, "view_serviceclient", "change_serviceclient")
    response = client.post(
        CLIENTS, {"action": "deactivate", "_selected_action": [active.pk, inactive.pk]}
    )
    assert response.status_code == 302
    active.refresh_from_db()
    assert active.active is False
    entries = list(LogEntry.objects.values_list("object_id", "action_flag", "user_id"))
    assert entries == [(str(active.pk), CHANGE, user.pk)]
    history = client.get(f"{CLIENTS}{active.pk}/history/")
    assert "Deactivated (action)." in history.content.decode()
    assert active.key_hash not in history.content.decode()


def test_the_admin_refuses_a_service_client_for_an_organization_that_does_not_exist(
    admin_client,
):
    """As ``arc_create_client`` does: such a key reads nothing, or waits for whatever
    organization is created under that id later."""
    org = OrganizationFactory()
    for value in ("999999", "abc", "99999999999999999999999"):
        response = admin_client.post(
            f"{CLIENTS}add/", {"name": "erp", "organization_id": value, "scopes": "sync"}
        )
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["organization_id"] == [
            f"Organization {value!r} does not exist (shop.Organization); create it first."
        ]
        assert 'id="arc-service-key"' not in response.content.decode()
    assert not ServiceClient.objects.exists()

    response = admin_client.post(
        f"{CLIENTS}add/", {"name": "erp", "organization_id": str(org.pk), "scopes": "sync"}
    )
    assert response.status_code == 200 and 'id="arc-service-key"' in response.content.decode()
    sc = ServiceClient.objects.get()
    change = f"{CLIENTS}{sc.pk}/change/"
    moved = admin_client.post(change, {"name": "erp", "organization_id": "999999"})
    assert moved.status_code == 200
    assert "does not exist" in moved.context["adminform"].form.errors["organization_id"][0]
    sc.refresh_from_db()
    assert sc.organization_id == str(org.pk)


def test_a_client_whose_organization_was_deleted_can_still_be_edited(admin_client):
    """Only a new or changed organization is checked: deactivating the key of an
    organization that is gone must stay possible from the change form."""
    sc, _key = ServiceClient.objects.create_with_key(name="erp", organization_id="999999")
    response = admin_client.post(
        f"{CLIENTS}{sc.pk}/change/", {"name": "erp", "organization_id": "999999"}
    )
    assert response.status_code == 302
    sc.refresh_from_db()
    assert sc.active is False


# -- the outbox: permissions ------------------------------------------------------------------


def test_the_support_group_requeues_but_cannot_purge_or_delete(client, django_user_model):
    """view + change on outbox events (no delete): requeue from the action and the dead-letter
    page; no purge action, no delete page for a dead row."""
    support = Group.objects.create(name="support")
    for codename in ("view_outboxevent", "change_outboxevent"):
        support.permissions.add(Permission.objects.get(codename=codename))
    staff(client, django_user_model, groups=[support])
    first, second = dead_row(), dead_row()
    page = client.get(OUTBOX)
    choices = [value for value, _ in page.context["action_form"].fields["action"].choices]
    assert "requeue_selected" in choices and "purge_delivered" not in choices
    client.post(OUTBOX, {"action": "requeue_selected", "_selected_action": [first.pk]})
    assert OutboxEvent.objects.get(pk=first.pk).status == "pending"
    client.post(DEAD_LETTERS, {"ids": [str(second.pk)]})
    assert OutboxEvent.objects.get(pk=second.pk).status == "pending"
    third = dead_row()
    assert client.get(f"{OUTBOX}{third.pk}/delete/").status_code == 403
    assert client.post(f"{OUTBOX}{third.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(OUTBOX, {"action": "purge_delivered", "_selected_action": [third.pk]})
    assert OutboxEvent.objects.filter(pk=third.pk).exists()


def test_staff_without_audit_permissions_see_nothing_of_it(client, django_user_model):
    row = AuditLog.objects.create(action="created", resource="r", object_id="1")
    staff(client, django_user_model, "view_outboxevent")
    assert client.get(AUDIT).status_code == 403
    assert client.get(AUDIT, {"resource": "a\x00"}).status_code == 403
    assert client.get(f"{AUDIT}{row.pk}/change/").status_code == 403
    assert client.get(f"{AUDIT}{row.pk}/history/").status_code == 403


# -- odd input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (OUTBOX, "type"),
        (OUTBOX, "status__exact"),
        (AUDIT, "resource"),
        (AUDIT, "action"),
        (CLIENTS, "active__exact"),
    ],
)
def test_a_nul_character_in_a_filter_is_a_400_naming_it(admin_client, url, name):
    """PostgreSQL cannot compare text with a NUL in it: the page failed with a 500 when it
    ran the filtered query."""
    OutboxEvent.objects.create(event_id="e1", type="t")
    AuditLog.objects.create(action="created", resource="r", object_id="1")
    response = admin_client.get(url, {name: "a\x00b"})
    assert response.status_code == 400
    assert f"Parameter '{name}' contains a NUL character." in response.content.decode()
    assert admin_client.get(url, {name: "a%b"}).status_code in (200, 302)


@pytest.mark.parametrize("url", [OUTBOX, AUDIT])  # the lists with a created-date filter
@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00-23:59",  # PostgreSQL: time zone displacement out of range
        "2026-01-01T00:00:00+16:00",
        "0001-01-01 00:00:00+14:00",  # SQLite: before year 1 in UTC, OverflowError
        "9999-12-31 23:59:59-01:00",  # SQLite: after year 9999 in UTC
    ],
)
def test_a_date_filter_no_database_can_compare_is_a_400_naming_it(admin_client, url, value):
    """The created-date filter's parameters are handed to the query as they come: a time
    whose offset PostgreSQL does not take (more than 15:59) was a ``DataError``, one that
    lands outside years 1 to 9999 in UTC an ``OverflowError`` on SQLite, each a 500 when the
    page ran its query. The date the filter itself sends, and a time at the offsets
    PostgreSQL takes, still list (the service clients' list has no date filter: there the
    parameter is no filter at all, below)."""
    OutboxEvent.objects.create(event_id="e1", type="t")
    AuditLog.objects.create(action="created", resource="r", object_id="1")
    response = admin_client.get(url, {"created_at__gte": value})
    assert response.status_code == 400
    assert "Parameter 'created_at__gte' is not a time" in response.content.decode()
    for fine in (
        "2026-01-01 00:00:00+00:00",
        "2026-01-01T00:00:00-15:59",
        "0001-01-02 00:00:00+14:00",
    ):
        assert admin_client.get(url, {"created_at__gte": fine}).status_code == 200, fine


@pytest.mark.parametrize("url", [OUTBOX, AUDIT])
@pytest.mark.parametrize("value", ["2026-01-01T00:00:00+02:00", "2026-01-01T00:00:00Z"])
def test_i18n_without_use_tz_a_date_filter_with_an_offset_is_a_400_naming_it(
    admin_client, settings, url, value
):
    """Without ``USE_TZ`` the columns hold local times, and Django refuses to send an aware
    value to SQLite (``ValueError``): the created-date filter given a time with an offset was
    a 500 when the page ran its query. It is a 400 naming the parameter, on every database;
    the local times without offset the admin's own date filter sends then still list."""
    settings.USE_TZ = False
    settings.TIME_ZONE = "Europe/Paris"
    OutboxEvent.objects.create(event_id="e1", type="t")
    AuditLog.objects.create(action="created", resource="r", object_id="1")
    response = admin_client.get(url, {"created_at__gte": value})
    assert response.status_code == 400
    assert "Parameter 'created_at__gte' is not a time" in response.content.decode()
    for fine in ("2026-01-01 00:00:00", "2026-01-01"):
        listed = admin_client.get(url, {"created_at__gte": fine})
        assert listed.status_code == 200, fine
        assert len(listed.context["cl"].result_list) == 1


@pytest.mark.parametrize(
    ("url", "name", "value"),
    [
        (AUDIT, "created_at__in", "2026-01-01T00:00:00-23:59"),  # DataError on PostgreSQL
        (AUDIT, "created_at__in", "0001-01-01 00:00:00+14:00"),  # OverflowError on SQLite
        (AUDIT, "created_at__year", "0"),  # ValueError from Django's year bounds, both
        (AUDIT, "created_at__year__gte", "99999999999999"),  # OverflowError, both
        (AUDIT, "object_id__regex", "("),  # an invalid pattern: a database error, both
        (OUTBOX, "id__regex", "("),
        (CLIENTS, "name__regex", "("),
        (OUTBOX, "payload__contains", "{}"),  # NotSupportedError on SQLite
        (AUDIT, "before__contained_by", "{}"),
        (CLIENTS, "scopes__contains", "x"),
        (OUTBOX, "id__in", "1,99999999999999999999999"),  # OverflowError on SQLite
    ],
)
def test_a_lookup_no_filter_of_the_list_sends_is_a_400_naming_it(admin_client, url, name, value):
    """Django's changelist takes a lookup on any column from the query string, though the
    list's filters never send one: an invalid regular expression, a JSON containment SQLite
    cannot run, a year or a list of times Django cannot convert, an id past the column's
    range in a list, each was a 500 on one database or both (and a lookup into the JSON
    columns reads every row). The filters' own parameters, a column's exact value and the
    changelist's own (search, order, page) still list."""
    OutboxEvent.objects.create(event_id="e1", type="t")
    AuditLog.objects.create(action="created", resource="r", object_id="1")
    response = admin_client.get(url, {name: value})
    assert response.status_code == 400
    assert f"Parameter {name!r} is not a filter of this list" in response.content.decode()
    fine = {
        OUTBOX: {"status__exact": "dead", "type": "t", "created_at__gte": "2026-01-01 00:00+00:00"},
        AUDIT: {"action": "created", "resource": "r", "organization_id": "5", "o": "1", "p": "1"},
        CLIENTS: {"active__exact": "1", "organization_id": "1", "q": "erp"},
    }[url]
    assert admin_client.get(url, fine).status_code == 200


@pytest.mark.parametrize("value", ["abc", "99999999999999999999999", "1.5"])
def test_a_selected_row_that_is_not_an_id_is_a_400(admin_client, value):
    """A tampered action form (the page only ever sends ids) used to fail the action's query
    with a 500."""
    row = dead_row()
    response = admin_client.post(
        OUTBOX, {"action": "requeue_selected", "_selected_action": [str(row.pk), value]}
    )
    assert response.status_code == 400
    assert "'_selected_action' must hold ids of outbox events" in response.content.decode()
    assert OutboxEvent.objects.get(pk=row.pk).status == "dead"
    sc, _key = ServiceClient.objects.create_with_key(name="erp", organization_id="1")
    response = admin_client.post(
        CLIENTS, {"action": "deactivate", "_selected_action": [str(sc.pk), value]}
    )
    assert response.status_code == 400
    sc.refresh_from_db()
    assert sc.active is True


def test_dead_letter_ids_past_the_columns_range_select_nothing(admin_client):
    """They were handed to the database as they came (a 500 on SQLite)."""
    row = dead_row()
    response = admin_client.post(
        DEAD_LETTERS, {"ids": ["99999999999999999999999", str(row.pk)]}, follow=True
    )
    assert response.status_code == 200
    assert "Requeued 1 dead event(s)." in response.content.decode()
    assert OutboxEvent.objects.get(pk=row.pk).status == "pending"


# -- large tables -------------------------------------------------------------------------------


def test_the_type_filter_reads_only_the_newest_rows(admin_client, monkeypatch):
    """Django's filter for a column runs SELECT DISTINCT over the whole table on every page
    load; the outbox's takes its choices from the newest rows, and any type still filters."""
    monkeypatch.setattr(outbox_admin, "TYPE_FILTER_RECENT_ROWS", 3)
    OutboxEvent.objects.create(event_id="old", type="billing.old")
    for i in range(3):
        OutboxEvent.objects.create(event_id=f"new-{i}", type=f"orders.t{i}")
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client.get(OUTBOX)
    assert page.status_code == 200
    sqls = [q["sql"] for q in ctx.captured_queries if "django_arc_outboxevent" in q["sql"]]
    assert not any("DISTINCT" in sql.upper() for sql in sqls), sqls
    body = page.content.decode()
    assert "?type=orders.t0" in body and "?type=billing.old" not in body
    old = admin_client.get(OUTBOX, {"type": "billing.old"})
    assert [row.event_id for row in old.context["cl"].result_list] == ["old"]
    assert "?type=billing.old" in old.content.decode()


def _add_rows(kind: str, start: int, count: int) -> None:
    for i in range(start, start + count):
        if kind == "outbox":
            dead_row(event_id=f"ev-{i}")
        elif kind == "audit":
            AuditLog.objects.create(action="created", resource="r", object_id=str(i))
        else:
            ServiceClient.objects.create_with_key(name=f"c{i}", organization_id="1")


@pytest.mark.parametrize(
    ("url", "kind"),
    [(OUTBOX, "outbox"), (DEAD_LETTERS, "outbox"), (AUDIT, "audit"), (CLIENTS, "clients")],
)
def test_a_page_of_50_rows_costs_the_queries_of_a_page_of_5(
    admin_client, django_assert_max_num_queries, url, kind
):
    """No query per row (N+1) on any list page django-arc ships."""
    _add_rows(kind, 0, 5)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    _add_rows(kind, 5, 60)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert admin_client.get(url).status_code == 200


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reltuples is PostgreSQL's")
def test_the_outbox_list_does_not_count_a_large_table(admin_client):
    """docs/admin.md: "no full COUNT(*) over the table"; the paginator counted every row."""
    OutboxEvent.objects.bulk_create(
        [OutboxEvent(event_id=str(i), type=f"orders.t{i % 7}") for i in range(12_000)],
        batch_size=4000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_arc_outboxevent")
    with CaptureQueriesContext(connection) as ctx:
        assert admin_client.get(OUTBOX).status_code == 200
    sqls = [q["sql"] for q in ctx.captured_queries if "django_arc_outboxevent" in q["sql"]]
    assert not any("COUNT(" in sql.upper() or "DISTINCT" in sql.upper() for sql in sqls), sqls


# -- admin history ------------------------------------------------------------------------------


def test_requeueing_records_each_requeued_row_in_its_history(client, django_user_model):
    """Requeue wrote with an UPDATE and left no LogEntry: a row's history did not say who put
    it back in the queue. Rows that were not dead are neither changed nor logged."""
    user = staff(client, django_user_model, "view_outboxevent", "change_outboxevent")
    dead, pending = dead_row(), dead_row(status="pending", attempts=0)
    response = client.post(
        OUTBOX, {"action": "requeue_selected", "_selected_action": [dead.pk, pending.pk]}
    )
    assert response.status_code == 302
    entries = list(LogEntry.objects.values_list("object_id", "action_flag", "user_id"))
    assert entries == [(str(dead.pk), CHANGE, user.pk)]
    history = client.get(f"{OUTBOX}{dead.pk}/history/").content.decode()
    assert "Requeued (dead -&gt; pending)." in history and user.username in history


def test_requeue_all_runs_in_chunks_and_logs_every_row(admin_client, monkeypatch):
    """ "Requeue all dead events" on a large queue: every dead row requeued and logged once,
    in short transactions of REQUEUE_CHUNK rows."""
    monkeypatch.setattr(outbox_admin, "REQUEUE_CHUNK", 2)
    dead = [dead_row() for _ in range(5)]
    delivered = dead_row(status="delivered", attempts=0)
    response = admin_client.post(DEAD_LETTERS, {"requeue_all": "1"}, follow=True)
    assert "Requeued 5 dead event(s)." in response.content.decode()
    assert set(OutboxEvent.objects.filter(status="pending").values_list("pk", flat=True)) == {
        row.pk for row in dead
    }
    assert OutboxEvent.objects.get(pk=delivered.pk).status == "delivered"
    logged = sorted(LogEntry.objects.values_list("object_id", flat=True))
    assert logged == sorted(str(row.pk) for row in dead)
    again = admin_client.post(DEAD_LETTERS, {"requeue_all": "1"}, follow=True)
    assert "Nothing was requeued" in again.content.decode()
    assert LogEntry.objects.count() == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["requeue all", "requeue selected"])
def test_requeue_chunks_commit_on_their_own_under_atomic_requests(admin_client, monkeypatch, how):
    """Under ``ATOMIC_REQUESTS`` the request's transaction wrapped the whole admin view, so
    each chunk was a savepoint of it and every requeued row stayed locked until the page
    answered. The outbox admin's views are outside it: no savepoint is sent, and each chunk
    commits on its own."""
    from django.db import connections

    monkeypatch.setattr(outbox_admin, "REQUEUE_CHUNK", 2)
    monkeypatch.setitem(connections["default"].settings_dict, "ATOMIC_REQUESTS", True)
    dead = [dead_row() for _ in range(5)]
    data = {"requeue_all": "1"}
    url = DEAD_LETTERS
    if how == "requeue selected":
        url, data = OUTBOX, {"action": "requeue_selected", "_selected_action": [r.pk for r in dead]}
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.post(url, data).status_code == 302
    sent = [q["sql"].upper() for q in queries.captured_queries]
    assert not [sql for sql in sent if "SAVEPOINT" in sql]
    assert OutboxEvent.objects.filter(status="pending").count() == 5
    assert LogEntry.objects.count() == 5


def test_custom_admin_posts_need_a_csrf_token(client, django_user_model):
    """The dead-letter page and Relay now are reached through admin_view (csrf_protect)."""
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    user = staff(client, django_user_model, "view_outboxevent", "change_outboxevent")
    csrf_client.force_login(user)
    row = dead_row()
    assert csrf_client.post(DEAD_LETTERS, {"requeue_all": "1"}).status_code == 403
    assert csrf_client.post(f"{OUTBOX}relay-now/").status_code == 403
    assert (
        csrf_client.post(
            OUTBOX, {"action": "requeue_selected", "_selected_action": [row.pk]}
        ).status_code
        == 403
    )
    assert OutboxEvent.objects.get(pk=row.pk).status == "dead"


# -- the audit log's search -----------------------------------------------------------------------


def test_audit_search_matches_exact_ids_in_any_column(admin_client):
    rows = [
        AuditLog.objects.create(action="created", resource="orders", object_id="42"),
        AuditLog.objects.create(action="created", resource="", object_id="42", request_id="r-1"),
        AuditLog.objects.create(action="updated", resource="pages", object_id="7", request_id="42"),
        AuditLog.objects.create(action="deleted", resource="pages", actor_user_id="42"),
        AuditLog.objects.create(action="deleted", resource="pages", actor_client_id="svc_ab"),
        AuditLog.objects.create(action="created", resource="pages", object_id="420"),
        AuditLog.objects.create(
            action="created", resource="pages", object_id="6f1c8a5e-0000-4000-8000-00000000abcd"
        ),
    ]

    def found(term):
        response = admin_client.get(AUDIT, {"q": term})
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    assert found("42") == {rows[0].pk, rows[1].pk, rows[2].pk, rows[3].pk}
    assert found(" svc_ab ") == {rows[4].pk}
    assert found("6F1C8A5E-0000-4000-8000-00000000ABCD") == {rows[6].pk}
    assert found("4") == set()
    assert found("%") == set()


def test_audit_search_finds_a_uuid_pasted_without_dashes(admin_client):
    """Object ids, request ids and user ids are stored as ``str(uuid)``, dashed: a UUID
    pasted without dashes (as some logs and databases print it), in braces or as a URN
    found nothing. It finds the row now, in any column; an id stored as 32 hex digits is
    still found as typed."""
    uid = uuid.UUID("6f1c8a5e-0000-4000-8000-00000000abcd")
    by_object = AuditLog.objects.create(action="created", resource="pages", object_id=str(uid))
    by_request = AuditLog.objects.create(action="updated", resource="pages", request_id=str(uid))
    by_actor = AuditLog.objects.create(action="deleted", resource="pages", actor_user_id=str(uid))
    hexed = AuditLog.objects.create(action="created", resource="pages", object_id="ab" * 16)

    def found(term):
        response = admin_client.get(AUDIT, {"q": term})
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    every = {by_object.pk, by_request.pk, by_actor.pk}
    for term in (uid.hex, uid.hex.upper(), "{" + str(uid) + "}", uid.urn, str(uid)):
        assert found(term) == every, term
    assert found("ab" * 16) == {hexed.pk}  # stored as typed: still found as typed
    assert found(uid.hex[:-1]) == set()


def test_outbox_search_finds_an_event_id_pasted_without_dashes(admin_client):
    event = dead_row(event_id="6f1c8a5e-0000-4000-8000-00000000abcd", type="payments.captured")
    response = admin_client.get(OUTBOX, {"q": "6F1C8A5E000040008000" + "00000000ABCD"})
    assert {row.pk for row in response.context["cl"].result_list} == {event.pk}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plans are PostgreSQL's")
def test_audit_search_reads_indexes_not_the_table(admin_client):
    """Django's "=field" search compared UPPER(column) = UPPER(term), which no index serves:
    every search read the whole log twice (count and page), though the docs say each id is
    indexed."""
    AuditLog.objects.bulk_create(
        [
            AuditLog(
                action="created",
                resource=f"r{i % 20}",
                object_id=str(i),
                request_id=f"req-{i}",
                actor_user_id=str(i % 50),
            )
            for i in range(12_000)
        ],
        batch_size=4000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_arc_auditlog")
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(AUDIT, {"q": "1234"})
    assert [row.object_id for row in response.context["cl"].result_list] == ["1234"]
    searches = [
        q["sql"] for q in ctx.captured_queries if 'FROM "django_arc_auditlog" WHERE' in q["sql"]
    ]
    assert searches
    for sql in searches:
        assert "UPPER(" not in sql
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Seq Scan" not in plan, plan


def test_outbox_search_by_event_id_or_part_of_the_type(admin_client):
    event = dead_row(event_id="6f1c8a5e-0000-4000-8000-00000000abcd", type="payments.captured")
    other = dead_row(type="orders.created")

    def found(term):
        response = admin_client.get(OUTBOX, {"q": term})
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    assert found(event.event_id) == {event.pk}
    assert found(event.event_id.upper()) == {event.pk}
    assert found("payments.") == {event.pk}
    assert found("created") == {other.pk}
    assert found("nothing") == set()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plans are PostgreSQL's")
def test_outbox_search_by_event_id_reads_its_index(admin_client):
    """Django's "=event_id" search compared UPPER(event_id), ORed with LIKE on the type: one
    event found by its id read the whole outbox, twice (count and page)."""
    OutboxEvent.objects.bulk_create(
        [OutboxEvent(event_id=f"ev-{i}", type=f"orders.t{i % 7}") for i in range(12_000)],
        batch_size=4000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_arc_outboxevent")
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(OUTBOX, {"q": "ev-1234"})
    assert [row.event_id for row in response.context["cl"].result_list] == ["ev-1234"]
    searches = [
        q["sql"]
        for q in ctx.captured_queries
        if '"django_arc_outboxevent"."event_id" IN' in q["sql"]
    ]
    assert searches
    for sql in [q["sql"] for q in ctx.captured_queries if "django_arc_outboxevent" in q["sql"]]:
        assert "UPPER(" not in sql and "LIKE" not in sql.upper()
        if " LIMIT 1000" in sql:
            continue  # the type filter's choices: the newest rows by primary key
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Seq Scan" not in plan, (sql, plan)


def test_audit_search_past_the_resource_limit_still_finds_object_ids(admin_client, monkeypatch):
    """Past MAX_SEARCHED_RESOURCES distinct resources the object id is matched on its own
    (a scan) rather than through a list of every resource."""
    from django_arc.audit import admin as audit_admin

    monkeypatch.setattr(audit_admin, "MAX_SEARCHED_RESOURCES", 1)
    first = AuditLog.objects.create(action="created", resource="orders", object_id="9")
    second = AuditLog.objects.create(action="created", resource="pages", object_id="9")
    assert audit_admin.logged_resources(connection.alias) is None
    response = admin_client.get(AUDIT, {"q": "9"})
    assert {row.pk for row in response.context["cl"].result_list} == {first.pk, second.pk}
    monkeypatch.setattr(audit_admin, "MAX_SEARCHED_RESOURCES", 2)
    assert audit_admin.logged_resources(connection.alias) == ["orders", "pages"]
