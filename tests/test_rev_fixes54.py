"""rev-fixes54: the preset contract from a plugin author's side — project presets that
narrow rows through a join, that AND with each other, that refuse from each hook, and that
force a value the caller may not write."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from django_arc import Resource, ResourceSite
from django_arc import permissions as P
from django_arc.presets.base import Preset
from django_arc.sites import _all_sites
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL, query_cache_on_redis
from tests.testapp.models import Author, Book


@contextmanager
def rf54_site(name, *resources):
    """A site with ``resources``, removed afterwards."""
    site = ResourceSite(name=name)
    try:
        for resource in resources:
            site.register(resource)
        yield site
    finally:
        _all_sites.remove(site)


# -- a preset narrowing rows through a join, and the query cache ----------------------------


class Rf54PublishedAuthorsQueryset(Preset):
    """A project's preset narrowing books to those whose author's name starts with "pub",
    through ``filter_queryset`` (the hook for what a ``Q`` cannot say; here a join)."""

    name = "rf54_published_queryset"

    def filter_queryset(self, view, queryset):
        return queryset.filter(author__name__startswith="pub")


class Rf54JoinedCachedBookResource(Resource):
    model = Book
    name = "rf54-joined-cached-books"
    fields = ["id", "title"]
    presets = [Rf54PublishedAuthorsQueryset()]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_rf54_a_preset_filter_queryset_through_a_join_never_serves_a_row_it_now_hides(settings):
    """A preset's ``filter_queryset`` joining another model (``author__name``) decides which
    rows a caller may see by that model's rows: an author renamed out of the condition must
    take their books out of the next answer, list and get, instead of a HIT of the former
    answer (the cache watched the presets' ``row_filter`` only)."""
    author = Author.objects.create(name="pub-ann")
    book = Book.objects.create(title="Dune", isbn="rf54-1", author=author)
    anon = client_for(None)
    url = "/rf54c/rf54-joined-cached-books/"
    with (
        query_cache_on_redis(),
        rf54_site("rf54-joined-cached", Rf54JoinedCachedBookResource) as site,
        site_mounted(settings, "rf54c", site),
    ):
        for path in (url, f"{url}{book.pk}/"):
            assert anon.get(path).status_code == 200
            anon.get(path)
        author.name = "hidden-ann"
        author.save()
        listed = anon.get(url)
        assert listed.status_code == 200 and listed.json()["docs"] == [], listed.content
        assert anon.get(f"{url}{book.pk}/").status_code == 404


class Rf54OwnColumnQueryset(Preset):
    """A preset narrowing by the resource's own column only: nothing else to watch."""

    name = "rf54_own_column_queryset"

    def filter_queryset(self, view, queryset):
        return queryset.exclude(title="withdrawn")


class Rf54OwnColumnCachedBookResource(Resource):
    model = Book
    name = "rf54-own-column-cached-books"
    fields = ["id", "title"]
    presets = [Rf54OwnColumnQueryset()]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


class Rf54AuthorSearch(Preset):
    """A preset answering ``?search=`` through a join (the author's name)."""

    name = "rf54_author_search"

    def search(self, view, queryset, term):
        return queryset.filter(author__name__icontains=term)


class Rf54AuthorSearchedBookResource(Resource):
    model = Book
    name = "rf54-author-searched-books"
    fields = ["id", "title"]
    presets = [Rf54AuthorSearch()]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_rf54_a_preset_narrowing_by_its_own_columns_is_still_cached(settings):
    """The reads a preset's ``filter_queryset`` adds are asked, not held against it: one
    that reads the resource's own table only is a HIT as before, and a write to its rows
    retires the entry."""
    author = Author.objects.create(name="ann")
    book = Book.objects.create(title="Dune", isbn="rf54-2", author=author)
    anon = client_for(None)
    url = "/rf54o/rf54-own-column-cached-books/"
    with (
        query_cache_on_redis(),
        rf54_site("rf54-own-column-cached", Rf54OwnColumnCachedBookResource) as site,
        site_mounted(settings, "rf54o", site),
    ):
        for path in (url, f"{url}{book.pk}/"):
            assert anon.get(path)["X-Cache"] == "MISS"
            assert anon.get(path)["X-Cache"] == "HIT"
        book.title = "withdrawn"
        book.save()
        listed = anon.get(url)
        assert listed["X-Cache"] == "MISS" and listed.json()["docs"] == [], listed.content
        assert anon.get(f"{url}{book.pk}/").status_code == 404


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_rf54_a_preset_search_through_a_join_follows_the_joined_row(settings):
    """A preset's ``search`` matching the author's name: an author renamed changes which
    books a search finds, and no write to Book says so. The searched answer was a HIT of
    the former match; it is answered uncached now, while a list without ``?search=`` (which
    reads Book only) is still cached."""
    author = Author.objects.create(name="herbert")
    Book.objects.create(title="Dune", isbn="rf54-3", author=author)
    anon = client_for(None)
    url = "/rf54s/rf54-author-searched-books/"
    with (
        query_cache_on_redis(),
        rf54_site("rf54-author-searched", Rf54AuthorSearchedBookResource) as site,
        site_mounted(settings, "rf54s", site),
    ):
        assert [d["title"] for d in anon.get(f"{url}?search=herb").json()["docs"]] == ["Dune"]
        anon.get(f"{url}?search=herb")
        anon.get(url)
        assert anon.get(url)["X-Cache"] == "HIT"
        author.name = "asimov"
        author.save()
        searched = anon.get(f"{url}?search=herb")
        assert searched.status_code == 200 and searched.json()["docs"] == [], searched.content


class Rf54RawSqlQueryset(Preset):
    """A preset narrowing with SQL of its own: what it reads cannot be told."""

    name = "rf54_raw_sql_queryset"

    def filter_queryset(self, view, queryset):
        return queryset.extra(where=["testapp_book.pages > 0"])  # noqa: S610 - fixed SQL


class Rf54RawSqlCachedBookResource(Resource):
    model = Book
    name = "rf54-raw-sql-cached-books"
    fields = ["id", "title"]
    presets = [Rf54RawSqlQueryset()]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_rf54_a_preset_narrowing_with_sql_of_its_own_is_never_stored(settings):
    """``extra(where=...)`` may read any table: answered, never stored."""
    author = Author.objects.create(name="ann")
    Book.objects.create(title="Dune", isbn="rf54-4", author=author)
    anon = client_for(None)
    url = "/rf54r/rf54-raw-sql-cached-books/"
    with (
        query_cache_on_redis(),
        rf54_site("rf54-raw-sql-cached", Rf54RawSqlCachedBookResource) as site,
        site_mounted(settings, "rf54r", site),
    ):
        for _ in range(2):
            listed = anon.get(url)
            assert listed["X-Cache"] == "MISS" and len(listed.json()["docs"]) == 1
