"""rev-fixes61: review of fix-seen11c (middleware, throttling, deletes) and rev-fixes59
(generic pairs judged after handlers)."""

# fix-seen11c's fixtures are imported, and tests name them as parameters.
# ruff: noqa: F811

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db import connections, models
from django.db.models import Count
from django.http import HttpResponseNotFound
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import include, path

from django_arc import arc
from tests.factories import OrganizationFactory
from tests.helpers import assert_error
from tests.test_fix_seen11c import (  # noqa: F401 - fixtures, named by the tests' parameters
    _fs11c_member,
    fs11c_distinct_base,
    fs11c_mounted,
)
from tests.testapp.models import Author, Book, Folder

# -- the unrouted 404 under a site: headers describing the replaced body ------------------------

_RF61_GZIP = "django.middleware.gzip.GZipMiddleware"
_RF61_CONDITIONAL = "django.middleware.http.ConditionalGetMiddleware"
_RF61_FRAMES = "django.middleware.clickjacking.XFrameOptionsMiddleware"


def rf61_page_not_found(request, exception=None):
    """A project's own 404 page, long enough for ``GZipMiddleware`` to compress (200 bytes
    and more), as a real site's template is."""
    return HttpResponseNotFound("<html><body>" + "Nothing here. " * 40 + "</body></html>")


#: this module as a URLconf: the API, and the project's own 404 page
urlpatterns = [path("api/", include(arc.urls))]
handler404 = rf61_page_not_found


@pytest.mark.django_db
@pytest.mark.parametrize("inner", [_RF61_GZIP, _RF61_CONDITIONAL])
def test_rf61_the_unrouted_404_takes_no_header_describing_the_replaced_body(settings, inner):
    """fix-seen11c copies onto the envelope's 404 the headers the middlewares inside arc's
    set on the 404 it replaces (``X-Frame-Options``), leaving out only ``Content-Type`` and
    ``Content-Length``. A ``GZipMiddleware`` placed inside arc's compressed the project's
    404 page and said so: the envelope, plain JSON, was sent with ``Content-Encoding: gzip``
    (a client decoding it fails). A ``ConditionalGetMiddleware`` there (as the suite's
    query-cache tests place it) gave the envelope the ``ETag`` of the HTML page. The
    headers that describe the replaced body are left out; the others are still kept."""
    settings.ROOT_URLCONF = __name__
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, inner, _RF61_FRAMES]
    settings.X_FRAME_OPTIONS = "DENY"
    row = Book.objects.create(title="t", author=Author.objects.create(name="a"))
    unknown_row = Client().get(f"/api/books/{row.pk + 1000}/", HTTP_ACCEPT_ENCODING="gzip")
    unrouted = Client().get("/api/no-such-resource/", HTTP_ACCEPT_ENCODING="gzip")
    assert_error(unknown_row, 404, "NOT_FOUND")
    body = assert_error(unrouted, 404, "NOT_FOUND")  # the bytes are the JSON they say
    assert unrouted["Content-Type"] == unknown_row["Content-Type"]
    assert unrouted.get("Content-Encoding") is None
    assert unrouted.get("ETag") is None  # the HTML page's; the envelope's is not known
    assert unrouted.get("Last-Modified") is None
    assert unrouted["X-Frame-Options"] == "DENY"  # what fix-seen11c keeps, still kept
    assert body["requestId"] == unrouted["X-Request-Id"]
    json.loads(unrouted.content)


# -- lockable(): the rows locked where the write runs ------------------------------------------

#: a read replica of ``default`` (a test mirror: the same database, connections of its own),
#: read-only as a hot standby is on PostgreSQL; added when this module is collected, opened
#: only by the tests below
_RF61_REPLICA = "rf61_replica"
_rf61_replica_config = {
    **settings.DATABASES["default"],
    "TEST": {"MIRROR": "default"},
}
if _rf61_replica_config["ENGINE"].endswith("postgresql"):
    _rf61_replica_config["OPTIONS"] = {
        **_rf61_replica_config.get("OPTIONS", {}),
        "options": "-c default_transaction_read_only=on",
    }
settings.DATABASES.setdefault(_RF61_REPLICA, _rf61_replica_config)
connections.settings.setdefault(_RF61_REPLICA, settings.DATABASES[_RF61_REPLICA])


class Rf61ReadsFromTheReplica:
    """Folders read from the replica, written to ``default`` (a primary/replica router)."""

    def db_for_read(self, model, **hints):
        return _RF61_REPLICA if model is Folder else None

    def db_for_write(self, model, **hints):
        return None

    def allow_relation(self, *args, **hints):
        return True


@pytest.fixture
def rf61_replica_reads(monkeypatch):
    """Folders read through the replica, its connection pointed at the test database (a
    mirror's connection opened in this thread takes the default's name)."""
    config = connections.settings[_RF61_REPLICA]
    monkeypatch.setitem(config, "NAME", connections["default"].settings_dict["NAME"])
    connections[_RF61_REPLICA].close()
    try:
        with override_settings(DATABASE_ROUTERS=[Rf61ReadsFromTheReplica()]):
            yield
    finally:
        connections[_RF61_REPLICA].close()


def _rf61_row_locks(captured: CaptureQueriesContext) -> list[str]:
    """The statements of ``captured`` that lock folders by the primary keys a distinct
    queryset reads (:func:`django_arc.transactions.lockable`)."""
    return [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith("SELECT")
        and '"testapp_folder"' in q["sql"]
        and "DISTINCT" in q["sql"]
    ]


@pytest.mark.django_db(transaction=True, databases=["default", _RF61_REPLICA])
def test_rf61_a_soft_bulk_delete_locks_a_distinct_base_managers_rows_where_it_writes(
    fs11c_mounted, fs11c_distinct_base, rf61_replica_reads
):
    """fix-seen11c's ``lockable()`` rebuilt a ``distinct()`` queryset on ``rows.db``, which
    for a queryset with no database of its own is the router's database for *reads*:
    ``SoftDelete``'s bulk delete (whose queryset names none) locked the rows on the read
    replica, where ``select_for_update()`` had routed the lock to the database it writes
    to. A hot standby refuses ``FOR UPDATE`` (a 500 on every soft bulk delete on
    PostgreSQL), and a lock taken on another connection holds nothing for the write. The
    rows are locked on the write database, as a queryset without ``DISTINCT`` is."""
    org = OrganizationFactory()
    api, _ = _fs11c_member(org)
    one = Folder.objects.create(organization=org, name="one")
    two = Folder.objects.create(organization=org, name="two")
    with (
        CaptureQueriesContext(connections["default"]) as on_default,
        CaptureQueriesContext(connections[_RF61_REPLICA]) as on_replica,
    ):
        r = api.delete("/fs11c/fs11c-soft-folders/bulk/", {"ids": [one.pk, two.pk]}, format="json")
    assert r.status_code == 200, r.content
    assert Folder.objects.using("default").filter(deleted_at__isnull=False).count() == 2
    assert not _rf61_row_locks(on_replica), _rf61_row_locks(on_replica)
    assert len(_rf61_row_locks(on_default)) == 1, [q["sql"] for q in on_default.captured_queries]


class Rf61CountingManager(models.Manager):
    """A base manager annotating an aggregate (each folder's count of children): its
    queryset groups its rows, and PostgreSQL refuses ``FOR UPDATE`` with ``GROUP BY``."""

    def get_queryset(self):
        return super().get_queryset().annotate(rf61_children=Count("children"))


@pytest.fixture
def rf61_counting_base(monkeypatch):
    manager = Rf61CountingManager()
    manager.model, manager.name = Folder, "rf61_counting"
    monkeypatch.setattr(Folder._meta, "base_manager", manager)
    assert Folder._base_manager.all().query.group_by is not None
    return manager


@pytest.mark.django_db
@pytest.mark.parametrize("route", ["single", "bulk", "soft-bulk"])
def test_rf61_deletes_of_a_model_whose_base_manager_annotates_an_aggregate(
    fs11c_mounted, rf61_counting_base, route
):
    """fix-seen11c's ``lockable()`` rebuilt a ``distinct()`` base manager's queryset so
    that its rows could be locked; one annotating an aggregate groups its rows, which
    PostgreSQL refuses to lock as it refuses ``DISTINCT``: a 500 on every hard delete,
    bulk delete and soft bulk delete of the model. Locked by primary key too now."""
    org = OrganizationFactory()
    api, _ = _fs11c_member(org)
    top = Folder.objects.create(organization=org, name="top")
    other = Folder.objects.create(organization=org, name="other")
    Folder.objects.create(organization=org, name="under", parent=top)
    if route == "single":
        r = api.delete(f"/fs11c/fs11c-folders/{top.pk}/")
    else:
        resource = "fs11c-bulk-folders" if route == "bulk" else "fs11c-soft-folders"
        r = api.delete(f"/fs11c/{resource}/bulk/", {"ids": [top.pk, other.pk]}, format="json")
    assert r.status_code == 200, r.content
    if route == "soft-bulk":
        stamped = Folder.objects.filter(deleted_at__isnull=False)
        assert sorted(stamped.values_list("name", flat=True)) == ["other", "top"]
    else:
        left = list(Folder.objects.values_list("name", flat=True))
        assert left == ([] if route == "bulk" else ["other"])
