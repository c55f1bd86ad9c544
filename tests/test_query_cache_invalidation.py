"""Query-cache invalidation (SPEC §11) by writes that reach a cached model's rows without
naming its class: which resources serve a model as sites change, saves and deletes through a
proxy or a multi-table-inheritance child, and deletes of a row a cached model points at,
which Django answers with an UPDATE (``SET_NULL``) or a cascade.

Fixtures and the cached/uncached product resources come from ``test_query_cache``.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from django_arc import Resource, ResourceSite
from django_arc import permissions as P
from django_arc.sites import _all_sites
from tests import test_query_cache
from tests.factories import BookFactory
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL
from tests.test_query_cache import get
from tests.testapp.models import Article, Book

# test_query_cache's fixtures: Redis under a prefix of the test's own (autouse), and the shop
redis_cache = test_query_cache.redis_cache
shop = test_query_cache.shop

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    # bumps happen on commit: the test's writes must really commit
    pytest.mark.django_db(transaction=True),
]


def hit_then(client, path, write):
    """Read ``path`` until it is a HIT, run ``write``, and return the next read."""
    get(client, path)
    assert get(client, path)["X-Cache"] == "HIT"
    write()
    return get(client, path)


@contextmanager
def registered_site(name, *resources):
    """A site with ``resources``, removed afterwards (as ``test_fail_closed_checks`` does)."""
    site = ResourceSite(name=name)
    try:
        for resource in resources:
            site.register(resource)
        yield site
    finally:
        _all_sites.remove(site)


class CachedBookResource(Resource):
    model = Book
    name = "cached-books"
    fields = ["id", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


class CachedArticleResource(Resource):
    """Articles point at their owner (``SET_NULL``) and organization (``CASCADE``)."""

    model = Article
    name = "cached-articles"
    fields = ["id", "owner", "organization", "slug", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


# -- the resources serving a model -----------------------------------------------------------------


def test_a_resource_registered_in_place_of_another_is_invalidated(settings):
    """Which resources serve a model is recomputed when the registered resources change, not
    only when their number does."""
    anon = client_for(None)
    with registered_site("swapped-test", CachedBookResource) as site:
        BookFactory()  # a write: the resources serving each model are looked up
        site.unregister("cached-books")
        site.register(CachedArticleResource)
        article = Article.objects.create(slug="a", title="A")
        with site_mounted(settings, "sw", site):

            def rename():
                article.title = "B"
                article.save()

            after = hit_then(anon, "/sw/cached-articles/", rename)
    assert after["X-Cache"] == "MISS"
    assert [d["title"] for d in after.json()["docs"]] == ["B"]
