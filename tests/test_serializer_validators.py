"""A project's ``serializer_class`` with DRF's ``UniqueTogetherValidator`` over the tenant
(``Meta.validators``, the usual way to say "a SKU is unique within its organization") on a
``MultiTenant`` resource.

The tenant column is made read-only (the preset sets it), so DRF's validator found no
value for it: every create answered 400 ``organization: This field is required``, naming
the caller's own organization or not. It now sees the value the preset forces, as DRF
hands it a read-only field's default: a SKU taken in the caller's organization is DRF's 400
naming the set, one taken only in another organization is free (no oracle across tenants).
"""

import pytest
from rest_framework import serializers
from rest_framework.validators import UniqueTogetherValidator

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from shop.models import Organization, Product
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import assert_error, site_mounted

pytestmark = pytest.mark.django_db

URL = "/uv/unique-skus/"
UNIQUE = ["The fields organization, sku must make a unique set."]


class UniqueSkuSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "organization"]
        validators = [
            UniqueTogetherValidator(queryset=Product.objects.all(), fields=["organization", "sku"])
        ]


class UniqueSkuResource(Resource):
    model = Product
    name = "unique-skus"
    serializer_class = UniqueSkuSerializer
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


@pytest.fixture
def orgs(settings):
    site = ResourceSite(name="unique-skus-site")
    site.register(UniqueSkuResource)
    with site_mounted(settings, "uv", site):
        yield OrganizationFactory(), OrganizationFactory()


@pytest.mark.parametrize("own_org_in_body", [False, True])
def test_a_create_is_validated_with_the_callers_tenant(orgs, own_org_in_body):
    a, b = orgs
    ProductFactory(organization=b, sku="TAKEN-IN-B")
    client = member_client(a, "editor")
    extra = {"organization": a.pk} if own_org_in_body else {}
    for sku in ("S1", "TAKEN-IN-B"):
        r = client.post(URL, {"name": "x", "sku": sku, "price": "1.00", **extra}, format="json")
        assert r.status_code == 201, r.json()
        assert r.json()["data"]["organization"] == a.pk
    body = assert_error(
        client.post(URL, {"name": "y", "sku": "S1", "price": "2.00", **extra}, format="json"),
        400,
        "VALIDATION_ERROR",
    )
    assert body["details"] == {"non_field_errors": UNIQUE}
    assert sorted(Product.objects.filter(organization=a).values_list("sku", flat=True)) == [
        "S1",
        "TAKEN-IN-B",
    ]


def test_an_update_is_validated_within_the_rows_tenant(orgs):
    a, b = orgs
    ProductFactory(organization=b, sku="B-ONLY")
    ProductFactory(organization=a, sku="A-TAKEN")
    mine = ProductFactory(organization=a, sku="MINE")
    client = member_client(a, "editor")
    r = client.patch(f"{URL}{mine.pk}/", {"sku": "B-ONLY"}, format="json")
    assert r.status_code == 200, r.json()
    body = assert_error(
        client.patch(f"{URL}{mine.pk}/", {"sku": "A-TAKEN"}, format="json"),
        400,
        "VALIDATION_ERROR",
    )
    assert body["details"] == {"non_field_errors": UNIQUE}


class TenantByNamePreset(presets.MultiTenant):
    """A project's tenancy preset forcing the tenant keyed by the relation's name (an
    ``Organization``), not by its attname (an id) as the built-in one does."""

    def write_values(self, view, instance=None):
        from shop.models import Organization

        values = super().write_values(view, instance)
        if "organization_id" not in values:
            return values
        return {"organization": Organization.objects.get(pk=values["organization_id"])}


class TenantByNameResource(UniqueSkuResource):
    name = "unique-skus-by-name"
    presets = [TenantByNamePreset(tenant_field="organization")]


def test_a_preset_forcing_the_tenant_by_the_relations_name_is_validated_too(settings):
    """A preset's ``write_values`` may key a relation by its name (``organization``) as
    ``serializer.save()`` accepts it: the validator gets that value as it gets one keyed by
    the attname (``organization_id``), or every create was 400 "This field is required"."""
    site = ResourceSite(name="unique-skus-by-name-site")
    site.register(TenantByNameResource)
    with site_mounted(settings, "uvn", site):
        a, b = OrganizationFactory(), OrganizationFactory()
        ProductFactory(organization=b, sku="TAKEN-IN-B")
        client = member_client(a, "editor")
        url = "/uvn/unique-skus-by-name/"
        r = client.post(url, {"name": "x", "sku": "TAKEN-IN-B", "price": "1.00"}, format="json")
        assert r.status_code == 201, r.json()
        assert r.json()["data"]["organization"] == a.pk
        r = client.post(url, {"name": "y", "sku": "TAKEN-IN-B", "price": "1.00"}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {"non_field_errors": UNIQUE}
        assert Product.objects.filter(sku="TAKEN-IN-B").count() == 2


class OwnDefaultTenantSerializer(UniqueSkuSerializer):
    """The tenant read-only with a default of the serializer's own (``None``): what is saved
    is the preset's value (``save(**write_values)``), not this default."""

    organization = serializers.PrimaryKeyRelatedField(read_only=True, default=None)


class OwnDefaultTenantResource(UniqueSkuResource):
    name = "unique-skus-own-default"
    serializer_class = OwnDefaultTenantSerializer


def test_a_read_only_tenant_with_a_default_of_its_own_is_validated_with_the_forced_value(
    settings,
):
    site = ResourceSite(name="unique-skus-own-default-site")
    site.register(OwnDefaultTenantResource)
    with site_mounted(settings, "uvd", site):
        a = OrganizationFactory()
        client = member_client(a, "editor")
        url = "/uvd/unique-skus-own-default/"
        r = client.post(url, {"name": "x", "sku": "S1", "price": "1.00"}, format="json")
        assert r.status_code == 201, r.json()
        r = client.post(url, {"name": "y", "sku": "S1", "price": "1.00"}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {"non_field_errors": UNIQUE}


class CurrentOrganization:
    """A project's default for the tenant: the caller's ``Organization`` (an instance)."""

    requires_context = True

    def __call__(self, field):
        from django_arc.scope import get_scope
        from shop.models import Organization

        return Organization.objects.get(pk=get_scope(field.context["request"]).organization_id)


def sku_prefixed_by_slug(attrs):
    """A project's validator reading the tenant's row, as its default hands it."""
    if not attrs["sku"].startswith(attrs["organization"].slug):
        raise serializers.ValidationError({"sku": "Must start with the organization's slug."})


class InstanceDefaultTenantSerializer(UniqueSkuSerializer):
    organization = serializers.PrimaryKeyRelatedField(read_only=True, default=CurrentOrganization())

    class Meta(UniqueSkuSerializer.Meta):
        validators = [sku_prefixed_by_slug]


class InstanceDefaultTenantResource(UniqueSkuResource):
    name = "unique-skus-instance-default"
    serializer_class = InstanceDefaultTenantSerializer


def test_a_tenant_default_naming_the_forced_row_reaches_the_validator_as_it_is(settings):
    """A read-only tenant whose own default is the caller's ``Organization`` (an instance a
    project's validator reads: ``attrs["organization"].slug``): the forced value (the
    preset's ``organization_id``, an id) replaced it, and the validator's attribute read
    was a 500. A default naming the forced row is handed as it is; one naming another
    still loses to the forced value."""
    site = ResourceSite(name="unique-skus-instance-default-site")
    site.register(InstanceDefaultTenantResource)
    with site_mounted(settings, "uvi", site):
        a = OrganizationFactory()
        client = member_client(a, "editor")
        url = "/uvi/unique-skus-instance-default/"
        r = client.post(url, {"name": "x", "sku": f"{a.slug}-1", "price": "1.00"}, format="json")
        assert r.status_code == 201, r.content
        assert r.json()["data"]["organization"] == a.pk
        r = client.post(url, {"name": "y", "sku": "other-1", "price": "1.00"}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "sku": ["Must start with the organization's slug."]
        }


class OtherOrganization:
    """A project's default naming another row than the forced one (a fallback tenant)."""

    def __call__(self):
        from shop.models import Organization

        return Organization.objects.order_by("-pk").first()


class NoneDefaultSlugSerializer(UniqueSkuSerializer):
    organization = serializers.PrimaryKeyRelatedField(read_only=True, default=None)

    class Meta(UniqueSkuSerializer.Meta):
        validators = [*UniqueSkuSerializer.Meta.validators, sku_prefixed_by_slug]


class OtherDefaultSlugSerializer(NoneDefaultSlugSerializer):
    organization = serializers.PrimaryKeyRelatedField(read_only=True, default=OtherOrganization())


@pytest.mark.parametrize(
    "serializer_class",
    [NoneDefaultSlugSerializer, OtherDefaultSlugSerializer],
    ids=["none", "other"],
)
def test_a_tenant_default_of_its_own_hands_validators_the_forced_row_not_its_id(
    settings, serializer_class
):
    """A read-only tenant whose own default is ``None`` or another organization: the
    forced value wins (e5e37fd), and reached the validators as the preset's raw id, so a
    project's validator reading ``attrs["organization"].slug`` was a 500. It is handed the
    caller's ``Organization``: a SKU with its slug is 201, another is the validator's 400,
    and a taken one DRF's unique-set 400."""
    resource = type(
        f"SlugChecked{serializer_class.__name__}",
        (UniqueSkuResource,),
        {
            "name": f"slug-checked-{serializer_class.__name__.lower()}",
            "serializer_class": serializer_class,
        },
    )
    site = ResourceSite(name=f"slug-checked-site-{serializer_class.__name__}")
    site.register(resource)
    with site_mounted(settings, "uvs", site):
        a, b = OrganizationFactory(), OrganizationFactory()
        assert OtherOrganization()() == b
        client = member_client(a, "editor")
        url = f"/uvs/{resource.name}/"
        r = client.post(url, {"name": "x", "sku": f"{a.slug}-1", "price": "1.00"}, format="json")
        assert r.status_code == 201, r.content
        assert r.json()["data"]["organization"] == a.pk
        r = client.post(url, {"name": "y", "sku": "other-1", "price": "1.00"}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "sku": ["Must start with the organization's slug."]
        }
        r = client.post(url, {"name": "z", "sku": f"{a.slug}-1", "price": "1.00"}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {"non_field_errors": UNIQUE}
        assert list(Product.objects.values_list("organization_id", "sku")) == [
            (a.pk, f"{a.slug}-1")
        ]


def _slug_checked(settings, serializer_class, bulk=False):
    resource = type(
        f"SlugCheckedBulk{serializer_class.__name__}",
        (UniqueSkuResource,),
        {
            "name": f"slug-bulk-{serializer_class.__name__.lower()}",
            "serializer_class": serializer_class,
            "presets": [presets.MultiTenant(tenant_field="organization"), presets.Bulk()],
        },
    )
    site = ResourceSite(name=f"slug-bulk-site-{serializer_class.__name__}")
    site.register(resource)
    return resource, site_mounted(settings, "uvb", site)


@pytest.mark.parametrize(
    "serializer_class",
    [NoneDefaultSlugSerializer, OtherDefaultSlugSerializer],
    ids=["none", "other"],
)
def test_a_partial_update_hands_validators_the_forced_row_too(settings, serializer_class):
    """DRF skips a read-only field's default on a partial update, so the tenant's default of
    its own (``None``, another organization) was not seen and the validator was handed the
    preset's raw id again: a PATCH (and a bulk PATCH) whose validator reads
    ``attrs["organization"].slug`` was a 500. It is handed the caller's ``Organization``."""
    resource, mounted = _slug_checked(settings, serializer_class)
    with mounted:
        a, _ = OrganizationFactory(), OrganizationFactory()
        client = member_client(a, "editor")
        url = f"/uvb/{resource.name}/"
        r = client.post(url, {"name": "x", "sku": f"{a.slug}-1", "price": "1.00"}, format="json")
        assert r.status_code == 201, r.content
        pk = r.json()["data"]["id"]
        r = client.patch(f"{url}{pk}/", {"sku": f"{a.slug}-2"}, format="json")
        assert r.status_code == 200, r.content
        r = client.patch(f"{url}{pk}/", {"sku": "other-2"}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "sku": ["Must start with the organization's slug."]
        }
        items = {"items": [{"id": pk, "sku": f"{a.slug}-3"}]}
        r = client.patch(f"{url}bulk/", items, format="json")
        assert r.status_code == 200, r.content
        assert list(Product.objects.values_list("organization_id", "sku")) == [
            (a.pk, f"{a.slug}-3")
        ]


def test_a_bulk_create_reads_the_forced_row_once(settings):
    """The forced row handed to validators (a tenant default of its own) was read once per
    item: a bulk create of 3 rows asked for the organization 3 times, 50 rows 50 times. It
    is read once per request, whatever the number of items."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    resource, mounted = _slug_checked(settings, NoneDefaultSlugSerializer)
    with mounted:
        a = OrganizationFactory()
        client = member_client(a, "editor")
        url = f"/uvb/{resource.name}/bulk/"
        reads = []
        for n in (1, 3):
            items = [{"name": "x", "sku": f"{a.slug}-{n}-{i}", "price": "1"} for i in range(n)]
            with CaptureQueriesContext(connection) as ctx:
                r = client.post(url, {"items": items}, format="json")
            assert r.status_code == 201, r.content
            table = Organization._meta.db_table
            reads.append(sum(f'FROM "{table}"' in q["sql"] for q in ctx.captured_queries))
        assert reads[0] == reads[1] == 1
        assert Product.objects.filter(organization=a).count() == 4
