"""rev-fixes55: a review of fix-seen10d (one collection per hard delete, the root locked
first) and fix-seen10a (a preset's after_write UPDATE read back, _narrows)."""

import re

import pytest
from django.db import connection
from django.db.models import F
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.outbox.models import OutboxEvent
from shop.models import Order, Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.factories import member_client as rf55_member_client
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Folder, SlugLedger

pytestmark = pytest.mark.django_db

RF55_MEMBERS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}

rf55_site = ResourceSite(name="rev-fixes55")


@rf55_site.register
class Rf55FolderResource(Resource):
    model = Folder
    name = "rf55-folders"
    fields = ["id", "organization", "owner", "name", "parent"]
    presets = [presets.MultiTenant(), presets.Bulk()]
    permissions = RF55_MEMBERS


@pytest.fixture
def rf55_mounted(settings):
    with site_mounted(settings, "rf55", rf55_site):
        yield


def _rf55_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


def test_rf55_a_tree_ordered_across_its_nullable_parent_deletes(rf55_mounted, monkeypatch):
    """A tree whose ``Meta.ordering`` follows its nullable parent (``parent__name``): the
    lock the single delete takes before collecting read the row in that order, a ``LEFT
    OUTER JOIN``, and PostgreSQL refuses ``FOR UPDATE`` on the nullable side of an outer
    join: every hard delete of such a tree was a 500."""
    monkeypatch.setattr(Folder._meta, "ordering", ["parent__name", "name"])
    org = OrganizationFactory()
    api, me = _rf55_member(org)
    top = Folder.objects.create(organization=org, owner=me, name="top")
    Folder.objects.create(organization=org, owner=me, name="under", parent=top)
    r = api.delete(f"/rf55/rf55-folders/{top.pk}/")
    assert r.status_code == 200, r.content
    assert not Folder.objects.exists()
    assert [e.type for e in OutboxEvent.objects.all()] == ["rf55-folders.deleted"]


# -- fix-seen10a: a preset widening a relation after another narrowed it ----------------------


class _Rf55Widening(presets.Preset):
    """A project preset whose ``related_queryset`` returns a new queryset of the related
    model, filtered, in place of the one given: the products in stock, of every tenant."""

    def related_queryset(self, view, queryset):
        if queryset.model is Product:
            return Product.objects.filter(in_stock=True)
        return queryset


class _Rf55Replacing(presets.Preset):
    """A project preset returning the related model's every row (``all()``, no WHERE)."""

    def related_queryset(self, view, queryset):
        if queryset.model is Product:
            return Product.objects.all()
        return queryset


class _Rf55Joining(presets.Preset):
    """A project preset adding the products flagged public to those given (an OR)."""

    def related_queryset(self, view, queryset):
        if queryset.model is Product:
            return queryset | Product.objects.filter(status="active")
        return queryset


class _Rf55Narrowing(presets.Preset):
    """A project preset keeping, of the rows given, those in stock (a narrowing)."""

    def related_queryset(self, view, queryset):
        if queryset.model is Product:
            return queryset.filter(in_stock=True)
        return queryset


for _rf55_name, _rf55_preset in (
    ("widening", _Rf55Widening),
    ("replacing", _Rf55Replacing),
    ("joining", _Rf55Joining),
    ("narrowing", _Rf55Narrowing),
):
    rf55_site.register(
        type(
            f"_Rf55Orders{_rf55_name.title()}",
            (Resource,),
            {
                "__module__": __name__,
                "model": Order,
                "name": f"rf55-orders-{_rf55_name}",
                "fields": ["id", "organization", "product", "quantity", "customer_email"],
                "presets": [presets.MultiTenant(), _rf55_preset()],
                "permissions": RF55_MEMBERS,
            },
        )
    )


def _rf55_options(page, name):
    form = re.search(r'<form[^>]*method="POST".*?</form>', page.content.decode(), re.S)[0]
    select = re.search(rf'<select[^>]* name="{name}".*?</select>', form, re.S)[0]
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)
    return [(value, label.strip()) for value, label in options if value]


@pytest.mark.parametrize("shape", ["widening", "replacing", "joining", "narrowing"])
def test_rf55_a_relation_widened_after_the_tenant_narrowed_it_is_labelled_by_key(
    rf55_mounted, monkeypatch, shape
):
    """MultiTenant narrows an order's products to the caller's, then a project preset
    returns another queryset: the model's in-stock rows of every tenant (``widening``), its
    every row (``replacing``: no WHERE, which kept the narrowing counted), or the given ones
    OR the active ones (``joining``). Each was counted as narrowed, so the create form's select named another
    tenant's products. A queryset that does not keep every condition of the one given
    (AND) is not known to be narrowed any more: its options are labelled by key. One that
    keeps them and adds its own (``narrowing``) still names the caller's rows."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    ours, theirs = OrganizationFactory(), OrganizationFactory()
    mine = ProductFactory(organization=ours, name="our-product", status="active")
    other = ProductFactory(organization=theirs, name="their-secret-product", status="active")
    api, _ = _rf55_member(ours)
    page = api.get(f"/rf55/rf55-orders-{shape}/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200, page.content
    assert "their-secret-product" not in page.content.decode()
    options = _rf55_options(page, "product")
    if shape == "narrowing":
        assert options == [(str(mine.pk), "our-product")]
    else:
        assert (str(other.pk), str(other.pk)) in options
        assert (str(mine.pk), str(mine.pk)) in options


# -- fix-seen10a: the stored check of a row forced to a model instance -------------------------


class _Rf55ForcedOrganization(presets.Preset):
    """A project preset forcing the tenant as a row (an ``Organization``), not its key, on
    a foreign key to the organization's slug, and touching the written row with
    ``QuerySet.update()`` after the write (a counter, a timestamp), moving nothing."""

    organization = None

    def write_values(self, view, instance=None):
        return {"organization": type(self).organization}

    def after_write(self, view, verb, instance, before, after):
        SlugLedger.objects.filter(pk=instance.pk).update(name=F("name"))

    def after_write_many(self, view, verb, records):
        pks = [instance.pk for instance, _, _ in records]
        SlugLedger.objects.filter(pk__in=pks).update(name=F("name"))


@rf55_site.register
class _Rf55SlugLedgers(Resource):
    model = SlugLedger
    name = "rf55-slug-ledgers"
    fields = ["id", "name", "organization"]
    read_only_fields = ["organization"]
    presets = [_Rf55ForcedOrganization(), presets.Bulk()]
    permissions = {k: P.require_auth() for k in ("list", "get", "create", "update")}


@pytest.mark.parametrize("route", ["create", "update", "bulk create", "bulk update"])
def test_rf55_a_forced_row_on_a_to_field_relation_is_read_back_as_kept(
    rf55_mounted, monkeypatch, route
):
    """The stored check (after a preset's ``after_write`` ran an UPDATE) compared a forced
    row by its primary key with what the column holds, the row's slug on a ``to_field``
    relation: every write was a 500 though nothing moved. A forced row is compared by the
    field its relation stores."""
    org = OrganizationFactory(slug="rf55-org")
    monkeypatch.setattr(_Rf55ForcedOrganization, "organization", org)
    api = client_for(MembershipFactory(organization=org).user)
    api.raise_request_exception = False
    kept = SlugLedger.objects.create(organization=org, name="kept")
    if route == "create":
        r = api.post("/rf55/rf55-slug-ledgers/", {"name": "new"}, format="json")
    elif route == "update":
        r = api.patch(f"/rf55/rf55-slug-ledgers/{kept.pk}/", {"name": "x"}, format="json")
    elif route == "bulk create":
        r = api.post("/rf55/rf55-slug-ledgers/bulk/", {"items": [{"name": "new"}]}, format="json")
    else:
        body = {"items": [{"id": kept.pk, "name": "x"}]}
        r = api.patch("/rf55/rf55-slug-ledgers/bulk/", body, format="json")
    assert r.status_code in (200, 201), r.content
    assert set(SlugLedger.objects.values_list("organization_id", flat=True)) == {"rf55-org"}
    assert SlugLedger.objects.count() == (2 if "create" in route else 1)


# -- fix-seen10a: an UPDATE tagged by a project's outer execute wrapper ------------------------


@pytest.mark.parametrize("tag", ["/* app=shop */ ", "-- app=shop\n", "\n  /* a */ /* b */ "])
def test_rf55_a_move_tagged_by_a_projects_query_comment_is_still_caught(
    rf55_mounted, monkeypatch, tag
):
    """A project tagging every statement with a leading SQL comment (an execute wrapper of
    its own, outside the one arc installs while the presets' ``after_write`` run, as query
    taggers and tracing tools do) hid the preset's ``UPDATE`` from the watch, which read
    the statement's first word: the row moved into another organization was answered 201
    as the caller's. Leading comments are skipped: the move is the 500 it is untagged."""
    ours, theirs = OrganizationFactory(), OrganizationFactory()
    single = presets.Audited.after_write

    def rf55_moving_after_write(self, view, verb, instance, before, after):
        single(self, view, verb, instance, before, after)
        Product.objects.filter(pk=instance.pk).update(organization_id=theirs.pk)

    monkeypatch.setattr(presets.Audited, "after_write", rf55_moving_after_write)

    def rf55_tagging(execute, sql, params, many, context):
        return execute(f"{tag}{sql}", params, many, context)

    api = rf55_member_client(ours, "admin")
    api.raise_request_exception = False
    body = {"name": "new", "sku": "RF55-1", "price": "1.00"}
    with connection.execute_wrapper(rf55_tagging):
        r = api.post("/api/products/", body, format="json")
    assert r.status_code == 500, r.content
    assert not Product.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_rf55_a_move_by_an_upsert_is_still_caught(rf55_mounted, monkeypatch):
    """A preset moving the row with an upsert (``bulk_create(update_conflicts=True)``: an
    ``INSERT … ON CONFLICT DO UPDATE``) ran no statement starting with ``UPDATE``: the row
    written into another organization was answered 201. The watch looks for the word."""
    ours, theirs = OrganizationFactory(), OrganizationFactory()
    single = presets.Audited.after_write

    def rf55_upserting_after_write(self, view, verb, instance, before, after):
        single(self, view, verb, instance, before, after)
        moved = Product(
            pk=instance.pk, organization=theirs, name=instance.name, sku=instance.sku, price=1
        )
        Product.objects.bulk_create(
            [moved], update_conflicts=True, unique_fields=["id"], update_fields=["organization"]
        )

    monkeypatch.setattr(presets.Audited, "after_write", rf55_upserting_after_write)
    api = rf55_member_client(ours, "admin")
    api.raise_request_exception = False
    r = api.post("/api/products/", {"name": "new", "sku": "RF55-2", "price": "1.00"})
    assert r.status_code == 500, r.content
    assert not Product.objects.exists()
    assert not OutboxEvent.objects.exists()
