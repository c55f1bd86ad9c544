"""rev-fixes69: a review of fix-seen12a (writes judged by the request's serializer's
fields) and fix-seen12c (generic pairs judged at once)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as FR
from django_arc import permissions as P
from django_arc.sites import _all_sites
from shop.models import Product
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import site_mounted

MEMBERS = P.require_org_membership()


@pytest.fixture
def rf69_site():
    site = ResourceSite(name="rev-fixes69")
    yield site
    _all_sites.remove(site)


def _writing(request) -> bool:
    return request is not None and request.method not in ("GET", "HEAD", "OPTIONS")


class _Rf69InitSerializer(serializers.ModelSerializer):
    """Adds a field writing ``cost`` for writes in ``__init__``, as DRF's "dynamically
    modifying fields" example changes ``self.fields`` there."""

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "organization", "cost"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if _writing(self.context.get("request")):
            self.fields["cost_eur"] = serializers.DecimalField(
                source="cost", max_digits=10, decimal_places=2, required=False, write_only=True
            )


class _Rf69MetaSerializer(serializers.Serializer):
    """A nested ``source="*"`` serializer adding ``cost`` for writes in its
    ``get_fields()``: the outer serializer overrides nothing."""

    name = serializers.CharField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        if _writing(self.context.get("request")):
            fields["cost"] = serializers.DecimalField(
                max_digits=10, decimal_places=2, required=False
            )
        return fields


class _Rf69NestedSerializer(serializers.ModelSerializer):
    meta = _Rf69MetaSerializer(source="*", required=False, write_only=True)

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "organization", "cost", "meta"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "serializer_class, body, denied",
    [
        (_Rf69InitSerializer, {"cost_eur": "1.00"}, "cost_eur"),
        (_Rf69NestedSerializer, {"meta": {"cost": "1.00"}}, "meta.cost"),
    ],
    ids=["init", "nested-get-fields"],
)
def test_rf69_a_column_written_through_a_field_added_in_init_or_nested_is_judged(
    settings, rf69_site, serializer_class, body, denied
):
    """fix-seen12a judged a write by the request's serializer's fields only for a serializer
    overriding ``get_fields()`` (or a hook it calls): one adding ``cost_eur =
    DecimalField(source="cost")`` in ``__init__`` (DRF's documented place for it), or whose
    nested ``source="*"`` serializer adds ``cost`` in its own ``get_fields()``, was judged
    by the fields built without a request, so an editor wrote ``cost``, ruled
    ``visible_to("admin")`` (200, the row's cost changed). Now 403 naming the key, the row
    as it was; an admin writes it."""
    resource = type(
        "Rf69Products",
        (Resource,),
        {
            "model": Product,
            "name": "rf69-products",
            "serializer_class": serializer_class,
            "presets": [presets.MultiTenant()],
            "permissions": {k: MEMBERS for k in ("list", "get", "create", "update")},
            "field_permissions": {"cost": FR.visible_to("admin")},
        },
    )
    rf69_site.register(resource)
    org = OrganizationFactory()
    row = ProductFactory(organization=org, cost=Decimal("7.00"))
    url = f"/rf69/rf69-products/{row.pk}/"
    with site_mounted(settings, "rf69", rf69_site):
        r = member_client(org, "editor").patch(url, body, format="json")
        assert r.status_code == 403, r.content
        assert r.json()["details"] == {"fields": [denied]}
        row.refresh_from_db()
        assert row.cost == Decimal("7.00")
        r = member_client(org, "admin").patch(url, body, format="json")
    assert r.status_code == 200, r.content
    row.refresh_from_db()
    assert row.cost == Decimal("1.00")
