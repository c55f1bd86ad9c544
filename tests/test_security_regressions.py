"""Attacks on the paths that read and write rows, by a caller of one tenant (or one role)
against what it may not see: each pins an answer that reveals nothing."""

import base64
import json
import types

import pytest
from django.http import QueryDict
from django.test import override_settings

from django_arc import Resource, presets, redis_alias
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.exceptions import ArcError
from django_arc.filters import QueryLanguageFilter
from shop.models import Product
from tests.factories import (
    AuthorFactory,
    OrganizationFactory,
    ProductFactory,
    UserFactory,
    member_client,
)
from tests.helpers import client_for
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.test_extension_points import mounted_site
from tests.testapp.models import Article, Book, Dog

pytestmark = pytest.mark.django_db

MEMBERS = P.require_org_membership()


def _cursor(value):
    padded = value + "=" * (-len(value) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def _forged(sort_key, values):
    raw = json.dumps({"s": sort_key, "v": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class ByCostProducts(Resource):
    """Listed by margin by default: a ``visible_to`` field in ``default_sort``."""

    model = Product
    name = "by-cost-products"
    fields = ["id", "name", "sku", "cost", "secret_notes", "organization"]
    sort_fields = ["name"]
    default_sort = "-cost"
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {"list": MEMBERS, "get": MEMBERS}
    field_permissions = {
        "cost": F.visible_to("admin"),
        "secret_notes": F.hidden(),
        "sku": F.redact_for("viewer"),
    }


class BySecretProducts(ByCostProducts):
    name = "by-secret-products"
    default_sort = "secret_notes"


class BySkuProducts(ByCostProducts):
    name = "by-sku-products"
    default_sort = "sku"


def test_a_keyset_cursor_never_carries_a_default_sort_value_the_caller_cannot_read(settings):
    """``default_sort`` is trusted configuration and may name a field some callers may not
    read. A keyset page's ``next`` cursor is readable base64 JSON of the last row's sort
    values: an editor paging ``?after=`` read every product's ``cost`` (``visible_to``) out
    of the cursors, a viewer the real ``sku`` it sees masked, anyone the ``hidden()``
    notes; and a forged cursor filtered on the value (``cost`` below a guess), an oracle.
    Such a list is not cursor-paged for that caller (400, without naming the field); a
    caller who may read the field still is."""
    org = OrganizationFactory()
    for i in range(3):
        ProductFactory(organization=org, cost=10 + i, sku=f"REAL-{i}", secret_notes=f"s{i}")
    editor, viewer = member_client(org, "editor"), member_client(org, "viewer")
    admin = member_client(org, "admin")
    for client, prefix in [
        (editor, "by-cost"),
        (viewer, "by-sku"),
        (editor, "by-secret"),
        (admin, "by-secret"),
    ]:
        with mounted_site(settings, "sec", ByCostProducts, BySecretProducts, BySkuProducts):
            r = client.get(f"/sec/{prefix}-products/?after=&limit=1")
            assert r.status_code == 400, (prefix, r.json())
            body = r.json()
            assert body["code"] == "INVALID_QUERY"
            text = json.dumps(body)
            assert "cost" not in text and "secret" not in text and "sku" not in text, body
            # a forged cursor is no oracle either
            forged = _forged("", ["11", 1])
            r = client.get(f"/sec/{prefix}-products/?after={forged}&limit=1")
            assert r.status_code == 400, prefix
            # offset pages still work (the ordering is the project's to choose)
            assert client.get(f"/sec/{prefix}-products/").status_code == 200
    with mounted_site(settings, "sec", ByCostProducts, BySecretProducts, BySkuProducts):
        r = admin.get("/sec/by-cost-products/?after=&limit=1")
        assert r.status_code == 200, r.json()
        assert _cursor(r.json()["next"])["v"][0] == "12.00"
        # the editor may sort (and page) by a field it may read
        r = editor.get("/sec/by-cost-products/?sort=name&after=&limit=1")
        assert r.status_code == 200
        assert r.json()["next"] is not None


class OwnerByColumnArticles(Resource):
    """The owner only admins see, yet listed in the query rules by its column name."""

    model = Article
    name = "owner-column-articles"
    fields = ["id", "title", "owner", "organization"]
    filter_fields = {"owner_id": ["eq", "in"], "title": ["eq"]}
    sort_fields = ["owner_id", "title"]
    default_sort = "owner_id"
    presets = [presets.MultiTenant()]
    permissions = {"list": MEMBERS, "get": MEMBERS}
    field_permissions = {"owner": F.visible_to("admin")}


class HiddenOwnerByColumnArticles(OwnerByColumnArticles):
    name = "hidden-owner-column-articles"
    field_permissions = {"owner": F.hidden()}


def test_a_foreign_key_named_by_its_column_is_judged_by_its_field_permission(settings):
    """Field permissions name a foreign key by its field (``owner``); ``filter_fields`` and
    ``sort_fields`` may name it by its column (``owner_id``). The guard compared the
    parameter's root with the permission's name, so ``?owner_id=5`` and ``?sort=owner_id``
    passed for a viewer who may not read ``owner`` (``visible_to``) and for everyone where
    ``owner`` is ``hidden()``: 1 row or 0 told who owns what. Both are now the 400 of a
    field that is not filterable, and the cursor of a default sort by it is refused."""
    org = OrganizationFactory()
    alice = UserFactory()
    Article.objects.create(organization=org, owner=alice, slug="s", title="t")
    viewer, admin = member_client(org, "viewer"), member_client(org, "admin")
    with mounted_site(settings, "sec", OwnerByColumnArticles, HiddenOwnerByColumnArticles):
        for client, name in [
            (viewer, "owner-column-articles"),
            (viewer, "hidden-owner-column-articles"),
            (admin, "hidden-owner-column-articles"),
        ]:
            for query in (f"owner_id={alice.pk}", f"owner_id[in]={alice.pk}", "sort=owner_id"):
                r = client.get(f"/sec/{name}/?{query}")
                assert r.status_code == 400, (name, query, r.json())
                assert r.json()["code"] == "INVALID_QUERY"
                assert "not allowed" in next(iter(r.json()["details"].values()))
            assert client.get(f"/sec/{name}/?after=").status_code == 400
            assert client.get(f"/sec/{name}/?title=t").json()["total"] == 1
        # a caller who may read the owner may filter and sort by it
        r = admin.get(f"/sec/owner-column-articles/?owner_id={alice.pk}&sort=-owner_id&after=")
        assert r.status_code == 200, r.json()
        assert [d["owner"] for d in r.json()["docs"]] == [alice.pk]


def test_unique_values_are_per_tenant_so_a_collision_reveals_no_other_tenant():
    """A product's ``sku`` is unique per organization: a value another tenant uses is free
    for this one on create, update and bulk create (201/200, not the 409 of a collision),
    so the answer says nothing about the other tenant's rows; a collision inside the
    tenant is the 409 ``CONFLICT`` whose message names no value."""
    a, b = OrganizationFactory(), OrganizationFactory()
    ProductFactory(organization=b, sku="THEIRS-1")
    ProductFactory(organization=b, sku="THEIRS-2")
    ProductFactory(organization=b, sku="THEIRS-3")
    mine = ProductFactory(organization=a, sku="MINE")
    other = ProductFactory(organization=a, sku="OTHER")
    admin = member_client(a, "admin")
    body = {"name": "n", "sku": "THEIRS-1", "price": "1"}
    assert admin.post("/api/t-products/", body, format="json").status_code == 201
    r = admin.patch(f"/api/t-products/{mine.pk}/", {"sku": "THEIRS-2"}, format="json")
    assert r.status_code == 200
    items = [{"name": "n", "sku": "THEIRS-3", "price": "1"}]
    assert (
        admin.post("/api/idem-products/bulk/", {"items": items}, format="json").status_code == 201
    )
    r = admin.patch(f"/api/t-products/{other.pk}/", {"sku": "THEIRS-2"}, format="json")
    assert r.status_code == 409
    assert "THEIRS" not in r.content.decode()
    assert Product.objects.filter(organization=b).count() == 3


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_x_cache_shows_that_another_tenant_wrote_but_never_what():
    """Invalidation is per resource, not per organization (docs/query-cache.md): a write in
    tenant B retires tenant A's entries too, so A's next read is not a ``HIT``. ``X-Cache``
    thereby tells A *that* some tenant wrote to the resource (a documented trade-off), never
    what: A's answer is byte for byte the same."""
    caches = caches_with("redis", REDIS_URL)
    with (
        override_settings(CACHES=caches),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
    ):
        redis_alias.reset_outage_warnings()
        a, b = OrganizationFactory(), OrganizationFactory()
        ProductFactory(organization=a, name="A0")
        theirs = ProductFactory(organization=b, name="B0")
        viewer, other_admin = member_client(a, "viewer"), member_client(b, "admin")
        first = viewer.get("/api/cached-products/")
        again = viewer.get("/api/cached-products/")
        assert (first["X-Cache"], again["X-Cache"]) == ("MISS", "HIT")
        r = other_admin.patch(
            f"/api/cached-products/{theirs.pk}/", {"name": "B0 renamed"}, format="json"
        )
        assert r.status_code == 200
        after = viewer.get("/api/cached-products/")
        assert after["X-Cache"] != "HIT"
        assert after.content == first.content


def test_bulk_routes_neither_reach_nor_reveal_another_tenants_rows():
    """Bulk by items, by filter and delete, from tenant A at tenant B's rows: an id of B's
    is the indexed "Not found." of an id that never existed, a filter matches none of B's
    rows, a body naming B as the tenant is refused, and nothing of B's changes."""
    a, b = OrganizationFactory(), OrganizationFactory()
    theirs = ProductFactory(organization=b, name="theirs", price=5)
    mine = ProductFactory(organization=a, name="mine", price=5)
    admin = member_client(a, "admin")
    url = "/api/idem-products/bulk/"

    def details(r):
        assert r.status_code == 400, r.content
        return r.json()["details"]

    missing = 2**40
    for body, method in [
        ({"items": [{"id": theirs.pk, "name": "x"}]}, "patch"),
        ({"ids": [theirs.pk]}, "delete"),
    ]:
        key = "items" if "items" in body else "ids"
        ghost = {"items": [{"id": missing, "name": "x"}]} if key == "items" else {"ids": [missing]}
        assert details(getattr(admin, method)(url, body, format="json")) == details(
            getattr(admin, method)(url, ghost, format="json")
        )
    r = admin.patch(url, {"filter": {"name[contains]": "theirs"}, "data": {"price": "9"}}, "json")
    assert r.status_code == 200 and r.json()["data"] == {"updated": 0, "ids": []}
    item = {"name": "n", "sku": "S", "price": "1", "organization": b.pk}
    r = admin.post(url, {"items": [item]}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "FIELD_WRITE_DENIED"
    r = admin.patch(url, {"items": [{"id": mine.pk, "organization": b.pk}]}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "FIELD_WRITE_DENIED"
    r = admin.patch(
        url, {"filter": {"name[contains]": "mine"}, "data": {"organization": b.pk}}, "json"
    )
    assert r.status_code == 403 and r.json()["code"] == "FIELD_WRITE_DENIED"
    theirs.refresh_from_db()
    assert (theirs.name, theirs.price, theirs.organization_id) == ("theirs", 5, b.pk)
    assert Product.objects.filter(organization=b).count() == 1
    assert Product.objects.get(pk=mine.pk).organization_id == a.pk


@pytest.mark.parametrize("resource", [BySecretProducts, HiddenOwnerByColumnArticles])
def test_the_schema_does_not_name_a_hidden_field_of_default_sort(resource):
    """The list's ``sort`` parameter documented ``Default: `secret_notes```: the public
    schema confirmed a ``hidden()`` field that every answer denies. A default sort by a
    hidden field (or its column, ``owner_id``) is documented as the resource's own order."""
    view = types.SimpleNamespace(resource=resource())
    parameters = QueryLanguageFilter().get_schema_operation_parameters(view)
    text = json.dumps(parameters)
    assert "secret" not in text and "owner" not in text, text
    (sort,) = [p for p in parameters if p["name"] == "sort"]
    assert "Default: the resource's own order." in sort["description"]
    view = types.SimpleNamespace(resource=ByCostProducts())
    (sort,) = [
        p
        for p in QueryLanguageFilter().get_schema_operation_parameters(view)
        if p["name"] == "sort"
    ]
    assert "Default: `-cost`." in sort["description"]


class UidBooks(Resource):
    """Looked up by ``uid`` so the integer key stays private: only admins may read ``id``."""

    model = Book
    name = "uid-books"
    fields = ["id", "uid", "title"]
    lookup_field = "uid"
    default_sort = "title"
    permissions = {"list": P.require_auth(), "get": P.require_auth()}
    field_permissions = {"id": F.visible_to("admin")}


class PublicIdUidBooks(UidBooks):
    name = "public-id-uid-books"
    field_permissions = {}


def test_a_keyset_cursor_never_carries_a_primary_key_the_caller_cannot_read(settings):
    """The primary key breaks ties in every keyset ordering, so every ``next`` cursor held
    the last row's pk in readable base64 JSON: a caller the resource denies ``id`` (read by
    ``uid``, E009 has no objection) read it out of the cursor all the same. Its list is not
    cursor-paged (400, naming no field) for that caller; offset pages are served, and a
    caller who may read the key is cursor-paged as before."""
    author = AuthorFactory()
    for i in range(3):
        Book.objects.create(title=f"t{i}", isbn=f"i{i}", author=author)
    user = client_for(UserFactory())
    with mounted_site(settings, "sec", UidBooks, PublicIdUidBooks):
        r = user.get("/sec/uid-books/?after=&limit=1")
        assert r.status_code == 400, r.json()
        assert r.json()["code"] == "INVALID_QUERY"
        assert "id" not in json.dumps(r.json()["details"]).replace('"after"', "")
        page = user.get("/sec/uid-books/?limit=1").json()
        assert [set(d) for d in page["docs"]] == [{"uid", "title"}]
        r = user.get("/sec/public-id-uid-books/?after=&limit=1")
        assert r.status_code == 200, r.json()
        assert _cursor(r.json()["next"])["v"][-1] == Book.objects.get(title="t0").pk


def test_judging_a_list_query_against_field_permissions_resolves_no_model_field(monkeypatch):
    """Which field a filter, sort or search path reads (``owner`` for ``owner_id``) is
    resolved once, when the resource's query rules are compiled: parsing a request and
    judging its cursor look it up, without asking the model's ``_meta`` per request, per
    sort key and per search path."""

    class Searched(OwnerByColumnArticles):
        search_fields = ["title", "owner__username"]

    spec = Searched().query_spec
    calls = []
    real = Article._meta.get_field

    def counting(name, *args, **kwargs):
        calls.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(Article._meta, "get_field", counting)
    params = QueryDict("search=x&sort=title,-owner_id&title=t")
    query = spec.parse(params, {"id", "title", "owner"}, restricted=frozenset())
    assert spec.keyset_error(query, frozenset()) is None
    assert [sf.name for sf, _ in query.ordering] == ["title", "owner_id"]
    assert "owner__username__icontains" in str(query.search_q)
    with pytest.raises(ArcError):
        spec.parse(params, {"id", "title"}, restricted=frozenset({"owner"}))
    searched = spec.parse(QueryDict("search=x"), {"id", "title"}, restricted=frozenset({"owner"}))
    assert "owner" not in str(searched.search_q)
    default = spec.parse(QueryDict(""), {"id", "title"}, restricted=frozenset({"owner"}))
    assert spec.keyset_error(default, frozenset({"owner"})) is not None
    assert calls == []


class PrivateIdDogs(Resource):
    """A multi-table child: its pk ``animal_ptr`` is the link to its parent's row and holds
    the parent's ``id``, which only admins may read."""

    model = Dog
    name = "private-id-dogs"
    fields = ["id", "name"]
    default_sort = "name"
    permissions = {"list": P.require_auth(), "get": P.require_auth()}
    field_permissions = {"id": F.visible_to("admin")}


def test_a_keyset_cursor_never_carries_a_parents_primary_key_the_caller_cannot_read(settings):
    """A multi-table child's primary key (``animal_ptr``, every cursor's tiebreak) holds the
    value of its parent's ``id``: a caller denied ``id`` was cursor-paged all the same, and
    read each row's ``id`` out of the ``next`` cursor. The parents' primary keys count as
    the child's: that caller's list is not cursor-paged."""
    for name in "abc":
        Dog.objects.create(name=name)
    user = client_for(UserFactory())
    with mounted_site(settings, "sec", PrivateIdDogs):
        r = user.get("/sec/private-id-dogs/?after=&limit=1")
        assert r.status_code == 400, r.json()
        assert r.json()["code"] == "INVALID_QUERY"
        page = user.get("/sec/private-id-dogs/?limit=1").json()
        assert [set(d) for d in page["docs"]] == [{"name"}]


class PtrFilteredDogs(PrivateIdDogs):
    name = "ptr-filtered-dogs"
    filter_fields = {"animal_ptr": ["eq", "gt", "lt"]}
    sort_fields = ["animal_ptr", "name"]


class PublicIdPtrFilteredDogs(PtrFilteredDogs):
    name = "public-id-ptr-filtered-dogs"
    field_permissions = {}


class HiddenIdPtrFilteredDogs(PtrFilteredDogs):
    name = "hidden-id-ptr-filtered-dogs"
    field_permissions = {"id": F.hidden()}


def test_a_parents_primary_key_the_caller_cannot_read_is_not_probed_by_its_parent_link(
    settings,
):
    """The parent link ``animal_ptr`` holds the parent's ``id``: a caller denied ``id``
    filtered ``animal_ptr[gt]=`` (and sorted by it) and bisected every row's ``id``. The
    primary key's names are one field for the query language: denying one denies them
    all."""
    for name in "abc":
        Dog.objects.create(name=name)
    b = Dog.objects.get(name="b").pk
    user = client_for(UserFactory())
    resources = (PtrFilteredDogs, PublicIdPtrFilteredDogs, HiddenIdPtrFilteredDogs)
    with mounted_site(settings, "sec", *resources):
        for query in (f"animal_ptr={b}", f"animal_ptr[gt]={b}", "sort=-animal_ptr"):
            for denied in ("ptr-filtered-dogs", "hidden-id-ptr-filtered-dogs"):
                r = user.get(f"/sec/{denied}/?{query}")
                assert r.status_code == 400, (denied, query, r.json())
                assert r.json()["code"] == "INVALID_QUERY"
            r = user.get(f"/sec/public-id-ptr-filtered-dogs/?{query}")
            assert r.status_code == 200, (query, r.json())
        r = user.get(f"/sec/public-id-ptr-filtered-dogs/?animal_ptr[gt]={b}")
        assert [d["name"] for d in r.json()["docs"]] == ["c"]


class HiddenIdUidBooks(UidBooks):
    """Looked up by ``uid``, its integer key hidden from everyone; no ``default_sort``."""

    name = "hidden-id-uid-books"
    default_sort = ""
    sort_fields = ["title"]
    field_permissions = {"id": F.hidden()}


def test_the_schema_does_not_name_a_hidden_primary_key_as_the_default_order():
    """Without a ``default_sort`` a list is ordered by its primary key, and the ``sort``
    parameter documented ``Default: `id```, even when ``id`` is ``hidden()`` (a resource
    looked up by ``uid``): the schema named a hidden field. It is documented as the
    resource's own order, as a hidden field in ``default_sort`` is."""
    view = types.SimpleNamespace(resource=HiddenIdUidBooks())
    (sort,) = [
        p
        for p in QueryLanguageFilter().get_schema_operation_parameters(view)
        if p["name"] == "sort"
    ]
    assert "`id`" not in sort["description"], sort["description"]
    assert "Default: the resource's own order." in sort["description"]
    view = types.SimpleNamespace(
        resource=type("PublicIdBooks", (HiddenIdUidBooks,), {"field_permissions": {}})()
    )
    (sort,) = [
        p
        for p in QueryLanguageFilter().get_schema_operation_parameters(view)
        if p["name"] == "sort"
    ]
    assert "Default: `id`." in sort["description"]
