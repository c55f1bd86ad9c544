"""MultiTenant rules no other test pinned down (each was found by a hand mutant of
``presets/tenancy.py`` that the suite let through):

- an elevated caller without an org cannot bulk-create: the bulk route's permission key is
  ``bulkCreate``, under which an org-less elevated caller reads every tenant, but the rows'
  tenant values are resolved as a create's (403 ``ORG_REQUIRED``, nothing written);
- a project's route creating rows with ``view.perform_create`` resolves the tenant values
  as a create's, whatever its own permission key: an org-less elevated caller is asked for an
  organization (403 ``ORG_REQUIRED``), not given a row in no tenant (or a 500);
- ``allow_public_reads`` lifts tenancy for reads only: an org-less caller allowed to create
  on such a resource is still asked for an organization.
"""

import pytest

from django_arc import Resource, ResourceSite, presets, route
from django_arc import permissions as P
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db


def test_elevated_bulk_create_without_an_org_is_org_required_and_writes_nothing():
    OrganizationFactory()
    superuser = client_for(UserFactory(is_superuser=True), HTTP_X_ARC_SCOPE="platform")
    items = [{"slug": "s1", "title": "T1"}, {"slug": "s2", "title": "T2"}]
    r = superuser.post("/api/all-articles/bulk/", {"items": items}, format="json")
    body = assert_error(r, 403, "ORG_REQUIRED")
    assert body["details"] == {"missing": "organization"}
    assert not Article.objects.exists()


public_reads_site = ResourceSite(name="public-reads")


@public_reads_site.register
class OpenCatalogueResource(Resource):
    model = Product
    name = "open-catalogue"
    fields = ["id", "name", "price", "organization"]
    presets = [presets.MultiTenant(allow_public_reads=True)]
    permissions = {
        "list": P.allow_public(),
        "get": P.allow_public(),
        "create": P.require_auth(),
        "update": P.require_auth(),
    }


def test_public_reads_do_not_lift_tenancy_for_writes(settings):
    org = OrganizationFactory()
    product = Product.objects.create(organization=org, name="p", price=1)
    orgless = client_for(UserFactory())
    with site_mounted(settings, "public-reads", public_reads_site):
        r = orgless.get("/public-reads/open-catalogue/")
        assert r.status_code == 200 and r.json()["total"] == 1
        r = orgless.post("/public-reads/open-catalogue/", {"name": "q", "price": 2}, format="json")
        assert assert_error(r, 403, "ORG_REQUIRED")["details"] == {"missing": "organization"}
        r = orgless.patch(
            f"/public-reads/open-catalogue/{product.pk}/", {"name": "r"}, format="json"
        )
        assert assert_error(r, 403, "ORG_REQUIRED")["details"] == {"missing": "organization"}
    assert list(Product.objects.values_list("name", flat=True)) == ["p"]


routes_site = ResourceSite(name="tenant-routes")


@routes_site.register
class ImportingProductResource(Resource):
    model = Product
    name = "importing-products"
    fields = ["id", "name", "price", "organization"]
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership()}

    @route("POST", "import", permissions=P.require_org_role("admin"), status=201)
    def import_one(self, request, view):
        return {"id": view.perform_create(request.data).instance.pk}


def test_a_route_creating_rows_asks_an_orgless_elevated_caller_for_an_organization(settings):
    org = OrganizationFactory()
    superuser = client_for(UserFactory(is_superuser=True), HTTP_X_ARC_SCOPE="platform")
    admin = client_for(
        MembershipFactory(organization=org, role="admin").user,
        HTTP_X_ORGANIZATION_ID=str(org.pk),
    )
    body = {"name": "imported", "price": "1.00"}
    with site_mounted(settings, "tenant-routes", routes_site):
        r = superuser.post("/tenant-routes/importing-products/import/", body, format="json")
        assert assert_error(r, 403, "ORG_REQUIRED")["details"] == {"missing": "organization"}
        assert not Product.objects.exists()
        r = admin.post("/tenant-routes/importing-products/import/", body, format="json")
        assert r.status_code == 201, r.content
    assert list(Product.objects.values_list("organization_id", flat=True)) == [org.pk]
