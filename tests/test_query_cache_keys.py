"""What keys a cached answer django-arc cannot see into (each case was found by a hand
mutant of ``django_arc/querycache/keys.py`` that the suite let through):

- the API version DRF's versioning class read, when it is in no URL keyword argument
  (``NamespaceVersioning``: one site included twice, under ``v1`` and ``v2``);
- the URL's keyword arguments (a site mounted under ``<str:shop>/``, whose project
  serializer renders the shop it was reached under);
- the caller, for a project ``pagination_class`` (its envelope may say who asked).
"""

from __future__ import annotations

import datetime

import pytest
from django.db.models import Prefetch
from django.urls import clear_url_caches, include, path
from django.utils import timezone
from rest_framework import serializers
from rest_framework.versioning import NamespaceVersioning
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.pagination import PagePagination
from django_arc.presets.base import Preset
from shop.models import Order, Product
from tests import test_query_cache
from tests.factories import BookFactory, OrganizationFactory, ProductFactory
from tests.helpers import client_for
from tests.redis_support import REDIS_URL
from tests.testapp.models import Author, Book

# Redis under a prefix of the test's own, the query cache on it (autouse)
redis_cache = test_query_cache.redis_cache

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    pytest.mark.django_db(transaction=True),
]


class _ReachedSerializer(serializers.ModelSerializer):
    """Renders the API version and the ``shop`` URL argument the row was reached under."""

    version = serializers.SerializerMethodField()
    shop = serializers.SerializerMethodField()

    class Meta:
        model = Author
        fields = ["id", "name", "version", "shop"]

    def get_version(self, obj):
        return self.context["request"].version

    def get_shop(self, obj):
        return self.context["view"].kwargs.get("shop")


class _WhoAskedPagination(PagePagination):
    """A project pagination whose envelope names the caller."""

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data["askedBy"] = self.request.user.username
        return response

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        return super().paginate_queryset(queryset, request, view)


site = ResourceSite(name="qc-keys")


@site.register
class ReachedAuthorResource(Resource):
    model = Author
    name = "reached-authors"
    serializer_class = _ReachedSerializer
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@site.register
class WhoAskedAuthorResource(Resource):
    model = Author
    name = "who-asked-authors"
    fields = ["id", "name"]
    pagination_class = _WhoAskedPagination
    permissions = {"list": P.require_auth()}
    cache = {"stale_seconds": 30}


def _urls(settings, *patterns):
    import tests.urls

    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": [*tests.urls.urlpatterns, *patterns]})
    clear_url_caches()


@pytest.fixture
def author():
    return Author.objects.create(name="Ann")


def test_the_api_version_keys_an_entry_when_no_url_argument_holds_it(settings, monkeypatch, author):
    """``NamespaceVersioning`` reads the version from the URL namespace, which is in no
    keyword argument: ``/v2/`` must not be served the bytes ``/v1/`` stored."""
    monkeypatch.setattr(APIView, "versioning_class", NamespaceVersioning)
    _urls(
        settings,
        path("v1/", include((site.get_urls(), site.name), namespace="v1")),
        path("v2/", include((site.get_urls(), site.name), namespace="v2")),
    )
    anonymous = client_for(None)
    try:
        for url in ("reached-authors/", f"reached-authors/{author.pk}/"):
            first = anonymous.get(f"/v1/{url}")
            assert first.status_code == 200, first.content
            assert first["X-Cache"] == "MISS"
            assert anonymous.get(f"/v1/{url}")["X-Cache"] == "HIT"
            v2 = anonymous.get(f"/v2/{url}")
            assert v2["X-Cache"] == "MISS", url
            assert '"version":"v2"' in v2.content.decode(), v2.content
    finally:
        clear_url_caches()


def test_the_url_arguments_key_an_entry(settings, author):
    """A site under ``<str:shop>/``: the project serializer renders the shop, and
    ``/north/`` must not be served the bytes ``/south/`` stored."""
    _urls(settings, path("<str:shop>/", include(site.urls)))
    anonymous = client_for(None)
    try:
        for url in ("reached-authors/", f"reached-authors/{author.pk}/"):
            assert anonymous.get(f"/south/{url}")["X-Cache"] == "MISS"
            assert anonymous.get(f"/south/{url}")["X-Cache"] == "HIT"
            north = anonymous.get(f"/north/{url}")
            assert north["X-Cache"] == "MISS", url
            assert '"shop":"north"' in north.content.decode(), north.content
    finally:
        clear_url_caches()


def test_a_project_pagination_class_gets_an_entry_per_caller(settings, author):
    """Two callers who see the same fields of the same rows share entries of the generated
    answers; a project pagination class may write anything in its envelope (the caller's
    name here), so its answers are keyed by the caller."""
    from tests.factories import UserFactory

    _urls(settings, path("k/", include(site.urls)))
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    try:
        first = client_for(ann).get("/k/who-asked-authors/")
        assert first["X-Cache"] == "MISS" and first.json()["askedBy"] == "ann"
        assert client_for(ann).get("/k/who-asked-authors/")["X-Cache"] == "HIT"
        other = client_for(bob).get("/k/who-asked-authors/")
        assert other["X-Cache"] == "MISS" and other.json()["askedBy"] == "bob"
    finally:
        clear_url_caches()


class _ToneBooks(Resource):
    """A project ``get_queryset`` prefetching the books of the caller's chosen tone: the
    rows' own query is the same for every caller, the prefetch is not. (Books, which other
    cached resources read already: a cached answer reading reviews would connect Review's
    signals for the whole test session, and Review's fast deletes are pinned elsewhere.)"""

    model = Author
    name = "toned-authors"
    fields = ["id", "name", "books"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}

    def get_queryset(self, request):
        tone = request.headers.get("X-Tone", "")
        books = Book.objects.filter(title__startswith=tone).order_by("pk")
        return super().get_queryset(request).prefetch_related(Prefetch("books", books))


site.register(_ToneBooks)


def test_a_prefetch_of_its_own_keys_an_entry(settings):
    """Two callers whose rows' query is one but whose prefetch differs (the books of
    another tone) get their own entries: the prefetch is part of the queryset's
    fingerprint."""
    author = Author.objects.create(name="a")
    kind = BookFactory(author=author, title="kind words")
    harsh = BookFactory(author=author, title="harsh words")
    _urls(settings, path("k/", include(site.urls)))
    anonymous = client_for(None)
    try:
        for url in ("/k/toned-authors/", f"/k/toned-authors/{author.pk}/"):
            kindly = anonymous.get(url, HTTP_X_TONE="kind")
            assert kindly["X-Cache"] == "MISS"
            assert f'"books":[{kind.pk}]' in kindly.content.decode(), kindly.content
            harshly = anonymous.get(url, HTTP_X_TONE="harsh")
            assert harshly["X-Cache"] == "MISS", url
            assert f'"books":[{harsh.pk}]' in harshly.content.decode(), harshly.content
    finally:
        clear_url_caches()


class _ShelvedBooks(Resource):
    """A project ``get_queryset`` narrowing the rows by a header: a row another shelf
    holds is a 404 there."""

    model = Book
    name = "shelved-books"
    fields = ["id", "title"]
    permissions = {"get": P.allow_public()}
    cache = {"stale_seconds": 30}

    def get_queryset(self, request):
        shelf = request.headers.get("X-Shelf", "")
        return super().get_queryset(request).filter(title__startswith=shelf)


site.register(_ShelvedBooks)


def test_a_get_is_keyed_by_the_queryset_it_looks_the_row_up_in(settings):
    """The same id looked up in another queryset (another shelf) is another entry: a row
    the first caller's queryset held is a 404 in the second's, never a HIT."""
    book = BookFactory(title="a-book")
    _urls(settings, path("k/", include(site.urls)))
    anonymous = client_for(None)
    url = f"/k/shelved-books/{book.pk}/"
    try:
        assert anonymous.get(url, HTTP_X_SHELF="a")["X-Cache"] == "MISS"
        assert anonymous.get(url, HTTP_X_SHELF="a")["X-Cache"] == "HIT"
        other = anonymous.get(url, HTTP_X_SHELF="b")
        assert other.status_code == 404, other.content
        assert "X-Cache" not in other
    finally:
        clear_url_caches()


class _ModedSearch(Preset):
    """A preset answering ``?search=`` itself, in the mode a header asks for."""

    name = "moded_search"

    def search(self, view, queryset, term):
        if view.request.headers.get("X-Exact"):
            return queryset.filter(title=term)
        return queryset.filter(title__icontains=term)


class _SearchedBooks(Resource):
    model = Book
    name = "searched-books"
    fields = ["id", "title"]
    search_fields = ["title"]
    presets = [_ModedSearch()]
    permissions = {"list": P.allow_public()}
    cache = {"stale_seconds": 30}


site.register(_SearchedBooks)


def test_a_presets_own_search_is_keyed_by_the_rows_it_found(settings):
    """A preset's search may read anything from the request (a header here): a list that
    searches through it is keyed by the searched queryset, not by the term alone."""
    BookFactory(title="dune")
    BookFactory(title="dune messiah")
    _urls(settings, path("k/", include(site.urls)))
    anonymous = client_for(None)
    url = "/k/searched-books/?search=dune"
    try:
        loose = anonymous.get(url)
        assert loose["X-Cache"] == "MISS" and loose.json()["total"] == 2
        assert anonymous.get(url)["X-Cache"] == "HIT"
        exact = anonymous.get(url, HTTP_X_EXACT="1")
        assert exact["X-Cache"] == "MISS"
        assert [d["title"] for d in exact.json()["docs"]] == ["dune"]
    finally:
        clear_url_caches()


class _MaskedSkuProducts(Resource):
    model = Product
    name = "masked-sku-products"
    fields = ["id", "name", "sku"]
    filter_fields = {"sku": ["eq"]}
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership()}
    field_permissions = {"sku": F.redact_for("viewer")}
    cache = {"stale_seconds": 30}


site.register(_MaskedSkuProducts)


def test_a_parsed_query_is_not_shared_with_a_caller_who_sees_the_field_masked(settings):
    """A viewer filtering by the ``sku`` it reads as ``***`` is refused on the cached path
    too (it would probe the value), right after an editor's same query was parsed and
    stored: the viewer's entry is another (its field access), and its miss parses the query
    under its own restrictions. (A hand mutant dropping the masked fields from the parse
    memo's key survives this, for that reason: equivalent.)"""
    org = OrganizationFactory()
    ProductFactory(organization=org, sku="S-1")
    editor = test_query_cache.member(org, "editor")
    viewer = test_query_cache.member(org, "viewer")
    _urls(settings, path("k/", include(site.urls)))
    try:
        assert editor.get("/k/masked-sku-products/?sku=S-1").json()["total"] == 1
        refused = viewer.get("/k/masked-sku-products/?sku=S-1")
        assert refused.status_code == 400, refused.content
        assert refused.json()["code"] == "INVALID_QUERY"
    finally:
        clear_url_caches()


class _PlacedOrders(Resource):
    model = Order
    name = "placed-orders"
    fields = ["id", "placed_at"]
    filter_fields = {"placed_at": ["lte"]}
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership()}
    cache = {"stale_seconds": 30}


site.register(_PlacedOrders)


def test_a_parsed_date_time_is_not_shared_across_time_zones(settings):
    """A filter value without offset is a time in the caller's zone, so one query string is
    two instants for Tokyo and UTC, and two strings one instant: the parse memo keyed by the
    string alone gave a Tokyo caller's ``lte 12:00`` (03:00 UTC) the digest UTC's parse of it
    had (12:00 UTC), which is also the digest of Tokyo's ``lte 21:00``, and served it that
    query's HIT: an order placed at 12:00 UTC, which it does not match."""
    org = OrganizationFactory()
    order = Order.objects.create(
        organization=org, product=ProductFactory(organization=org), customer_email="a@b.co"
    )
    Order.objects.filter(pk=order.pk).update(
        placed_at=datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.UTC)
    )
    viewer = test_query_cache.member(org, "viewer")
    url = "/k/placed-orders/?placed_at[lte]=2024-01-01T"
    _urls(settings, path("k/", include(site.urls)))
    try:
        with timezone.override("Asia/Tokyo"):
            assert viewer.get(f"{url}21:00:00").json()["total"] == 1  # 12:00 UTC
        assert viewer.get(f"{url}12:00:00").json()["total"] == 1  # 12:00 UTC
        with timezone.override("Asia/Tokyo"):
            tokyo = viewer.get(f"{url}12:00:00")  # 03:00 UTC
        assert tokyo.json()["total"] == 0, tokyo["X-Cache"]
    finally:
        clear_url_caches()


class _TaggedAuthors(Resource):
    model = Author
    name = "tagged-authors"
    fields = ["id", "name"]
    permissions = {"list": P.allow_public()}
    cache = {"stale_seconds": 30, "tags": ["people"]}


class _TaggedBooks(Resource):
    model = Book
    name = "tagged-books"
    fields = ["id", "title"]
    permissions = {"list": P.allow_public()}
    cache = {"stale_seconds": 30, "tags": ["catalogue"]}


site.register(_TaggedAuthors)
site.register(_TaggedBooks)


def test_invalidating_a_tag_retires_its_members_only(settings):
    """``invalidate("people")`` retires the answers of the resources tagged ``people``, not
    those of a resource under another tag."""
    from django_arc.querycache import invalidate

    Author.objects.create(name="Ann")
    BookFactory(title="b")
    _urls(settings, path("k/", include(site.urls)))
    anonymous = client_for(None)
    try:
        for url in ("/k/tagged-authors/", "/k/tagged-books/"):
            assert anonymous.get(url)["X-Cache"] == "MISS"
            assert anonymous.get(url)["X-Cache"] == "HIT"
        invalidate("people")
        assert anonymous.get("/k/tagged-authors/")["X-Cache"] == "MISS"
        assert anonymous.get("/k/tagged-books/")["X-Cache"] == "HIT"
    finally:
        clear_url_caches()


# --- cost4: the entry key's encoding (marshal at version 0, repr for what marshal refuses)

_COST4_MATERIALS = [
    ["a", "b"],
    ["a,b"],
    ["a", ["b"]],
    [["a"], "b"],
    ["a", ("b",)],
    [1],
    ["1"],
    [True],
    [1.0],
    [None],
    ["None"],
    [],
    [[]],
    ["a'", "b"],
    ["a", "'b"],
    ["a\x00b"],
    ["a", "b", None],
]


def test_cost4_different_key_materials_never_share_a_digest():
    from django_arc.querycache.keys import _digest

    digests = {_digest(material) for material in _COST4_MATERIALS}
    assert len(digests) == len(_COST4_MATERIALS)


def test_cost4_a_key_material_is_digested_by_value_not_by_identity():
    import uuid

    from django_arc.querycache.keys import _digest

    built = "".join(["en", "-", "us"])  # equal to the literal, neither shared nor interned
    assert _digest(["x", built, [built, built]]) == _digest(["x", "en-us", ["en-us", "en-us"]])
    # what marshal refuses is encoded by its repr, still by value, and apart from a string
    one = uuid.UUID(int=1)
    assert _digest([one]) == _digest([uuid.UUID(int=1)])
    assert _digest([one]) != _digest([uuid.UUID(int=2)])
    assert _digest([one]) != _digest([repr(one)])
