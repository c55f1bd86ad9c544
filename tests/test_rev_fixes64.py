# ruff: noqa: F811 - fix-seen11c's fixtures are imported, and tests name them as parameters
"""rev-fixes64's review of rev-fieldrules, rev-fixes60 and rev-fixes61."""

import pytest
from django.contrib.auth import get_user_model
from django.db import models
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P
from shop.models import Organization, Product
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import site_mounted
from tests.test_fix_seen11c import (  # noqa: F401 - fixtures, named by the tests' parameters
    _fs11c_member,
    fs11c_mounted,
)
from tests.testapp.models import Folder, Note

pytestmark = pytest.mark.django_db

rf64_site = ResourceSite(name="rev-fixes64")


class _Rf64CrossedSerializer(serializers.ModelSerializer):
    """A field named like one column writing another (``cost`` writes ``price``) beside a
    field writing that first column under a third name (``unit_cost`` writes ``cost``)."""

    cost = serializers.DecimalField(source="price", max_digits=10, decimal_places=2, required=False)
    unit_cost = serializers.DecimalField(
        source="cost", max_digits=10, decimal_places=2, required=False
    )

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "organization", "price", "cost", "unit_cost"]


class _Rf64Base(Resource):
    model = Product
    serializer_class = _Rf64CrossedSerializer
    presets = [presets.MultiTenant()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


@rf64_site.register
class Rf64PriceRuledResource(_Rf64Base):
    name = "rf64-price-ruled"
    field_permissions = {
        "price": F.writable_by("admin"),
        "unit_cost": F.writable_by("admin", "editor"),
    }


@rf64_site.register
class Rf64FieldRuledResource(_Rf64Base):
    name = "rf64-field-ruled"
    field_permissions = {"cost": F.writable_by("admin")}


@pytest.fixture
def rf64_world():
    a = OrganizationFactory()
    row = ProductFactory(organization=a, price=10, cost=7, name="alpha")
    return {"row": row, "editor": member_client(a, "editor"), "admin": member_client(a, "admin")}


def test_rf64_a_field_named_like_a_column_it_does_not_write_keeps_its_own_columns_rule(
    settings, rf64_world
):
    """``price`` ``writable_by("admin")``: ``cost = DecimalField(source="price")`` writes
    that column, but its peers were overwritten by those of the ``cost`` column it is named
    like (``unit_cost``, which an editor may write): an editor set the price (200)."""
    row = rf64_world["row"]
    with site_mounted(settings, "rf64", rf64_site):
        url = f"/rf64/rf64-price-ruled/{row.pk}/"
        r = rf64_world["editor"].patch(url, {"cost": "1.00"}, format="json")
        assert r.status_code == 403, r.content
        assert r.json()["details"] == {"fields": ["cost"]}
        # what the editor may write it still writes; the admin writes the price either way
        r = rf64_world["editor"].patch(url, {"unit_cost": "2.00"}, format="json")
        assert r.status_code == 200, r.content
        r = rf64_world["admin"].patch(url, {"cost": "3.00"}, format="json")
        assert r.status_code == 200, r.content
    row.refresh_from_db()
    assert (row.price, row.cost) == (3, 2)


def test_rf64_a_rule_on_a_field_writing_another_column_does_not_rule_the_column_it_is_named_like(
    settings, rf64_world
):
    """``cost`` (writing ``price``) ``writable_by("admin")`` rules the price column (``price``
    refused to an editor), not the ``cost`` column ``unit_cost`` writes, as the query string
    reads it (``FieldRules.restricted_columns``): an editor's ``unit_cost`` was refused."""
    row = rf64_world["row"]
    with site_mounted(settings, "rf64", rf64_site):
        url = f"/rf64/rf64-field-ruled/{row.pk}/"
        r = rf64_world["editor"].patch(url, {"unit_cost": "2.00"}, format="json")
        assert r.status_code == 200, r.content
        r = rf64_world["editor"].patch(url, {"price": "1.00"}, format="json")
        assert r.status_code == 403 and r.json()["details"] == {"fields": ["price"]}
    row.refresh_from_db()
    assert (row.price, row.cost) == (10, 2)


# -- lockable(): a base manager joining a nullable relation --------------------------------


class Rf64OuterJoinManager(models.Manager):
    """A base manager leaving out the folders filed under one named "trash": ``exclude()``
    across the nullable ``parent`` joins it ``LEFT OUTER``, whose nullable side PostgreSQL
    refuses to lock ("FOR UPDATE cannot be applied to the nullable side of an outer
    join")."""

    def get_queryset(self):
        return super().get_queryset().exclude(parent__name="trash")


@pytest.fixture
def rf64_outer_join_base(monkeypatch):
    manager = Rf64OuterJoinManager()
    manager.model, manager.name = Folder, "rf64_outer_join"
    monkeypatch.setattr(Folder._meta, "base_manager", manager)
    assert "LEFT OUTER JOIN" in str(Folder._base_manager.all().query)
    return manager


@pytest.mark.parametrize("route", ["single", "bulk", "soft-bulk"])
def test_rf64_deletes_of_a_model_whose_base_manager_joins_a_nullable_relation(
    fs11c_mounted, rf64_outer_join_base, route
):
    """rev-fixes61's ``lockable()`` rebuilt ``DISTINCT`` and ``GROUP BY`` querysets to lock
    them by primary key; one joining a nullable relation (a base manager's ``exclude()``
    through ``parent``) was locked as it is, PostgreSQL's 500 on every hard delete, bulk
    delete and soft bulk delete of the model. Locked by primary key too now."""
    org = OrganizationFactory()
    api, _ = _fs11c_member(org)
    top = Folder.objects.create(organization=org, name="top")
    other = Folder.objects.create(organization=org, name="other")
    Folder.objects.create(organization=org, name="under", parent=top)
    if route == "single":
        r = api.delete(f"/fs11c/fs11c-folders/{top.pk}/")
    else:
        resource = "fs11c-bulk-folders" if route == "bulk" else "fs11c-soft-folders"
        r = api.delete(f"/fs11c/{resource}/bulk/", {"ids": [top.pk, other.pk]}, format="json")
    assert r.status_code == 200, r.content
    if route == "soft-bulk":
        stamped = Folder.objects.filter(deleted_at__isnull=False)
        assert sorted(stamped.values_list("name", flat=True)) == ["other", "top"]
    else:
        left = list(Folder.objects.values_list("name", flat=True))
        assert left == ([] if route == "bulk" else ["other"])


# -- a HiddenField setting a column no body may write -------------------------------------


class _Rf64OwnedNoteSerializer(serializers.ModelSerializer):
    owner = serializers.HiddenField(default=serializers.CurrentUserDefault())

    class Meta:
        model = Note
        fields = ["id", "branch", "text", "organization", "owner"]


class _Rf64OwnedNoteBase(Resource):
    model = Note
    serializer_class = _Rf64OwnedNoteSerializer
    presets = [presets.MultiTenant()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


@rf64_site.register
class Rf64ReadOnlyOwnerResource(_Rf64OwnedNoteBase):
    name = "rf64-read-only-owner"
    read_only_fields = ["id", "owner"]


@rf64_site.register
class Rf64RuledOwnerResource(_Rf64OwnedNoteBase):
    name = "rf64-ruled-owner"
    field_permissions = {"owner": F.read_only()}


@pytest.mark.parametrize("name", ["rf64-read-only-owner", "rf64-ruled-owner"])
def test_rf64_a_hidden_field_default_sets_a_column_no_body_may_write(settings, name):
    """``owner = HiddenField(default=CurrentUserDefault())`` with ``owner`` in
    ``read_only_fields`` (or ruled ``read_only()``): the field was made read-only, so DRF
    never applied its default and every note was created with no owner (201). The default
    is applied; a body's ``owner`` is still refused by name."""
    org = OrganizationFactory()
    editor = member_client(org, "editor")
    with site_mounted(settings, "rf64", rf64_site):
        r = editor.post(f"/rf64/{name}/", {"branch": "x", "text": "t"}, format="json")
        assert r.status_code == 201, r.content
        other = OrganizationFactory().pk
        refused = editor.post(
            f"/rf64/{name}/", {"branch": "x", "text": "u", "owner": other}, format="json"
        )
    assert refused.status_code == 403 and refused.json()["details"] == {"fields": ["owner"]}
    note = Note.objects.get()
    assert (note.text, note.owner) == ("t", editor.handler._force_user)


# -- a preset-managed column written under another name -----------------------------------


class _Rf64OwnerAliasSerializer(serializers.ModelSerializer):
    """``assignee`` writes the ``owner`` column ``OwnedBy`` manages, ``org`` the tenant
    column ``MultiTenant`` manages."""

    assignee = serializers.PrimaryKeyRelatedField(
        source="owner", queryset=get_user_model().objects.all(), required=False
    )
    org = serializers.PrimaryKeyRelatedField(
        source="organization", queryset=Organization.objects.all(), required=False
    )

    class Meta:
        model = Note
        fields = ["id", "branch", "text", "organization", "owner", "assignee", "org"]


@rf64_site.register
class Rf64OwnerAliasResource(Resource):
    model = Note
    name = "rf64-owner-alias"
    serializer_class = _Rf64OwnerAliasSerializer
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


def test_rf64_a_preset_managed_column_is_not_written_under_another_name(settings):
    """``OwnedBy`` forces ``owner`` on create only; ``assignee = PrimaryKeyRelatedField(
    source="owner")`` let the owner hand its note to another user (a user of another
    tenant included) by an update (200), which SPEC §4 keeps from any body ("preset-managed
    fields are never writable from the body") -> refused by name as ``owner`` is."""
    org = OrganizationFactory()
    editor = member_client(org, "editor")
    stranger = member_client(OrganizationFactory(), "editor").handler._force_user
    with site_mounted(settings, "rf64", rf64_site):
        r = editor.post("/rf64/rf64-owner-alias/", {"branch": "x", "text": "t"}, format="json")
        assert r.status_code == 201, r.content
        pk = r.json()["data"]["id"]
        r = editor.patch(f"/rf64/rf64-owner-alias/{pk}/", {"assignee": stranger.pk}, format="json")
        assert r.status_code == 403, r.content
        assert r.json()["details"] == {"fields": ["assignee"]}
        refused = editor.post(
            "/rf64/rf64-owner-alias/",
            {"branch": "x", "text": "u", "assignee": stranger.pk},
            format="json",
        )
        assert refused.status_code == 403 and refused.json()["details"] == {"fields": ["assignee"]}
        # the tenant column's alias is judged as the column is: its own tenant dropped
        url = f"/rf64/rf64-owner-alias/{pk}/"
        r = editor.patch(url, {"org": org.pk, "text": "own"}, format="json")
        assert r.status_code == 200, r.content
        r = editor.patch(url, {"org": OrganizationFactory().pk}, format="json")
        assert r.status_code == 403 and r.json()["details"] == {"fields": ["org"]}
    note = Note.objects.get()
    assert (note.owner, note.organization, note.text) == (editor.handler._force_user, org, "own")
