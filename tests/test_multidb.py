"""Writes, idempotency keys, the outbox and the query cache when a database router sends a
resource's rows to a second database of their own (the alias ``other``: another SQLite file,
another PostgreSQL database — not a mirror of ``default`` as in
``tests/test_query_cache_routed.py``).

``other`` is added to ``DATABASES`` here, when this module is collected, and created by the
test runner for the tests that ask for it (``databases=[...]``): every app's tables are
migrated there, as on ``default``, and the routers below decide which of them a test's rows
use. Without one, nothing goes to ``other``, so the rest of the suite never sees it.
"""

from __future__ import annotations

import os
import tempfile
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, connections, transaction
from django.http import JsonResponse
from django.test import override_settings
from django.utils import timezone

from django_arc import Resource, ResourceSite, presets, route
from django_arc.actions import INSTANCE
from django_arc.checks import check_databases, check_outbox_retention
from django_arc.events import emit, get_transport
from django_arc.exceptions import ArcError
from django_arc.idempotency import purge
from django_arc.idempotency.models import IdempotencyRecord
from django_arc.idempotency.stores import DatabaseStore
from django_arc.outbox import OutboxEvent, OutboxStatus, run_relay
from django_arc.querycache import invalidate
from django_arc.querycache.keys import resource_version_key
from django_arc.querycache.store import QueryCacheStore
from django_arc.tasks import purge_outbox
from tests.helpers import cache_clock, client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with, query_cache_on_redis
from tests.testapp.models import Author
from tests.testapp.resources import PUBLIC

_default = settings.DATABASES["default"]
if _default["ENGINE"].endswith("sqlite3"):
    _other_name = os.path.join(tempfile.gettempdir(), f"arc-test-other-{os.getpid()}.sqlite3")
else:
    _other_name = f"test_{_default['NAME']}_other"
settings.DATABASES.setdefault(
    "other",
    {**_default, "TEST": {**_default.get("TEST", {}), "NAME": _other_name, "MIRROR": None}},
)
connections.settings.setdefault("other", settings.DATABASES["other"])

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "other"])

needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"
)

BOTH = ("default", "other")


class OnOther:
    """Sends ``Author`` (the rows of the resources below) and ``models`` to ``other``."""

    def __init__(self, *models):
        self.models = {Author, *models}

    def db_for_read(self, model, **hints):
        return "other" if model in self.models else None

    db_for_write = db_for_read

    def allow_relation(self, *args, **hints):
        return None


site = ResourceSite(name="multidb")


@site.register
class OtherAuthorResource(Resource):
    model = Author
    name = "other-authors"
    fields = ["id", "name"]
    permissions = PUBLIC
    idempotent = True

    def after_create(self, request, instance):
        """A hook refusing the write after the save: nothing of it may stay."""
        if instance.name == "refused":
            raise ArcError("REFUSED", "Not this one", 409)

    @route("POST", "made-then-refused", permissions=PUBLIC["create"])
    def made_then_refused(self, request, view):
        """A route writing a row and its event, then refusing (a 4xx)."""
        author = Author.objects.create(name="made")
        view.emit("made", author.pk, {"id": author.pk})
        raise ArcError("REFUSED", "Not after all", 409)

    @route("POST", "made", permissions=PUBLIC["create"])
    def made(self, request, view):
        author = Author.objects.create(name="made")
        view.emit("made", author.pk, {"id": author.pk})
        return {"id": author.pk}

    @route("POST", "made-then-failed", permissions=PUBLIC["create"])
    def made_then_failed(self, request, view):
        """A route writing a row, then answering 5xx: a keyed request gives its key up, so
        the row must go too, or the retry writes it again."""
        Author.objects.create(name="made")
        return JsonResponse({"down": True}, status=503)


@site.register
class CachedOtherAuthorResource(Resource):
    model = Author
    name = "cached-other-authors"
    fields = ["id", "name"]
    permissions = PUBLIC
    cache = {"stale_seconds": 30}


@site.register
class StaleOtherAuthorResource(Resource):
    model = Author
    name = "stale-other-authors"
    fields = ["id", "name"]
    permissions = PUBLIC
    cache = {"stale_seconds": 30}  # aged by a Clock, not by sleeping


def names(alias):
    return sorted(Author.objects.using(alias).values_list("name", flat=True))


def rows_seen_from_another_connection(seen: list):
    """A transport handler appending ``(event type, names on other)`` as another connection
    sees them when the event is published: whether the event's row had committed by then."""

    def visible_elsewhere(event):
        def look():
            seen.append((event.type, names("other")))
            connections.close_all()

        thread = threading.Thread(target=look)
        thread.start()
        thread.join()

    return visible_elsewhere


def events(alias):
    return sorted(OutboxEvent.objects.using(alias).values_list("type", flat=True))


@pytest.fixture
def mounted(settings):
    with site_mounted(settings, "m", site):
        yield


@pytest.fixture
def redis_cache():
    """The ``redis`` alias under a prefix of this test's own, the query cache on it."""
    if not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    with query_cache_on_redis() as config:
        yield config


def keyed(store, **extra):
    settings_ = {"STORE": store, "ALIAS": "redis", "TTL_SECONDS": 3600, **extra}
    return override_settings(ARC=arc_with(IDEMPOTENCY=settings_))


def post(path, body=None, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client_for(None).post(f"/m/other-authors/{path}", body or {}, format="json", **headers)


# -- a write's transaction is on the database its rows go to ------------------------------------


@pytest.mark.parametrize("outbox", ["with the rows", "on default"])
def test_a_hook_refusing_a_write_rolls_back_its_row_on_the_database_the_router_names(
    mounted, outbox
):
    """docs/resources.md: raising in a hook, ``after_*`` too, rolls back the row and its
    event. The write's transaction was ``default``'s whatever the router said, so the row,
    saved on ``other`` in autocommit, stayed after the 409."""
    router = OnOther(OutboxEvent) if outbox == "with the rows" else OnOther()
    with override_settings(DATABASE_ROUTERS=[router]):
        response = post("", {"name": "refused"})
        assert response.status_code == 409, response.content
        assert response.json()["code"] == "REFUSED"
        assert [names(alias) for alias in BOTH] == [[], []]
        assert [events(alias) for alias in BOTH] == [[], []]
        # and a write that is not refused commits its row with its event, where they go
        assert post("", {"name": "Ann"}).status_code == 201
        assert [names(alias) for alias in BOTH] == [[], ["Ann"]]
        where = "other" if outbox == "with the rows" else "default"
        assert events(where) == ["other-authors.created"]


def _seen8a_abort_other():
    """Inside an ``atomic(using="other")``: a save on ``other`` that fails, its error
    caught with no savepoint of its own (Django marks ``other``'s transaction for rollback;
    PostgreSQL aborts it too)."""
    existing = Author.objects.using("other").create(name="kept?")
    try:
        Author(pk=existing.pk, name="dup").save(using="other", force_insert=True)
    except IntegrityError:
        pass
    assert connections["other"].needs_rollback


class Seen8aBulkAbortingOther(presets.Bulk):
    """A project's ``Bulk`` writing, as ``Bulk`` does, inside a transaction of its own on
    ``other`` that it left aborted."""

    def bulk_update(self, view, request):
        with transaction.atomic(using="other"):
            _seen8a_abort_other()
            return super().bulk_update(view, request)


@site.register
class Seen8aDefaultAuthorResource(Resource):
    """Rows on ``default`` (no router), written by code that left ``other``'s transaction
    aborted: none of the write's databases."""

    model = Author
    name = "seen8a-authors"
    fields = ["id", "name"]
    permissions = PUBLIC
    presets = [Seen8aBulkAbortingOther()]

    def before_update(self, request, instance, data):
        CALLED.append(("before_update", instance.pk))

    def after_update(self, request, instance):
        CALLED.append(("after_update", instance.pk))

    @route("POST", "renamed", detail=True, permissions=PUBLIC["update"], response=INSTANCE)
    def renamed(self, request, instance, view):
        with transaction.atomic(using="other"):
            _seen8a_abort_other()
            return view.perform_update(instance, {"name": "renamed"}).instance


#: the hooks of ``Seen8aDefaultAuthorResource`` called, in order
CALLED: list[tuple[str, int]] = []


def test_a_write_on_default_is_not_refused_for_an_aborted_transaction_on_another_database(
    mounted,
):
    """The aborted-transaction checks around a write's hooks looked at every open
    connection: a route (or a project's ``Bulk``) that caught a failed save inside an
    ``atomic(using="other")`` without a savepoint, then wrote rows of ``default``, was a
    500 ("transaction on other already aborted") though none of the write's databases was.
    The checks look at the databases the write uses (``write_databases()``: the rows' and
    the outbox's): the write runs and commits on ``default``, its hooks and event with it;
    ``other``'s transaction rolls back as the route's own ``atomic`` leaves it."""
    CALLED.clear()
    first, second = Author.objects.create(name="a"), Author.objects.create(name="b")
    api = client_for(None)
    r = api.post(f"/m/seen8a-authors/{first.pk}/renamed/", {}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"] == {"id": first.pk, "name": "renamed"}
    items = [{"id": first.pk, "name": "x"}, {"id": second.pk, "name": "y"}]
    r = api.patch("/m/seen8a-authors/bulk/", {"items": items}, format="json")
    assert r.status_code == 200, r.content
    assert sorted(Author.objects.using("default").values_list("name", flat=True)) == ["x", "y"]
    assert not Author.objects.using("other").exists()
    assert [hook for hook, _ in CALLED] == ["before_update", "after_update"] + [
        "before_update"
    ] * 2 + ["after_update"] * 2
    assert events("default") == ["seen8a-authors.updated"] * 3


@pytest.mark.parametrize("outbox", ["with the rows", "on default"])
def test_a_route_refusing_after_its_write_leaves_neither_row_nor_event(mounted, outbox):
    router = OnOther(OutboxEvent) if outbox == "with the rows" else OnOther()
    with override_settings(DATABASE_ROUTERS=[router]):
        assert post("made-then-refused/").status_code == 409
        assert [names(alias) for alias in BOTH] == [[], []]
        assert [events(alias) for alias in BOTH] == [[], []]


def test_with_the_outbox_off_a_routed_write_is_published_once_its_row_committed(mounted):
    """The receiver publishes once every transaction open when the event was sent has
    committed (the write's, on ``default`` around the rows' on ``other``), so the event
    goes out after the row is committed on ``other`` (seen from another connection when it
    is published), and not at all for a write that is refused."""
    seen = []
    visible_elsewhere = rows_seen_from_another_connection(seen)

    off = {**settings.ARC.get("EVENTS", {}), "OUTBOX": False}
    with override_settings(DATABASE_ROUTERS=[OnOther()], ARC=arc_with(EVENTS=off)):
        transport = get_transport()
        transport.clear()
        transport.subscribe("other-authors.*", visible_elsewhere)
        assert post("made-then-refused/").status_code == 409
        assert names("other") == [] and transport.published == []
        assert post("made/").status_code == 200
        assert [e.type for e in transport.published] == ["other-authors.made"]
    assert seen == [("other-authors.made", ["made"])]
    assert [events(alias) for alias in BOTH] == [[], []]


# -- idempotency keys ----------------------------------------------------------------------------


def test_keys_with_rows_outbox_and_records_on_another_database(mounted, monkeypatch):
    """The documented setup of the ``database`` store (records, rows and outbox on one
    database) on ``other``: the claim, the write, its event and the answer are all there
    and commit together; a replay reads them there; an answer that cannot be kept (the
    claim taken over) rolls the write back there."""
    with override_settings(DATABASE_ROUTERS=[OnOther(OutboxEvent, IdempotencyRecord)]):
        with keyed("database"):
            first = post("", {"name": "Ann"}, key="k1")
            again = post("", {"name": "Ann"}, key="k1")
            assert first.status_code == again.status_code == 201
            assert again["X-Idempotency-Replayed"] == "true"
            assert again.content == first.content
            assert names("other") == ["Ann"] and events("other") == ["other-authors.created"]
            assert IdempotencyRecord.objects.using("other").count() == 1
            assert IdempotencyRecord.objects.using("default").count() == 0
            assert [names("default"), events("default")] == [[], []]

            monkeypatch.setattr(DatabaseStore, "complete", lambda *args, **kwargs: False)
            lost = post("", {"name": "Bob"}, key="k2")
            assert lost.status_code == 409 and lost.json()["code"] == "IDEMPOTENCY_CONFLICT"
            assert names("other") == ["Ann"] and events("other") == ["other-authors.created"]


def test_with_the_outbox_off_a_keyed_write_commits_with_its_answer_on_the_rows_database(
    mounted, monkeypatch
):
    """Records and rows on ``other``, the outbox off: one database, so the ``database``
    store's promise holds (``manage.py check`` says nothing) and an answer that cannot be
    kept (the claim taken over) rolls the write back. The write's transaction is opened on
    ``default`` too (where the outbox would be), so it does not join the request's; its
    transaction on ``other`` is then a savepoint of the request's, and commits with the
    answer or not at all (no defect: pinned for execution's docstring)."""
    off = {**settings.ARC.get("EVENTS", {}), "OUTBOX": False}
    router = OnOther(IdempotencyRecord)
    with override_settings(DATABASE_ROUTERS=[router], ARC=arc_with(EVENTS=off)):
        with keyed("database"):
            assert all("other-authors" not in m for m in routing_warnings().values())
            first = post("", {"name": "Ann"}, key="k1")
            again = post("", {"name": "Ann"}, key="k1")
            assert first.status_code == again.status_code == 201
            assert again["X-Idempotency-Replayed"] == "true"
            monkeypatch.setattr(DatabaseStore, "complete", lambda *args, **kwargs: False)
            lost = post("", {"name": "Bob"}, key="k2")
            assert lost.status_code == 409 and lost.json()["code"] == "IDEMPOTENCY_CONFLICT"
            assert [names(alias) for alias in BOTH] == [[], ["Ann"]]


def test_a_keyed_refusal_with_records_on_default_and_rows_elsewhere_leaves_no_row(mounted):
    """Records on ``default``, rows on ``other`` (outside the ``database`` store's one
    transaction, docs/idempotency.md): the write still gets a transaction on its own
    database. It used to join the request's, on ``default``, and wrote its row on
    ``other`` in autocommit: the refusal (409) was stored and replayed, but the row the
    client was told was refused stayed."""
    with override_settings(DATABASE_ROUTERS=[OnOther()]), keyed("database"):
        first = post("", {"name": "refused"}, key="k")
        again = post("", {"name": "refused"}, key="k")
        assert first.status_code == again.status_code == 409
        assert again["X-Idempotency-Replayed"] == "true"
        assert [names(alias) for alias in BOTH] == [[], []]
        assert IdempotencyRecord.objects.using("default").count() == 1


@pytest.mark.parametrize("store", ["database", "cache"])
def test_a_keyed_route_answering_5xx_rolls_back_its_row_on_another_database(mounted, store):
    """A 5xx gives the key up and the retry runs anew (SPEC §10), so the route's writes
    must not stand. They are rolled back on the database they were written to: it was
    ``default``'s transaction that was marked for rollback (``cache`` store) or rolled back
    (``database`` store, records on ``default``), and each retry left one more row."""
    if store == "cache" and not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    caches = caches_with("redis", REDIS_URL) if REDIS_URL else settings.CACHES
    with (
        override_settings(DATABASE_ROUTERS=[OnOther()], CACHES=caches),
        keyed(store),
    ):
        assert post("made-then-failed/", key="k").status_code == 503
        assert post("made-then-failed/", key="k").status_code == 503
        assert [names(alias) for alias in BOTH] == [[], []]
        assert IdempotencyRecord.objects.using("default").count() == 0


@needs_redis
@pytest.mark.parametrize("outbox", ["with the rows", "on default"])
def test_a_cache_store_keyed_create_raising_after_its_write_leaves_nothing_anywhere(
    mounted, monkeypatch, outbox
):
    """A project's ``create()`` raising after the framework's saved (the ``cache`` store,
    no ``ATOMIC_REQUESTS``): the request's transaction is open on every database the write
    needs, so neither the row on ``other`` nor its event stands, and the retry writes once.
    The write had committed on its own, and each retry added a row and an event."""
    router = OnOther(OutboxEvent) if outbox == "with the rows" else OnOther()
    viewset = site.get_resource("other-authors").as_viewset()
    create = viewset.create

    def then_raises(self, request, *args, **kwargs):
        create(self, request, *args, **kwargs)
        raise RuntimeError("gateway down")

    caches = caches_with("redis", REDIS_URL)
    with override_settings(DATABASE_ROUTERS=[router], CACHES=caches), keyed("cache"):
        client = client_for(None)
        client.raise_request_exception = False
        with monkeypatch.context() as patch:
            patch.setattr(viewset, "create", then_raises)
            failed = client.post(
                "/m/other-authors/", {"name": "Ann"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
            )
        assert failed.status_code == 500
        assert [names(alias) for alias in BOTH] == [[], []]
        assert [events(alias) for alias in BOTH] == [[], []]
        assert post("", {"name": "Ann"}, key="k").status_code == 201
        assert post("", {"name": "Ann"}, key="k")["X-Idempotency-Replayed"] == "true"
        assert [names(alias) for alias in BOTH] == [[], ["Ann"]]
        where = "other" if outbox == "with the rows" else "default"
        assert events(where) == ["other-authors.created"]


@needs_redis
def test_a_keyed_route_under_atomic_requests_on_another_database(mounted, monkeypatch):
    """The ``cache`` store with ``ATOMIC_REQUESTS`` on the rows' database only: the answer
    is stored when that transaction commits (a retry replays it, one row), and a 5xx rolls
    the route's row back to where the key was claimed (a retry runs anew, no row)."""
    monkeypatch.setitem(connections.settings["other"], "ATOMIC_REQUESTS", True)
    caches = caches_with("redis", REDIS_URL)
    with override_settings(DATABASE_ROUTERS=[OnOther()], CACHES=caches), keyed("cache"):
        first = post("made/", key="ok")
        again = post("made/", key="ok")
        assert first.status_code == again.status_code == 200
        assert again["X-Idempotency-Replayed"] == "true" and again.content == first.content
        assert names("other") == ["made"]
        assert post("made-then-failed/", key="down").status_code == 503
        assert post("made-then-failed/", key="down").status_code == 503
        assert [names(alias) for alias in BOTH] == [[], ["made"]]


def test_expired_records_on_another_database_are_purged_there(mounted):
    """The purge (task, command) works on the database the router sends the records to."""
    with override_settings(DATABASE_ROUTERS=[OnOther(IdempotencyRecord)]), keyed("database"):
        for key in ("a", "b", "c"):
            assert post("", {"name": key}, key=key).status_code == 201
        records = IdempotencyRecord.objects.using("other")
        assert records.count() == 3
        records.filter(key__in=records.values_list("key", flat=True)[:2]).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert purge() == 2
        assert records.count() == 1
        records.update(expires_at=timezone.now() - timedelta(seconds=1))
        out = StringIO()
        call_command("arc_purge_idempotency", stdout=out)
        assert out.getvalue().strip() == "Deleted 1 expired idempotency record(s)."
        assert records.count() == 0


def test_the_relay_and_the_outbox_purge_work_on_the_outbox_database(mounted):
    """With ``OutboxEvent`` routed to ``other``, the relay claims and publishes the rows
    there, and the purge deletes the delivered ones there."""
    with override_settings(DATABASE_ROUTERS=[OnOther(OutboxEvent)]):
        transport = get_transport()
        transport.clear()
        assert post("", {"name": "Ann"}).status_code == 201
        totals = run_relay(batch_size=10, max_batches=1, until_drained=True)
        assert (totals.relayed, [e.type for e in transport.published]) == (
            1,
            ["other-authors.created"],
        )
        rows = OutboxEvent.objects.using("other")
        assert list(rows.values_list("status", flat=True)) == [OutboxStatus.DELIVERED]
        assert purge_outbox(days=0) == 1
        assert not rows.exists()


class OutboxReadsElsewhere:
    """Reads of ``OutboxEvent`` from ``other`` (a replica's place), writes to ``default``."""

    def db_for_read(self, model, **hints):
        return "other" if model is OutboxEvent else None

    def db_for_write(self, model, **hints):
        return None

    def allow_relation(self, *args, **hints):
        return None


def test_the_admins_purge_deletes_on_the_outbox_database_when_reads_go_elsewhere(
    client, django_user_model
):
    """The admin's queryset is a read one: with a router sending the outbox's reads to a
    replica, the purge must still delete where the rows are written, as Django's
    ``QuerySet.delete()`` does, never on the read alias."""
    from django.urls import reverse

    user = django_user_model.objects.create_superuser("purger", "p@example.com", "pw")
    client.force_login(user)
    with override_settings(
        DATABASE_ROUTERS=[OutboxReadsElsewhere()],
        ARC={"OUTBOX": {"DELIVERED_RETENTION_DAYS": 3}},
    ):
        old = OutboxEvent.objects.using("default").create(
            event_id="old",
            type="a.b",
            status="delivered",
            delivered_at=timezone.now() - timedelta(days=4),
        )
        response = client.post(
            reverse("admin:django_arc_outboxevent_changelist"),
            {"action": "purge_delivered", "_selected_action": [old.pk]},
            follow=True,
        )
        assert response.status_code == 200
        assert "Purged 1 delivered event(s)" in response.content.decode()
        assert not OutboxEvent.objects.using("default").exists()


# -- manage.py check ----------------------------------------------------------------------------


def routing_warnings():
    return {
        warning.id: warning.msg
        for warning in check_databases()
        if "other-authors" in warning.msg or "'other'" in warning.msg
    }


def test_check_warns_when_the_router_splits_rows_from_their_outbox_or_records(mounted):
    """``manage.py check`` says when a resource's rows and its events (arc.W006) or its
    idempotency records (arc.W007) go to different databases: the one commit the docs
    promise for them is then two. Without a router, or with all three routed together,
    nothing."""
    assert routing_warnings() == {}
    with override_settings(DATABASE_ROUTERS=[OnOther()]), keyed("database"):
        found = routing_warnings()
        assert set(found) == {"arc.W006", "arc.W007"}
        for message in found.values():
            assert "other-authors" in message and "'other'" in message and "'default'" in message
        assert "plain-authors" in found["arc.W006"]  # every resource over the model
        assert "plain-authors" not in found["arc.W007"]  # only those taking keys
    with override_settings(DATABASE_ROUTERS=[OnOther()]), keyed("cache"):
        assert set(routing_warnings()) == {"arc.W006"}
    router = OnOther(OutboxEvent, IdempotencyRecord)
    with override_settings(DATABASE_ROUTERS=[router]), keyed("database"):
        # the models left on default are now split from the outbox instead
        assert all("other-authors" not in message for message in routing_warnings().values())


def test_check_warns_of_an_outbox_purging_early_only_where_a_keyed_write_can_run_twice(
    mounted,
):
    """arc.W008 on the ``database`` store: a resource whose rows a router sends elsewhere
    than its records commits its write before its answer (arc.W007), so a crash in between
    lets the retry run again within the TTL, and a day of outbox retention under a
    three-day TTL then lets its event be stored twice. Resources whose rows sit with the
    records are replayed instead, and are not named."""
    settings_ = {"DELIVERED_RETENTION_DAYS": 1}
    with (
        override_settings(DATABASE_ROUTERS=[OnOther()]),
        keyed("database", TTL_SECONDS=3 * 86400),
    ):
        with override_settings(ARC={**settings.ARC, "OUTBOX": settings_}):
            (warning,) = check_outbox_retention()
        assert warning.id == "arc.W008"
        assert "other-authors" in warning.msg and "idem-products" not in warning.msg
        assert "'database' store" in warning.msg
    with override_settings(DATABASE_ROUTERS=[OnOther(IdempotencyRecord)]):
        with keyed("database", TTL_SECONDS=3 * 86400):
            with override_settings(ARC={**settings.ARC, "OUTBOX": settings_}):
                # the resources left on default are now split from the records instead
                assert all("other-authors" not in m.msg for m in check_outbox_retention())


class OutboxOnDefaultOnly:
    """A router that keeps the outbox's table on ``default`` by its model name (as Django's
    docs route models), and lets every other table be created everywhere."""

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if app_label == "django_arc" and model_name == "outboxevent":
            return db == "default"
        return None


def test_migrating_a_database_the_router_keeps_the_outbox_table_off(mounted):
    """``allow_migrate`` keeping ``OutboxEvent`` off ``other``: django_arc's migrations then
    skip its table there, and so must 0004's ``RunPython`` (the table's ``fillfactor`` on
    PostgreSQL), which gave the router no model name: allowed, it altered a table that was
    never created, and ``migrate`` failed on it, both ways."""
    tables = connections["other"].introspection.table_names
    router = [OutboxOnDefaultOnly()]
    call_command("migrate", "django_arc", "zero", database="other", verbosity=0)
    try:
        with override_settings(DATABASE_ROUTERS=router):
            call_command("migrate", "django_arc", database="other", verbosity=0)
            assert OutboxEvent._meta.db_table not in tables()
            assert IdempotencyRecord._meta.db_table in tables()
            call_command("migrate", "django_arc", "zero", database="other", verbosity=0)
            assert IdempotencyRecord._meta.db_table not in tables()
    finally:
        with override_settings(DATABASE_ROUTERS=router):
            call_command("migrate", "django_arc", "zero", database="other", verbosity=0)
        call_command("migrate", "django_arc", database="other", verbosity=0)
    assert OutboxEvent._meta.db_table in tables()


# -- the query cache -----------------------------------------------------------------------------


def token():
    resource = next(r for r in site.resources if r.name == "cached-other-authors")
    return QueryCacheStore("redis").read("arc:qc:none", [resource_version_key(resource)])[1]


class _Refused(Exception):
    pass


@needs_redis
def test_a_write_on_another_database_bumps_at_its_commit_and_not_when_it_rolls_back(
    mounted, redis_cache
):
    """Signals carry the database written to: a save inside ``atomic(using="other")`` bumps
    when that transaction commits, and a rolled-back one bumps nothing."""
    with override_settings(DATABASE_ROUTERS=[OnOther()]):
        before = token()
        with pytest.raises(_Refused), transaction.atomic(using="other"):
            Author.objects.create(name="gone")
            raise _Refused
        assert token() == before
        with transaction.atomic(using="other"):
            Author.objects.create(name="kept")
            assert token() == before
        assert token() != before


@needs_redis
@pytest.mark.parametrize("target", ["model", "resource"])
def test_invalidate_waits_for_the_commit_of_the_database_the_rows_are_written_to(
    mounted, redis_cache, target
):
    """``invalidate(Author)`` after a ``QuerySet.update`` in ``atomic(using="other")``
    bumped at once, on ``default`` (no transaction there): before the update committed, so
    a read in between stored the old rows under the new tokens, and also when the update
    rolled back."""
    what = Author if target == "model" else CachedOtherAuthorResource
    with override_settings(DATABASE_ROUTERS=[OnOther()]):
        Author.objects.create(name="Ann")
        before = token()
        with pytest.raises(_Refused), transaction.atomic(using="other"):
            Author.objects.update(name="Bob")
            invalidate(what)
            raise _Refused
        assert token() == before
        with transaction.atomic(using="other"):
            Author.objects.update(name="Bob")
            invalidate(what)
            assert token() == before
        assert token() != before
        # ``using`` still names the transaction to wait for when it is given
        before = token()
        with transaction.atomic(using="other"):
            invalidate(what, using="default")
            assert token() != before


@needs_redis
def test_a_stale_entry_of_rows_on_another_database_is_refreshed_from_there(
    mounted, redis_cache, monkeypatch
):
    """The STALE refresh, run from the response's close(), reads the rows where the router
    sends them: a change made without a bump (``QuerySet.update``) is served STALE once,
    then the refreshed entry is a HIT with it."""
    clock = cache_clock(monkeypatch)
    url = "/m/stale-other-authors/"
    client = client_for(None)
    with override_settings(DATABASE_ROUTERS=[OnOther()]):
        Author.objects.create(name="Ann")
        assert client.get(url)["X-Cache"] == "MISS"
        Author.objects.update(name="Bea")  # no signal: no bump
        clock.offset += 31
        stale = client.get(url)
        assert stale["X-Cache"] == "STALE" and stale.json()["docs"][0]["name"] == "Ann"
        refreshed = client.get(url)
    assert refreshed["X-Cache"] == "HIT" and refreshed.json()["docs"][0]["name"] == "Bea"


@needs_redis
def test_a_cached_list_of_rows_on_another_database(mounted, redis_cache, monkeypatch):
    """Reads and writes through the API: the list is read from ``other``, stored, served,
    and a write there (under ``ATOMIC_REQUESTS`` on ``other``, committing after the view
    answered) makes the next read a miss with the new row."""
    url = "/m/cached-other-authors/"
    client = client_for(None)
    with override_settings(DATABASE_ROUTERS=[OnOther()]):
        Author.objects.create(name="Ann")
        first = client.get(url)
        assert first["X-Cache"] == "MISS" and [a["name"] for a in first.json()["docs"]] == ["Ann"]
        assert client.get(url)["X-Cache"] == "HIT"
        with monkeypatch.context() as patch:
            patch.setitem(connections.settings["other"], "ATOMIC_REQUESTS", True)
            assert client.post(url, {"name": "Bob"}, format="json").status_code == 201
        after = client.get(url)
        assert after["X-Cache"] == "MISS"
        assert [a["name"] for a in after.json()["docs"]] == ["Ann", "Bob"]
        assert Author.objects.using("default").count() == 0


@pytest.mark.parametrize("atomic_requests", [("other",), ("default", "other")])
def test_with_the_outbox_off_an_event_waits_for_the_atomic_request_of_the_rows_database(
    mounted, monkeypatch, atomic_requests
):
    """With the outbox off an event is published when its write commits, never for a write
    that rolls back (docs/outbox.md). The receiver waited for ``default``'s commit only: with
    ``ATOMIC_REQUESTS`` on the rows' database, the event of a write there went out while the
    row was not committed (at once, or at ``default``'s commit, which comes first), and a
    request failing after its write would publish an event for a row that was rolled back.
    The receiver now waits for every transaction open when the event was sent."""
    seen = []
    visible_elsewhere = rows_seen_from_another_connection(seen)

    for alias in atomic_requests:
        monkeypatch.setitem(connections.settings[alias], "ATOMIC_REQUESTS", True)
    off = {**settings.ARC.get("EVENTS", {}), "OUTBOX": False}
    with override_settings(DATABASE_ROUTERS=[OnOther()], ARC=arc_with(EVENTS=off)):
        transport = get_transport()
        transport.clear()
        transport.subscribe("other-authors.*", visible_elsewhere)
        assert post("made/").status_code == 200
        assert post("", {"name": "Ann"}).status_code == 201
        assert sorted(names("other")) == ["Ann", "made"]
        assert [e.type for e in transport.published] == [
            "other-authors.made",
            "other-authors.created",
        ]
    assert seen == [
        ("other-authors.made", ["made"]),
        ("other-authors.created", ["Ann", "made"]),
    ]


def test_with_the_outbox_off_emit_inside_another_databases_transaction_waits_for_it(mounted):
    """``emit()`` from project code inside ``atomic(using="other")`` alone, the outbox off:
    it was published at once (``default`` had no transaction to wait for), before the rows
    it announces committed, and even when they were rolled back."""
    off = {**settings.ARC.get("EVENTS", {}), "OUTBOX": False}
    with override_settings(DATABASE_ROUTERS=[OnOther()], ARC=arc_with(EVENTS=off)):
        transport = get_transport()
        transport.clear()
        with pytest.raises(_Refused), transaction.atomic(using="other"):
            Author.objects.create(name="gone")
            emit("author.created", {"name": "gone"})
            raise _Refused
        assert transport.published == []
        with transaction.atomic(using="other"):
            Author.objects.create(name="kept")
            emit("author.created", {"name": "kept"})
            assert transport.published == []
        assert [e.payload for e in transport.published] == [{"name": "kept"}]
        assert names("other") == ["kept"]


archive_site = ResourceSite(name="multidb-archive")


@archive_site.register
class ArchivedAuthorResource(Resource):
    """A project ``get_queryset`` reading the archive (``other``) when asked: one query,
    two databases."""

    model = Author
    name = "archived-authors"
    fields = ["id", "name"]
    permissions = PUBLIC
    cache = {"stale_seconds": 30}

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        # both branches clone the queryset alike: the two differ by their database only
        return rows.using("other" if request.headers.get("X-Archive") else "default")


@needs_redis
def test_one_query_on_two_databases_is_two_entries(settings, redis_cache):
    """The database a queryset reads is part of its fingerprint: the archive's answer is
    never the live one's entry (a hand mutant leaving it out survived the suite)."""
    Author.objects.using("default").create(name="Live")
    Author.objects.using("other").create(name="Archived")
    client = client_for(None)
    with site_mounted(settings, "a", archive_site):
        live = client.get("/a/archived-authors/")
        assert live["X-Cache"] == "MISS" and [a["name"] for a in live.json()["docs"]] == ["Live"]
        assert client.get("/a/archived-authors/")["X-Cache"] == "HIT"
        archived = client.get("/a/archived-authors/", HTTP_X_ARCHIVE="1")
        assert archived["X-Cache"] == "MISS"
        assert [a["name"] for a in archived.json()["docs"]] == ["Archived"]
