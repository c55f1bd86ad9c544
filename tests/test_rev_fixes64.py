"""rev-fixes64's review of rev-fieldrules, rev-fixes60 and rev-fixes61."""

import pytest
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P
from shop.models import Product
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import site_mounted

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
