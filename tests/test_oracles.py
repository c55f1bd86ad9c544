"""Side channels: what a caller can tell about rows it may not see from the answers it gets.

A relation in a write body is narrowed to the caller's tenant (``MultiTenant.related_queryset``)
so that another tenant's row answers exactly as a row that does not exist. These tests pin
that narrowing where the related model's tenant column reads the organization by another
field than the resource's own (``ForeignKey(Organization, to_field="slug")``)."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Case, Q, Value, When
from django.http import Http404
from django.urls import clear_url_caches, include
from django.urls import path as url_path
from django.utils.timezone import now
from rest_framework import exceptions as drf_exceptions
from rest_framework import permissions as drf
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.routers import SimpleRouter
from rest_framework.test import APIClient

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import permissions as P
from django_arc.exceptions import ArcError, as_arc_error
from django_arc.exceptions import NotFound as ArcNotFound
from django_arc.presets.base import Preset
from shop.models import Membership, Page, Product
from tests.factories import AuthorFactory, MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Article, Book, SlugLedger

pytestmark = pytest.mark.django_db

MEMBERS = {key: P.require_org_membership() for key in ("list", "get", "create", "update")}


class LedgerInput(serializers.Serializer):
    ledger = serializers.PrimaryKeyRelatedField(queryset=SlugLedger.objects.all())


class ProductInput(serializers.Serializer):
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())


class OracleProductResource(Resource):
    """Tenant column ``organization`` → ``Organization.id``; an action naming a ledger,
    whose tenant column reads the organization's slug."""

    model = Product
    name = "products"
    fields = ["id", "name", "organization"]
    presets = [presets.MultiTenant()]
    permissions = MEMBERS
    action_permissions = P.require_org_membership()

    @action(input=LedgerInput)
    def file(self, request, instance, data):
        return {"ledger": data["ledger"].pk}


class OracleLedgerResource(Resource):
    """Tenant column ``organization`` → ``Organization.slug``; an action naming a product,
    whose tenant column reads the organization's id."""

    model = SlugLedger
    name = "ledgers"
    fields = ["id", "name", "organization"]
    presets = [presets.MultiTenant()]
    permissions = MEMBERS
    action_permissions = P.require_org_membership()

    @action(input=ProductInput)
    def stock(self, request, instance, data):
        return {"product": data["product"].pk}


class PageInput(serializers.Serializer):
    page = serializers.PrimaryKeyRelatedField(queryset=Page.objects.all())


class OracleBookResource(Resource):
    """A context dimension, ``published`` (a date), on a model whose related ``Page`` has a
    ``published`` column of another type (a boolean)."""

    model = Book
    name = "books"
    fields = ["id", "title", "published"]
    presets = [
        presets.MultiTenant(
            tenant_fields=[{"field": "published", "type": "context", "context_key": "day"}]
        )
    ]
    permissions = {key: P.require_auth() for key in MEMBERS}
    action_permissions = P.require_auth()

    @action(input=PageInput)
    def cite(self, request, instance, data):
        return {"page": data["page"].pk}


site = ResourceSite(name="oracles")
site.register(OracleProductResource)
site.register(OracleLedgerResource)
site.register(OracleBookResource)


def slug_or_id_resolver(user, org_id):
    """A ``MEMBERSHIP_RESOLVER`` reading the organization header as its id or its slug."""
    rows = Membership.objects.filter(user_id=user.pk)
    if str(org_id).isdigit():
        rows = rows.filter(organization_id=int(org_id))
    else:
        rows = rows.filter(organization__slug=org_id)
    return list(rows.values_list("role", flat=True)) or None


@pytest.fixture
def oracle_api(settings):
    settings.ARC = {**settings.ARC, "MEMBERSHIP_RESOLVER": f"{__name__}.slug_or_id_resolver"}
    with site_mounted(settings, "oracles", site):
        yield


def _error(response, *replacements):
    body = response.json()
    body.pop("requestId", None)
    text = repr(body)
    for old, new in replacements:
        text = text.replace(str(old), new)
    return response.status_code, text


#: a detail route's writes of a row: method, path (``{}``: the row's id), body
DETAIL_WRITES = [
    ("patch", "/{}/", {"title": "x"}),
    ("delete", "/{}/", None),
    ("post", "/{}/action/", {"action": "bump"}),
]


def _hidden_as_missing_readable_refused(api, base, hidden, shown, writes=DETAIL_WRITES, code=None):
    """Each write of ``hidden`` (a row the caller may not read) answers exactly as one of a
    missing id (404); the same write of ``shown`` (a row it reads) keeps its 403 (``code``
    when given)."""
    missing = 99999999
    for method, path_, body in writes:
        theirs = getattr(api, method)(base + path_.format(hidden.pk), body, format="json")
        absent = getattr(api, method)(base + path_.format(missing), body, format="json")
        assert theirs.status_code == 404, (method, theirs.json())
        assert _error(theirs, (hidden.pk, "N")) == _error(absent, (missing, "N")), method
        readable = getattr(api, method)(base + path_.format(shown.pk), body, format="json")
        assert readable.status_code == 403, (method, readable.json())
        if code is not None:
            assert readable.json()["code"] == code, method


def test_a_body_relation_to_a_tenant_column_on_another_field_stays_in_the_tenant(oracle_api):
    """The related model's tenant column holds the organization's slug, the resource's its
    id: the narrowing compares organizations, not the two columns' raw values. Before, a
    member of organization 7 was offered the rows of the organization *slugged* "7" (another
    tenant) and refused its own."""
    mine = OrganizationFactory(slug="mine")
    other = OrganizationFactory()
    other.slug = str(mine.pk)  # another tenant's slug spells this tenant's id
    other.save()
    user = MembershipFactory(organization=mine, role="admin").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(mine.pk))
    product = ProductFactory(organization=mine)
    own = SlugLedger.objects.create(organization=mine, name="own")
    theirs = SlugLedger.objects.create(organization=other, name="theirs")
    url = f"/oracles/products/{product.pk}/action/"

    r = api.post(url, {"action": "file", "ledger": own.pk}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["data"] == {"ledger": own.pk}

    refused = api.post(url, {"action": "file", "ledger": theirs.pk}, format="json")
    missing = api.post(url, {"action": "file", "ledger": 99999999}, format="json")
    assert refused.status_code == 400, refused.json()
    assert _error(refused, (f'"{theirs.pk}"', '"N"')) == _error(missing, ('"99999999"', '"N"'))


def test_a_body_relation_from_a_slug_tenant_to_an_id_tenant_stays_in_the_tenant(oracle_api):
    """The other way round: the resource reads the header as the slug, the related model's
    tenant column holds the id. Before, the slug was compared with the id column: a 500
    (PostgreSQL, SQLite: no row ever matched)."""
    mine, other = OrganizationFactory(slug="mine"), OrganizationFactory(slug="other")
    user = MembershipFactory(organization=mine, role="admin").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID="mine")
    ledger = SlugLedger.objects.create(organization=mine, name="own")
    own, theirs = ProductFactory(organization=mine), ProductFactory(organization=other)
    url = f"/oracles/ledgers/{ledger.pk}/action/"

    r = api.post(url, {"action": "stock", "product": own.pk}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["data"] == {"product": own.pk}

    refused = api.post(url, {"action": "stock", "product": theirs.pk}, format="json")
    missing = api.post(url, {"action": "stock", "product": 99999999}, format="json")
    assert refused.status_code == 400, refused.json()
    assert _error(refused, (f'"{theirs.pk}"', '"N"')) == _error(missing, ('"99999999"', '"N"'))


def test_a_body_relation_to_a_same_named_context_column_of_another_type_is_no_500(oracle_api):
    """A context value the related column cannot hold (a date against a boolean column)
    matches no related row: 400 "does not exist" under the relation, as for a missing id.
    Before, the comparison failed in the query: a 400 under ``non_field_errors`` quoting the
    context value, whatever the id named."""
    book = Book.objects.create(title="t", isbn="1", published="2024-05-01", author=AuthorFactory())
    page = Page.objects.create(organization=OrganizationFactory(), slug="p", title="p")
    api = client_for(MembershipFactory().user, HTTP_X_ARC_CONTEXT_DAY="2024-05-01")
    url = f"/oracles/books/{book.pk}/action/"
    refused = api.post(url, {"action": "cite", "page": page.pk}, format="json")
    missing = api.post(url, {"action": "cite", "page": 99999999}, format="json")
    assert refused.status_code == 400, refused.json()
    assert list(refused.json()["details"]) == ["page"], refused.json()
    assert _error(refused, (f'"{page.pk}"', '"N"')) == _error(missing, ('"99999999"', '"N"'))


# -- OwnedBy on rows the caller cannot read ----------------------------------------------------


class PrivateArticleResource(Resource):
    """Owners read only their own rows (``require_owner``); any signed-in user may write,
    ``OwnedBy`` keeping the rows to their owners: the combination OwnedBy's docs suggest."""

    model = Article
    name = "private-articles"
    fields = ["id", "slug", "title", "views", "owner"]
    presets = [presets.OwnedBy(), presets.SoftDelete(), presets.Bulk()]
    permissions = {
        "list": P.require_owner(),
        "get": P.require_owner(),
        "create": P.require_auth(),
        "update": P.require_auth(),
        "delete": P.require_auth(),
    }
    action_permissions = P.require_auth()
    filter_fields = {"title": ["eq"]}

    @action
    def bump(self, request, instance, data):
        instance.views += 1
        instance.save(update_fields=["views"])
        return instance


class SharedArticleResource(PrivateArticleResource):
    """Everyone signed in reads every row: a stranger's write is the owner's 403."""

    name = "shared-articles"
    permissions = {key: P.require_auth() for key in ("list", "get", "create", "update", "delete")}


def unlocked(request, resource, action, obj=None):
    """An object rule of the project's: a row titled "locked" is not written."""
    return obj is None or obj.title != "locked"


class RuledArticleResource(Resource):
    """Reads narrowed by ``require_owner``; writes judged by an object rule alone."""

    model = Article
    name = "ruled-articles"
    fields = ["id", "slug", "title", "owner"]
    permissions = {
        "list": P.require_owner(),
        "get": P.require_owner(),
        "update": P.all_of(P.require_auth(), unlocked),
    }


site.register(PrivateArticleResource)
site.register(SharedArticleResource)
site.register(RuledArticleResource)


def test_a_row_the_caller_cannot_read_is_404_on_every_write_not_ownership_denied(oracle_api):
    """``OwnedBy`` refuses a stranger's write with 403 ``OWNERSHIP_DENIED``: right for a row
    the stranger may read, an existence oracle for one its ``get`` permission hides. Such a
    row is now the 404 of a missing id, byte for byte (bulk: its "Not found."), on update,
    delete, action, restore; before, each was 403 where a missing id was 404."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    api = client_for(stranger)
    live = Article.objects.create(owner=owner, slug="live", title="t")
    trashed = Article.objects.create(owner=owner, slug="gone", title="t", deleted_at=now())
    missing = 99999999
    base = "/oracles/private-articles"

    def both(method, path, body, row):
        theirs = getattr(api, method)(path.format(row.pk), body, format="json")
        absent = getattr(api, method)(path.format(missing), body, format="json")
        return _error(theirs, (row.pk, "N")), _error(absent, (missing, "N"))

    for method, path, body, row in [
        ("get", base + "/{}/", None, live),
        ("patch", base + "/{}/", {"title": "x"}, live),
        ("put", base + "/{}/", {"slug": "x", "title": "x"}, live),
        ("delete", base + "/{}/", None, live),
        ("post", base + "/{}/action/", {"action": "bump"}, live),
        ("post", base + "/{}/restore/", None, trashed),
    ]:
        theirs, absent = both(method, path, body, row)
        assert theirs == absent, (method, path)
        assert theirs[0] == 404, (method, path, theirs)
    r = api.patch(f"{base}/bulk/", {"items": [{"id": live.pk, "title": "x"}]}, format="json")
    assert r.status_code == 400 and r.json()["details"] == {"items": {"0": {"id": ["Not found."]}}}
    r = api.delete(f"{base}/bulk/", {"ids": [live.pk]}, format="json")
    assert r.status_code == 400 and r.json()["details"] == {"ids": {"0": {"id": ["Not found."]}}}
    theirs = api.delete(f"{base}/bulk/", {"ids": [live.pk, live.pk]}, format="json")
    absent = api.delete(f"{base}/bulk/", {"ids": [missing, missing]}, format="json")
    assert _error(theirs) == _error(absent)  # both "Not found.", not "Given twice."
    # a filter matches only rows the caller may read: nothing here
    r = api.patch(
        f"{base}/bulk/", {"filter": {"title": "t"}, "data": {"title": "x"}}, format="json"
    )
    assert r.status_code == 200 and r.json()["data"] == {"updated": 0, "ids": []}, r.json()
    live.refresh_from_db()
    trashed.refresh_from_db()
    assert (live.title, live.views, live.deleted_at) == ("t", 0, None)
    assert trashed.deleted_at is not None


def test_a_row_the_caller_may_read_keeps_ownership_denied(oracle_api):
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    api = client_for(stranger)
    row = Article.objects.create(owner=owner, slug="s", title="t")
    base = "/oracles/shared-articles"
    assert api.get(f"{base}/{row.pk}/").status_code == 200
    r = api.patch(f"{base}/{row.pk}/", {"title": "x"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED"
    r = api.patch(f"{base}/bulk/", {"items": [{"id": row.pk, "title": "x"}]}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED"
    r = api.patch(
        f"{base}/bulk/", {"filter": {"title": "t"}, "data": {"title": "x"}}, format="json"
    )
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED"
    own = client_for(owner).patch(f"{base}/{row.pk}/", {"title": "mine"}, format="json")
    assert own.status_code == 200


def test_an_object_rule_refusing_a_write_the_caller_cannot_read_is_404(oracle_api):
    """The same for a permission's own object check: 403 ``FORBIDDEN`` for a row the caller
    reads, the 404 of a missing id for one its ``get`` hides (before: 403 for both)."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    row = Article.objects.create(owner=owner, slug="s", title="locked")
    url, missing = "/oracles/ruled-articles/{}/", 99999999
    api = client_for(stranger)
    theirs = api.patch(url.format(row.pk), {"title": "x"}, format="json")
    absent = api.patch(url.format(missing), {"title": "x"}, format="json")
    assert theirs.status_code == 404, theirs.json()
    assert _error(theirs, (row.pk, "N")) == _error(absent, (missing, "N"))
    own = client_for(owner).patch(url.format(row.pk), {"title": "x"}, format="json")
    assert own.status_code == 403 and own.json()["code"] == "FORBIDDEN"
    row.refresh_from_db()
    assert row.title == "locked"


class IsOwnerOrReadOnly(drf.BasePermission):
    """DRF's tutorial permission: any safe method, otherwise the owner only."""

    def has_object_permission(self, request, view, obj):
        return request.method in drf.SAFE_METHODS or obj.owner_id == request.user.pk


class ReadAnyWriteOwn(drf.BasePermission):
    """The same judged by the ViewSet's action, as DRF's docs show it."""

    def has_object_permission(self, request, view, obj):
        return view.action in ("list", "retrieve") or obj.owner_id == request.user.pk


class DRFArticleResource(Resource):
    """Every key judged by one DRF class that reads the request's method."""

    model = Article
    name = "drf-articles"
    fields = ["id", "slug", "title", "owner"]
    permissions = {key: IsOwnerOrReadOnly for key in ("list", "get", "update", "delete")}


def shown_only(request, resource, action, obj=None):
    """Rows whose annotated ``shown`` is true (``get_queryset`` annotates it)."""
    return P.PermissionResult(True, filters={"shown": True})


class AnnotatedArticleResource(Resource):
    """Reads filtered on an annotation of ``get_queryset``; writes kept to owners."""

    model = Article
    name = "annotated-articles"
    fields = ["id", "slug", "title", "owner"]
    presets = [presets.OwnedBy()]
    permissions = {"list": shown_only, "get": shown_only, "update": P.require_auth()}

    def get_queryset(self, request):
        shown = Case(When(title="shown", then=Value(True)), default=Value(False))
        return super().get_queryset(request).annotate(shown=shown)


site.register(DRFArticleResource)


class ActionJudgedArticleResource(DRFArticleResource):
    name = "action-judged-articles"
    permissions = {key: ReadAnyWriteOwn for key in ("list", "get", "update", "delete")}


site.register(ActionJudgedArticleResource)
site.register(AnnotatedArticleResource)


def test_a_write_refused_on_a_row_a_method_judging_permission_lets_the_caller_read_is_403(
    oracle_api,
):
    """Whether the caller may read the row is asked as a GET asks it. Before, the ``get``
    permission was asked with the write's own request: DRF's ``IsOwnerOrReadOnly``, which
    grants any safe method, refused the PATCH's, so a row the caller had just read with a
    200 was answered 404 Not Found; a class judging by ``view.action`` likewise."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    row = Article.objects.create(owner=owner, slug="s", title="t")
    api = client_for(stranger)
    for name in ("drf-articles", "action-judged-articles"):  # by the method, by view.action
        url = f"/oracles/{name}/{row.pk}/"
        assert api.get(url).status_code == 200
        r = api.patch(url, {"title": "x"}, format="json")
        assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN", (name, r.json())
        assert api.delete(url).status_code == 403, name
        assert client_for(owner).patch(url, {"title": "x"}, format="json").status_code == 200


def test_a_read_filter_on_an_annotation_judges_a_refused_write_without_a_500(oracle_api):
    """The ``get`` permission's filters are applied where a GET applies them, to
    ``Resource.get_queryset()``. Before, they were applied to the bare table: a filter on
    what ``get_queryset`` annotates made every refused write a 500 (FieldError)."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    shown = Article.objects.create(owner=owner, slug="a", title="shown")
    hidden = Article.objects.create(owner=owner, slug="b", title="hidden")
    api, base = client_for(stranger), "/oracles/annotated-articles"
    assert api.get(f"{base}/{shown.pk}/").status_code == 200
    r = api.patch(f"{base}/{shown.pk}/", {"title": "x"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED", r.json()
    theirs = api.patch(f"{base}/{hidden.pk}/", {"title": "x"}, format="json")
    absent = api.patch(f"{base}/99999999/", {"title": "x"}, format="json")
    assert theirs.status_code == 404
    assert _error(theirs, (hidden.pk, "N")) == _error(absent, (99999999, "N"))


# -- what a GET reads besides the permission: a ViewSet subclass's, a preset's narrowing -------


class DraftsUnread(Preset):
    """A project's preset: drafts are written (by their owners) but never read."""

    name = "drafts_unread"

    def row_filter(self, view):
        return ~Q(title="draft") if view.action in ("list", "retrieve") else None


class DraftArticleResource(SharedArticleResource):
    name = "draft-articles"
    presets = [presets.OwnedBy(), presets.SoftDelete(), presets.Bulk(), DraftsUnread()]


site.register(DraftArticleResource)


def reader_viewsets():
    """``SharedArticleResource``'s ViewSet subclassed by a project to keep drafts from
    readers: by the request's method, by the view's action."""
    generated = SharedArticleResource.as_viewset()

    class ByMethod(generated):
        def get_queryset(self):
            rows = super().get_queryset()
            return rows.exclude(title="draft") if self.request.method == "GET" else rows

    class ByAction(generated):
        def get_queryset(self):
            rows = super().get_queryset()
            if self.action in ("list", "retrieve"):
                rows = rows.exclude(title="draft")
            return rows

    return {"by-method": ByMethod, "by-action": ByAction}


def _routed(settings, prefix, viewsets, basename):
    """Mount ``viewsets`` (``{url prefix: ViewSet}``) under ``/<prefix>/`` beside the
    project's URLconf, as a project's own router would (the fixtures below yield in it)."""
    router = SimpleRouter()
    for name, viewset in viewsets.items():
        router.register(name, viewset, basename=f"{basename}-{name}")
    urls = settings.ROOT_URLCONF
    settings.ROOT_URLCONF = type(
        "urls",
        (),
        {"urlpatterns": [*urls.urlpatterns, url_path(f"{prefix}/", include(router.urls))]},
    )
    clear_url_caches()


@pytest.fixture
def reader_routes(settings, oracle_api):
    """The oracle site, and each subclass under ``/x/<name>/``, routed as a project would."""
    _routed(settings, "x", reader_viewsets(), "readers")
    yield
    clear_url_caches()


@pytest.mark.parametrize("base", ["/x/by-method", "/x/by-action", "/oracles/draft-articles"])
def test_a_row_a_get_would_not_read_is_404_on_a_refused_write(reader_routes, base):
    """Whether the caller may read the row a write is refused on is asked of the rows a GET
    of it reads: a ViewSet subclass's ``get_queryset()`` and the presets' ``row_filter``
    included, under the GET's method and action. Before, only ``Resource.get_queryset()``
    and the ``get`` permission were asked: a draft a GET answers 404 for was 403
    ``OWNERSHIP_DENIED`` on a stranger's PATCH, DELETE or action, where a missing id is 404
    (bulk: an item's 403 beside a missing id's "Not found.")."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    draft = Article.objects.create(owner=owner, slug="d", title="draft")
    shown = Article.objects.create(owner=owner, slug="s", title="shown")
    api = client_for(stranger)
    assert api.get(f"{base}/{draft.pk}/").status_code == 404
    assert api.get(f"{base}/{shown.pk}/").status_code == 200
    _hidden_as_missing_readable_refused(api, base, draft, shown, code="OWNERSHIP_DENIED")
    r = api.patch(f"{base}/bulk/", {"items": [{"id": draft.pk, "title": "x"}]}, format="json")
    assert r.status_code == 400 and r.json()["details"] == {"items": {"0": {"id": ["Not found."]}}}
    # two rows: asked together (view.judged_rows), the same answer per row
    other = Article.objects.create(owner=owner, slug="d2", title="draft")
    items = [{"id": pk, "title": "x"} for pk in (draft.pk, other.pk)]
    r = api.patch(f"{base}/bulk/", {"items": items}, format="json")
    assert r.status_code == 400, r.json()
    assert r.json()["details"] == {"items": {str(i): {"id": ["Not found."]} for i in (0, 1)}}
    body = {"filter": {"title": "draft"}, "data": {"title": "x"}}  # matches no row it reads
    r = api.patch(f"{base}/bulk/", body, format="json")
    assert r.status_code == 200 and r.json()["data"] == {"updated": 0, "ids": []}, r.json()
    draft.refresh_from_db()
    assert (draft.title, draft.views, draft.deleted_at) == ("draft", 0, None)


def test_a_refused_restore_of_a_row_the_deleted_list_shows_keeps_its_403(oracle_api):
    """``SoftDelete``'s restore writes a deleted row, which its ``deleted`` list reads (a
    GET of the row does not): asked as a GET, the question still keeps the deleted rows,
    so a caller who may read the row is refused with the owner's 403, not a 404."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    trashed = Article.objects.create(owner=owner, slug="t", title="t", deleted_at=now())
    api, base = client_for(stranger), "/oracles/draft-articles"
    assert [row["id"] for row in api.get(f"{base}/deleted/").json()["docs"]] == [trashed.pk]
    r = api.post(f"{base}/{trashed.pk}/restore/", format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED", r.json()
    private = api.post(f"/oracles/private-articles/{trashed.pk}/restore/", format="json")
    assert private.status_code == 404


def test_whether_a_bulk_write_may_read_its_refused_rows_is_one_query(oracle_api):
    """A bulk write refused on rows the caller may not read asks which of them it may read
    once for the whole request: before, one query per refused row (a stranger's filter
    matching a hundred of an owner's rows cost a hundred and three statements to update
    none), now the same count for two rows as for twenty."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    owner, stranger = MembershipFactory().user, MembershipFactory().user
    api, base = client_for(stranger), "/oracles/private-articles"

    def counted(n):
        Article.objects.all().delete()
        ids = [Article.objects.create(owner=owner, slug=f"s{i}", title="t").pk for i in range(n)]
        answers, counts = [], []
        for method, body in [
            ("patch", {"filter": {"title": "t"}, "data": {"title": "x"}}),
            ("patch", {"items": [{"id": pk, "title": "x"} for pk in ids]}),
            ("delete", {"ids": ids}),
        ]:
            with CaptureQueriesContext(connection) as ctx:
                r = getattr(api, method)(f"{base}/bulk/", body, format="json")
            answers.append((r.status_code, r.json().get("data"), r.json().get("details")))
            counts.append(len(ctx.captured_queries))
        return answers, counts

    few, many = counted(2), counted(20)
    assert few[0][0] == many[0][0] == (200, {"updated": 0, "ids": []}, None)
    assert many[0][1:] == [
        (400, None, {"items": {str(i): {"id": ["Not found."]} for i in range(20)}}),
        (400, None, {"ids": {str(i): {"id": ["Not found."]} for i in range(20)}}),
    ]
    assert few[1] == many[1], (few[1], many[1])
    assert list(Article.objects.values_list("title", flat=True)) == ["t"] * 20


class LinkArticleResource(PrivateArticleResource):
    """Anyone signed in reads a row by its id (a shared link); lists show the caller's own."""

    name = "link-articles"
    permissions = {**PrivateArticleResource.permissions, "get": P.require_auth()}


site.register(LinkArticleResource)


def test_a_refused_restore_is_asked_as_the_deleted_list_reads_the_row(oracle_api):
    """A restore writes a deleted row, which only the ``deleted`` list reads, under the
    ``list`` permission. It was asked under the ``get`` permission: with ``get`` open and
    ``list`` kept to owners, a stranger's restore of a deleted row it reads nowhere (not in
    its ``deleted`` list, 404 on a GET) was 403 ``OWNERSHIP_DENIED`` where a missing id is
    404, telling the ids of other users' deleted rows. It is now asked as that list asks."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    trashed = Article.objects.create(owner=owner, slug="t", title="t", deleted_at=now())
    live = Article.objects.create(owner=owner, slug="l", title="t")
    api, base, missing = client_for(stranger), "/oracles/link-articles", 99999999
    assert api.get(f"{base}/deleted/").json()["docs"] == []
    assert api.get(f"{base}/{trashed.pk}/").status_code == 404
    theirs = api.post(f"{base}/{trashed.pk}/restore/", format="json")
    absent = api.post(f"{base}/{missing}/restore/", format="json")
    assert theirs.status_code == 404, theirs.json()
    assert _error(theirs, (trashed.pk, "N")) == _error(absent, (missing, "N"))
    # a live row it reads by its id keeps the owner's 403 on a write
    assert api.get(f"{base}/{live.pk}/").status_code == 200
    r = api.patch(f"{base}/{live.pk}/", {"title": "x"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED", r.json()
    trashed.refresh_from_db()
    assert trashed.deleted_at is not None


# -- what a GET asks before its rows: the presets' check_request, a ViewSet's get_object() -----


class ReadersNeedPass(Preset):
    """A project's preset: a GET (of a row, of a list) needs the ``X-Reader-Pass`` header;
    writes do not."""

    name = "readers_need_pass"

    def check_request(self, view):
        if view.request.method == "GET" and view.request.headers.get("X-Reader-Pass") != "yes":
            raise ArcError("PASS_REQUIRED", "Readers need a pass", 403)


class GatedArticleResource(SharedArticleResource):
    name = "gated-articles"
    presets = [presets.OwnedBy(), presets.SoftDelete(), presets.Bulk(), ReadersNeedPass()]


def members_of_the_header_org(request, resource, action, obj=None):
    """A project's ``get``/``list`` rule raising its own refusal: a caller who is no member
    of the organization its ``X-Reader-Org`` names is told so (a GET answers 403 ``NOT_A_MEMBER``
    whatever the id); members read that organization's rows."""
    org = request.headers.get("X-Reader-Org")
    if not Membership.objects.filter(user_id=request.user.pk, organization_id=org).exists():
        raise ArcError("NOT_A_MEMBER", "Not a member of this organization", 403)
    return P.PermissionResult(True, filters={"organization_id": org})


class MembersArticleResource(SharedArticleResource):
    name = "members-articles"
    permissions = {
        **SharedArticleResource.permissions,
        "list": members_of_the_header_org,
        "get": members_of_the_header_org,
    }


site.register(GatedArticleResource)
site.register(MembersArticleResource)


def _same_as_a_missing_id(api, base, row, trashed, missing=99999999):
    """Every write of ``row`` (and the restore of ``trashed``) answers as one of a missing
    id: the 404 of a row the caller may not read."""
    for method, path_, body, target in [
        ("patch", "/{}/", {"title": "x"}, row),
        ("delete", "/{}/", None, row),
        ("post", "/{}/action/", {"action": "bump"}, row),
        ("post", "/{}/restore/", None, trashed),
    ]:
        if target is None:
            continue
        theirs = getattr(api, method)(base + path_.format(target.pk), body, format="json")
        absent = getattr(api, method)(base + path_.format(missing), body, format="json")
        assert theirs.status_code == 404, (method, path_, theirs.json())
        assert _error(theirs, (target.pk, "N")) == _error(absent, (missing, "N")), (method, path_)


def test_a_refused_write_is_asked_whether_the_presets_check_request_lets_the_get_read(
    oracle_api,
):
    """Cross-owner: a stranger without the pass a GET needs (``check_request`` refuses
    every GET it sends) writing an owner's row. Before, ``may_read`` never ran the presets'
    ``check_request`` for the GET: the update, delete, action and restore of a row it may
    not read were 403 ``OWNERSHIP_DENIED`` where a missing id is 404. With the pass, it
    reads the rows, and keeps the owner's 403."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    row = Article.objects.create(owner=owner, slug="s", title="t")
    trashed = Article.objects.create(owner=owner, slug="g", title="t", deleted_at=now())
    base = "/oracles/gated-articles"
    api = client_for(stranger)
    assert api.get(f"{base}/{row.pk}/").json()["code"] == "PASS_REQUIRED"
    _same_as_a_missing_id(api, base, row, trashed)
    r = api.patch(f"{base}/bulk/", {"items": [{"id": row.pk, "title": "x"}]}, format="json")
    assert r.status_code == 400 and r.json()["details"] == {"items": {"0": {"id": ["Not found."]}}}
    passed = client_for(stranger, HTTP_X_READER_PASS="yes")
    assert passed.get(f"{base}/{row.pk}/").status_code == 200
    for method, path_, body in [
        ("patch", f"/{row.pk}/", {"title": "x"}),
        ("delete", f"/{row.pk}/", None),
        ("post", f"/{row.pk}/action/", {"action": "bump"}),
        ("post", f"/{trashed.pk}/restore/", None),
    ]:
        r = getattr(passed, method)(base + path_, body, format="json")
        assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED", (method, path_)
    row.refresh_from_db()
    trashed.refresh_from_db()
    assert (row.title, row.views, row.deleted_at) == ("t", 0, None)
    assert trashed.deleted_at is not None


def test_an_error_the_get_permission_raises_does_not_replace_a_refused_write(oracle_api):
    """Cross-tenant: the ``get`` rule raises its own 403 ``NOT_A_MEMBER`` for a caller of
    another organization. Before, that error, raised inside ``may_read``, replaced the
    write's refusal: an update, delete, action or restore of another organization's row
    answered 403 ``NOT_A_MEMBER`` where a missing id is 404. The GET it asks about is
    refused, so the row is one the caller may not read: the 404 of a missing id."""
    ours, theirs_org = OrganizationFactory(), OrganizationFactory()
    owner = MembershipFactory(organization=ours).user
    outsider = MembershipFactory(organization=theirs_org).user
    row = Article.objects.create(organization=ours, owner=owner, slug="s", title="t")
    trashed = Article.objects.create(
        organization=ours, owner=owner, slug="g", title="t", deleted_at=now()
    )
    base = "/oracles/members-articles"
    api = client_for(outsider, HTTP_X_READER_ORG=str(ours.pk))
    assert api.get(f"{base}/{row.pk}/").json()["code"] == "NOT_A_MEMBER"
    _same_as_a_missing_id(api, base, row, trashed)
    # a member of the row's organization reads it: a stranger's write keeps the owner's 403
    member = client_for(MembershipFactory(organization=ours).user, HTTP_X_READER_ORG=str(ours.pk))
    assert member.get(f"{base}/{row.pk}/").status_code == 200
    r = member.patch(f"{base}/{row.pk}/", {"title": "x"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED", r.json()
    row.refresh_from_db()
    assert (row.title, row.views, row.deleted_at) == ("t", 0, None)


def own_get_object_viewsets():
    """``SharedArticleResource``'s ViewSet subclassed by a project whose own ``get_object()``
    keeps rows to the caller's organization (the ``X-Organization-Id`` it is a member of):
    a row of another is the 404 of a missing one, on a GET as on a write."""
    generated = SharedArticleResource.as_viewset()

    class OwnOrganization(generated):
        def get_object(self):
            obj = super().get_object()
            org = self.request.headers.get("X-Organization-Id")
            member = Membership.objects.filter(user_id=self.request.user.pk, organization_id=org)
            if str(obj.organization_id) != org or not member.exists():
                raise NotFound("No such article.")
            return obj

    return {"own-organization": OwnOrganization}


@pytest.fixture
def own_get_object_routes(settings, oracle_api):
    _routed(settings, "x", own_get_object_viewsets(), "own")
    yield
    clear_url_caches()


def test_a_refused_write_is_asked_whether_the_viewsets_own_get_object_reads_the_row(
    own_get_object_routes,
):
    """Cross-tenant, through a ViewSet's own ``get_object()`` (DRF's seam for a lookup of
    the project's): a GET of another organization's row is its 404. Before, ``may_read``
    asked only the queryset and the permission: the ``OwnedBy`` refusal came first (inside
    ``super().get_object()``), so an update, delete or action of that row was 403
    ``OWNERSHIP_DENIED`` where a missing id is 404. A member of the row's organization
    keeps the owner's 403."""
    ours, theirs_org = OrganizationFactory(), OrganizationFactory()
    owner = MembershipFactory(organization=ours).user
    outsider = MembershipFactory(organization=theirs_org).user
    row = Article.objects.create(organization=ours, owner=owner, slug="s", title="t")
    base = "/x/own-organization"
    api = client_for(outsider, HTTP_X_ORGANIZATION_ID=str(theirs_org.pk))
    assert api.get(f"{base}/{row.pk}/").status_code == 404
    _same_as_a_missing_id(api, base, row, None)
    member = client_for(
        MembershipFactory(organization=ours).user, HTTP_X_ORGANIZATION_ID=str(ours.pk)
    )
    assert member.get(f"{base}/{row.pk}/").status_code == 200
    for method, body in [("patch", {"title": "x"}), ("delete", None)]:
        r = getattr(member, method)(f"{base}/{row.pk}/", body, format="json")
        assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED", (method, r.json())
    r = member.post(f"{base}/{row.pk}/action/", {"action": "bump"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED", r.json()
    row.refresh_from_db()
    assert (row.title, row.views, row.deleted_at) == ("t", 0, None)


class EmbargoedUnread(Preset):
    """A project's preset refusing a read of one row in ``check_object`` (the preset hook
    that judges one visible row): an embargoed row is a GET's 404, as if absent."""

    name = "embargoed_unread"

    def check_object(self, view, obj):
        from django_arc.exceptions import NotFound

        if view.request.method in ("GET", "HEAD") and obj.title == "embargoed":
            raise NotFound("embargoed")


class EmbargoedArticleResource(SharedArticleResource):
    name = "embargoed-articles"
    presets = [presets.OwnedBy(), presets.SoftDelete(), presets.Bulk(), EmbargoedUnread()]


site.register(EmbargoedArticleResource)


def test_a_row_a_presets_object_check_hides_from_a_get_is_404_on_a_refused_write(oracle_api):
    """A GET of a row is judged by every preset's ``check_object`` after the permission's:
    one refusing it (an embargoed row, 404 on a GET) keeps it from the caller as the
    permission's own check does. Whether a refused write's row is readable asked the
    permission alone: a stranger's PATCH, DELETE or action on an embargoed row was 403
    ``OWNERSHIP_DENIED`` where a missing id is 404 (bulk: the 403 beside "Not found.")."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    hidden = Article.objects.create(owner=owner, slug="e", title="embargoed")
    shown = Article.objects.create(owner=owner, slug="s", title="shown")
    api, base = client_for(stranger), "/oracles/embargoed-articles"
    assert api.get(f"{base}/{hidden.pk}/").status_code == 404
    assert api.get(f"{base}/{shown.pk}/").status_code == 200
    put = ("put", "/{}/", {"slug": "x", "title": "x"})
    _hidden_as_missing_readable_refused(api, base, hidden, shown, [*DETAIL_WRITES, put])
    for body in (
        {"items": [{"id": hidden.pk, "title": "x"}, {"id": shown.pk, "title": "x"}]},
        {"items": [{"id": hidden.pk, "title": "x"}]},
    ):
        r = api.patch(f"{base}/bulk/", body, format="json")
        assert r.status_code == 400, r.json()
        assert r.json()["details"]["items"]["0"] == {"id": ["Not found."]}, r.json()
    r = api.delete(f"{base}/bulk/", {"ids": [hidden.pk]}, format="json")
    assert r.status_code == 400 and r.json()["details"] == {"ids": {"0": {"id": ["Not found."]}}}
    body = {"filter": {"title": "embargoed"}, "data": {"title": "x"}}  # matches no row it reads
    r = api.patch(f"{base}/bulk/", body, format="json")
    assert r.status_code == 200 and r.json()["data"] == {"updated": 0, "ids": []}, r.json()
    hidden.refresh_from_db()
    assert (hidden.title, hidden.views, hidden.deleted_at) == ("embargoed", 0, None)


class ListClosedArticleResource(SharedArticleResource):
    """Rows read by their id, but the lists (the ``deleted`` one too) kept to admins."""

    name = "list-closed-articles"
    permissions = {**SharedArticleResource.permissions, "list": P.require_roles("admin")}


site.register(ListClosedArticleResource)


def test_a_refused_restore_under_a_list_permission_refusing_the_caller_is_404(oracle_api):
    """The ``deleted`` list's permission refusing the caller outright (not narrowing its
    rows) answers the question too: a restore of a deleted row it may list nowhere is the
    404 of a missing id, even though the ``get`` permission would let it read live rows."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    trashed = Article.objects.create(owner=owner, slug="t", title="t", deleted_at=now())
    api, base, missing = client_for(stranger), "/oracles/list-closed-articles", 99999999
    assert api.get(f"{base}/deleted/").status_code == 403
    theirs = api.post(f"{base}/{trashed.pk}/restore/", format="json")
    absent = api.post(f"{base}/{missing}/restore/", format="json")
    assert theirs.status_code == 404, theirs.json()
    assert _error(theirs, (trashed.pk, "N")) == _error(absent, (missing, "N"))
    trashed.refresh_from_db()
    assert trashed.deleted_at is not None


class UnlockedArticleResource(SharedArticleResource):
    """Reads judged by an object rule of the project's (``unlocked``): a GET of a locked row
    is refused; a list, which asks no object check, shows it."""

    name = "unlocked-articles"
    permissions = {
        **SharedArticleResource.permissions,
        "list": P.all_of(P.require_auth(), unlocked),
        "get": P.all_of(P.require_auth(), unlocked),
    }


site.register(UnlockedArticleResource)


def test_a_refused_write_asks_the_object_rule_of_a_get_and_none_of_a_list(oracle_api):
    """Whether the caller may read a refused write's row is asked as the route reading it
    asks: a GET runs the ``get`` permission's object rule (a locked row it may not read is
    the 404 of a missing id on a PATCH), a list runs none (a locked deleted row its
    ``deleted`` list shows keeps the owner's 403 on a restore)."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    locked = Article.objects.create(owner=owner, slug="l", title="locked")
    trashed = Article.objects.create(owner=owner, slug="d", title="locked", deleted_at=now())
    api, base, missing = client_for(stranger), "/oracles/unlocked-articles", 99999999
    assert api.get(f"{base}/{locked.pk}/").status_code == 403
    theirs = api.patch(f"{base}/{locked.pk}/", {"title": "x"}, format="json")
    absent = api.patch(f"{base}/{missing}/", {"title": "x"}, format="json")
    assert theirs.status_code == 404, theirs.json()
    assert _error(theirs, (locked.pk, "N")) == _error(absent, (missing, "N"))
    assert [row["id"] for row in api.get(f"{base}/deleted/").json()["docs"]] == [trashed.pk]
    r = api.post(f"{base}/{trashed.pk}/restore/", format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED", r.json()
    assert Article.objects.filter(title="locked", deleted_at__isnull=True).count() == 1


class ReadingRecorded(Preset):
    """Records what ``row_filter`` is told of the view (the preset contract's
    ``view.action`` and ``view.reading_for``)."""

    name = "reading_recorded"
    seen: list = []

    def row_filter(self, view):
        ReadingRecorded.seen.append((view.action, view.reading_for))
        return None


class RecordedArticleResource(SharedArticleResource):
    name = "recorded-articles"
    presets = [presets.OwnedBy(), presets.SoftDelete(), presets.Bulk(), ReadingRecorded()]


site.register(RecordedArticleResource)


def test_a_presets_row_filter_is_told_which_refused_write_asks(oracle_api):
    """docs/presets.md: while a write about to be refused asks whether the caller may read
    its row, ``view.action`` is the reading route and ``view.reading_for`` the write's
    action; ``None`` on every other call."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    live = Article.objects.create(owner=owner, slug="l", title="t")
    trashed = Article.objects.create(owner=owner, slug="d", title="t", deleted_at=now())
    api, base = client_for(stranger), "/oracles/recorded-articles"
    ReadingRecorded.seen.clear()
    r = api.patch(f"{base}/{live.pk}/", {"title": "x"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED", r.json()
    assert ReadingRecorded.seen == [("partial_update", None), ("retrieve", "partial_update")]
    ReadingRecorded.seen.clear()
    r = api.post(f"{base}/{trashed.pk}/restore/", format="json")
    assert r.status_code == 403, r.json()
    assert ReadingRecorded.seen == [("restore", None), ("deleted", "restore")]


# -- a preset refusing a write with DRF's or Django's own exception (rev-fixes19a) -------------


class DrfStyleOwnerOnly(Preset):
    """A project's preset written as DRF permissions are: a write by anyone but the owner
    raises ``PermissionDenied`` (DRF's, or Django's), the 403 DRF answers for it."""

    name = "drf_style_owner_only"

    def __init__(self, exception):
        self.exception = exception

    def check_object(self, view, obj):
        if view.request.method not in ("GET", "HEAD") and obj.owner_id != view.request.user.pk:
            raise self.exception("Only the owner may do this.")


def _drf_style_resource(name, exception):
    return type(
        f"{name.title().replace('-', '')}Resource",
        (SharedArticleResource,),
        {
            "name": name,
            "presets": [presets.Bulk(), EmbargoedUnread(), DrfStyleOwnerOnly(exception)],
        },
    )


site.register(_drf_style_resource("drf-denied-articles", drf_exceptions.PermissionDenied))
site.register(_drf_style_resource("django-denied-articles", DjangoPermissionDenied))


@pytest.mark.parametrize("name", ["drf-denied-articles", "django-denied-articles"])
def test_a_write_a_preset_refuses_with_drfs_or_djangos_403_is_404_on_a_row_it_may_not_read(
    oracle_api, name
):
    """``may_read`` takes any refusal a GET would answer (DRF's ``PermissionDenied``,
    Django's) as "may not read"; the write's own refusal was turned into the 404 of a
    missing row only when it was an ``ArcError``: a preset refusing a stranger's write with
    DRF's or Django's ``PermissionDenied`` (the 403 DRF answers for either) answered 403 on
    an embargoed row the stranger's GET answers 404 for, where a missing id is 404. A row
    the stranger may read keeps the 403."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    hidden = Article.objects.create(owner=owner, slug="e", title="embargoed")
    shown = Article.objects.create(owner=owner, slug="s", title="shown")
    api, base = client_for(stranger), f"/oracles/{name}"
    assert api.get(f"{base}/{hidden.pk}/").status_code == 404
    assert api.get(f"{base}/{shown.pk}/").status_code == 200
    _hidden_as_missing_readable_refused(api, base, hidden, shown)
    r = api.patch(f"{base}/bulk/", {"items": [{"id": hidden.pk, "title": "x"}]}, format="json")
    assert r.status_code == 400 and r.json()["details"] == {"items": {"0": {"id": ["Not found."]}}}
    hidden.refresh_from_db()
    assert (hidden.title, hidden.views) == ("embargoed", 0)


# -- a bulk write refused on a readable row: one per-item answer whatever the refusal (fix-seen3a)


ONLY_THE_OWNER = "Only the owner may do this."

#: what a project's preset may raise to refuse a stranger's write of a row, and the
#: ``ArcError`` arc answers the same with (the handler's code, message and status)
REFUSALS = {
    "arc-403": lambda: ArcError("FORBIDDEN", ONLY_THE_OWNER, 403),
    "drf-403": lambda: drf_exceptions.PermissionDenied(ONLY_THE_OWNER),
    "django-403": lambda: DjangoPermissionDenied(ONLY_THE_OWNER),
    "arc-401": lambda: ArcError("UNAUTHORIZED", ONLY_THE_OWNER, 401),
    "drf-401": lambda: drf_exceptions.NotAuthenticated(ONLY_THE_OWNER),
    "arc-404": lambda: ArcNotFound("not the caller's"),
    "arc-error-404": lambda: ArcError("NOT_YOURS", ONLY_THE_OWNER, 404),
    "drf-404": lambda: drf_exceptions.NotFound(ONLY_THE_OWNER),
    "django-404": lambda: Http404(ONLY_THE_OWNER),
    "arc-429": lambda: ArcError("SLOW_DOWN", ONLY_THE_OWNER, 429, None, {"Retry-After": "7"}),
    # the kinds the error handler answers with a status of their own (fix-seen4b)
    "arc-409": lambda: ArcError("ERROR", ONLY_THE_OWNER, 409),
    "drf-409": lambda: Conflict(ONLY_THE_OWNER),
    "arc-throttled": lambda: ArcError("THROTTLED", ONLY_THE_OWNER, 429),
    "drf-429": lambda: drf_exceptions.Throttled(None, ONLY_THE_OWNER),
    "drf-invalid": lambda: drf_exceptions.ValidationError({"title": [ONLY_THE_OWNER]}),
    "django-invalid": lambda: DjangoValidationError({"title": [ONLY_THE_OWNER]}),
    # a dict detail and a throttle's wait (rev-mutation5): kept, not "Request failed"
    "drf-400": lambda: drf_exceptions.ValidationError({"title": ["Locked by the owner."]}),
    "drf-429-wait": lambda: drf_exceptions.Throttled(wait=7),
}


class Conflict(drf_exceptions.APIException):
    """A project's own DRF exception of status 409 (the handler: ``ERROR``, its message)."""

    status_code = 409


class RefusingOthersWrites(Preset):
    """A project's preset refusing a write of anyone's row but the caller's own with
    ``REFUSALS[kind]`` (an embargoed row, too, is refused, but no GET reads it)."""

    name = "refusing_others_writes"

    def __init__(self, kind):
        self.kind = kind

    def check_object(self, view, obj):
        if view.request.method not in ("GET", "HEAD") and obj.owner_id != view.request.user.pk:
            raise REFUSALS[self.kind]()


def _refusing_resource(kind, tenant):
    """Cross-owner (``tenant=False``): everyone reads and writes every row, anonymous callers
    included. Cross-tenant: members read and write their organization's rows."""
    name = f"{'tenant' if tenant else 'owner'}-refused-{kind}"
    everyone = P.require_org_membership() if tenant else P.allow_public()
    return type(
        f"Refused{kind.title().replace('-', '')}{'Tenant' if tenant else 'Owner'}Resource",
        (Resource,),
        {
            "model": Article,
            "name": name,
            "fields": ["id", "slug", "title", "owner"],
            "presets": [
                *([presets.MultiTenant()] if tenant else []),
                presets.Bulk(),
                EmbargoedUnread(),
                RefusingOthersWrites(kind),
            ],
            "permissions": {k: everyone for k in ("list", "get", "update", "delete")},
            "filter_fields": {"title": ["eq", "in"]},
        },
    )


for _kind in REFUSALS:
    site.register(_refusing_resource(_kind, tenant=False))
    site.register(_refusing_resource(_kind, tenant=True))


def _bulk_answers(api, base, shown, hidden, theirs=None):
    """The answers of the bulk writes naming ``shown`` (a row the caller reads, refused),
    ``hidden`` (one it may not read), ``theirs`` (another tenant's) and a missing id."""
    missing = 99999999
    writes = [
        ("patch", {"items": [{"id": shown.pk, "title": "x"}]}),
        ("patch", {"items": [{"id": hidden.pk, "title": "x"}, {"id": shown.pk, "title": "x"}]}),
        ("patch", {"items": [{"id": shown.pk, "title": "x"}, {"id": missing, "title": "x"}]}),
        ("delete", {"ids": [shown.pk]}),
        ("delete", {"ids": [shown.pk, shown.pk]}),
        ("delete", {"ids": [hidden.pk]}),
        ("patch", {"filter": {"title": "shown"}, "data": {"title": "x"}}),
        ("patch", {"filter": {"title": "embargoed"}, "data": {"title": "x"}}),
    ]
    if theirs is not None:
        writes += [
            ("patch", {"items": [{"id": theirs.pk, "title": "x"}]}),
            ("delete", {"ids": [theirs.pk, shown.pk]}),
            ("patch", {"filter": {"title[in]": ["theirs", "shown"]}, "data": {"title": "x"}}),
        ]
    answers = []
    for method, body in writes:
        r = getattr(api, method)(f"{base}/bulk/", body, format="json")
        answers.append((method, body, *_error(r)) if r.status_code >= 400 else r.json())
    return answers


def _nothing_written(*rows):
    for row in rows:
        title = row.title
        row.refresh_from_db()
        assert (row.title, row.deleted_at) == (title, None), row


@pytest.mark.parametrize(
    ("kind", "reference"),
    [
        ("drf-403", "arc-403"),
        ("django-403", "arc-403"),
        ("drf-401", "arc-401"),
        ("drf-404", "arc-404"),
        ("django-404", "arc-404"),
    ],
)
def test_a_bulk_write_refused_on_a_readable_row_answers_per_item_whatever_the_refusal(
    oracle_api, kind, reference
):
    """Cross-owner. A preset refusing a write of another user's row with an ``ArcError``
    refuses the bulk item (403 listing each refused index, a row the caller may not read
    "Not found." as a missing id, a missing id's "Not found." first); raising DRF's or
    Django's ``PermissionDenied`` (or DRF's ``NotAuthenticated``) instead ended the whole
    request at the first such row, 403 with no item named — and so answered a batch naming
    a missing id after the refused row differently from one naming it before; DRF's
    ``NotFound``/Django's ``Http404`` ended it 404, where arc's ``NotFound`` is the item's
    "Not found.". Every kind now answers as the ``ArcError`` the handler makes of it, and
    nothing is written."""
    owner = MembershipFactory().user
    shown = Article.objects.create(owner=owner, slug="s", title="shown")
    hidden = Article.objects.create(owner=owner, slug="e", title="embargoed")
    caller = None if kind.endswith("401") else MembershipFactory().user
    api = client_for(caller)
    got = _bulk_answers(api, f"/oracles/owner-refused-{kind}", shown, hidden)
    expected = _bulk_answers(api, f"/oracles/owner-refused-{reference}", shown, hidden)
    assert got == expected
    if reference != "arc-404":
        status = int(reference[-3:])
        assert got[0][2] == status, got[0]
        assert got[0][3] == repr(
            {
                "success": False,
                "error": ONLY_THE_OWNER,
                "code": "FORBIDDEN" if status == 403 else "UNAUTHORIZED",
                "details": {
                    "items": {
                        "0": {
                            "code": "FORBIDDEN" if status == 403 else "UNAUTHORIZED",
                            "error": ONLY_THE_OWNER,
                        }
                    }
                },
            }
        )
    # the row the caller may not read is "Not found.", answered before any refusal
    assert got[1][2:] == (
        400,
        repr(
            {
                "success": False,
                "error": "Validation failed",
                "code": "VALIDATION_ERROR",
                "details": {
                    "items": {
                        "0": {"id": ["Not found."]},
                        **({"1": {"id": ["Not found."]}} if reference == "arc-404" else {}),
                    }
                },
            }
        ),
    ), got[1]
    _nothing_written(shown, hidden)


class RefusingOrFailing(Preset):
    """A project's preset refusing a stranger's write of a row (403), unless its backend
    is down for that row (``title == "broken"``: a 503, no refusal)."""

    name = "refusing_or_failing"

    def check_object(self, view, obj):
        if view.request.method in ("GET", "HEAD") or obj.owner_id == view.request.user.pk:
            return
        if obj.title == "broken":
            raise ArcError("UNAVAILABLE", "The ledger is down.", 503)
        raise ArcError("FORBIDDEN", ONLY_THE_OWNER, 403)


class RefusingOrFailingResource(Resource):
    model = Article
    name = "refused-or-failing"
    fields = ["id", "slug", "title", "owner"]
    presets = [presets.Bulk(), RefusingOrFailing()]
    permissions = {k: P.allow_public() for k in ("list", "get", "update", "delete")}
    filter_fields = {"title": ["eq", "in"]}


site.register(RefusingOrFailingResource)


def test_a_bulk_write_whose_object_check_fails_5xx_ends_with_that_error(oracle_api):
    """A 5xx an object check raises (an ``ArcError`` of status 503) is no refusal of the
    row: it ends the request as it is, as on a write of one row and a filter update
    (decisions.md: "a 5xx still ends the request as it is"). Listed among the items, a
    batch whose first row was refused answered that 403, naming the outage as an item's
    refusal; now it is the 503, with no item listed, and nothing is written."""
    owner = MembershipFactory().user
    refused = Article.objects.create(owner=owner, slug="r", title="refused")
    broken = Article.objects.create(owner=owner, slug="b", title="broken")
    api = client_for(MembershipFactory().user)
    base = "/oracles/refused-or-failing"
    expected = (
        503,
        repr({"success": False, "error": "The ledger is down.", "code": "UNAVAILABLE"}),
    )
    for method, path, body in [
        ("patch", f"/{broken.pk}/", {"title": "x"}),
        ("patch", "/bulk/", {"filter": {"title[in]": ["broken"]}, "data": {"title": "x"}}),
        ("patch", "/bulk/", {"items": [{"id": refused.pk, "title": "x"}, {"id": broken.pk}]}),
        ("delete", "/bulk/", {"ids": [refused.pk, broken.pk]}),
        ("delete", "/bulk/", {"ids": [broken.pk]}),
    ]:
        r = getattr(api, method)(base + path, body, format="json")
        assert _error(r) == expected, (method, path, body)
    _nothing_written(refused, broken)


def test_a_bulk_write_refused_per_item_keeps_the_refusals_headers(oracle_api):
    """An ``ArcError`` an object check raises with headers (a 429's ``Retry-After``) is
    answered with them on a write of one row and on a ``filter`` update (the request's
    answer is that error); listed per item (``items``, ``ids``) it lost them: a 429
    telling no client when to come back. The first refusal answers the request, its
    headers too."""
    owner = MembershipFactory().user
    shown = Article.objects.create(owner=owner, slug="s", title="shown")
    other = Article.objects.create(owner=owner, slug="o", title="other")
    api = client_for(MembershipFactory().user)
    base = "/oracles/owner-refused-arc-429"
    for method, path, body in [
        ("patch", f"/{shown.pk}/", {"title": "x"}),
        ("patch", "/bulk/", {"filter": {"title": "shown"}, "data": {"title": "x"}}),
        ("patch", "/bulk/", {"items": [{"id": shown.pk, "title": "x"}]}),
        ("delete", "/bulk/", {"ids": [shown.pk, other.pk]}),
    ]:
        r = getattr(api, method)(base + path, body, format="json")
        assert (r.status_code, r.json()["code"]) == (429, "SLOW_DOWN"), (method, path, r.json())
        assert r.get("Retry-After") == "7", (method, path)
        if "items" in body or "ids" in body:  # still listed per item, as any refusal
            listed = {"code": "SLOW_DOWN", "error": ONLY_THE_OWNER}
            key, indexes = ("items", "0") if "items" in body else ("ids", "01")
            assert r.json()["details"] == {key: dict.fromkeys(indexes, listed)}, r.json()
    _nothing_written(shown, other)


@pytest.mark.parametrize(
    ("kind", "single", "listed", "wait"),
    [
        (
            "drf-400",
            (400, "VALIDATION_ERROR", {"title": ["Locked by the owner."]}),
            (400, "VALIDATION_ERROR", {"title": ["Locked by the owner."]}),
            None,
        ),
        (
            "drf-429-wait",
            (429, "THROTTLED", None),
            (
                429,
                "THROTTLED",
                {
                    "code": "THROTTLED",
                    "error": "Request was throttled. Expected available in 7 seconds.",
                },
            ),
            "7",
        ),
    ],
)
def test_a_bulk_write_whose_object_check_raises_another_4xx_keeps_its_details_and_wait(
    oracle_api, kind, single, listed, wait
):
    """An object check raising DRF's ``ValidationError`` with a dict detail or a
    ``Throttled`` with a wait keeps what a write of one row answers: the fields of the
    validation error (listed under the item in bulk), the throttle's ``Retry-After`` (on the
    bulk answer too). Through ``as_arc_error`` alone a dict detail read "Request failed" and
    the wait was lost (rev-mutation5; the per-item rule is fix-seen4b's)."""
    owner = MembershipFactory().user
    shown = Article.objects.create(owner=owner, slug="s", title="shown")
    other = Article.objects.create(owner=owner, slug="o", title="other")
    api = client_for(MembershipFactory().user)
    base = f"/oracles/owner-refused-{kind}"
    r = api.patch(f"{base}/{shown.pk}/", {"title": "x"}, format="json")
    assert (r.status_code, r.json()["code"], r.json().get("details")) == single, r.json()
    assert r.get("Retry-After") == wait
    for body, key, indexes in [
        ({"items": [{"id": shown.pk, "title": "x"}]}, "items", "0"),
        ({"ids": [shown.pk, other.pk]}, "ids", "01"),
    ]:
        method = api.patch if key == "items" else api.delete
        r = method(f"{base}/bulk/", body, format="json")
        status, code, item = listed
        assert (r.status_code, r.json()["code"]) == (status, code), r.json()
        assert r.json()["details"] == {key: dict.fromkeys(indexes, item)}, r.json()
        assert r.get("Retry-After") == wait
    _nothing_written(shown, other)


def _listed(code, status, headers=None):
    """The answer of a bulk write whose item 0 is refused with ``code``/``status``."""
    return (
        status,
        repr(
            {
                "success": False,
                "error": ONLY_THE_OWNER,
                "code": code,
                "details": {"items": {"0": {"code": code, "error": ONLY_THE_OWNER}}},
            }
        ),
    )


INVALID_ITEM = (
    400,
    repr(
        {
            "success": False,
            "error": "Validation failed",
            "code": "VALIDATION_ERROR",
            "details": {"items": {"0": {"title": [ONLY_THE_OWNER]}}},
        }
    ),
)
HIDDEN_THEN_REFUSED = (
    400,
    repr(
        {
            "success": False,
            "error": "Validation failed",
            "code": "VALIDATION_ERROR",
            "details": {"items": {"0": {"id": ["Not found."]}}},
        }
    ),
)


@pytest.mark.parametrize("tenant", [False, True], ids=["cross-owner", "cross-tenant"])
@pytest.mark.parametrize(
    ("kind", "reference", "first"),
    [
        ("drf-409", "arc-409", _listed("ERROR", 409)),
        ("arc-409", "arc-409", _listed("ERROR", 409)),
        ("drf-429", "arc-throttled", _listed("THROTTLED", 429)),
        ("arc-error-404", "arc-error-404", _listed("NOT_YOURS", 404)),
        ("drf-invalid", "django-invalid", INVALID_ITEM),
    ],
)
def test_a_bulk_write_refused_with_any_4xx_lists_the_item_as_the_handler_answers_it(
    oracle_api, kind, reference, first, tenant
):
    """Cross-owner and cross-tenant. Every refusal an object check raises for one row is
    judged by the error handler's one mapping: listed under its index with the code,
    message and status a write of that one row answers (a validation error's fields as a
    serializer's are), and a row the caller may not read (an embargoed one; another
    tenant's) is a missing id's "Not found." whatever the refusal. An ``ArcError`` 409 was
    listed while DRF's ``APIException`` 409, DRF's ``Throttled`` or a ``ValidationError``
    ended the whole request naming no item, and a project's 404 ``ArcError`` of its own
    code was "Not found." where the write of one row answers that code. Nothing is
    written."""
    if tenant:
        ours, theirs_org = OrganizationFactory(), OrganizationFactory()
        owner = MembershipFactory(organization=ours).user
        caller = MembershipFactory(organization=ours).user
        api = client_for(caller, HTTP_X_ORGANIZATION_ID=str(ours.pk))
        made = {"organization": ours, "owner": owner}
        theirs = Article.objects.create(
            organization=theirs_org,
            owner=MembershipFactory(organization=theirs_org).user,
            slug="t",
            title="theirs",
        )
    else:
        made, theirs = {"owner": MembershipFactory().user}, None
        api = client_for(MembershipFactory().user)
    shown = Article.objects.create(slug="s", title="shown", **made)
    hidden = Article.objects.create(slug="e", title="embargoed", **made)
    prefix = "tenant" if tenant else "owner"
    got = _bulk_answers(api, f"/oracles/{prefix}-refused-{kind}", shown, hidden, theirs)
    expected = _bulk_answers(api, f"/oracles/{prefix}-refused-{reference}", shown, hidden, theirs)
    assert got == expected
    for index, key in ((0, "items"), (3, "ids")):  # items [shown]; ids [shown]
        assert got[index][2:] == (first[0], first[1].replace("items", key)), got[index]
    # the row the caller may not read is "Not found.", answered before any refusal, and a
    # write of it alone is a missing id's
    if first is INVALID_ITEM:  # one 400 lists the missing id and the invalid item
        assert got[1][2:] == (
            400,
            first[1].replace("'0'", "'1'").replace("{'1'", "{'0': {'id': ['Not found.']}, '1'"),
        ), got[1]
    else:
        assert got[1][2:] == HIDDEN_THEN_REFUSED, got[1]
    assert got[5][2:] == (
        400,
        HIDDEN_THEN_REFUSED[1].replace("items", "ids"),
    ), got[5]
    base = f"/oracles/{prefix}-refused-{kind}"
    assert _error(api.patch(f"{base}/{hidden.pk}/", {"title": "x"}, format="json")) == _error(
        api.patch(f"{base}/99999999/", {"title": "x"}, format="json")
    )
    if theirs is not None:
        assert got[8][2:] == HIDDEN_THEN_REFUSED, got[8]
    # the filter naming the readable row answers the write of one row's refusal
    one = api.patch(f"{base}/{shown.pk}/", {"title": "x"}, format="json")
    if first is INVALID_ITEM:
        assert got[6][2:] == (
            400,
            repr(
                {
                    "success": False,
                    "error": "Validation failed",
                    "code": "VALIDATION_ERROR",
                    "details": {"data": {"title": [ONLY_THE_OWNER]}},
                }
            ),
        )
        assert _error(one)[0] == 400
    else:
        assert got[6][2:] == _error(one) == (first[0], first[1].split(", 'details'")[0] + "}")
    _nothing_written(shown, hidden, *([theirs] if theirs else []))


class RetryAfterEachRow(Preset):
    """A project's preset refusing a stranger's write of a row 429 with a wait of its own
    (the row's slug, seconds), or 403 for a row titled ``forbidden``."""

    name = "retry_after_each_row"

    def check_object(self, view, obj):
        if view.request.method in ("GET", "HEAD") or obj.owner_id == view.request.user.pk:
            return
        if obj.title == "forbidden":
            raise ArcError("FORBIDDEN", ONLY_THE_OWNER, 403)
        if obj.title == "throttled":
            raise drf_exceptions.Throttled(int(obj.slug))
        raise ArcError("SLOW_DOWN", ONLY_THE_OWNER, 429, None, {"Retry-After": obj.slug})


class RetryAfterEachRowResource(Resource):
    model = Article
    name = "retry-after-each-row"
    fields = ["id", "slug", "title", "owner"]
    presets = [presets.Bulk(), RetryAfterEachRow()]
    permissions = {k: P.allow_public() for k in ("list", "get", "update", "delete")}


site.register(RetryAfterEachRowResource)


def test_a_bulk_write_refused_429_on_several_items_answers_the_longest_wait(oracle_api):
    """Several items refused 429, each with its own ``Retry-After``: the request answers
    the largest (no item may be retried before its own wait is over), whichever item comes
    first and whatever spelling the 429 has (DRF's ``Throttled``); the first refusal was
    the request's, a client retrying after 3 s refused again. A request answering 403 (its
    first refusal) names no wait."""
    owner = MembershipFactory().user
    rows = [
        Article.objects.create(owner=owner, slug=slug, title=title)
        for slug, title in [("3", "slow"), ("40", "throttled"), ("12", "slow"), ("9", "forbidden")]
    ]
    api = client_for(MembershipFactory().user)
    base = "/oracles/retry-after-each-row/bulk/"
    for method, body, status, wait in [
        ("delete", {"ids": [r.pk for r in rows[:3]]}, 429, "40"),
        ("delete", {"ids": [rows[2].pk, rows[0].pk]}, 429, "12"),
        ("patch", {"items": [{"id": r.pk, "title": "x"} for r in rows[:3]]}, 429, "40"),
        ("delete", {"ids": [rows[3].pk, rows[1].pk]}, 403, None),
    ]:
        r = getattr(api, method)(base, body, format="json")
        assert r.status_code == status, r.json()
        assert r.get("Retry-After") == wait, (body, r.get("Retry-After"))
    _nothing_written(*rows)


class RefusingHooksResource(Resource):
    """A project's hooks refusing a stranger's write of a row with ``REFUSALS[kind]``,
    the kind named by the body's ``title`` (``"x:<kind>"``) or, for deletes, the row's."""

    model = Article
    name = "refusing-hooks"
    fields = ["id", "slug", "title", "owner"]
    presets = [presets.Bulk()]
    permissions = {k: P.allow_public() for k in ("list", "get", "update", "delete")}
    filter_fields = {"title": ["eq", "in"]}

    def before_update(self, request, instance, data):
        if instance.owner_id != request.user.pk:
            raise REFUSALS[instance.title]()

    def before_delete(self, request, instance):
        if instance.owner_id != request.user.pk:
            raise REFUSALS[instance.title]()

    def after_update(self, request, instance):
        if instance.title == "refused after":
            raise Conflict(ONLY_THE_OWNER)

    def after_delete(self, request, instance):
        if instance.slug == "refused-after":
            raise Conflict(ONLY_THE_OWNER)


site.register(RefusingHooksResource)


def test_a_bulk_write_an_after_hook_refuses_lists_the_item_and_writes_nothing(oracle_api):
    """An ``after_update``/``after_delete`` hook refusing one row with DRF's 409 (after the
    batch's write) is listed under its index like any refusal, and the route's transaction
    leaves nothing written: not the other rows, not the refused one."""
    from django_arc.outbox import OutboxEvent

    owner = MembershipFactory().user
    first = Article.objects.create(owner=owner, slug="first", title="first")
    second = Article.objects.create(owner=owner, slug="refused-after", title="second")
    api = client_for(owner)
    base = "/oracles/refusing-hooks/bulk/"
    events = OutboxEvent.objects.count()
    r = api.patch(
        base,
        {"items": [{"id": first.pk, "title": "fine"}, {"id": second.pk, "title": "refused after"}]},
        format="json",
    )
    assert _error(r) == (
        409,
        repr(
            {
                "success": False,
                "error": ONLY_THE_OWNER,
                "code": "ERROR",
                "details": {"items": {"1": {"code": "ERROR", "error": ONLY_THE_OWNER}}},
            }
        ),
    )
    r = api.delete(base, {"ids": [first.pk, second.pk]}, format="json")
    assert _error(r)[0] == 409 and "'ids': {'1'" in _error(r)[1]
    _nothing_written(first, second)
    assert Article.objects.filter(pk__in=[first.pk, second.pk]).count() == 2
    assert OutboxEvent.objects.count() == events


@pytest.mark.parametrize(
    ("kind", "reference"),
    [
        ("drf-409", "arc-409"),
        ("drf-403", "arc-403"),
        ("django-403", "arc-403"),
        ("drf-429", "arc-throttled"),
        ("arc-error-404", "arc-error-404"),
    ],
)
def test_a_bulk_write_a_hook_refuses_lists_the_item_whatever_the_refusal(
    oracle_api, kind, reference
):
    """Cross-owner. A ``before_update``/``before_delete`` hook refusing a stranger's row is
    judged as an object check's refusal: listed under its index as the handler answers it,
    beside a validation error's listing. A hook's ``ValidationError`` was listed while any
    other refusal (an ``ArcError`` too) ended the whole request naming no item."""
    owner = MembershipFactory().user
    refused = Article.objects.create(owner=owner, slug="r", title=kind)
    like = Article.objects.create(owner=owner, slug="l", title=reference)
    api = client_for(MembershipFactory().user)
    base = "/oracles/refusing-hooks/bulk/"
    got = [
        _error(api.patch(base, {"items": [{"id": refused.pk}]}, format="json")),
        _error(api.delete(base, {"ids": [refused.pk]}, format="json")),
    ]
    expected = [
        _error(api.patch(base, {"items": [{"id": like.pk}]}, format="json")),
        _error(api.delete(base, {"ids": [like.pk]}, format="json")),
    ]
    assert got == expected
    code, status = as_arc_error(REFUSALS[reference]()).code, REFUSALS[reference]().status
    assert got[0] == _listed(code, status), got[0]
    assert got[1] == (status, _listed(code, status)[1].replace("items", "ids")), got[1]
    _nothing_written(refused, like)


@pytest.mark.parametrize(
    ("kind", "reference"),
    [("drf-403", "arc-403"), ("django-403", "arc-403"), ("drf-404", "arc-404")],
)
def test_a_bulk_write_refused_in_the_callers_tenant_answers_per_item_whatever_the_refusal(
    oracle_api, kind, reference
):
    """Cross-tenant: another organization's row is "Not found." (a missing id's answer,
    as any row outside the caller's tenant), and a row of its own organization a preset
    refuses with DRF's or Django's exception is the item refusal an ``ArcError`` gives."""
    ours, theirs_org = OrganizationFactory(), OrganizationFactory()
    owner = MembershipFactory(organization=ours).user
    shown = Article.objects.create(organization=ours, owner=owner, slug="s", title="shown")
    hidden = Article.objects.create(organization=ours, owner=owner, slug="e", title="embargoed")
    theirs = Article.objects.create(
        organization=theirs_org,
        owner=MembershipFactory(organization=theirs_org).user,
        slug="t",
        title="theirs",
    )
    member = MembershipFactory(organization=ours).user
    api = client_for(member, HTTP_X_ORGANIZATION_ID=str(ours.pk))
    got = _bulk_answers(api, f"/oracles/tenant-refused-{kind}", shown, hidden, theirs)
    expected = _bulk_answers(api, f"/oracles/tenant-refused-{reference}", shown, hidden, theirs)
    assert got == expected
    assert got[8][2:] == (
        400,
        repr(
            {
                "success": False,
                "error": "Validation failed",
                "code": "VALIDATION_ERROR",
                "details": {"items": {"0": {"id": ["Not found."]}}},
            }
        ),
    ), got[8]
    _nothing_written(shown, hidden, theirs)


# -- may_read leaves the view as it found it, an error raised while asking too (fix-seen3a) ----


def get_unless_outage(request, resource, action, obj=None):
    """A ``get`` rule whose backend is down when ``X-Outage`` is sent: a 503, no refusal."""
    if request.headers.get("X-Outage") == "500":  # DRF's APIException: 500 unless told
        raise drf_exceptions.APIException("The rules service failed")
    if request.headers.get("X-Outage"):
        raise ArcError("UPSTREAM_DOWN", "The rules service is down", 503)
    return True


class ProbingArticleResource(SharedArticleResource):
    """A list route judging the row its body names through the view's object checks, and
    answering what the view holds before and after (the caller's route, not the GET's)."""

    name = "probing-articles"
    permissions = {**SharedArticleResource.permissions, "get": get_unless_outage}

    @route("POST", "probe", permission_key="update")
    def probe(self, request, view):
        def held():
            return [
                view.request is request,
                view.request.method,
                view.action,
                view.arc_action,
                repr(view.permission_filters),
                view.reading_for,
            ]

        row = view.get_queryset().get(pk=request.data["row"])
        before = held()
        try:
            view.check_object_permissions(request, row)
            caught = None
        except ArcError as exc:
            caught = exc.code
        except drf_exceptions.APIException as exc:
            caught = exc.status_code
        return {"caught": caught, "before": before, "after": held()}


site.register(ProbingArticleResource)


def test_asking_whether_a_refused_row_is_readable_leaves_the_view_as_it_was(oracle_api):
    """``may_read`` asks as a GET would: the view's ``request``, ``action``, ``arc_action``,
    ``permission_filters`` and ``reading_for`` are the GET's meanwhile, and are the route's
    again after it, whether it answered (the owner's 403) or raised (a 503 of the ``get``
    rule, which propagates: no refusal, and so does DRF's bare ``APIException``, a 500) — as
    a route catching that error sees them."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    row = Article.objects.create(owner=owner, slug="s", title="t")
    base = "/oracles/probing-articles/probe/"
    for headers, caught in [
        ({}, "OWNERSHIP_DENIED"),
        ({"HTTP_X_OUTAGE": "1"}, "UPSTREAM_DOWN"),
        ({"HTTP_X_OUTAGE": "500"}, 500),  # a 500 is no refusal either
    ]:
        r = client_for(stranger, **headers).post(base, {"row": row.pk}, format="json")
        assert r.status_code == 200, r.json()
        answer = r.json()["data"]
        assert answer["caught"] == caught
        assert answer["before"] == answer["after"] == [True, "POST", "probe", None, "None", None]


# -- a refused bulk write asks the request-level part of the GET once (fix-seen3a) -------------


class GetsCounted(Preset):
    """Counts the ``check_request`` calls made for a GET (the question ``may_read`` asks)."""

    name = "gets_counted"
    gets = 0

    def check_request(self, view):
        if view.request.method == "GET":
            GetsCounted.gets += 1


def members_read_the_header_orgs_rows(request, resource, action, obj=None):
    """``members_of_the_header_org`` asked of the request only: a row is judged by the
    filters the request's answer narrows the rows by (no query per row)."""
    return True if obj is not None else members_of_the_header_org(request, resource, action)


class CountedMembersArticleResource(MembersArticleResource):
    name = "counted-members-articles"
    presets = [*MembersArticleResource.presets, GetsCounted()]
    permissions = {
        **MembersArticleResource.permissions,
        "list": members_read_the_header_orgs_rows,
        "get": members_read_the_header_orgs_rows,
    }


site.register(CountedMembersArticleResource)


def test_a_refused_bulk_write_asks_the_gets_permission_and_check_request_once(oracle_api):
    """Whether the caller may read the rows a bulk write is refused on asked the ``get``
    permission (here a membership query) and every preset's ``check_request`` again for
    each refused row, though neither depends on the row: a member's bulk write of twenty of
    another member's rows ran twenty membership queries and twenty ``check_request`` for
    the one GET it asks about, and so did an outsider's (refused by the ``get`` rule's own
    403 each time). Now once per request, the answers unchanged: a member reads the rows
    (each the owner's 403), an outsider does not (each "Not found.", as a missing id)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ours, theirs_org = OrganizationFactory(), OrganizationFactory()
    owner = MembershipFactory(organization=ours).user
    member = client_for(MembershipFactory(organization=ours).user, HTTP_X_READER_ORG=str(ours.pk))
    outsider = client_for(
        MembershipFactory(organization=theirs_org).user, HTTP_X_READER_ORG=str(ours.pk)
    )
    base = "/oracles/counted-members-articles/bulk/"

    def counted(n):
        Article.objects.all().delete()
        ids = [
            Article.objects.create(organization=ours, owner=owner, slug=f"s{i}", title="t").pk
            for i in range(n)
        ]
        answers, costs = [], []
        for api in (member, outsider):
            for method, body in [
                ("patch", {"items": [{"id": pk, "title": "x"} for pk in ids]}),
                ("delete", {"ids": ids}),
                ("patch", {"filter": {"title": "t"}, "data": {"title": "x"}}),
            ]:
                GetsCounted.gets = 0
                with CaptureQueriesContext(connection) as ctx:
                    r = getattr(api, method)(base, body, format="json")
                answers.append((r.status_code, r.json().get("code"), r.json().get("details")))
                costs.append((len(ctx.captured_queries), GetsCounted.gets))
        return answers, costs

    few, many = counted(2), counted(20)
    refused = {"code": "OWNERSHIP_DENIED", "error": "Only the owner may do this"}
    assert many[0] == [
        (403, "OWNERSHIP_DENIED", {"items": {str(i): refused for i in range(20)}}),
        (403, "OWNERSHIP_DENIED", {"ids": {str(i): refused for i in range(20)}}),
        (403, "OWNERSHIP_DENIED", None),
        (400, "VALIDATION_ERROR", {"items": {str(i): {"id": ["Not found."]} for i in range(20)}}),
        (400, "VALIDATION_ERROR", {"ids": {str(i): {"id": ["Not found."]} for i in range(20)}}),
        (200, None, None),
    ], many[0]
    assert few[1] == many[1], (few[1], many[1])
    # the member's GET asked once; the outsider's refused by the get rule, before any preset
    assert [gets for _, gets in many[1]] == [1, 1, 1, 0, 0, 0], many[1]
    assert list(Article.objects.values_list("title", flat=True)) == ["t"] * 20


# -- a detail route judging a second row, through a ViewSet's own get_object (rev-fixes19a) ----


class AdoptingArticleResource(SharedArticleResource):
    """A detail route writing a second row the body names (``/{id}/adopt/``, ``{"other":
    id}``): the row is read through the view and judged by its object checks, as
    docs/actions-and-routes.md asks ("rows only through the view")."""

    name = "adopting-articles"

    @route("POST", "adopt", detail=True, permission_key="update")
    def adopt(self, request, instance, view):
        other = view.get_queryset().filter(pk=request.data.get("other")).first()
        if other is None:
            raise NotFound("No such article.")
        view.check_object_permissions(request, other)
        other.title = instance.title
        other.save(update_fields=["title"])
        return other


site.register(AdoptingArticleResource)


class OwnLookupAdopting(AdoptingArticleResource.as_viewset()):
    """A project's ViewSet with a ``get_object()`` of its own (here DRF's idiom, logging
    around ``super()``)."""

    def get_object(self):
        return super().get_object()


@pytest.fixture
def own_lookup_adopting_routes(settings, oracle_api):
    _routed(settings, "y", {"adopting": OwnLookupAdopting}, "own-lookup")
    yield
    clear_url_caches()


@pytest.mark.parametrize("base", ["/oracles/adopting-articles", "/y/adopting"])
def test_a_second_row_a_detail_route_judges_keeps_its_403_when_readable(
    own_lookup_adopting_routes, base
):
    """A detail route judging a second row (the body's ``other``) through the view's
    ``check_object_permissions``: a stranger may read the owner's row (reads are open), so
    ``OwnedBy``'s 403 stands. Through a ViewSet with its own ``get_object()``, whether the
    caller may read that row was asked of ``get_object()`` — the URL's row, the stranger's
    own — and its primary key compared: another row, so "may not read", and the stranger's
    write of a row it reads answered 404 (a missing row). The URL's row is asked of
    ``get_object()`` only when it is the row judged."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    mine = Article.objects.create(owner=stranger, slug="m", title="mine")
    theirs = Article.objects.create(owner=owner, slug="t", title="theirs")
    api = client_for(stranger)
    assert api.get(f"/oracles/adopting-articles/{theirs.pk}/").status_code == 200
    r = api.post(f"{base}/{mine.pk}/adopt/", {"other": theirs.pk}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED", r.json()
    theirs.refresh_from_db()
    assert theirs.title == "theirs"
    own = Article.objects.create(owner=stranger, slug="o", title="own")
    r = api.post(f"{base}/{mine.pk}/adopt/", {"other": own.pk}, format="json")
    assert r.status_code == 200, r.json()


class AnonymousWritesRefused(Preset):
    """A project's preset refusing an anonymous caller's write of a row with DRF's
    ``NotAuthenticated`` (401), as DRF's ``permission_denied()`` does for one."""

    name = "anonymous_writes_refused"

    def check_object(self, view, obj):
        if view.request.method not in ("GET", "HEAD") and not view.request.user.is_authenticated:
            raise drf_exceptions.NotAuthenticated()


class PublicArticleResource(Resource):
    """Everyone reads and writes, anonymous callers included, but an embargoed row is no
    GET's and a preset refuses an anonymous write of any row it judges."""

    model = Article
    name = "public-articles"
    fields = ["id", "slug", "title", "owner"]
    presets = [EmbargoedUnread(), AnonymousWritesRefused()]
    permissions = {key: P.allow_public() for key in ("list", "get", "update", "delete")}


site.register(PublicArticleResource)


def test_an_anonymous_write_a_preset_refuses_401_is_404_on_a_row_it_may_not_read(oracle_api):
    """Only a 403 of the object check was judged against ``may_read``: a preset refusing an
    anonymous write with DRF's ``NotAuthenticated`` answered 401 on an embargoed row the
    anonymous GET answers 404 for, where a missing id is 404 — the row's existence told
    to a caller who never signed in. A row the anonymous caller may read keeps the 401."""
    owner = MembershipFactory().user
    hidden = Article.objects.create(owner=owner, slug="e", title="embargoed")
    shown = Article.objects.create(owner=owner, slug="s", title="shown")
    api, base, missing = APIClient(), "/oracles/public-articles", 99999999
    assert api.get(f"{base}/{hidden.pk}/").status_code == 404
    assert api.get(f"{base}/{shown.pk}/").status_code == 200
    for method, body in [("patch", {"title": "x"}), ("delete", None)]:
        theirs = getattr(api, method)(f"{base}/{hidden.pk}/", body, format="json")
        absent = getattr(api, method)(f"{base}/{missing}/", body, format="json")
        assert theirs.status_code == 404, (method, theirs.json())
        assert _error(theirs, (hidden.pk, "N")) == _error(absent, (missing, "N")), method
        readable = getattr(api, method)(f"{base}/{shown.pk}/", body, format="json")
        assert readable.status_code == 401, (method, readable.json())
        assert readable.json()["code"] == "UNAUTHORIZED"
    hidden.refresh_from_db()
    shown.refresh_from_db()
    assert (hidden.title, shown.title) == ("embargoed", "shown")


class RefusingCreateHooksResource(Resource):
    """A project's ``before_create``/``after_create`` refusing an item with
    ``REFUSALS[kind]``, the kind named by the body's ``title`` (``"after:<kind>"`` for the
    hook after the write)."""

    model = Article
    name = "refusing-create-hooks"
    fields = ["id", "slug", "title"]
    presets = [presets.Bulk()]
    permissions = {"create": P.allow_public()}

    def before_create(self, request, data):
        if data.get("title") in REFUSALS:
            raise REFUSALS[data["title"]]()

    def after_create(self, request, instance):
        if instance.title.startswith("after:"):
            raise REFUSALS[instance.title.removeprefix("after:")]()


site.register(RefusingCreateHooksResource)


@pytest.mark.parametrize("kind", ["arc-404", "drf-404", "django-404"])
@pytest.mark.parametrize("when", ["", "after:"])
def test_a_bulk_create_a_hook_answers_404_lists_the_item_as_a_create_of_it_answers(
    oracle_api, kind, when
):
    """A create item has no id to be missing: a ``before_create``/``after_create`` hook
    raising a 404 (arc's, DRF's ``NotFound``, Django's ``Http404``: a row the body names
    that the project does not find) refuses the item as a create of that item alone answers
    (``NOT_FOUND``, its message, 404), listed under its index as any other refusal. It was
    the 400 ``{"items": {"1": {"id": ["Not found."]}}}``, naming an ``id`` the item never
    had, where the create of that item alone answers 404."""
    base = "/oracles/refusing-create-hooks/"
    single = client_for(MembershipFactory().user).post(
        base, {"slug": "one", "title": when + kind}, format="json"
    )
    assert single.status_code == 404, single.content
    answer = single.json()
    items = [{"slug": "fine", "title": "fine"}, {"slug": "two", "title": when + kind}]
    r = client_for(MembershipFactory().user).post(f"{base}bulk/", {"items": items}, format="json")
    assert _error(r) == (
        404,
        repr(
            {
                "success": False,
                "error": answer["error"],
                "code": "NOT_FOUND",
                "details": {"items": {"1": {"code": "NOT_FOUND", "error": answer["error"]}}},
            }
        ),
    )
    assert not Article.objects.filter(slug__in=["one", "fine", "two"]).exists()


class ReadersNeedAValidPass(Preset):
    """A GET without a well-formed pass is refused with Django's ``ValidationError`` (the
    handler's 400, ``X-Reader-Pass`` named), from ``check_request`` or, with ``on_row``,
    from ``check_object``: refusals the handler answers as DRF's ``ValidationError``."""

    def __init__(self, on_row=False):
        self.on_row = on_row

    def _check(self, view):
        if view.request.method == "GET" and view.request.headers.get("X-Reader-Pass") != "yes":
            raise DjangoValidationError({"X-Reader-Pass": ["Readers need a valid pass."]})

    def check_request(self, view):
        if not self.on_row:
            self._check(view)

    def check_object(self, view, obj):
        if self.on_row:
            self._check(view)


class ValidPassArticleResource(SharedArticleResource):
    name = "valid-pass-articles"
    presets = [presets.OwnedBy(), presets.SoftDelete(), presets.Bulk(), ReadersNeedAValidPass()]


class ValidPassOnRowArticleResource(SharedArticleResource):
    name = "valid-pass-row-articles"
    presets = [
        presets.OwnedBy(),
        presets.SoftDelete(),
        presets.Bulk(),
        ReadersNeedAValidPass(on_row=True),
    ]


site.register(ValidPassArticleResource)
site.register(ValidPassOnRowArticleResource)


@pytest.mark.parametrize("name", ["valid-pass-articles", "valid-pass-row-articles"])
def test_a_get_refused_with_djangos_validation_error_does_not_replace_a_refused_write(
    oracle_api, name
):
    """Cross-owner: the GET a refused write asks about is refused with Django's
    ``ValidationError`` (a 400 the handler answers, as DRF's), from a preset's
    ``check_request`` or its ``check_object``. ``may_read`` took DRF's ``ValidationError``
    as "may not read" but let Django's propagate: that GET's 400 replaced the write's
    refusal (update, delete, action, restore; a bulk write ended the same 400), where a
    missing id answers 404. It is a refusal like any other: the 404 of a missing id. With
    the pass, the stranger reads the row and keeps the owner's 403."""
    owner, stranger = MembershipFactory().user, MembershipFactory().user
    row = Article.objects.create(owner=owner, slug="s", title="t")
    trashed = Article.objects.create(owner=owner, slug="g", title="t", deleted_at=now())
    base = f"/oracles/{name}"
    api = client_for(stranger)
    assert api.get(f"{base}/{row.pk}/").status_code == 400
    on_row = name == "valid-pass-row-articles"
    # a restore is asked as the deleted list reads, which asks no object check: with the
    # check_object refusal the stranger reads the deleted row there, and keeps the 403
    _same_as_a_missing_id(api, base, row, None if on_row else trashed)
    if on_row:
        assert api.post(f"{base}/{trashed.pk}/restore/").status_code == 403
    r = api.patch(f"{base}/bulk/", {"items": [{"id": row.pk, "title": "x"}]}, format="json")
    assert r.status_code == 400 and r.json()["details"] == {"items": {"0": {"id": ["Not found."]}}}
    passed = client_for(stranger, HTTP_X_READER_PASS="yes")
    assert passed.get(f"{base}/{row.pk}/").status_code == 200
    r = passed.patch(f"{base}/{row.pk}/", {"title": "x"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED", r.json()
    row.refresh_from_db()
    assert (row.title, row.views, row.deleted_at) == ("t", 0, None)


def test_a_bulk_write_refused_429_with_http_dates_answers_the_latest_wait(oracle_api):
    """A ``Retry-After`` may be an HTTP date (RFC 9110) as well as seconds: the largest wait
    is compared in seconds from now, so a date ten minutes ahead outwaits "30", "30"
    outwaits a date already past, and a value that is neither is never the answer.
    Untested, the dates could be read as no wait at all with every test green."""
    from django.utils.http import http_date

    owner = MembershipFactory().user
    ahead, past = http_date(time.time() + 600), http_date(time.time() - 600)
    rows = {
        wait: Article.objects.create(owner=owner, slug=wait, title="slow")
        for wait in ("30", ahead, past, "soon")
    }
    api = client_for(MembershipFactory().user)
    base = "/oracles/retry-after-each-row/bulk/"
    for waits, expected in [
        (["30", ahead], ahead),
        ([ahead, "30"], ahead),
        ([past, "30"], "30"),
        (["soon", past, "30"], "30"),
    ]:
        r = api.delete(base, {"ids": [rows[w].pk for w in waits]}, format="json")
        assert r.status_code == 429, r.json()
        assert r.get("Retry-After") == expected, (waits, r.get("Retry-After"))
    _nothing_written(*rows.values())


class FailingOthersWrites(Preset):
    """A project's preset whose backend fails on a stranger's write: DRF's bare
    ``APIException``, a 500 (no refusal)."""

    name = "failing_others_writes"

    def check_object(self, view, obj):
        if view.request.method not in ("GET", "HEAD") and obj.owner_id != view.request.user.pk:
            raise drf_exceptions.APIException("The ledger is down.")


class FailingOthersWritesResource(Resource):
    model = Article
    name = "failing-others-writes"
    fields = ["id", "slug", "title", "owner"]
    presets = [presets.Bulk(), EmbargoedUnread(), FailingOthersWrites()]
    permissions = {k: P.allow_public() for k in ("list", "get", "update", "delete")}


site.register(FailingOthersWritesResource)


def test_a_500_an_object_check_raises_on_a_row_the_caller_may_not_read_stays_a_500(oracle_api):
    """A 500 (DRF's bare ``APIException``) is no refusal, on a row the caller reads or not:
    it is the answer, never the 404 of a missing row, nor a bulk item's refusal (a bound of
    ``<= 500`` made it the one on an unreadable row, ``> 500`` the other, each with every
    test green, mutation round 6)."""
    owner = MembershipFactory().user
    embargoed = Article.objects.create(owner=owner, slug="e", title="embargoed")
    shown = Article.objects.create(owner=owner, slug="s", title="shown")
    api = client_for(MembershipFactory().user)
    base = "/oracles/failing-others-writes"
    assert api.get(f"{base}/{embargoed.pk}/").status_code == 404  # may not read it
    for row in (embargoed, shown):
        r = api.patch(f"{base}/{row.pk}/", {"title": "x"}, format="json")
        assert r.status_code == 500, (row.title, r.json())
        assert r.json()["error"] == "The ledger is down."
    r = api.patch(f"{base}/bulk/", {"items": [{"id": shown.pk, "title": "x"}]}, format="json")
    assert r.status_code == 500 and "details" not in r.json(), r.json()
    _nothing_written(embargoed, shown)


def test_a_projects_not_found_on_an_unreadable_row_is_answered_as_raised(oracle_api, caplog):
    """A write refused with a 404 ``NOT_FOUND`` (arc's ``NotFound``) is a missing row's
    answer already: it is raised as it is, its reason logged, without asking whether the
    caller may read the row (dropping that rule replaced it with the "not readable" 404,
    same body, with every test green, mutation round 6)."""
    import logging

    owner = MembershipFactory().user
    embargoed = Article.objects.create(owner=owner, slug="e", title="embargoed")
    api = client_for(MembershipFactory().user)
    caplog.set_level(logging.INFO, logger="django_arc")
    r = api.patch(f"/oracles/owner-refused-arc-404/{embargoed.pk}/", {"title": "x"}, format="json")
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    reasons = [m.getMessage() for m in caplog.records if m.getMessage().startswith("404 for")]
    assert reasons == [f"404 for /oracles/owner-refused-arc-404/{embargoed.pk}/: not the caller's"]
    _nothing_written(embargoed)


class ChallengingOthersWrites(Preset):
    """A project's preset refusing a stranger's write 401 with its challenge header."""

    name = "challenging_others_writes"

    def check_object(self, view, obj):
        if view.request.method not in ("GET", "HEAD") and obj.owner_id != view.request.user.pk:
            raise ArcError(
                "UNAUTHORIZED", ONLY_THE_OWNER, 401, None, {"WWW-Authenticate": 'Bearer realm="x"'}
            )


class ChallengingOthersWritesResource(Resource):
    model = Article
    name = "challenging-others-writes"
    fields = ["id", "slug", "title", "owner"]
    presets = [presets.Bulk(), ChallengingOthersWrites()]
    permissions = {k: P.allow_public() for k in ("list", "get", "update", "delete")}


site.register(ChallengingOthersWritesResource)


def test_a_bulk_write_refused_per_item_keeps_a_header_other_than_retry_after(oracle_api):
    """The first refusal's headers are the batch answer's, not only the ``Retry-After``
    the items' waits set again: a 401's ``WWW-Authenticate`` (dropping the first's headers
    passed every test, mutation round 6)."""
    owner = MembershipFactory().user
    row = Article.objects.create(owner=owner, slug="c", title="challenged")
    api = client_for(MembershipFactory().user)
    base = "/oracles/challenging-others-writes"
    for method, path, body in [
        ("patch", f"/{row.pk}/", {"title": "x"}),
        ("patch", "/bulk/", {"items": [{"id": row.pk, "title": "x"}]}),
        ("delete", "/bulk/", {"ids": [row.pk]}),
    ]:
        r = getattr(api, method)(base + path, body, format="json")
        assert r.status_code == 401, (path, r.json())
        assert r.get("WWW-Authenticate") == 'Bearer realm="x"', (method, path)
    _nothing_written(row)
