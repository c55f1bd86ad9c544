"""rev-fixes66's review of cost9 and rev-fixes64."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.sites import _all_sites
from shop.models import Organization, Product
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import site_mounted
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db

rf66_site = ResourceSite(name="rev-fixes66")


class _Rf66OnRowSerializer(serializers.Serializer):
    """Values of the row's own (``source="*"``): ``owner`` is ``OwnedBy``'s column,
    ``org`` the tenant column ``MultiTenant`` manages, ``made`` a read-only column."""

    owner = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(), required=False
    )
    org = serializers.PrimaryKeyRelatedField(
        source="organization", queryset=Organization.objects.all(), required=False
    )
    made = serializers.CharField(source="internal", required=False)
    text = serializers.CharField(required=False)


class _Rf66NoteSerializer(serializers.ModelSerializer):
    meta = _Rf66OnRowSerializer(source="*", required=False)

    class Meta:
        model = Note
        fields = ["id", "branch", "text", "organization", "owner", "internal", "meta"]


class _Rf66Base(Resource):
    model = Note
    serializer_class = _Rf66NoteSerializer
    read_only_fields = ["id", "internal"]
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


@rf66_site.register
class Rf66OnRowResource(_Rf66Base):
    name = "rf66-on-row"


@rf66_site.register
class Rf66OnRowStripResource(_Rf66Base):
    name = "rf66-on-row-strip"
    on_field_write_denied = "strip"


@pytest.fixture
def rf66_world(settings):
    org = OrganizationFactory()
    editor = member_client(org, "editor")
    stranger = member_client(OrganizationFactory(), "editor").handler._force_user
    with site_mounted(settings, "rf66", rf66_site):
        yield {"org": org, "editor": editor, "stranger": stranger}


def test_rf66_a_nested_serializer_on_the_row_does_not_write_managed_or_read_only_columns(
    rf66_world,
):
    """rev-fixes64 judged a managed column's alias as the column, at the body's top level
    only: ``meta = Serializer(source="*")`` writes the row's columns too, and
    ``{"meta": {"owner": …}}`` handed the note to a user of another tenant (200, owner
    moved; ``OwnedBy`` forces the owner on create only). Each nested key is judged as the
    column it writes: refused by its path, the caller's own tenant dropped."""
    editor, stranger, org = rf66_world["editor"], rf66_world["stranger"], rf66_world["org"]
    r = editor.post("/rf66/rf66-on-row/", {"branch": "x", "text": "t"}, format="json")
    assert r.status_code == 201, r.content
    url = f"/rf66/rf66-on-row/{r.json()['data']['id']}/"
    r = editor.patch(url, {"meta": {"owner": stranger.pk}}, format="json")
    assert r.status_code == 403, r.content
    assert r.json()["details"] == {"fields": ["meta.owner"]}
    r = editor.patch(url, {"meta": {"made": "x", "text": "no"}}, format="json")
    assert r.status_code == 403 and r.json()["details"] == {"fields": ["meta.made"]}
    r = editor.post(
        "/rf66/rf66-on-row/",
        {"branch": "x", "text": "u", "meta": {"owner": stranger.pk}},
        format="json",
    )
    assert r.status_code == 403 and r.json()["details"] == {"fields": ["meta.owner"]}
    # what the caller may write it writes; its own tenant is harmless and dropped
    r = editor.patch(url, {"meta": {"text": "own", "org": org.pk}}, format="json")
    assert r.status_code == 200, r.content
    note = Note.objects.get()
    assert (note.owner, note.organization, note.text, note.internal) == (
        editor.handler._force_user,
        org,
        "own",
        "",
    )


@pytest.fixture
def rf66_bulk_site():
    """``Bulk`` beside a writable nested serializer is arc.E011 (bulk cannot write nested
    fields): a site gone after the test, so every other test file's ``check`` stays clean."""
    site = ResourceSite(name="rev-fixes66-bulk")

    @site.register
    class Rf66OnRowBulkResource(_Rf66Base):
        name = "rf66-on-row-bulk"
        presets = [*_Rf66Base.presets, presets.Bulk()]

    yield site
    _all_sites.remove(site)


def test_rf66_a_nested_serializer_on_the_row_is_judged_in_bulk_items(
    rf66_world, rf66_bulk_site, settings
):
    """A bulk item's nested keys are judged as a single write's are (the check refuses the
    configuration, arc.E011; the guard does not rely on it)."""
    editor, stranger = rf66_world["editor"], rf66_world["stranger"]
    with site_mounted(settings, "rf66b", rf66_bulk_site):
        r = editor.post("/rf66b/rf66-on-row-bulk/", {"branch": "x", "text": "t"}, format="json")
        assert r.status_code == 201, r.content
        r = editor.patch(
            "/rf66b/rf66-on-row-bulk/bulk/",
            {"items": [{"id": Note.objects.get().pk, "meta": {"owner": stranger.pk}}]},
            format="json",
        )
        assert r.status_code == 403, r.content
        assert Note.objects.get().owner == editor.handler._force_user


def test_rf66_a_nested_serializer_on_the_row_is_stripped_under_strip(rf66_world):
    """Under ``on_field_write_denied = "strip"`` the nested keys refused are dropped and
    the rest written, as top-level keys are."""
    editor, stranger = rf66_world["editor"], rf66_world["stranger"]
    r = editor.post("/rf66/rf66-on-row-strip/", {"branch": "x", "text": "t"}, format="json")
    assert r.status_code == 201, r.content
    url = f"/rf66/rf66-on-row-strip/{r.json()['data']['id']}/"
    r = editor.patch(url, {"meta": {"owner": stranger.pk, "text": "kept"}}, format="json")
    assert r.status_code == 200, r.content
    note = Note.objects.get()
    assert (note.owner, note.text) == (editor.handler._force_user, "kept")


# -- write_peers: a read-only field named like a column it does not render ----------------


class _Rf66ReadOnlyCrossedSerializer(serializers.ModelSerializer):
    """``cost`` renders ``price`` (read-only); ``unit_cost`` writes the ``cost`` column."""

    cost = serializers.DecimalField(source="price", max_digits=10, decimal_places=2, read_only=True)
    unit_cost = serializers.DecimalField(
        source="cost", max_digits=10, decimal_places=2, required=False
    )

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "organization", "price", "cost", "unit_cost"]


@rf66_site.register
class Rf66ReadOnlyCrossedResource(Resource):
    model = Product
    name = "rf66-read-only-crossed"
    serializer_class = _Rf66ReadOnlyCrossedSerializer
    presets = [presets.MultiTenant()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}
    field_permissions = {"cost": F.visible_to("admin")}


def test_rf66_a_rule_on_a_read_only_field_rendering_another_column_does_not_rule_the_column(
    rf66_world,
):
    """rev-fixes64 kept a field named like one column but *writing* another out of that
    column's write peers; one only *rendering* another (read-only ``cost`` showing
    ``price``, ``visible_to("admin")``) still ruled the ``cost`` column: an editor's
    ``unit_cost`` was refused (403), though the query string reads ``cost``'s rule as
    ``price``'s (``restricted_columns``)."""
    editor = rf66_world["editor"]
    row = ProductFactory(organization=rf66_world["org"], price=10, cost=7, name="alpha")
    url = f"/rf66/rf66-read-only-crossed/{row.pk}/"
    r = editor.patch(url, {"unit_cost": "2.00"}, format="json")
    assert r.status_code == 200, r.content
    r = editor.patch(url, {"price": "1.00"}, format="json")
    assert r.status_code == 200, r.content  # no rule on the price column keeps it
    row.refresh_from_db()
    assert (row.price, row.cost) == (1, 2)


@rf66_site.register
class Rf66OnRowRuledResource(_Rf66Base):
    name = "rf66-on-row-ruled"
    presets = [presets.MultiTenant()]
    field_permissions = {"text": F.writable_by("admin")}


def test_rf66_a_write_rule_on_a_column_rules_its_key_in_a_nested_serializer_on_the_row(
    rf66_world,
):
    """``text`` ``writable_by("admin")``: ``{"meta": {"text": …}}`` writes that column too,
    refused to an editor, written by an admin."""
    editor = rf66_world["editor"]
    admin = member_client(rf66_world["org"], "admin")
    r = admin.post("/rf66/rf66-on-row-ruled/", {"branch": "x", "text": "t"}, format="json")
    assert r.status_code == 201, r.content
    url = f"/rf66/rf66-on-row-ruled/{r.json()['data']['id']}/"
    r = editor.patch(url, {"meta": {"text": "editor"}}, format="json")
    assert r.status_code == 403, r.content
    assert r.json()["details"] == {"fields": ["meta.text"]}
    r = admin.patch(url, {"meta": {"text": "admin"}}, format="json")
    assert r.status_code == 200, r.content
    assert Note.objects.get().text == "admin"
