"""rev-fixes63: a review of fix-seen11d (time ranges compared and sorted as shown, a plain
date or time stored as ``infinity`` named in its 500, a project's ``DecimalField`` reading
a JSON number as written)."""

from __future__ import annotations

import pytest
from django.db import connection

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as FR
from django_arc import permissions as P
from django_arc.exceptions import INFINITE_VALUE
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import assert_error, client_for, site_mounted

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
