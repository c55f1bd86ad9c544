"""fix-seen11c: HTTP edges, throttling outages and hard deletes, as the last reviewers saw them."""

from __future__ import annotations

import logging
import threading

import pytest
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.db import connection, models
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.module_loading import import_string
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.exceptions import exception_handler
from django_arc.generics import ResourceGenericViewSet
from django_arc.redis_alias import reset_outage_warnings
from django_arc.throttling import ScopeRateThrottle
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import assert_error, client_for, in_thread, site_mounted
from tests.testapp.models import Folder

_FS11C_SCOPE = "django_arc.middleware.ScopeMiddleware"
_FS11C_SECURITY = "django.middleware.security.SecurityMiddleware"
_FS11C_FRAMES = "django.middleware.clickjacking.XFrameOptionsMiddleware"
#: Django's ``startproject`` order, arc's middleware after authentication: the security
#: middleware outside it, the clickjacking one inside it (last)
_FS11C_DEFAULT_ORDER = [
    _FS11C_SECURITY,
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    _FS11C_SCOPE,
    "django.contrib.messages.middleware.MessageMiddleware",
    _FS11C_FRAMES,
]
#: both header-setting middlewares inside arc's
_FS11C_SECURITY_INSIDE = [m for m in _FS11C_DEFAULT_ORDER if m != _FS11C_SECURITY] + [
    _FS11C_SECURITY
]
_FS11C_SECURITY_HEADERS = (
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
)


@pytest.mark.django_db
@pytest.mark.parametrize("order", [_FS11C_DEFAULT_ORDER, _FS11C_SECURITY_INSIDE])
@pytest.mark.parametrize("method", ["post", "delete"])
def test_fs11c_the_slashless_roots_405_passes_through_the_projects_middleware(
    settings, order, method
):
    """``POST /api`` is answered as ``POST /api/`` (rev-methods); ``ScopeMiddleware`` called
    the root's view itself, after the middlewares inside it had answered their 404, so
    their ``process_response`` never saw the 405: no ``X-Frame-Options`` (the clickjacking
    middleware is last in Django's order), none of ``SecurityMiddleware``'s headers when it
    is placed inside. The 405 carries the headers the slashed route's 405 carries."""
    settings.MIDDLEWARE = order
    settings.X_FRAME_OPTIONS = "DENY"
    slashed = getattr(Client(), method)("/api/", content_type="application/json")
    slashless = getattr(Client(), method)("/api", content_type="application/json")
    assert_error(slashed, 405, "METHOD_NOT_ALLOWED")
    assert_error(slashless, 405, "METHOD_NOT_ALLOWED")
    for header in _FS11C_SECURITY_HEADERS:
        assert header in slashed, header
        assert slashless.get(header) == slashed[header], header
    assert slashless["X-Frame-Options"] == "DENY"
    assert slashless["X-Content-Type-Options"] == "nosniff"
    assert slashless["Allow"] == slashed["Allow"] == "GET, HEAD, OPTIONS"


class Fs11cUnreachableCacheError(Exception):
    """What a cache client of no family arc knows raises (``pylibmc.Error``,
    pymemcache's ``MemcacheUnexpectedCloseError``: neither is an ``OSError``)."""


class Fs11cDownCache(BaseCache):
    """A cache backend whose server is away: every read and write raises, as
    ``PyMemcacheCache`` raises ``ConnectionRefusedError`` for a memcached that is down
    (``OPTIONS["error"]`` names the exception class raised, by its dotted path)."""

    def __init__(self, location, params):
        super().__init__(params)
        self.error = import_string(params.get("OPTIONS", {}).get("error", "builtins.OSError"))

    def get(self, key, default=None, version=None):
        raise self.error("connection refused")

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        raise self.error("connection refused")


class _Fs11cThrottledView(APIView):
    """Throttled by ``ScopeRateThrottle``, then reads the database."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes = [ScopeRateThrottle]

    def get_exception_handler(self):
        return exception_handler

    def get(self, request):
        return Response({"products": Product.objects.count()})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error",
    ["builtins.ConnectionRefusedError", f"{__name__}.Fs11cUnreachableCacheError"],
)
def test_fs11c_any_throttle_cache_that_fails_lets_requests_through_with_one_warning(
    settings, caplog, error
):
    """A throttle cache that is neither Redis nor a database cache (memcached, a project's
    backend) whose server is away raised its client's error from DRF's cache read: a 500
    on every throttled request, where a Redis or database-cache outage lets it through
    (fix-seen10c). Any backend's failure is the same outage now: the request is let through
    uncounted, and the log warns once per interval naming the backend."""
    reset_outage_warnings()
    caplog.set_level(logging.WARNING, logger="django_arc.redis")
    ProductFactory()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"arc_anon": "1/min"},
    }
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": f"{__name__}.Fs11cDownCache", "OPTIONS": {"error": error}},
    }
    view = _Fs11cThrottledView.as_view()
    answers = [view(APIRequestFactory().get("/t/", REMOTE_ADDR="10.0.0.1")) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.data for a in answers] == [{"products": 1}] * 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "django_arc.redis"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        "throttling: the throttle cache (Fs11cDownCache) unavailable ("
    ), warnings


# -- hard deletes: the lock outside a request's transaction, a distinct base manager ------

FS11C_MEMBERS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}
fs11c_site = ResourceSite(name="fix-seen11c")


@fs11c_site.register
class Fs11cFolderResource(Resource):
    """A tree of a tenant's folders and nothing that needs a transaction of its own (no
    hook, no writing preset): with the outbox off, a write of it runs in autocommit."""

    model = Folder
    name = "fs11c-folders"
    fields = ["id", "organization", "name", "parent"]
    presets = [presets.MultiTenant()]
    permissions = FS11C_MEMBERS


@fs11c_site.register
class Fs11cBulkFolderResource(Resource):
    """The same tree with bulk routes."""

    model = Folder
    name = "fs11c-bulk-folders"
    fields = ["id", "organization", "name", "parent"]
    presets = [presets.MultiTenant(), presets.Bulk()]
    permissions = FS11C_MEMBERS


@fs11c_site.register
class Fs11cSoftFolderResource(Resource):
    """The same tree deleted softly, one row or in bulk."""

    model = Folder
    name = "fs11c-soft-folders"
    fields = ["id", "organization", "name", "parent"]
    presets = [presets.MultiTenant(), presets.SoftDelete(), presets.Bulk()]
    permissions = FS11C_MEMBERS


@pytest.fixture
def fs11c_mounted(settings):
    settings.ARC = {**settings.ARC, "EVENTS": {**settings.ARC.get("EVENTS", {}), "OUTBOX": False}}
    with site_mounted(settings, "fs11c", fs11c_site):
        yield


def _fs11c_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_fs11c_a_cascading_delete_outside_any_transaction_locks_its_row(fs11c_mounted):
    """With the outbox off and nothing else asking for a transaction, a single hard delete
    ran in autocommit: the lock fix-seen10d takes before the cascade check was skipped
    (``in_atomic_block`` false), so the check, the lock and the delete were not one
    transaction. A cascading model's delete runs in one now, its row locked first."""
    org = OrganizationFactory()
    api, _ = _fs11c_member(org)
    top = Folder.objects.create(organization=org, name="top")
    Folder.objects.create(organization=org, name="under", parent=top)
    with CaptureQueriesContext(connection) as captured:
        r = api.delete(f"/fs11c/fs11c-folders/{top.pk}/")
    assert r.status_code == 200, r.content
    assert not Folder.objects.exists()
    statements = [q["sql"] for q in captured.captured_queries]
    locks = [s for s in statements if s.endswith("FOR UPDATE") and '"testapp_folder"' in s]
    assert len(locks) == 1, statements
    deletes = [s for s in statements if s.startswith('DELETE FROM "testapp_folder"')]
    assert deletes, statements
    # the lock, the collection and the delete in one transaction: no COMMIT between them
    first, last = statements.index(locks[0]), statements.index(deletes[-1])
    assert not [s for s in statements[first:last] if s.upper().startswith(("COMMIT", "BEGIN"))]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a race between two connections")
def test_fs11c_a_child_filed_during_an_autocommit_delete_waits_for_it(fs11c_mounted, monkeypatch):
    """fix-seen10d's race, with the outbox off: another member files a folder under the
    caller's while the delete is judged. Without the delete's transaction no lock was taken:
    the child was stored at once (201) and the delete then failed on it at its commit (409),
    the row the caller asked to delete kept. The filing waits for the delete now, which
    removes what it judged (200), and then finds its parent gone (400 or 409)."""
    org = OrganizationFactory()
    api, _ = _fs11c_member(org)
    other, _ = _fs11c_member(org)
    top = Folder.objects.create(organization=org, name="top")
    entered, released = threading.Event(), threading.Event()
    judge = ResourceGenericViewSet.refuse_cascade_beyond_reach

    def fs11c_held_after_the_check(self, rows):
        judged = judge(self, rows)
        entered.set()
        assert released.wait(30)
        return judged

    monkeypatch.setattr(
        ResourceGenericViewSet, "refuse_cascade_beyond_reach", fs11c_held_after_the_check
    )
    deleting, deleted = in_thread(lambda: api.delete(f"/fs11c/fs11c-folders/{top.pk}/"))
    filing = filed = None
    try:
        assert entered.wait(30)
        body = {"name": "theirs", "parent": top.pk}
        filing, filed = in_thread(lambda: other.post("/fs11c/fs11c-folders/", body, format="json"))
        filing.join(2)  # waits for the delete's lock (it committed at once before)
    finally:
        released.set()
        deleting.join(30)
        if filing is not None:
            filing.join(30)
    (delete_answer,) = deleted
    (file_answer,) = filed
    assert not isinstance(delete_answer, BaseException), delete_answer
    assert not isinstance(file_answer, BaseException), file_answer
    assert delete_answer.status_code == 200, delete_answer.content
    assert file_answer.status_code in (400, 409), file_answer.content
    assert not Folder.objects.exists()


class Fs11cDistinctManager(models.Manager):
    """A base manager reading its rows ``distinct()`` (as one joining a to-many relation
    to filter does): PostgreSQL refuses ``FOR UPDATE`` with ``DISTINCT``."""

    def get_queryset(self):
        return super().get_queryset().distinct()


@pytest.fixture
def fs11c_distinct_base(monkeypatch):
    manager = Fs11cDistinctManager()
    manager.model, manager.name = Folder, "fs11c_distinct"
    monkeypatch.setattr(Folder._meta, "base_manager", manager)
    assert Folder._base_manager.all().query.distinct
    return manager


@pytest.mark.django_db
@pytest.mark.parametrize("bulk", [False, True])
def test_fs11c_a_hard_delete_of_a_model_whose_base_manager_is_distinct(
    fs11c_mounted, fs11c_distinct_base, bulk
):
    """The row locks of a hard delete (fix-seen10d's before the cascade check, the bulk
    delete's) read through ``_base_manager``: one whose queryset is ``distinct()`` made
    PostgreSQL refuse the lock (``FOR UPDATE is not allowed with DISTINCT clause``), a 500
    on every hard delete of the model. The rows are locked by primary key, among those the
    base manager reads, and deleted as before, with their subtree."""
    org = OrganizationFactory()
    api, _ = _fs11c_member(org)
    top = Folder.objects.create(organization=org, name="top")
    other = Folder.objects.create(organization=org, name="other")
    Folder.objects.create(organization=org, name="under", parent=top)
    if bulk:
        r = api.delete(
            "/fs11c/fs11c-bulk-folders/bulk/", {"ids": [top.pk, other.pk]}, format="json"
        )
    else:
        r = api.delete(f"/fs11c/fs11c-folders/{top.pk}/")
    assert r.status_code == 200, r.content
    left = list(Folder.objects.values_list("name", flat=True))
    assert left == ([] if bulk else ["other"])


@pytest.mark.django_db
def test_fs11c_a_soft_bulk_delete_of_a_model_whose_base_manager_is_distinct(
    fs11c_mounted, fs11c_distinct_base
):
    """The soft bulk delete locks its live rows through ``_base_manager`` too: the same
    refusal on PostgreSQL, the same answer now (the rows stamped, none removed)."""
    org = OrganizationFactory()
    api, _ = _fs11c_member(org)
    one = Folder.objects.create(organization=org, name="one")
    two = Folder.objects.create(organization=org, name="two")
    r = api.delete("/fs11c/fs11c-soft-folders/bulk/", {"ids": [one.pk, two.pk]}, format="json")
    assert r.status_code == 200, r.content
    assert Folder.objects.filter(deleted_at__isnull=False).count() == 2


@pytest.mark.django_db
def test_fs11c_a_model_with_its_own_delete_collects_twice_by_decision(fs11c_mounted, monkeypatch):
    """Decided (docs/decisions.md, fix-seen11c): a model's own ``delete()`` is run as it is,
    and Django's ``Model.delete()`` inside it builds its own collector, which no caller can
    hand one to; so the subtree is read twice, once for the cascade check and once by the
    model's delete (Django's own ``delete()`` deletes the check's collection: once). Pinned
    so that a change to either count is seen."""
    org = OrganizationFactory()
    api, _ = _fs11c_member(org)
    ran = []
    original = Folder.delete

    def fs11c_own_delete(self, *args, **kwargs):
        ran.append(self.name)
        return original(self, *args, **kwargs)

    def fs11c_reads_of_children():
        top = Folder.objects.create(organization=org, name="top")
        mine = Folder.objects.create(organization=org, name="mine", parent=top)
        Folder.objects.create(organization=org, name="leaf", parent=mine)
        with CaptureQueriesContext(connection) as captured:
            r = api.delete(f"/fs11c/fs11c-folders/{top.pk}/")
        assert r.status_code == 200, r.content
        assert not Folder.objects.exists()
        return [
            q["sql"]
            for q in captured.captured_queries
            if q["sql"].startswith("SELECT") and '"testapp_folder"."parent_id" IN' in q["sql"]
        ]

    assert len(fs11c_reads_of_children()) == 3  # top's, mine's, leaf's children
    monkeypatch.setattr(Folder, "delete", fs11c_own_delete)
    assert len(fs11c_reads_of_children()) == 6  # the check's three, the delete's three
    assert ran == ["top"]


@pytest.mark.django_db
@pytest.mark.parametrize("order", [_FS11C_DEFAULT_ORDER, _FS11C_SECURITY_INSIDE])
@pytest.mark.parametrize("path", ["/api/no-such-resource/", "/api/books.json"])
def test_fs11c_the_unrouted_404_under_a_site_keeps_the_middlewares_headers(settings, order, path):
    """A path under a site's prefix that no route matches is answered with the envelope's
    404, which ``ScopeMiddleware`` built in place of the 404 the middlewares inside it had
    answered and marked: their headers were lost (no ``X-Frame-Options``), where a view's
    own 404 (an unknown row) has them. The envelope keeps them now, its own type and
    request id unchanged."""
    from tests.testapp.models import Author, Book

    settings.MIDDLEWARE = order
    settings.X_FRAME_OPTIONS = "DENY"
    row = Book.objects.create(title="t", author=Author.objects.create(name="a"))
    unknown_row = Client().get(f"/api/books/{row.pk + 1000}/")
    unrouted = Client().get(path)
    assert_error(unknown_row, 404, "NOT_FOUND")
    body = assert_error(unrouted, 404, "NOT_FOUND")
    for header in _FS11C_SECURITY_HEADERS:
        assert unrouted.get(header) == unknown_row[header], header
    assert unrouted["Content-Type"] == unknown_row["Content-Type"]
    assert body["requestId"] == unrouted["X-Request-Id"]


@fs11c_site.register
class Fs11cOwnedFolderResource(Resource):
    """The tree under ``OwnedBy``: a member deletes its own folders only."""

    model = Folder
    name = "fs11c-owned-folders"
    fields = ["id", "organization", "owner", "name", "parent"]
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Bulk()]
    permissions = FS11C_MEMBERS


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a race between two connections")
@pytest.mark.parametrize("bulk", [False, True])
def test_fs11c_a_model_with_its_own_delete_deletes_no_row_filed_meanwhile_unjudged(
    fs11c_mounted, monkeypatch, bulk
):
    """A model's own ``delete()`` collects again (decided above), so a folder another
    member filed under a deeper row of the subtree after the cascade check judged it (no
    lock holds that row) was found by the second collection and deleted with the rest
    (200): another member's row, which the check refuses to delete (409). What the model's
    ``delete()`` returns is compared with what was judged now: more rows of a judged table
    is the check's 409, nothing deleted, as Django's own ``delete()`` answers this race."""
    org = OrganizationFactory()
    api, me = _fs11c_member(org)
    other, them = _fs11c_member(org)
    top = Folder.objects.create(organization=org, owner=me, name="top")
    mine = Folder.objects.create(organization=org, owner=me, name="mine", parent=top)
    original = Folder.delete

    def fs11c_own_delete(self, *args, **kwargs):
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Folder, "delete", fs11c_own_delete)
    entered, released = threading.Event(), threading.Event()
    judge = ResourceGenericViewSet.refuse_cascade_beyond_reach

    def fs11c_held_after_the_check(self, rows, origin=None):
        judged = judge(self, rows, origin)
        entered.set()
        assert released.wait(30)
        return judged

    monkeypatch.setattr(
        ResourceGenericViewSet, "refuse_cascade_beyond_reach", fs11c_held_after_the_check
    )
    if bulk:
        body = {"ids": [top.pk]}
        call = lambda: api.delete("/fs11c/fs11c-owned-folders/bulk/", body, format="json")  # noqa: E731
    else:
        call = lambda: api.delete(f"/fs11c/fs11c-owned-folders/{top.pk}/")  # noqa: E731
    deleting, deleted = in_thread(call)
    try:
        assert entered.wait(30)
        theirs = {"name": "theirs", "parent": mine.pk}
        filing, filed = in_thread(
            lambda: other.post("/fs11c/fs11c-owned-folders/", theirs, format="json")
        )
        filing.join(30)  # under "mine", which no lock holds: stored at once
    finally:
        released.set()
        deleting.join(30)
    (file_answer,) = filed
    (delete_answer,) = deleted
    assert not isinstance(delete_answer, BaseException), delete_answer
    assert file_answer.status_code == 201, file_answer.content
    assert_error(delete_answer, 409, "CONFLICT")
    kept = sorted(Folder.objects.values_list("name", "owner_id"))
    assert kept == sorted([("top", me.pk), ("mine", me.pk), ("theirs", them.pk)])
