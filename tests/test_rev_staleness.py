"""rev-staleness: whether every way a row can change retires every cached answer that shows it
(docs/query-cache.md, *Invalidation*).

A resource's declared ``queryset`` is django-arc's own option, the same in every process: the
tables it joins and the subqueries it holds are rows its answers read, watched at start-up
as a filter path's are. It used to be left to the project to tag, like a ``get_queryset()``
of its own: an author renamed out of ``Book.objects.filter(author__name__startswith="A")``
left their books a HIT.
"""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.db.models.expressions import RawSQL
from rest_framework.response import Response

from django_arc import Resource, route
from django_arc import permissions as P
from django_arc.querycache import invalidate
from django_arc.querycache.invalidation import _models_read
from tests import test_query_cache
from tests.factories import AuthorFactory, BookFactory
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL
from tests.test_query_cache import get
from tests.test_query_cache_invalidation import hit_then, registered_site
from tests.testapp.models import Author, Book, Gauge, Review

# Redis under a prefix of the test's own (autouse)
redis_cache = test_query_cache.redis_cache

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    # bumps happen on commit: the test's writes must really commit
    pytest.mark.django_db(transaction=True),
]


class StalenessBooksOfAAuthors(Resource):
    """Books whose author's name starts with A: a declared queryset joining Author."""

    model = Book
    name = "staleness-books-a"
    queryset = Book.objects.filter(author__name__startswith="A")
    fields = ["id", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


class StalenessPraisedAuthors(Resource):
    """Authors with a review saying "great": a subquery over Review's rows."""

    model = Author
    name = "staleness-praised-authors"
    queryset = Author.objects.filter(
        Exists(Review.objects.filter(book__author=OuterRef("pk"), body="great"))
    )
    fields = ["id", "name"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


class StalenessRawBooks(Resource):
    """Books annotated with SQL of the project's own: what it reads cannot be told."""

    model = Book
    name = "staleness-raw-books"
    queryset = Book.objects.annotate(
        reviewed=RawSQL(
            "SELECT COUNT(*) FROM testapp_review WHERE testapp_review.book_id = testapp_book.id",
            (),
        )
    ).filter(reviewed__gt=0)
    fields = ["id", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.fixture
def staleness_client(settings):
    """An anonymous client of the resources above, on a site of this test's own."""
    resources = (StalenessBooksOfAAuthors, StalenessPraisedAuthors, StalenessRawBooks)
    with registered_site("staleness-test", *resources) as site:
        with site_mounted(settings, "st", site):
            yield client_for(None)


def test_a_declared_queryset_joining_another_model_is_retired_by_its_writes(staleness_client):
    author = AuthorFactory(name="Asimov")
    BookFactory(author=author, title="Foundation")
    path = "/st/staleness-books-a/"
    assert [d["title"] for d in get(staleness_client, path).json()["docs"]] == ["Foundation"]

    def rename():
        author.name = "Zelazny"
        author.save()

    after = hit_then(staleness_client, path, rename)
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"] == []
    assert Author in _models_read(StalenessBooksOfAAuthors())


def test_a_declared_queryset_reading_a_subquery_is_retired_by_its_tables_writes(
    staleness_client,
):
    book = BookFactory(author=AuthorFactory(name="Le Guin"))
    review = Review.objects.create(book=book, body="great")
    path = "/st/staleness-praised-authors/"
    assert [d["name"] for d in get(staleness_client, path).json()["docs"]] == ["Le Guin"]

    def reword():
        review.body = "fine"
        review.save()

    after = hit_then(staleness_client, path, reword)
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"] == []


def test_a_declared_queryset_with_sql_of_its_own_is_answered_never_stored(staleness_client):
    """``RawSQL`` may read any table (here Review's, which no resource of this site serves):
    such answers are computed every time, as a preset's ``RawSQL`` ones are."""
    book = BookFactory(title="Solaris")
    path = "/st/staleness-raw-books/"
    assert get(staleness_client, path).json()["docs"] == []
    assert get(staleness_client, path)["X-Cache"] == "MISS"
    Review.objects.create(book=book, body="great")
    after = get(staleness_client, path)
    assert after["X-Cache"] == "MISS"
    assert [d["title"] for d in after.json()["docs"]] == ["Solaris"]


# -- fixtures ------------------------------------------------------------------------------------


def test_a_fixture_load_invalidates_once_at_its_commit(monkeypatch, tmp_path):
    """``loaddata`` saves rows raw; the receivers used to skip raw saves, so a fixture loaded
    into a live database left the entries computed before it served until ``stale_seconds``
    (a bump per row was the reason given; ``loaddata`` writes in one transaction, whose
    commit sends one bump per resource, however many rows)."""
    from django.core import serializers as django_serializers
    from django.core.management import call_command

    from django_arc.querycache.store import QueryCacheStore
    from shop.models import Product
    from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
    from tests.test_query_cache import CACHED

    org = OrganizationFactory()
    products = [ProductFactory(organization=org, name=f"P{i}") for i in range(25)]
    editor = client_for(
        MembershipFactory(organization=org, role="editor").user,
        HTTP_X_ORGANIZATION_ID=str(org.pk),
    )
    get(editor, CACHED)
    assert get(editor, CACHED)["X-Cache"] == "HIT"
    for product in products:
        product.name = f"Loaded {product.pk}"
    fixture = tmp_path / "products.json"
    fixture.write_text(django_serializers.serialize("json", products))
    bumps = []
    real_bump = QueryCacheStore._bump

    def counted(store, redis, keys):
        bumps.append(set(keys))
        return real_bump(store, redis, keys)

    monkeypatch.setattr(QueryCacheStore, "_bump", counted)
    call_command("loaddata", str(fixture), verbosity=0)
    assert len(bumps) == 1, bumps
    assert Product.objects.filter(name__startswith="Loaded").count() == 25
    after = get(editor, CACHED)
    assert after["X-Cache"] == "MISS"
    assert {d["name"] for d in after.json()["docs"]} <= {f"Loaded {p.pk}" for p in products}


# -- what a project's get_queryset() reads: a tag, bumped by a receiver --------------------------


class StalenessGaugedBooks(Resource):
    """Books listed only while some gauge reads above zero: a ``get_queryset()`` of the
    project's reading Gauge, which no cached resource serves (the documented way out: a
    tag, and a receiver of Gauge's writes calling ``invalidate()`` with it)."""

    model = Book
    name = "staleness-gauged-books"
    fields = ["id", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30, "tags": ["staleness-gauges"]}

    def get_queryset(self, request):
        return super().get_queryset(request).filter(Exists(Gauge.objects.filter(reading__gt=0)))


def test_a_tag_bumped_by_a_receiver_retires_what_get_queryset_reads(settings):
    from django.db.models.signals import post_save

    def gauges_changed(sender, **kwargs):
        invalidate("staleness-gauges")

    BookFactory(title="Roadside Picnic")
    gauge = Gauge.objects.create(reading=1)
    with registered_site("staleness-gauges-test", StalenessGaugedBooks) as site:
        with site_mounted(settings, "sg", site):
            client, path = client_for(None), "/sg/staleness-gauged-books/"
            assert [d["title"] for d in get(client, path).json()["docs"]] == ["Roadside Picnic"]
            post_save.connect(gauges_changed, sender=Gauge, dispatch_uid="staleness-gauges")
            try:

                def zero():
                    with transaction.atomic():
                        gauge.reading = 0
                        gauge.save()

                after = hit_then(client, path, zero)
            finally:
                post_save.disconnect(sender=Gauge, dispatch_uid="staleness-gauges")
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"] == []


# -- a project's on_commit callback that raises ------------------------------------------------


class StalenessCommitHookFailed(Exception):
    pass


def _staleness_failing_hook():
    raise StalenessCommitHookFailed("a mail server that is down")


@pytest.mark.parametrize("robust", [False, True])
def test_a_project_on_commit_callback_raising_before_the_bump(staleness_client, robust):
    """Django stops running a commit's callbacks at the first one that raises unless it was
    registered ``robust=True``: a project's callback registered before the write's bump drops
    the bump, and the entry computed before the committed write stays a HIT until
    ``stale_seconds`` (docs/query-cache.md says so, and what to do: register it robust)."""
    author = AuthorFactory(name="Asimov")
    BookFactory(author=author, title="Foundation")
    path = "/st/staleness-books-a/"
    assert [d["title"] for d in get(staleness_client, path).json()["docs"]] == ["Foundation"]
    raised = []

    def rename():
        try:
            with transaction.atomic():
                transaction.on_commit(_staleness_failing_hook, robust=robust)
                author.name = "Zelazny"
                author.save()
        except StalenessCommitHookFailed:
            raised.append(True)

    after = hit_then(staleness_client, path, rename)
    assert raised == ([] if robust else [True])
    assert Author.objects.get(pk=author.pk).name == "Zelazny"  # committed either way
    if robust:
        assert after["X-Cache"] == "MISS"
        assert after.json()["docs"] == []
    else:
        assert after["X-Cache"] == "HIT"
        assert [d["title"] for d in after.json()["docs"]] == ["Foundation"]


class StalenessWritableAuthors(Resource):
    """Authors written through the API with ``QuerySet.update()`` (a route of its own): no
    signal, only the request seam reports the write."""

    model = Author
    name = "staleness-writable-authors"
    fields = ["id", "name"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}

    @route("POST", "rename-all", permissions=P.allow_public())
    def rename_all(self, request, view):
        Author.objects.update(name="Zelazny")
        return Response({"success": True})


def test_a_write_through_another_resource_retires_a_declared_querysets_readers(settings):
    """The request seam bumps every cached resource reading the written model's rows, those
    whose declared queryset joins it included: an update through an (uncached) author
    resource retires the books-of-A-authors list."""
    author = AuthorFactory(name="Asimov")
    BookFactory(author=author, title="Foundation")
    resources = (StalenessBooksOfAAuthors, StalenessWritableAuthors)
    with registered_site("staleness-writes-test", *resources) as site:
        with site_mounted(settings, "sw", site):
            client, path = client_for(None), "/sw/staleness-books-a/"
            assert [d["title"] for d in get(client, path).json()["docs"]] == ["Foundation"]

            def rename_all():
                response = client.post("/sw/staleness-writable-authors/rename-all/")
                assert response.status_code == 200, response.content

            after = hit_then(client, path, rename_all)
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"] == []
