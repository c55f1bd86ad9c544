"""A project extending its resources the ways the docs invite (docs/resources.md, "Subclass
points a DRF user looks for"): a ViewSet subclass routed by hand that overrides a DRF seam,
and a resource naming a DRF pagination class of its own. Each keeps the caller's field
permissions, its own cached answers and an answer in the envelope, not a 500."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.db.models import F as DbF
from django.db.models import Prefetch
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import clear_url_caches, include, path
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers
from rest_framework.filters import BaseFilterBackend
from rest_framework.pagination import LimitOffsetPagination, PageNumberPagination
from rest_framework.routers import SimpleRouter

from django_arc import Resource, ResourceSite, action, envelope, presets, redis_alias, route
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox import OutboxEvent
from django_arc.sites import _all_sites
from shop.models import Product
from tests.factories import (
    AuthorFactory,
    BookFactory,
    MembershipFactory,
    OrganizationFactory,
    ProductFactory,
    UserFactory,
)
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.testapp.models import Article, Author, Book, Rack, RackItem, Review, UuidThing
from tests.testapp.resources import PUBLIC

MEMBERS = P.require_org_membership()


class ExtensionProductResource(Resource):
    """Cost only for admins, notes for nobody: what a viewer must never read."""

    model = Product
    name = "extension-products"
    fields = ["id", "name", "sku", "price", "cost", "secret_notes", "organization"]
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {"list": MEMBERS, "get": MEMBERS}
    field_permissions = {"cost": F.visible_to("admin"), "secret_notes": F.hidden()}
    cache = {"stale_seconds": 30}


class PlainProductSerializer(serializers.ModelSerializer):
    """What a DRF user returns from ``get_serializer_class()``: every column."""

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "cost", "secret_notes", "organization"]


def viewsets():
    """The generated ViewSet and three subclasses overriding a DRF seam each; built per
    test, once the resource's models are loaded."""
    generated = ExtensionProductResource.as_viewset()

    class OwnSerializer(generated):
        def get_serializer_class(self):
            return PlainProductSerializer

    class WithSummary(generated):
        def list(self, request, *args, **kwargs):
            response = super().list(request, *args, **kwargs)
            response.data["summary"] = {"asked_by": request.user.username}
            return response

    class DrfPages(generated):
        pagination_class = type("TwoPerPage", (PageNumberPagination,), {"page_size": 2})

    class OwnGetSerializer(generated):
        def get_serializer(self, *args, **kwargs):
            kwargs["context"] = {**self.get_serializer_context(), **kwargs.get("context", {})}
            return PlainProductSerializer(*args, **kwargs)

    return {
        "plain": generated,
        "own": OwnSerializer,
        "summary": WithSummary,
        "pages": DrfPages,
        "own-get": OwnGetSerializer,
    }


@pytest.fixture
def routed(settings):
    """Each ViewSet under ``/x/<name>/``, routed by hand as a project would."""
    import tests.urls

    router = SimpleRouter()
    for prefix, viewset in viewsets().items():
        router.register(prefix, viewset, basename=f"ext-{prefix}")
    patterns = [*tests.urls.urlpatterns, path("x/", include(router.urls))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    yield
    clear_url_caches()


@pytest.fixture
def acme():
    """An organization with one product (and another organization's), and a viewer."""
    org = OrganizationFactory()
    product = ProductFactory(organization=org, name="Anvil", cost=3, secret_notes="margin 80%")
    ProductFactory(organization=OrganizationFactory(), name="Theirs")
    viewer = MembershipFactory(organization=org, role="viewer").user
    return {
        "product": product,
        "viewer": client_for(viewer, HTTP_X_ORGANIZATION_ID=str(org.pk)),
    }


@pytest.mark.django_db
def test_a_viewsets_own_serializer_class_renders_only_what_the_caller_may_read(routed, acme):
    """``render()`` filtered a project serializer's output only when the *resource* named
    one, so a ViewSet overriding ``get_serializer_class()`` served every column it renders:
    a hidden field and an admin-only one to a viewer."""
    viewer, pk = acme["viewer"], acme["product"].pk
    listed = viewer.get("/x/own/")
    got = viewer.get(f"/x/own/{pk}/")
    assert listed.status_code == got.status_code == 200
    assert [doc["name"] for doc in listed.json()["docs"]] == ["Anvil"]
    for doc in (*listed.json()["docs"], got.json()["data"]):
        assert set(doc) == {"id", "name", "sku", "price", "organization"}


@pytest.mark.django_db
def test_a_serializer_a_viewset_builds_in_get_serializer_renders_only_what_the_caller_may_read(
    routed, acme
):
    """``render()`` judged the serializer by ``get_serializer_class()``, so a subclass
    overriding ``get_serializer()`` itself (the other seam DRF documents) passed as the
    generated serializer and served a viewer the hidden and admin-only fields."""
    viewer, pk = acme["viewer"], acme["product"].pk
    listed = viewer.get("/x/own-get/")
    got = viewer.get(f"/x/own-get/{pk}/")
    assert listed.status_code == got.status_code == 200
    for doc in (*listed.json()["docs"], got.json()["data"]):
        assert set(doc) == {"id", "name", "sku", "price", "organization"}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_viewset_subclass_never_serves_the_generated_viewsets_cached_answers(routed, acme):
    """The cache key named the resource, not the view: a subclass overriding ``list()``, a
    ``pagination_class`` or ``get_serializer_class()`` was answered the entry the generated
    ViewSet had stored (and stored its own for it), whatever it renders itself."""
    viewer = acme["viewer"]
    caches = caches_with("redis", REDIS_URL)
    with (
        override_settings(CACHES=caches),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
    ):
        redis_alias.reset_outage_warnings()
        uncached = {}
        for prefix in ("summary", "pages", "own", "plain"):
            first = viewer.get(f"/x/{prefix}/")
            assert first["X-Cache"] == "MISS", prefix
            uncached[prefix] = first.content
        assert b'"summary"' in uncached["summary"] and b'"results"' in uncached["pages"]
        for prefix in ("plain", "summary", "pages", "own"):
            again = viewer.get(f"/x/{prefix}/")
            assert again["X-Cache"] == "HIT", prefix
            assert again.content == uncached[prefix], prefix
        assert b"margin" not in uncached["own"]


@contextmanager
def mounted_site(settings, prefix, *resources):
    """A site of ``resources`` under ``<prefix>/`` for one test, then dropped."""
    site = ResourceSite(name=f"{prefix}-site")
    try:
        for resource in resources:
            site.register(resource)
        with site_mounted(settings, prefix, site):
            yield site
    finally:
        _all_sites.remove(site)


class _DeclinedPagesBooks(Resource):
    model = Book
    fields = ["id", "title"]
    default_sort = "title"
    permissions = PUBLIC


class PageNumberBookResource(_DeclinedPagesBooks):
    """DRF's ``PageNumberPagination``, without a ``PAGE_SIZE`` in the project's settings."""

    name = "page-number-books"
    pagination_class = PageNumberPagination


class LimitOffsetBookResource(_DeclinedPagesBooks):
    name = "limit-offset-books"
    pagination_class = LimitOffsetPagination


@pytest.mark.django_db
def test_a_pagination_class_that_declines_to_paginate_answers_every_row(settings):
    """DRF's pagination classes return ``None`` from ``paginate_queryset`` when they have no
    page size (``PageNumberPagination`` without ``PAGE_SIZE``, ``LimitOffsetPagination``
    without ``?limit=``), and DRF's list then answers every row. The list route handed that
    ``None`` on to ``get_paginated_response``, which read the page it never cut: a 500."""
    for title in ("b", "a"):
        BookFactory(title=title)
    anon = client_for(None)
    with mounted_site(settings, "dp", PageNumberBookResource, LimitOffsetBookResource):
        for url in ("/dp/page-number-books/", "/dp/limit-offset-books/"):
            response = anon.get(url)
            assert response.status_code == 200, response.content
            assert response.json() == {
                "success": True,
                "data": [{"id": d.pk, "title": d.title} for d in Book.objects.order_by("title")],
            }
        # with a page size the class paginates, in its own shape
        paged = anon.get("/dp/limit-offset-books/?limit=1")
        assert paged.status_code == 200
        assert paged.json()["count"] == 2 and [d["title"] for d in paged.json()["results"]] == ["a"]


class LimitOffsetSoftArticleResource(Resource):
    model = Article
    name = "limit-offset-soft-articles"
    fields = ["id", "title"]
    default_sort = "title"
    presets = [presets.SoftDelete()]
    permissions = PUBLIC
    pagination_class = LimitOffsetPagination


@pytest.mark.django_db
def test_a_preset_route_listing_rows_answers_every_row_when_pagination_declines(settings):
    """SoftDelete's ``GET deleted/`` (and the example's archive) listed rows with
    ``paginate_queryset`` then ``get_paginated_response``, as the list route did: the
    ``None`` a declining pagination class returns reached ``get_paginated_response``, a 500.
    Both answer through ``view.list_response`` now, as the list route does."""
    gone = [Article.objects.create(slug=s, title=s, deleted_at=timezone.now()) for s in "ba"]
    Article.objects.create(slug="c", title="c")
    anon = client_for(None)
    with mounted_site(settings, "sd", LimitOffsetSoftArticleResource):
        response = anon.get("/sd/limit-offset-soft-articles/deleted/")
        assert response.status_code == 200, response.content
        assert response.json() == {
            "success": True,
            "data": [{"id": a.pk, "title": a.title} for a in sorted(gone, key=lambda a: a.title)],
        }
        paged = anon.get("/sd/limit-offset-soft-articles/deleted/?limit=1")
        assert paged.status_code == 200
        assert paged.json()["count"] == 2 and [d["title"] for d in paged.json()["results"]] == ["a"]


class RowListingProductResource(Resource):
    """Routes and an action returning rows the ways a handler has them: a queryset, a list
    picked from one, a tuple."""

    model = Product
    name = "row-listing-products"
    fields = ["id", "name", "cost", "secret_notes", "organization"]
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {"list": MEMBERS, "get": MEMBERS, "cheapest": MEMBERS, "pair": MEMBERS}
    action_permissions = MEMBERS
    field_permissions = {"cost": F.visible_to("admin"), "secret_notes": F.hidden()}

    @route("GET", "cheapest")
    def cheapest(self, request, view):
        """The two cheapest, as a list."""
        return sorted(view.get_queryset(), key=lambda row: row.price)[:2]

    @route("GET", "pair/{other}", detail=True)
    def pair(self, request, instance, other, view):
        """This row and another, as a tuple."""
        return (instance, view.get_queryset().get(pk=other))

    @action
    def siblings(self, request, instance, data, view):
        return [row for row in view.get_queryset() if row.pk != instance.pk]


@pytest.mark.django_db
def test_a_list_of_rows_a_route_or_action_returns_is_rendered_for_the_caller(settings, acme):
    """Rows of the resource a handler returns are rendered through the caller's field
    permissions (docs/actions-and-routes.md); a queryset was, but a list or tuple of rows
    went to the JSON renderer as model instances, which it cannot encode: a 500 outside the
    error envelope."""
    first = acme["product"]
    second = ProductFactory(organization=first.organization, name="Bolt", price=1, cost=2)
    viewer = acme["viewer"]
    visible = {"id", "name", "organization"}
    with mounted_site(settings, "rl", RowListingProductResource):
        cheapest = viewer.get("/rl/row-listing-products/cheapest/")
        pair = viewer.get(f"/rl/row-listing-products/{first.pk}/pair/{second.pk}/")
        siblings = viewer.post(
            f"/rl/row-listing-products/{first.pk}/action/", {"action": "siblings"}, format="json"
        )
    for response, names in (
        (cheapest, ["Bolt", "Anvil"]),
        (pair, ["Anvil", "Bolt"]),
        (siblings, ["Bolt"]),
    ):
        assert response.status_code == 200, response.content
        docs = response.json()["data"]
        assert [doc["name"] for doc in docs] == names
        assert all(set(doc) == visible for doc in docs)


class MergeInput(serializers.Serializer):
    """An action input pointing at another row, written as DRF documents it."""

    into = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())


class MergingProductResource(Resource):
    model = Product
    name = "merging-products"
    fields = ["id", "name", "price", "organization"]
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {"list": MEMBERS, "get": MEMBERS}
    action_permissions = MEMBERS

    @action(input=MergeInput)
    def merge(self, request, instance, data):
        """Fold this product's price into another's."""
        target = data["into"]
        target.price += instance.price
        target.save(update_fields=["price"])
        return target


@pytest.mark.django_db
def test_an_action_inputs_relations_stay_inside_the_callers_tenant(settings, acme):
    """``MultiTenant`` narrows the relations a create or update body may name
    (docs/multi-tenancy.md, "Foreign keys in the body stay inside the tenant"), but an
    action's ``input`` serializer was validated as given: a member of one organization could
    probe another's product ids and write to them through an action."""
    mine = acme["product"]
    theirs = ProductFactory(organization=OrganizationFactory(), name="Foreign", price=5)
    sibling = ProductFactory(organization=mine.organization, name="Sibling", price=5)
    url = f"/mp/merging-products/{mine.pk}/action/"
    with mounted_site(settings, "mp", MergingProductResource):
        refused = acme["viewer"].post(url, {"action": "merge", "into": theirs.pk}, format="json")
        merged = acme["viewer"].post(url, {"action": "merge", "into": sibling.pk}, format="json")
    body = assert_error(refused, 400, "VALIDATION_ERROR")
    assert body["details"] == {"into": [f'Invalid pk "{theirs.pk}" - object does not exist.']}
    theirs.refresh_from_db()
    assert theirs.price == 5
    assert merged.status_code == 200 and merged.json()["data"]["name"] == "Sibling"
    assert OutboxEvent.objects.filter(type="merging-products.merge").count() == 1


class RefusingBulkBookResource(Resource):
    """Hooks refusing one item of a batch with a field error, as they would a single row."""

    model = Book
    name = "refusing-bulk-books"
    fields = ["id", "title", "isbn", "author"]
    permissions = PUBLIC
    presets = [presets.Bulk(max_items=10)]

    def before_create(self, request, data):
        if data.get("title") == "draft":
            raise serializers.ValidationError({"title": ["Drafts are not published."]})

    def after_update(self, request, instance):
        if instance.title == "locked":
            raise DjangoValidationError({"title": "Locked titles cannot be set."})

    def before_delete(self, request, instance):
        if instance.title == "keep":
            raise serializers.ValidationError("This book is kept.")


@pytest.mark.django_db
def test_a_hook_refusing_one_bulk_item_names_the_item(settings):
    """docs/presets/bulk.md: hooks run per item, and a refused item's errors are indexed by
    item. A hook's validation error came out as the whole batch's (``{"title": [...]}``), so a
    client could not tell which of its items was refused."""
    author = AuthorFactory()
    books = [BookFactory(author=author, title=t) for t in ("a", "keep")]
    url = "/rb/refusing-bulk-books/bulk/"
    anon = client_for(None)

    def item(title, isbn):
        return {"title": title, "isbn": isbn, "author": author.pk}

    with mounted_site(settings, "rb", RefusingBulkBookResource):
        created = anon.post(url, {"items": [item("x", "1"), item("draft", "2")]}, format="json")
        updated = anon.patch(
            url, {"items": [{"id": books[0].pk, "title": "locked"}]}, format="json"
        )
        deleted = anon.delete(url, {"ids": [books[0].pk, books[1].pk]}, format="json")
    assert assert_error(created, 400, "VALIDATION_ERROR")["details"] == {
        "items": {"1": {"title": ["Drafts are not published."]}}
    }
    assert assert_error(updated, 400, "VALIDATION_ERROR")["details"] == {
        "items": {"0": {"title": ["Locked titles cannot be set."]}}
    }
    assert assert_error(deleted, 400, "VALIDATION_ERROR")["details"] == {
        "ids": {"1": {"non_field_errors": ["This book is kept."]}}
    }
    assert sorted(Book.objects.values_list("title", flat=True)) == ["a", "keep"]
    assert not OutboxEvent.objects.exists()


class TitleFilter(BaseFilterBackend):
    """A project's own filter backend, in place of the query language."""

    def filter_queryset(self, request, queryset, view):
        title = request.query_params.get("title")
        return queryset.filter(title=title) if title else queryset


class OwnFilterBookResource(Resource):
    model = Book
    name = "own-filter-books"
    fields = ["id", "title"]
    permissions = PUBLIC
    filter_backends = [TitleFilter]


@pytest.mark.django_db
def test_a_cursor_without_the_query_language_is_a_400_naming_after(settings):
    """Keyset pages follow the ordering the query language sorted the list by; with a
    resource's own ``filter_backends`` there is none, and ``?after=`` read the parsed query
    it never got: a 500. Offset pages still work."""
    for title in ("a", "b"):
        BookFactory(title=title)
    anon = client_for(None)
    with mounted_site(settings, "of", OwnFilterBookResource):
        refused = [anon.get(f"/of/own-filter-books/?after={c}") for c in ("", "abc")]
        paged = anon.get("/of/own-filter-books/?title=b&limit=1")
    for response in refused:
        body = assert_error(response, 400, "INVALID_QUERY")
        assert list(body["details"]) == ["after"]
    assert paged.status_code == 200 and [d["title"] for d in paged.json()["docs"]] == ["b"]


@pytest.mark.django_db
def test_a_list_without_the_query_language_documents_no_cursor(settings):
    """The schema documented ``?after=`` and the keyset page for such a list, which answers
    every ``?after=`` with a 400 (above): a client generated from it was offered a cursor it
    can never use. Only the offset page and its parameters are documented."""
    with mounted_site(settings, "of", OwnFilterBookResource):
        schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/of/own-filter-books/"]["get"]
    names = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert "after" not in names and {"page", "limit"} <= names
    shape = operation["responses"]["200"]["content"]["application/json"]["schema"]
    if "$ref" in shape:
        shape = schema["components"]["schemas"][shape["$ref"].rsplit("/", 1)[-1]]
    assert "oneOf" not in shape
    assert set(shape["required"]) == set(envelope.page([], 1, 20, 0))


class HiddenSortBookResource(Resource):
    """A default sort by a column hidden from everyone."""

    model = Book
    name = "hidden-sort-books"
    fields = ["id", "isbn", "title"]
    sort_fields = ["title"]
    default_sort = "isbn"
    field_permissions = {"isbn": F.hidden()}
    permissions = PUBLIC


@pytest.mark.django_db
def test_the_after_parameter_says_a_hidden_default_sort_has_no_cursor(settings):
    """A ``default_sort`` by a column hidden from every caller is not paged by cursor
    (``?after=`` without a ``sort`` is a 400 naming ``after``, naming no field), while a
    ``sort`` by ``title`` is: the ``after`` parameter says so, still naming no field."""
    BookFactory(title="a")
    anon = client_for(None)
    with mounted_site(settings, "hs", HiddenSortBookResource):
        body = assert_error(anon.get("/hs/hidden-sort-books/?after="), 400, "INVALID_QUERY")
        assert "isbn" not in str(body["details"]["after"])
        assert anon.get("/hs/hidden-sort-books/?sort=title&after=").status_code == 200
        schema = SchemaGenerator().get_schema(request=None, public=True)
    parameters = schema["paths"]["/hs/hidden-sort-books/"]["get"]["parameters"]
    after = next(p for p in parameters if p["name"] == "after")["description"]
    assert after.endswith(
        "Without a `sort`, the default sort has offset pages only (400 naming `after`)."
    )
    assert "isbn" not in after


class HiddenKeyBookResource(Resource):
    """A resource hiding its primary key from everyone (rows named by their isbn)."""

    model = Book
    name = "hidden-key-books"
    fields = ["id", "isbn", "title"]
    sort_fields = ["title"]
    field_permissions = {"id": F.hidden()}
    permissions = PUBLIC


@pytest.mark.django_db
def test_a_list_hiding_its_primary_key_documents_no_cursor(settings):
    """Every cursor carries the primary key (the tiebreak), so a list whose key no caller
    may read (``hidden()``) answers every ``?after=`` with a 400 naming ``after``; the
    schema still documented ``?after=`` and the keyset page, as it did for a list without
    the query language: a client generated from it was offered a cursor it can never use.
    Only the offset page and its parameters are documented; offset pages still work."""
    BookFactory(title="a")
    anon = client_for(None)
    with mounted_site(settings, "hk", HiddenKeyBookResource):
        for url in ("/hk/hidden-key-books/?after=", "/hk/hidden-key-books/?sort=title&after="):
            body = assert_error(anon.get(url), 400, "INVALID_QUERY")
            assert list(body["details"]) == ["after"]
        assert anon.get("/hk/hidden-key-books/?limit=1").status_code == 200
        schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/hk/hidden-key-books/"]["get"]
    names = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert "after" not in names and {"page", "limit"} <= names
    shape = operation["responses"]["200"]["content"]["application/json"]["schema"]
    if "$ref" in shape:
        shape = schema["components"]["schemas"][shape["$ref"].rsplit("/", 1)[-1]]
    assert "oneOf" not in shape
    assert set(shape["required"]) == set(envelope.page([], 1, 20, 0))


class RequestKeepingFilter(BaseFilterBackend):
    """A project's backend keeping its request on ``self`` for its helpers, which DRF allows:
    DRF makes one instance per use. ``gate`` holds two concurrent requests between storing
    their request and reading it back."""

    gate: threading.Barrier | None = None

    def filter_queryset(self, request, queryset, view):
        self.request = request
        if self.gate is not None:
            self.gate.wait(timeout=10)
        return queryset.filter(title=self.wanted_title())

    def wanted_title(self):
        return self.request.query_params.get("title")


class KeepingFilterBookResource(Resource):
    model = Book
    name = "keeping-filter-books"
    fields = ["id", "title"]
    permissions = PUBLIC
    filter_backends = [RequestKeepingFilter]


@pytest.mark.django_db(transaction=True)
def test_a_projects_filter_backend_is_one_instance_per_use_as_drf_makes_it(settings, monkeypatch):
    """A resource's own filter backend was made once per resource and shared by every
    request on every thread: one keeping its request on ``self`` (as a DRF backend may, DRF
    making one per use) filtered two concurrent requests by whichever stored its request
    last, and answered one caller the other's rows."""
    for title in ("a", "b"):
        BookFactory(title=title)
    monkeypatch.setattr(RequestKeepingFilter, "gate", threading.Barrier(2))
    answers = {}

    def ask(title):
        answers[title] = client_for(None).get(f"/kf/keeping-filter-books/?title={title}")

    with mounted_site(settings, "kf", KeepingFilterBookResource):
        threads = [threading.Thread(target=ask, args=(t,)) for t in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    for title in ("a", "b"):
        response = answers[title]
        assert response.status_code == 200
        assert [d["title"] for d in response.json()["docs"]] == [title]


class TitleOut(serializers.ModelSerializer):
    class Meta:
        model = Book
        fields = ["id", "title"]


class ListRouteBookResource(Resource):
    model = Book
    name = "list-route-books"
    fields = ["id", "title"]
    permissions = PUBLIC

    @route("GET", "first", permissions=P.allow_public(), response=TitleOut)
    def first(self, request, view):
        """One row, documented by a serializer."""
        return TitleOut(view.get_queryset().order_by("title").first()).data

    @route("GET", "firsts", permissions=P.allow_public(), response=TitleOut(many=True))
    def firsts(self, request, view):
        """Several rows, documented by the same serializer with ``many=True``."""
        return TitleOut(view.get_queryset().order_by("title")[:2], many=True).data


@pytest.mark.django_db
def test_a_route_documented_by_a_many_serializer_documents_a_list(settings):
    """``response=Serializer(many=True)`` was named like ``response=Serializer`` (drf-
    spectacular names a list serializer after its child), so whichever route came first
    gave both its envelope: the list route was documented as answering one object (or the
    single one as answering anything). A list serializer is an array of its child, in an
    envelope of its own."""
    for title in ("a", "b"):
        BookFactory(title=title)
    anon = client_for(None)
    with mounted_site(settings, "lrb", ListRouteBookResource):
        schema = SchemaGenerator().get_schema(request=None, public=True)
        answers = {p: anon.get(f"/lrb/list-route-books/{p}/").json() for p in ("first", "firsts")}
    components = schema["components"]["schemas"]

    def data_of(route):
        operation = schema["paths"][f"/lrb/list-route-books/{route}/"]["get"]
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        return components[ref.rsplit("/", 1)[-1]]["properties"]["data"]

    assert answers["first"]["data"]["title"] == "a"
    assert [row["title"] for row in answers["firsts"]["data"]] == ["a", "b"]
    assert data_of("first") == {"$ref": "#/components/schemas/TitleOut"}
    assert data_of("firsts") == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/TitleOut"},
    }


class PingBookResource(Resource):
    model = Book
    name = "ping-books"
    fields = ["id", "title"]
    permissions = PUBLIC
    idempotent = True

    @route("POST", "ping", status=204, permissions=P.allow_public())
    def ping(self, request):
        """Nothing to say."""

    @route("POST", "reset", status=205, permissions=P.allow_public())
    def reset(self, request):
        """Tell the client to reset its form; returns a value all the same."""
        return {"reset": True}


@pytest.mark.django_db
def test_a_route_answering_204_sends_no_body(settings):
    """A 204 has no content (RFC 9110 §15.3.5). A route declared ``status=204`` was wrapped
    in the success envelope all the same: 28 bytes after a 204's headers, which a
    keep-alive client reads as the start of the next response (and h11 refuses to send).
    Replayed under its ``Idempotency-Key`` the same, and documented without content."""
    anon = client_for(None)
    with mounted_site(settings, "pb", PingBookResource):
        answers = [
            anon.post("/pb/ping-books/ping/", {}, format="json", HTTP_IDEMPOTENCY_KEY="ping-1")
            for _ in range(2)
        ]
        schema = SchemaGenerator().get_schema(request=None, public=True)
    documented = schema["paths"]["/pb/ping-books/ping/"]["post"]["responses"]["204"]
    assert "content" not in documented
    assert [a.status_code for a in answers] == [204, 204]
    assert answers[1]["X-Idempotency-Replayed"] == "true"
    for answer in answers:
        assert answer["Content-Length"] == "0"


class ReviewWithAuthorSerializer(serializers.ModelSerializer):
    """Fields of related rows through a dotted ``source``, the DRF way."""

    book_title = serializers.CharField(source="book.title", read_only=True)
    author = serializers.CharField(source="book.author.name", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "body", "book_title", "author"]


class ReviewWithAuthorResource(Resource):
    model = Review
    name = "reviews-with-authors"
    serializer_class = ReviewWithAuthorSerializer
    permissions = PUBLIC
    cache = False


class BookWithAuthorSerializer(serializers.ModelSerializer):
    author_name = serializers.CharField(source="author.name", read_only=True)

    class Meta:
        model = Book
        fields = ["id", "title", "author_name"]


class CachedBookWithAuthorResource(Resource):
    """Over Book, whose author's rows other cached resources read already (a cached
    resource over a model connects its signals for the rest of the process)."""

    model = Book
    name = "cached-books-with-authors"
    serializer_class = BookWithAuthorSerializer
    permissions = PUBLIC
    cache = {"stale_seconds": 30}


def review_list_queries(count):
    """How many queries the list of ``count`` reviews (each of its own book and author)
    runs, and its body."""
    Review.objects.all().delete()
    for _ in range(count):
        Review.objects.create(book=BookFactory(), body="fine")
    with CaptureQueriesContext(connection) as queries:
        response = client_for(None).get("/rv/reviews-with-authors/")
    assert response.status_code == 200
    return len(queries.captured_queries), response.json()


@pytest.mark.django_db
def test_fields_a_serializer_reads_through_a_dotted_source_are_joined(settings):
    """docs/resources.md: lists run a constant number of queries, django-arc joining the
    forward relations a serializer renders as more than an id. A dotted ``source``
    (``book.author.name``) was skipped: one query per row per relation."""
    with mounted_site(settings, "rv", ReviewWithAuthorResource):
        one, _ = review_list_queries(1)
        five, body = review_list_queries(5)
    assert five == one
    assert [doc["author"] for doc in body["docs"]] == [
        r.book.author.name for r in Review.objects.order_by("pk")
    ]


class BookWithReviewsSerializer(serializers.ModelSerializer):
    class Meta:
        model = Book
        fields = ["id", "title", "reviews"]


class AuthorWithBooksSerializer(serializers.ModelSerializer):
    """A nested list of the author's books, each with its reviews' ids."""

    books = BookWithReviewsSerializer(many=True, read_only=True)

    class Meta:
        model = Author
        fields = ["id", "name", "books"]


class AuthorWithBooksResource(Resource):
    model = Author
    name = "authors-with-books"
    serializer_class = AuthorWithBooksSerializer
    permissions = PUBLIC
    cache = False


class AuthorBookIdsSerializer(serializers.ModelSerializer):
    class Meta:
        model = Author
        fields = ["id", "name", "books"]


class BookWithAuthorBooksSerializer(serializers.ModelSerializer):
    """A nested author (joined), rendering the ids of its books (a reverse relation)."""

    author = AuthorBookIdsSerializer(read_only=True)

    class Meta:
        model = Book
        fields = ["id", "title", "author"]


class BookWithAuthorBooksResource(Resource):
    model = Book
    name = "books-with-author-books"
    serializer_class = BookWithAuthorBooksSerializer
    permissions = PUBLIC
    cache = False


def nested_list_queries(path, authors):
    """How many queries a list runs over ``authors`` authors of two books, each with a
    review; and its body."""
    Review.objects.all().delete()
    Book.objects.all().delete()
    for _ in range(authors):
        author = AuthorFactory()
        for _ in range(2):
            Review.objects.create(book=BookFactory(author=author), body="fine")
    with CaptureQueriesContext(connection) as queries:
        response = client_for(None).get(path)
    assert response.status_code == 200
    return len(queries.captured_queries), response.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("resource", "path"),
    [
        (AuthorWithBooksResource, "/nr/authors-with-books/?limit=100"),
        (AuthorWithBooksResource, "/nr/authors-with-books/?limit=100&after="),
        (BookWithAuthorBooksResource, "/nr/books-with-author-books/?limit=100"),
    ],
)
def test_relations_a_nested_serializer_renders_are_loaded_once(settings, resource, path):
    """docs/resources.md: lists run a constant number of queries, the relations the
    serializer renders prefetched. A nested serializer's own relations (each book's
    ``reviews`` in an author's ``books``, a nested author's ``books``) were not: one query
    per nested row."""
    with mounted_site(settings, "nr", resource):
        one, _ = nested_list_queries(path, 1)
        many, body = nested_list_queries(path, 10)
    assert many == one
    if resource is AuthorWithBooksResource:
        assert one == (3 if "after" in path else 4)  # (count), page, books, reviews
        rendered = {b["id"]: b["reviews"] for doc in body["docs"] for b in doc["books"]}
        assert len(rendered) == 20
    else:
        assert one == 3  # count, page joined with authors, the authors' books
        rendered = {doc["id"]: sorted(doc["author"]["books"]) for doc in body["docs"]}
        assert len(rendered) == 20
    expected = {
        b.pk: (
            list(b.reviews.values_list("pk", flat=True))
            if resource is AuthorWithBooksResource
            else sorted(b.author.books.values_list("pk", flat=True))
        )
        for b in Book.objects.all()
    }
    assert rendered == expected


class ReviewingAuthorWithBooksResource(AuthorWithBooksResource):
    """An update hook reviewing each of the author's books."""

    name = "reviewing-authors-with-books"
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update", "delete")}
    presets = [presets.Bulk()]

    def after_update(self, request, instance):
        for book in Book.objects.filter(author=instance):
            Review.objects.create(book=book, body="on update")


@pytest.mark.django_db
def test_an_update_renders_the_relations_its_hooks_changed(settings):
    """The row an update writes was read with the relations its serializer renders
    prefetched (since d61402b, a nested book's reviews too): the answer and the event
    rendered them as read, without the review the update's hook added to the author's
    book (before, a nested book's reviews were read as rendered). They are read again after
    the write, as DRF's UpdateModelMixin clears the prefetched ones."""
    book = BookFactory()
    with mounted_site(settings, "nr", ReviewingAuthorWithBooksResource):
        response = client_for(None).patch(
            f"/nr/reviewing-authors-with-books/{book.author_id}/", {"name": "n"}, format="json"
        )
    assert response.status_code == 200, response.content
    review = Review.objects.get(book=book)
    assert response.json()["data"]["books"] == [
        {"id": book.pk, "title": book.title, "reviews": [review.pk]}
    ]
    [event] = OutboxEvent.objects.filter(type="reviewing-authors-with-books.updated")
    assert event.payload["data"]["books"][0]["reviews"] == [review.pk]
    # the bulk update's rows too
    with mounted_site(settings, "nr", ReviewingAuthorWithBooksResource):
        items = [{"id": book.author_id, "name": "m"}]
        bulk = client_for(None).patch(
            "/nr/reviewing-authors-with-books/bulk/", {"items": items}, format="json"
        )
    assert bulk.status_code == 200, bulk.content
    reviews = sorted(Review.objects.filter(book=book).values_list("pk", flat=True))
    event = OutboxEvent.objects.filter(type="reviewing-authors-with-books.updated").last()
    assert sorted(event.payload["data"]["books"][0]["reviews"]) == reviews


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_rename_of_a_row_read_through_a_dotted_source_invalidates(settings):
    """The rows a list joins for its serializer are rows it reads: renaming the author a
    book list renders through ``author.name`` retires the cached list (it was served with
    the old name until ``stale_seconds``)."""
    author = BookFactory().author
    anon = client_for(None)
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
        mounted_site(settings, "bw", CachedBookWithAuthorResource),
    ):
        redis_alias.reset_outage_warnings()
        anon.get("/bw/cached-books-with-authors/")
        assert anon.get("/bw/cached-books-with-authors/")["X-Cache"] == "HIT"
        author.name = "Renamed"
        author.save()
        after = anon.get("/bw/cached-books-with-authors/")
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"][0]["author_name"] == "Renamed"


class NarrowedBooksAuthorResource(Resource):
    """The generated serializer renders ``books`` (prefetched by django-arc); the project
    narrows them with a ``Prefetch`` of its own."""

    model = Author
    name = "narrowed-books-authors"
    fields = ["id", "name", "books"]
    permissions = PUBLIC
    cache = False

    def get_queryset(self, request):
        long_books = Book.objects.filter(pages__gte=200)
        return (
            super().get_queryset(request).prefetch_related(Prefetch("books", queryset=long_books))
        )


class NarrowedReviewsAuthorResource(AuthorWithBooksResource):
    """Nested books rendering their reviews; the project narrows the reviews."""

    name = "narrowed-reviews-authors"

    def get_queryset(self, request):
        kept = Review.objects.filter(body="kept")
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("books__reviews", queryset=kept))
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("resource", "path"),
    [
        (NarrowedBooksAuthorResource, "/np/narrowed-books-authors/"),
        (NarrowedReviewsAuthorResource, "/np/narrowed-reviews-authors/"),
    ],
)
def test_a_projects_own_prefetch_of_a_rendered_relation_is_kept(settings, resource, path):
    """A project's ``Prefetch`` narrowing a relation the serializer renders, which
    django-arc prefetches too: Django refused the second lookup of ``books`` (a 500), and
    of ``books__reviews`` once nested relations were prefetched. The project's rows are
    rendered, still one query per relation."""

    def listed(authors):
        Review.objects.all().delete()
        Book.objects.all().delete()
        for _ in range(authors):
            author = AuthorFactory()
            for pages in (100, 300):
                book = BookFactory(author=author, pages=pages)
                Review.objects.create(book=book, body="kept")
                Review.objects.create(book=book, body="dropped")
        with CaptureQueriesContext(connection) as queries:
            response = client_for(None).get(f"{path}?limit=100")
        assert response.status_code == 200, response.content
        return len(queries.captured_queries), response.json()["docs"]

    with mounted_site(settings, "np", resource):
        one, _ = listed(1)
        many, docs = listed(5)
    assert one == many
    if resource is NarrowedBooksAuthorResource:
        long_books = dict(Book.objects.filter(pages=300).values_list("author_id", "pk"))
        assert {doc["id"]: doc["books"] for doc in docs} == {
            author: [long_books[author]] if author in long_books else []
            for author in Author.objects.values_list("pk", flat=True)
        }
    else:
        kept = dict(Review.objects.filter(body="kept").values_list("book_id", "pk"))
        rendered = {b["id"]: b["reviews"] for doc in docs for b in doc["books"]}
        assert rendered == {book: [pk] for book, pk in kept.items()}


class RackWithItemsResource(Resource):
    """The generated serializer rendering a reverse relation without a ``related_name``,
    under its accessor (``rackitem_set``)."""

    model = Rack
    name = "racks-with-items"
    fields = ["id", "label", "rackitem_set"]
    read_only_fields = ["rackitem_set"]
    permissions = PUBLIC
    cache = False


@pytest.mark.django_db
def test_a_reverse_relation_rendered_under_its_accessor_is_prefetched(settings):
    """``fields = [..., "rackitem_set"]`` (no ``related_name``): the relation was not
    found by that name, so not prefetched: one query per rack."""

    def queries(count):
        RackItem.objects.all().delete()
        Rack.objects.all().delete()
        for i in range(count):
            RackItem.objects.create(rack=Rack.objects.create(label=f"r{i}"), name=f"i{i}")
        with CaptureQueriesContext(connection) as captured:
            response = client_for(None).get("/ri/racks-with-items/?limit=100")
        assert response.status_code == 200
        return len(captured.captured_queries), response.json()

    with mounted_site(settings, "ri", RackWithItemsResource):
        one, _ = queries(1)
        many, body = queries(10)
    assert one == many == 3  # count, page, the racks' items
    assert {doc["label"]: doc["rackitem_set"] for doc in body["docs"]} == {
        item.rack_id: [item.pk] for item in RackItem.objects.all()
    }


class ThingSerializer(serializers.ModelSerializer):
    class Meta:
        model = UuidThing
        fields = ["id", "name"]


class RackItemWithThingSerializer(serializers.ModelSerializer):
    thing = ThingSerializer(read_only=True)

    class Meta:
        model = RackItem
        fields = ["id", "name", "thing"]


class RackWithItemThingsSerializer(serializers.ModelSerializer):
    """A rack's items (a reverse relation without ``related_name``), each nesting its
    thing (a forward relation of the nested rows)."""

    rackitem_set = RackItemWithThingSerializer(many=True, read_only=True)

    class Meta:
        model = Rack
        fields = ["id", "label", "rackitem_set"]


class CachedRackWithItemThingsResource(Resource):
    model = Rack
    name = "cached-racks-with-things"
    serializer_class = RackWithItemThingsSerializer
    permissions = PUBLIC
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_row_a_nested_serializer_renders_invalidates(settings):
    """The rows a nested serializer renders (each rack item's thing, nested in a rack's
    items) are rows the list reads: renaming the thing retires the cached list (it was
    served with the old name until ``stale_seconds``)."""
    thing = UuidThing.objects.create(name="old")
    RackItem.objects.create(rack=Rack.objects.create(label="r"), thing=thing, name="i")
    anon = client_for(None)
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
        mounted_site(settings, "nt", CachedRackWithItemThingsResource),
    ):
        redis_alias.reset_outage_warnings()
        anon.get("/nt/cached-racks-with-things/")
        assert anon.get("/nt/cached-racks-with-things/")["X-Cache"] == "HIT"
        thing.name = "new"
        thing.save()
        after = anon.get("/nt/cached-racks-with-things/")
    assert after["X-Cache"] == "MISS"
    [item] = after.json()["docs"][0]["rackitem_set"]
    assert item["thing"] == {"id": str(thing.pk), "name": "new"}


class PurgingBookResource(Resource):
    model = Book
    name = "purging-books"
    fields = ["id", "title"]
    permissions = PUBLIC
    action_permissions = P.allow_public()
    presets = [presets.Audited()]

    @action
    def purge(self, request, instance, data):
        """Delete the row outright (Django clears the instance's pk)."""
        instance.delete()
        return {"purged": True}


@pytest.mark.django_db
def test_an_action_that_deletes_its_row_still_names_it_in_its_event_and_audit(settings):
    """The action's event and audit entry read the row's id after the handler ran: once
    it had deleted the row, they named ``"None"`` (and every such event shared the
    partition ``purging-books:None``)."""
    book = BookFactory()
    with mounted_site(settings, "pu", PurgingBookResource):
        response = client_for(None).post(
            f"/pu/purging-books/{book.pk}/action/", {"action": "purge"}, format="json"
        )
    assert response.status_code == 200 and not Book.objects.exists()
    event = OutboxEvent.objects.get(type="purging-books.purge")
    assert event.payload["id"] == book.pk
    assert event.meta["resource_id"] == str(book.pk)
    assert event.meta["partition_key"] == f"purging-books:{book.pk}"
    entry = AuditLog.objects.get(action="purge")
    assert entry.object_id == str(book.pk) and entry.after is None


class LineInput(serializers.Serializer):
    """One line of a bundle: a product and a quantity."""

    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    quantity = serializers.IntegerField(min_value=1)


class BundleInput(serializers.Serializer):
    """Relations an action's input names below its top level, as DRF lets one nest them: a
    nested serializer, a list of them, and a ``many=True`` relation."""

    main = LineInput()
    lines = LineInput(many=True)
    extras = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all(), many=True)


class BundlingProductResource(Resource):
    model = Product
    name = "bundling-products"
    fields = ["id", "name", "price", "organization"]
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {"list": MEMBERS, "get": MEMBERS}
    action_permissions = MEMBERS

    @action(input=BundleInput)
    def bundle(self, request, instance, data):
        """Name the products the bundle would hold."""
        named = [data["main"]["product"], *(line["product"] for line in data["lines"])]
        return {"named": [product.name for product in [*named, *data["extras"]]]}


@pytest.mark.django_db
def test_an_action_inputs_nested_relations_stay_inside_the_callers_tenant(settings, acme):
    """The presets narrowed only the top-level fields of an action's input: a relation in a
    nested serializer, or in a list of them, named another organization's product, which the
    handler read (and the answer rendered). ``many=True`` relations were narrowed already."""
    mine = acme["product"]
    theirs = ProductFactory(organization=OrganizationFactory(), name="Foreign")
    url = f"/bp/bundling-products/{mine.pk}/action/"
    own = {"product": mine.pk, "quantity": 1}
    foreign = {"product": theirs.pk, "quantity": 1}
    bodies = {
        "main": {"main": foreign, "lines": [own], "extras": []},
        "lines": {"main": own, "lines": [own, foreign], "extras": []},
        "extras": {"main": own, "lines": [], "extras": [theirs.pk]},
    }
    missing = [f'Invalid pk "{theirs.pk}" - object does not exist.']
    expected = {
        "main": {"main": {"product": missing}},
        "lines": {"lines": {"1": {"product": missing}}},
        "extras": {"extras": missing},
    }
    with mounted_site(settings, "bp", BundlingProductResource):
        for name, body in bodies.items():
            refused = acme["viewer"].post(url, {"action": "bundle", **body}, format="json")
            assert assert_error(refused, 400, "VALIDATION_ERROR")["details"] == expected[name]
        ok = {"action": "bundle", "main": own, "lines": [own], "extras": [mine.pk]}
        allowed = acme["viewer"].post(url, ok, format="json")
    assert allowed.status_code == 200, allowed.content
    assert allowed.json()["data"] == {"named": ["Anvil", "Anvil", "Anvil"]}


class AvailableProductField(serializers.PrimaryKeyRelatedField):
    """A relation as DRF lets a project write one: no ``queryset``, its own ``get_queryset``."""

    def get_queryset(self):
        return Product.objects.filter(in_stock=True)


class DeepBundleInput(serializers.Serializer):
    """Relations the first recursion missed: a list of lists of them, a dict of them, and
    one whose rows come from its own ``get_queryset()``."""

    groups = serializers.ListField(
        child=serializers.ListField(
            child=serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
        ),
        required=False,
    )
    named = serializers.DictField(
        child=serializers.PrimaryKeyRelatedField(queryset=Product.objects.all()),
        required=False,
    )
    chosen = AvailableProductField(required=False)


class DeepBundlingProductResource(Resource):
    model = Product
    name = "deep-bundling-products"
    fields = ["id", "name", "price", "organization"]
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {"list": MEMBERS, "get": MEMBERS}
    action_permissions = MEMBERS

    @action(input=DeepBundleInput)
    def bundle(self, request, instance, data):
        """Name the products the bundle would hold."""
        named = [
            *(p for group in data.get("groups", []) for p in group),
            *data.get("named", {}).values(),
            *([data["chosen"]] if "chosen" in data else []),
        ]
        return {"named": [product.name for product in named]}


@pytest.mark.django_db
def test_an_action_inputs_deeper_and_custom_relations_stay_inside_the_callers_tenant(
    settings, acme
):
    """_narrow_relations recursed into nested serializers and one level of ``child``, so a
    list of lists of relations, or a relation whose rows come from its own
    ``get_queryset()`` (``queryset`` None, as DRF allows), named another organization's
    product: the handler read it and the answer rendered its name."""
    mine = acme["product"]
    theirs = ProductFactory(organization=OrganizationFactory(), name="Foreign", in_stock=True)
    url = f"/dbp/deep-bundling-products/{mine.pk}/action/"
    missing = [f'Invalid pk "{theirs.pk}" - object does not exist.']
    bodies = {
        "groups": ({"groups": [[mine.pk, theirs.pk]]}, {"groups": {"0": {"1": missing}}}),
        "named": ({"named": {"a": theirs.pk}}, {"named": {"a": missing}}),
        "chosen": ({"chosen": theirs.pk}, {"chosen": missing}),
    }
    with mounted_site(settings, "dbp", DeepBundlingProductResource):
        for name, (body, expected) in bodies.items():
            refused = acme["viewer"].post(url, {"action": "bundle", **body}, format="json")
            assert refused.status_code == 400, (name, refused.content)
            assert assert_error(refused, 400, "VALIDATION_ERROR")["details"] == expected, name
        ok = {"action": "bundle", "groups": [[mine.pk]], "named": {"a": mine.pk}}
        allowed = acme["viewer"].post(url, ok, format="json")
    assert allowed.status_code == 200, allowed.content
    assert allowed.json()["data"] == {"named": ["Anvil", "Anvil"]}


@pytest.mark.django_db
def test_a_route_answering_205_sends_no_body(settings):
    """RFC 9110 §15.3.6: a server MUST NOT generate content in a 205 (Reset Content). Only
    204 and 304 were answered without content: a 205 route's return value went out in the
    success envelope, and its schema documented one."""
    with mounted_site(settings, "pb", PingBookResource):
        answer = client_for(None).post("/pb/ping-books/reset/", {}, format="json")
        schema = SchemaGenerator().get_schema(request=None, public=True)
    assert answer.status_code == 205
    assert answer.content == b"" and answer["Content-Length"] == "0"
    assert "content" not in schema["paths"]["/pb/ping-books/reset/"]["post"]["responses"]["205"]


@pytest.mark.django_db
def test_a_pagination_class_that_may_decline_documents_the_unpaginated_answer(settings):
    """A list whose DRF pagination class has no page size answers every row in the success
    envelope (``list_response``), but the schema documented only the class's paginated
    shape, so a client generated from it could not read the answer it got."""
    with mounted_site(settings, "dp", PageNumberBookResource, LimitOffsetBookResource):
        schema = SchemaGenerator().get_schema(request=None, public=True)
    for url in ("/dp/page-number-books/", "/dp/limit-offset-books/"):
        documented = schema["paths"][url]["get"]["responses"]["200"]["content"]
        shape = documented["application/json"]["schema"]
        if "$ref" in shape:
            shape = schema["components"]["schemas"][shape["$ref"].rsplit("/", 1)[-1]]
        shapes = shape["oneOf"]
        unpaginated = [s for s in shapes if "data" in s.get("properties", {})]
        assert len(unpaginated) == 1, url
        assert unpaginated[0]["required"] == ["success", "data"]
        assert unpaginated[0]["properties"]["data"]["type"] == "array"
        assert any("results" in s.get("properties", {}) for s in shapes), url


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_the_generated_viewset_routed_by_hand_still_shares_entries_between_callers(routed, acme):
    """Keying a subclass's entries by its class and caller must not cost the generated
    ViewSet its sharing: two viewers of one organization (same fields) get one entry, while
    a subclass keeps one per caller."""
    org = acme["product"].organization
    other = client_for(
        MembershipFactory(organization=org, role="viewer").user,
        HTTP_X_ORGANIZATION_ID=str(org.pk),
    )
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
    ):
        redis_alias.reset_outage_warnings()
        for prefix in ("plain", "summary"):
            assert acme["viewer"].get(f"/x/{prefix}/")["X-Cache"] == "MISS", prefix
        assert other.get("/x/plain/")["X-Cache"] == "HIT"
        assert other.get("/x/summary/")["X-Cache"] == "MISS"


def versioned(version):
    """A project's factory of ViewSet subclasses: each class it makes has one qualname."""

    class Versioned(ExtensionProductResource.as_viewset()):
        def list(self, request, *args, **kwargs):
            response = super().list(request, *args, **kwargs)
            response.data["version"] = version
            return response

    return Versioned


def _versioned_routes(routing):
    """``/x/v1/`` and ``/x/v2/``: two subclasses one factory makes (one qualname), routed by
    a router (their basenames differ) or by ``as_view()`` in ``path()`` (no basename)."""
    if routing == "router":
        router = SimpleRouter()
        router.register("v1", versioned(1), basename="versioned-1")
        router.register("v2", versioned(2), basename="versioned-2")
        return [path("x/", include(router.urls))]
    return [path(f"x/v{v}/", versioned(v).as_view({"get": "list"}), name=f"v{v}") for v in (1, 2)]


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("routing", ["router", "path"])
def test_two_viewset_subclasses_of_one_qualname_keep_their_own_entries(settings, acme, routing):
    """A subclass's entries were keyed by its module and qualname, which two classes a
    factory makes share (``make.<locals>.Versioned``): ``/v2/`` was served the answer
    ``/v1/`` had stored, with v1's bytes. Their router registrations (basenames) differ;
    routed with ``as_view()`` in ``path()`` they have none (DRF's None), and the URL pattern
    that routed each is keyed too."""
    import tests.urls

    patterns = [*tests.urls.urlpatterns, *_versioned_routes(routing)]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    viewer = acme["viewer"]
    try:
        with (
            override_settings(CACHES=caches_with("redis", REDIS_URL)),
            override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
        ):
            redis_alias.reset_outage_warnings()
            answers = {v: [viewer.get(f"/x/v{v}/") for _ in range(2)] for v in (1, 2)}
    finally:
        clear_url_caches()
    for v, (first, again) in answers.items():
        assert first["X-Cache"] == "MISS" and again["X-Cache"] == "HIT", v
        assert first.json()["version"] == again.json()["version"] == v


class ReviewAuthorIdSerializer(serializers.ModelSerializer):
    """The author's id through the book's column (``author_id``, the attname), not its row."""

    author_id = serializers.IntegerField(source="book.author_id", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "body", "author_id"]


class ReviewAuthorIdResource(Resource):
    model = Review
    name = "reviews-with-author-ids"
    serializer_class = ReviewAuthorIdSerializer
    permissions = PUBLIC
    cache = False


class BookAuthorIdSerializer(serializers.ModelSerializer):
    """The foreign key's column under its attname, on the resource's own model."""

    author_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Book
        fields = ["id", "title", "author_id"]


class BookAuthorIdResource(Resource):
    model = Book
    name = "books-with-author-ids"
    serializer_class = BookAuthorIdSerializer
    permissions = PUBLIC
    cache = False


@pytest.mark.django_db
def test_a_source_naming_a_foreign_keys_column_is_not_joined(settings):
    """``get_field("author_id")`` finds the foreign key under its attname, and the loading
    plan passed the attname to ``select_related``: every list of a serializer reading the
    column (``source="book.author_id"``, or a field named ``author_id``) was a 500
    (``FieldError: Invalid field name(s) given in select_related``). A column is read from
    the row that holds it; the author's table is not joined."""
    review = Review.objects.create(book=BookFactory(), body="fine")
    book = review.book
    with mounted_site(settings, "ra", ReviewAuthorIdResource, BookAuthorIdResource):
        with CaptureQueriesContext(connection) as queries:
            reviews = client_for(None).get("/ra/reviews-with-author-ids/")
            books = client_for(None).get("/ra/books-with-author-ids/")
    assert reviews.status_code == books.status_code == 200, (reviews.content, books.content)
    assert reviews.json()["docs"] == [
        {"id": review.pk, "body": "fine", "author_id": book.author_id}
    ]
    assert books.json()["docs"] == [
        {"id": book.pk, "title": book.title, "author_id": book.author_id}
    ]
    assert not any("testapp_author" in q["sql"] for q in queries.captured_queries)


def test_a_nested_lists_errors_are_keyed_by_item_whatever_the_drf_version():
    """DRF before 3.18 lists a nested ``many=True`` serializer's errors item by item, ``{}``
    for an item that passed; 3.18 keys the failing items by index. The envelope answered
    one body in two shapes (the Django 4.2 run, on DRF 3.17, failed the test above): both
    are now the index-keyed one, as bulk bodies' are."""
    from rest_framework.exceptions import ErrorDetail

    from django_arc.exceptions import flatten_validation

    missing = [ErrorDetail("does not exist", code="does_not_exist")]
    before_318 = {"lines": [{}, {"product": missing}], "tags": ["bad"]}
    since_318 = {"lines": {1: {"product": missing}}, "tags": ["bad"]}
    expected = {"lines": {"1": {"product": ["does not exist"]}}, "tags": ["bad"]}
    assert flatten_validation(before_318) == flatten_validation(since_318) == expected


@pytest.mark.django_db
def test_a_model_save_that_takes_no_arguments_still_serves_updates_and_actions(monkeypatch):
    """A write's ``save()`` of the row it read only updates (``force_update``, so a row
    deleted meanwhile is 404, not re-inserted: tests/test_write_races.py); a project's
    ``def save(self)`` takes no such argument and is called as it is."""
    book = BookFactory(title="old")
    plain_save = Book.save

    def save(self):
        plain_save(self)

    monkeypatch.setattr(Book, "save", save)
    r = client_for().patch(f"/api/books/{book.pk}/", {"title": "new"}, format="json")
    assert r.status_code == 200, r.content
    book.refresh_from_db()
    assert book.title == "new"


class _RatedBooks(Resource):
    model = Book
    name = "rated-books"
    fields = ["id", "title", "rating", "price"]
    sort_fields = ["title"]
    permissions = PUBLIC
    field_permissions = {"rating": F.visible_to("critic"), "price": F.hidden()}


@pytest.mark.django_db
def test_drfs_ordering_and_search_filters_bypass_the_field_rules(settings):
    """DRF's ``OrderingFilter`` in a resource's own ``filter_backends`` sorts by any field
    the serializer renders (``rating``, which only critics read) or, with
    ``ordering_fields = "__all__"``, by any column (``price``, hidden): the order of the
    rows an anonymous caller gets tells it the values it may not read. The query language
    answers the same ``sort`` with 400; manage.py check warns (arc.W009)."""
    from rest_framework.filters import OrderingFilter, SearchFilter

    from django_arc.checks import check_resource
    from django_arc.filters import QueryLanguageFilter

    class AllOrdering(OrderingFilter):
        ordering_fields = "__all__"

    class IsbnSearch(SearchFilter):
        def get_search_fields(self, view, request):
            return ["isbn"]

    for rating, title in ((3.0, "b"), (1.0, "c"), (2.0, "a")):
        BookFactory(title=title, rating=rating, price=rating)
    backends = [QueryLanguageFilter, OrderingFilter]
    leaky = type("Leaky", (_RatedBooks,), {"name": "leaky", "filter_backends": backends})
    everything = type(
        "All",
        (_RatedBooks,),
        {"name": "all", "filter_backends": [QueryLanguageFilter, AllOrdering]},
    )
    anon = client_for(None)
    with mounted_site(settings, "ob", leaky, everything) as site:
        by_rating = anon.get("/ob/leaky/?ordering=rating").json()["docs"]
        by_price = anon.get("/ob/all/?ordering=-price").json()["docs"]
        refused = anon.get("/ob/leaky/?sort=rating")
        warnings = {
            name: [e.id for e in check_resource(site.get_resource(name))]
            for name in ("leaky", "all")
        }
    assert [d["title"] for d in by_rating] == ["c", "a", "b"]  # the oracle
    assert all("rating" not in d for d in by_rating)
    assert [d["title"] for d in by_price] == ["b", "a", "c"]
    assert_error(refused, 400, "INVALID_QUERY")
    assert warnings == {"leaky": ["arc.W009"], "all": ["arc.W009"]}
    search = type(
        "S", (_RatedBooks,), {"name": "s", "filter_backends": [QueryLanguageFilter, IsbnSearch]}
    )
    assert [e.id for e in check_resource(search())] == ["arc.W009"]
    from django_filters.rest_framework import DjangoFilterBackend

    filtered = type("F", (_RatedBooks,), {"name": "f", "filter_backends": [DjangoFilterBackend]})
    [warning] = check_resource(filtered())
    assert warning.id == "arc.W009" and "DjangoFilterBackend" in warning.msg
    assert [e.id for e in check_resource(_RatedBooks())] == []


class TouchingAuthorWithBooksResource(AuthorWithBooksResource):
    """An update hook touching a column of the author's first book that it does not render."""

    name = "touching-authors-with-books"
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update", "delete")}
    presets = [presets.Bulk()]

    def after_update(self, request, instance):
        first = Book.objects.filter(author=instance).order_by("pk").first()
        # a new isbn each time, short whatever the factory's sequence has reached (its
        # own isbn plus the pages grew past the column's 20 characters on PostgreSQL
        # once ~900 books had been made in the process: an order-dependent failure)
        Book.objects.filter(pk=first.pk).update(
            isbn=f"t{first.pk}-{first.pages}", pages=DbF("pages") + 1
        )


@pytest.mark.django_db
def test_an_update_names_no_relation_changed_whose_rows_only_moved(settings):
    """The relations an update renders are read again after its write (27b4087). A to-many
    relation read without an order comes back in the database's order, which on PostgreSQL
    moves a row the write (or its hook) updated to the end: the event named ``books``
    changed, with a ``previous`` value holding the same books, when no rendered value of
    them changed."""
    author = AuthorFactory()
    first, second = BookFactory(author=author), BookFactory(author=author)
    with mounted_site(settings, "nt", TouchingAuthorWithBooksResource):
        response = client_for(None).patch(
            f"/nt/touching-authors-with-books/{author.pk}/", {"name": "n"}, format="json"
        )
        assert response.status_code == 200, response.content
        [event] = OutboxEvent.objects.filter(type="touching-authors-with-books.updated")
        assert event.payload["changed"] == ["name"]
        # the bulk update's rows too
        items = [{"id": author.pk, "name": "m"}]
        bulk = client_for(None).patch(
            "/nt/touching-authors-with-books/bulk/", {"items": items}, format="json"
        )
        assert bulk.status_code == 200, bulk.content
    event = OutboxEvent.objects.filter(type="touching-authors-with-books.updated").last()
    assert event.payload["changed"] == ["name"]
    assert {b["id"] for b in event.payload["data"]["books"]} == {first.pk, second.pk}


class SequelBookWithAuthorBooksResource(BookWithAuthorBooksResource):
    """An update hook adding a book to the updated book's author."""

    name = "sequel-books-with-author-books"
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update", "delete")}
    presets = [presets.Bulk()]

    def after_update(self, request, instance):
        BookFactory(author=instance.author)


@pytest.mark.django_db
def test_an_update_renders_the_relations_of_its_joined_rows_its_hooks_changed(settings):
    """An update's relations are read again after its write (27b4087), but only the ones
    prefetched onto the row itself: those prefetched onto a row it holds (its joined
    author's ``books``: ``author__books``) kept what was read before the write, so the
    answer and the event lacked the book the update's hook added to the author, which a
    get of the row then rendered."""
    book = BookFactory()
    with mounted_site(settings, "sq", SequelBookWithAuthorBooksResource):
        url = f"/sq/sequel-books-with-author-books/{book.pk}/"
        response = client_for(None).patch(url, {"title": "t"}, format="json")
        assert response.status_code == 200, response.content
        books = sorted(Book.objects.filter(author=book.author_id).values_list("pk", flat=True))
        assert sorted(response.json()["data"]["author"]["books"]) == books
        assert response.json()["data"] == client_for(None).get(url).json()["data"]
        [event] = OutboxEvent.objects.filter(type="sequel-books-with-author-books.updated")
        assert sorted(event.payload["data"]["author"]["books"]) == books
        # the bulk update's rows too
        items = [{"id": book.pk, "title": "u"}]
        bulk = client_for(None).patch(
            "/sq/sequel-books-with-author-books/bulk/", {"items": items}, format="json"
        )
        assert bulk.status_code == 200, bulk.content
    books = sorted(Book.objects.filter(author=book.author_id).values_list("pk", flat=True))
    event = OutboxEvent.objects.filter(type="sequel-books-with-author-books.updated").last()
    assert sorted(event.payload["data"]["author"]["books"]) == books


class ShelfAuthorSerializer(serializers.ModelSerializer):
    shelf = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Author
        fields = ["id", "name", "shelf"]


class ShelfAuthorResource(Resource):
    """The author's books through a ``Prefetch`` to an attribute; an update hook adding one."""

    model = Author
    name = "shelf-authors"
    serializer_class = ShelfAuthorSerializer
    permissions = PUBLIC
    cache = False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("books", queryset=Book.objects.order_by("pk"), to_attr="shelf")
            )
        )

    def after_update(self, request, instance):
        BookFactory(author=instance)


@pytest.mark.django_db
def test_an_update_renders_a_prefetch_to_an_attribute_its_hooks_changed(settings):
    """A project's ``Prefetch(..., to_attr=...)`` counts as loaded once its attribute is
    set: an update's answer and event rendered the list read before the write, without the
    book its hook added, which a get of the row then rendered."""
    book = BookFactory()
    with mounted_site(settings, "sh", ShelfAuthorResource):
        url = f"/sh/shelf-authors/{book.author_id}/"
        response = client_for(None).patch(url, {"name": "n"}, format="json")
        assert response.status_code == 200, response.content
        books = list(Book.objects.filter(author=book.author_id).order_by("pk"))
        assert response.json()["data"]["shelf"] == [b.pk for b in books]
        assert response.json()["data"] == client_for(None).get(url).json()["data"]
    [event] = OutboxEvent.objects.filter(type="shelf-authors.updated")
    assert event.payload["data"]["shelf"] == [b.pk for b in books]


class _UserGroupsReader(presets.Preset):
    """Reads the request's user's groups once the write is done, counting the queries."""

    def after_write(self, view, verb, instance, before, after):
        with CaptureQueriesContext(connection) as queries:
            list(view.request.user.groups.all())
        _UserGroupsReader.seen.append(len(queries))

    seen: list[int] = []


class StampedArticleResource(Resource):
    """An update hook stamping the request's user (its groups read already) as the owner."""

    model = Article
    name = "stamped-articles"
    fields = ["id", "title"]
    permissions = {k: P.require_auth() for k in ("list", "get", "update")}
    presets = [_UserGroupsReader()]
    cache = False

    def before_update(self, request, instance, data):
        from django.db.models import prefetch_related_objects

        prefetch_related_objects([request.user], "groups")
        instance.owner = request.user
        return data


@pytest.mark.django_db
def test_an_update_keeps_the_prefetches_of_a_row_its_hook_put_on_it(settings):
    """An update reads again the relations prefetched onto its row and the rows it holds
    (aad2813), but the walk followed every forward relation cached on the row, so a row a
    hook put there (the request's user, as the owner) lost its prefetches too: the user's
    groups, read before the write, were read again by whatever asked after it. Only the
    relations a lookup of the resource goes through are followed (0717312)."""
    user = UserFactory()
    article = Article.objects.create(slug="s", title="t")
    _UserGroupsReader.seen.clear()
    with mounted_site(settings, "st", StampedArticleResource):
        url = f"/st/stamped-articles/{article.pk}/"
        response = client_for(user).patch(url, {"title": "x"}, format="json")
    assert response.status_code == 200, response.content
    assert Article.objects.get(pk=article.pk).owner_id == user.pk
    assert _UserGroupsReader.seen == [0]


class AuthorOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Author
        fields = ["id", "name"]


class BookWithAuthorDetailSerializer(serializers.ModelSerializer):
    """A nested serializer for output (required, as DRF declares one by default) and a list."""

    author_detail = AuthorOutSerializer(source="author")
    reviewers = serializers.ListField(child=serializers.CharField(), source="review_names")

    class Meta:
        model = Book
        fields = ["id", "title", "isbn", "author", "author_detail", "reviewers"]


class BookWithAuthorDetailResource(Resource):
    model = Book
    name = "books-with-author-detail"
    serializer_class = BookWithAuthorDetailSerializer
    read_only_fields = ["author_detail", "reviewers"]
    permissions = PUBLIC
    cache = False


@pytest.mark.django_db
def test_read_only_fields_make_a_serializer_classs_nested_and_list_fields_read_only(
    settings, monkeypatch
):
    """``read_only_fields`` naming a ``serializer_class``'s nested serializer or list field
    made the cached prototype read-only, but each serializer's copy of such a field (a deep
    copy, which DRF rebuilds from the constructor's arguments) was writable again: a nested
    serializer DRF declares required made every create 400 "This field is required." (and
    sending it 403 ``FIELD_WRITE_DENIED``)."""
    monkeypatch.setattr(Book, "review_names", property(lambda book: []), raising=False)
    author = AuthorFactory(name="Ann")
    body = {"title": "T", "isbn": "RO-1", "author": author.pk}
    with mounted_site(settings, "rod", BookWithAuthorDetailResource):
        for isbn in ("RO-1", "RO-2"):  # the first serializer and a copy of its prototype
            created = client_for(None).post(
                "/rod/books-with-author-detail/", {**body, "isbn": isbn}, format="json"
            )
            assert created.status_code == 201, created.content
            assert created.json()["data"]["author_detail"] == {"id": author.pk, "name": "Ann"}
            assert created.json()["data"]["reviewers"] == []
