"""rev-fixes62: review of rev-staleness's declared-queryset reads (docs/decisions.md,
*Declared querysets: prefetches and silent uncaching (rev-fixes62)*)."""

from __future__ import annotations

import pytest
from django.db.models import Prefetch

from django_arc import Resource
from django_arc import permissions as P
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

