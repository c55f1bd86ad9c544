"""rev-fixes63: a review of fix-seen11d (time ranges compared and sorted as shown, a plain
date or time stored as ``infinity`` named in its 500, a project's ``DecimalField`` reading
a JSON number as written)."""

from __future__ import annotations

import pytest
from django.db import connection
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as FR
from django_arc import permissions as P
from django_arc.exceptions import INFINITE_VALUE
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import RevNumTally

pytestmark = pytest.mark.django_db

rf63_site = ResourceSite(name="rev-fixes63")
RF63_MEMBERS = {key: P.require_org_membership() for key in ("list", "get", "update")}

rf63_needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's infinity"
)


@rf63_site.register
class Rf63MaskedProductResource(Resource):
    model = Product
    name = "masked-products"
    fields = ["id", "name", "created_at"]
    presets = [presets.MultiTenant()]
    permissions = RF63_MEMBERS
    field_permissions = {"created_at": FR.redact_for("viewer")}


@rf63_needs_postgres
def test_rf63_a_stored_infinity_in_a_field_the_caller_sees_masked_is_not_named(settings):
    """A caller reading ``created_at`` as ``***`` may not learn its value: the 500 of a row
    holding ``infinity`` there named the field, saying what the mask hides. A caller
    reading it unmasked still gets it named; another tenant's row is never looked at."""
    org, other = OrganizationFactory(), OrganizationFactory()
    row = ProductFactory(organization=org)
    ProductFactory(organization=other)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE shop_product SET created_at = 'infinity' WHERE id = %s", [row.pk])
    viewer = client_for(
        MembershipFactory(organization=org, role="viewer").user,
        HTTP_X_ORGANIZATION_ID=str(org.pk),
    )
    editor = client_for(
        MembershipFactory(organization=org, role="editor").user,
        HTTP_X_ORGANIZATION_ID=str(org.pk),
    )
    outsider = client_for(
        MembershipFactory(organization=other, role="editor").user,
        HTTP_X_ORGANIZATION_ID=str(other.pk),
    )
    for api in (viewer, editor):
        api.raise_request_exception = False
    url = "/rf63/masked-products/"
    with site_mounted(settings, "rf63", rf63_site):
        for r in (
            viewer.get(url),
            viewer.get(f"{url}{row.pk}/"),
            viewer.patch(f"{url}{row.pk}/", {"name": "x"}, format="json"),
        ):
            body = assert_error(r, 500, "INTERNAL_ERROR")
            assert not body.get("details"), body
        for r in (editor.get(url), editor.get(f"{url}{row.pk}/")):
            body = assert_error(r, 500, "INTERNAL_ERROR")
            assert body["details"] == {"created_at": [INFINITE_VALUE]}
        r = outsider.get(url)
        assert r.status_code == 200, r.content
        assert r.json()["docs"][0]["created_at"] != "***"
    assert Product.objects.filter(pk=row.pk).exclude(name="x").exists()


# -- a project's DecimalField keeps its class (the OpenAPI schema) ---------------------------


class Rf63Money(serializers.DecimalField):
    """A project's decimal field, documented by its own drf-spectacular extension."""


class Rf63MoneyExtension(OpenApiSerializerFieldExtension):
    target_class = Rf63Money  # matched by exact class, drf-spectacular's default

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "format": "rf63-money"}


class Rf63TallySerializer(serializers.ModelSerializer):
    wide = Rf63Money(max_digits=30, decimal_places=10, required=False)

    class Meta:
        model = RevNumTally
        fields = ["id", "wide"]


@rf63_site.register
class Rf63TallyResource(Resource):
    model = RevNumTally
    name = "tallies"
    serializer_class = Rf63TallySerializer
    permissions = {key: P.allow_public() for key in ("list", "get", "create", "update")}


def test_rf63_a_project_decimal_field_keeps_its_class_and_its_schema(settings):
    """fix-seen11d swapped a project's ``DecimalField``'s class for a generated subclass
    (to hand it a JSON number's text): a drf-spectacular extension for the project's class
    no longer matched it, and the OpenAPI schema lost the project's ``format``. The field
    still reads a JSON number by its text."""
    with site_mounted(settings, "rf63", rf63_site):
        schema = SchemaGenerator().get_schema(request=None, public=True)
        r = client_for().post(
            "/rf63/tallies/", '{"wide": 12345678901234567.891}', content_type="application/json"
        )
    shown = {
        name: component["properties"]["wide"]
        for name, component in schema["components"]["schemas"].items()
        if name.startswith("Rf63Tally") and "wide" in component.get("properties", {})
    }
    assert shown and all(prop["format"] == "rf63-money" for prop in shown.values()), shown
    assert r.status_code == 201, r.content
    assert r.json()["data"]["wide"] == "12345678901234567.8910000000"


class Rf63RequestScaledDecimal(serializers.DecimalField):
    """A project's decimal field whose reading uses its serializer's context (the request),
    as a currency or unit chosen per request would."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        return value * int(self.context["request"].headers.get("X-Rf63-Scale", "1"))


class Rf63RequestScaledFloat(serializers.FloatField):
    """The same for a float field, which arc wraps to refuse a non-finite value."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        return value * int(self.context["request"].headers.get("X-Rf63-Scale", "1"))


class Rf63ScaledTallySerializer(serializers.ModelSerializer):
    wide = Rf63RequestScaledDecimal(max_digits=30, decimal_places=10, required=False)
    ratio = Rf63RequestScaledFloat(required=False)

    class Meta:
        model = RevNumTally
        fields = ["id", "wide", "ratio"]


@rf63_site.register
class Rf63ScaledTallyResource(Resource):
    model = RevNumTally
    name = "scaled-tallies"
    serializer_class = Rf63ScaledTallySerializer
    permissions = {key: P.allow_public() for key in ("list", "get", "create", "update")}


def test_rf63_a_project_decimal_fields_reading_sees_its_own_serializer(settings):
    """The field a request validates with is a copy of a cached one: its reading must run on
    that copy (bound to the request's serializer), not on the cached field, whose context
    holds no request. Each request's own header is read, and a JSON number keeps its
    digits."""
    api = client_for()
    api.raise_request_exception = False
    with site_mounted(settings, "rf63", rf63_site):
        for scale, wide in (
            ("2", "24691357802469135.7820000000"),
            ("3", "37037036703703703.6730000000"),
        ):
            r = api.post(
                "/rf63/scaled-tallies/",
                '{"wide": 12345678901234567.891, "ratio": 1.5}',
                content_type="application/json",
                HTTP_X_RF63_SCALE=scale,
            )
            assert r.status_code == 201, r.content
            assert r.json()["data"]["wide"] == wide
            assert r.json()["data"]["ratio"] == 1.5 * int(scale)
        r = api.post("/rf63/scaled-tallies/", '{"ratio": 1e999}', content_type="application/json")
        assert list(assert_error(r, 400, "VALIDATION_ERROR")["details"]) == ["ratio"]
