"""rev-fixes62: review of rev-staleness's declared-queryset reads (docs/decisions.md,
*Declared querysets: prefetches and silent uncaching (rev-fixes62)*)."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.db.models import FilteredRelation, Prefetch, Q, Subquery
from django.db.models.expressions import RawSQL

from django_arc import Resource
from django_arc import permissions as P
from django_arc.querycache.invalidation import _models_read
from tests import test_query_cache
from tests.factories import AuthorFactory, BookFactory
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL
from tests.test_query_cache import get
from tests.test_query_cache_invalidation import hit_then, registered_site
from tests.testapp.models import Author, Book, Review

# Redis under a prefix of the test's own (autouse)
redis_cache = test_query_cache.redis_cache


class Fixes62AuthorsWithPraisedBooks(Resource):
    """Authors rendering only their books with a "great" review: a declared ``Prefetch``
    whose queryset reads Review's rows, which the rendered ``books`` depend on."""

    model = Author
    name = "fixes62-praised-books"
    queryset = Author.objects.prefetch_related(
        Prefetch("books", queryset=Book.objects.filter(reviews__body="great"))
    )
    fields = ["id", "name", "books"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_fixes62_a_declared_prefetch_reading_another_model_is_retired_by_its_writes(settings):
    author = AuthorFactory(name="Le Guin")
    book = BookFactory(author=author, title="The Dispossessed")
    review = Review.objects.create(book=book, body="great")
    with registered_site("fixes62-prefetch", Fixes62AuthorsWithPraisedBooks) as site:
        with site_mounted(settings, "f62", site):
            client = client_for(None)
            path = "/f62/fixes62-praised-books/"
            assert get(client, path).json()["docs"][0]["books"] == [book.pk]

            def reword():
                review.body = "dull"
                review.save()

            after = hit_then(client, path, reword)
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"][0]["books"] == []
    # the rows read are the resource's own, not only some other resource's over Author
    assert Review in _models_read(Fixes62AuthorsWithPraisedBooks())


class Fixes62RawBooks(Resource):
    """A cached resource whose declared queryset holds RawSQL: answered, never stored."""

    model = Book
    name = "fixes62-raw-books"
    queryset = Book.objects.annotate(
        reviewed=RawSQL(
            "SELECT COUNT(*) FROM testapp_review WHERE testapp_review.book_id = testapp_book.id",
            (),
        )
    ).filter(reviewed__gt=0)
    fields = ["id", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


class Fixes62RawPrefetchAuthors(Fixes62AuthorsWithPraisedBooks):
    """The same through a ``Prefetch`` queryset."""

    name = "fixes62-raw-prefetch"
    queryset = Author.objects.prefetch_related(
        Prefetch("books", queryset=Book.objects.extra(where=["1 = 1"]))
    )


class Fixes62UncachedRawBooks(Fixes62RawBooks):
    """The same without ``cache``: nothing to warn about."""

    name = "fixes62-uncached-raw-books"
    cache = None


def fixes62_w015(site_name: str, *resources: type[Resource]) -> list[str]:
    """The names of the resources ``manage.py check`` flags arc.W015 on, with ``resources``
    registered on a site of their own."""
    with registered_site(site_name, *resources):
        found = [m for m in run_checks() if m.id == "arc.W015"]
    return sorted(str(m.obj.name) for m in found)


def test_fixes62_a_cached_resource_never_stored_is_reported_by_check():
    """A declared ``queryset`` with ``RawSQL``/``extra()`` turns the cache off for the
    resource at request time; ``manage.py check`` used to say nothing of it."""
    resources = (Fixes62RawBooks, Fixes62RawPrefetchAuthors, Fixes62UncachedRawBooks)
    assert fixes62_w015("fixes62-w015", *resources) == [
        "fixes62-raw-books",
        "fixes62-raw-prefetch",
    ]
    assert fixes62_w015("fixes62-w015-none") == []


class Fixes62PraisedThroughFilteredRelation(Resource):
    """Authors with a book some review calls "great", through a ``FilteredRelation`` whose
    condition holds a subquery over Review: it is in the join's ON, not the WHERE."""

    model = Author
    name = "fixes62-filtered-relation"
    queryset = (
        Author.objects.annotate(
            praised=FilteredRelation(
                "books",
                condition=Q(
                    books__pk__in=Subquery(Review.objects.filter(body="great").values("book"))
                ),
            )
        )
        .filter(praised__isnull=False)
        .distinct()
    )
    fields = ["id", "name"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_fixes62_a_filtered_relations_condition_subquery_is_retired_by_its_writes(settings):
    author = AuthorFactory(name="Lem")
    review = Review.objects.create(book=BookFactory(author=author), body="great")
    with registered_site("fixes62-filtered", Fixes62PraisedThroughFilteredRelation) as site:
        with site_mounted(settings, "f62f", site):
            client = client_for(None)
            path = "/f62f/fixes62-filtered-relation/"
            assert [d["name"] for d in get(client, path).json()["docs"]] == ["Lem"]

            def reword():
                review.body = "dull"
                review.save()

            after = hit_then(client, path, reword)
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"] == []
    assert Review in _models_read(Fixes62PraisedThroughFilteredRelation())


class Fixes62EarlyBooksOfAAuthors(Resource):
    """Books whose author's name starts with A (a declared queryset joining Author),
    registered before the app registry is ready (a ``register`` call run from a models
    module): ``watch()`` cannot read the joins then."""

    model = Book
    name = "fixes62-early-books-a"
    queryset = Book.objects.filter(author__name__startswith="A")
    fields = ["id", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_fixes62_a_resource_registered_before_the_registry_is_ready_is_watched_at_startup(
    settings, monkeypatch
):
    """Registered while ``apps.models_ready`` is False, the declared queryset's joins were
    never read (only a settings reload re-watched), while requests read them and stored the
    answers: an author renamed out of it left the list a HIT. The start-up autodiscovery
    watches every resource again once the registry is ready."""
    from django.apps import apps

    from django_arc.querycache import invalidation
    from django_arc.sites import autodiscover

    # what other tests' resources recorded as read is forgotten for this one (a Book
    # resource of theirs reading Author would bump this one's too)
    monkeypatch.setattr(invalidation, "_readers", {})
    monkeypatch.setattr(invalidation, "_readers_by_table", {})
    author = AuthorFactory(name="Asimov")
    BookFactory(author=author, title="Foundation")
    with registered_site("fixes62-early") as site:
        monkeypatch.setattr(apps, "models_ready", False)
        site.register(Fixes62EarlyBooksOfAAuthors)
        monkeypatch.setattr(apps, "models_ready", True)
        autodiscover()  # what django_arc's AppConfig.ready() runs at start-up
        with site_mounted(settings, "f62e", site):
            client = client_for(None)
            path = "/f62e/fixes62-early-books-a/"
            assert [d["title"] for d in get(client, path).json()["docs"]] == ["Foundation"]

            def rename():
                author.name = "Zelazny"
                author.save()

            after = hit_then(client, path, rename)
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"] == []
