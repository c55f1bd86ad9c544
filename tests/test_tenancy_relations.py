"""Which body relations ``MultiTenant`` narrows to the caller's tenant, and which models it
names as organizations (each case was found by a hand mutant of ``presets/tenancy.py`` that
the suite let through):

- a related model is narrowed by a dimension only when it carries that same dimension: a
  same-named relation to the same tenant model (or a same-named plain field for a context
  value). A same-named relation to *another* model (``Vendor.organization`` → ``UuidOrg``),
  or a same-named relation where the dimension is a plain value (``Vendor.branch`` →
  ``Branch`` where a booking's ``branch`` is text), is not that dimension: the row is a
  valid target whatever it points at;
- an elevated caller naming an organization but no branch has no branch value: the
  related rows are narrowed by the organization alone (no 500 on the missing value);
- ``organization_models`` (what ``arc_create_client --org`` checks an organization
  exists in) names the targets of ``org`` dimensions only, never a ``context`` dimension's
  relation (``owner`` → ``auth.User``).
"""

import io

import pytest
from django.core.management import call_command

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.models import ServiceClient
from django_arc.organizations import organization_models
from shop.models import Organization
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Booking, Branch, Desk, UuidOrg, Vendor

pytestmark = pytest.mark.django_db

site = ResourceSite(name="tenant-relations")


@site.register
class BookingResource(Resource):
    model = Booking
    name = "bookings"
    fields = ["id", "organization", "branch", "desk", "vendor"]
    presets = [
        presets.MultiTenant(
            tenant_fields=[
                {"field": "organization", "type": "org"},
                {"field": "branch", "context_key": "branch_id"},
            ]
        )
    ]
    permissions = {"list": P.require_org_membership(), "create": P.require_org_membership()}


def _member(org, **headers):
    user = MembershipFactory(organization=org, role="member").user
    return client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk), **headers)


def test_a_same_named_field_that_is_another_thing_does_not_narrow_a_relation(settings):
    """``Vendor.organization`` points at another model and ``Vendor.branch`` is a relation
    where a booking's branch is text: a vendor is no tenant's row, and any vendor is a
    valid target, whatever its ``organization`` or ``branch`` holds."""
    org = OrganizationFactory()
    elsewhere = UuidOrg.objects.create(name="elsewhere")
    branch = Branch.objects.create(name="north")
    vendors = [
        Vendor.objects.create(name="plain"),
        Vendor.objects.create(name="of a uuid org", organization=elsewhere),
        Vendor.objects.create(name="of a branch row", branch=branch),
    ]
    member = _member(org, HTTP_X_ARC_CONTEXT_BRANCH_ID="north")
    with site_mounted(settings, "tenant-relations", site):
        for vendor in vendors:
            r = member.post("/tenant-relations/bookings/", {"vendor": vendor.pk}, format="json")
            assert r.status_code == 201, (vendor.name, r.content)
            assert r.json()["data"]["vendor"] == vendor.pk
    assert sorted(Booking.objects.values_list("vendor__name", "organization_id", "branch")) == [
        ("of a branch row", org.pk, "north"),
        ("of a uuid org", org.pk, "north"),
        ("plain", org.pk, "north"),
    ]


def test_a_relation_carrying_both_dimensions_is_narrowed_by_both(settings):
    org, other = OrganizationFactory(), OrganizationFactory()
    mine = Desk.objects.create(organization=org, branch="north", label="mine")
    other_branch = Desk.objects.create(organization=org, branch="south", label="south")
    other_org = Desk.objects.create(organization=other, branch="north", label="theirs")
    member = _member(org, HTTP_X_ARC_CONTEXT_BRANCH_ID="north")
    with site_mounted(settings, "tenant-relations", site):
        for desk in (other_branch, other_org):
            r = member.post("/tenant-relations/bookings/", {"desk": desk.pk}, format="json")
            assert_error(r, 400, "VALIDATION_ERROR")
            assert "desk" in r.json()["details"], r.json()
        r = member.post("/tenant-relations/bookings/", {"desk": mine.pk}, format="json")
        assert r.status_code == 201, r.content
    assert list(Booking.objects.values_list("desk__label", flat=True)) == ["mine"]


def test_an_elevated_caller_without_the_context_value_is_narrowed_by_the_organization(settings):
    """Elevated with ``X-Organization-Id`` and no branch header: the branch dimension has
    no value, so the related rows are narrowed by the organization only (every branch's
    desk of that organization; not another organization's)."""
    org, other = OrganizationFactory(), OrganizationFactory()
    south = Desk.objects.create(organization=org, branch="south", label="south")
    theirs = Desk.objects.create(organization=other, branch="south", label="theirs")
    superuser = client_for(
        UserFactory(is_superuser=True),
        HTTP_X_ARC_SCOPE="platform",
        HTTP_X_ORGANIZATION_ID=str(org.pk),
    )
    with site_mounted(settings, "tenant-relations", site):
        r = superuser.post("/tenant-relations/bookings/", {"desk": theirs.pk}, format="json")
        assert_error(r, 400, "VALIDATION_ERROR")
        r = superuser.post("/tenant-relations/bookings/", {"desk": south.pk}, format="json")
        assert r.status_code == 201, r.content
    assert list(Booking.objects.values_list("desk__label", "organization_id")) == [
        ("south", org.pk)
    ]


def test_a_context_dimensions_relation_is_no_organization_model():
    """``OwnerContextNoteResource`` (registered on the test site) has an ``owner`` context
    dimension, a relation to ``auth.User``: not where organization ids point, so a client
    for an organization whose id no user has is created."""
    assert Organization in organization_models()
    assert all(model._meta.label != "auth.User" for model in organization_models())
    org = OrganizationFactory()
    UserFactory()  # a user exists, under another id than the organization's
    from django.contrib.auth.models import User

    User.objects.filter(pk=org.pk).delete()
    call_command("arc_create_client", "--name", "erp", "--org", str(org.pk), stdout=io.StringIO())
    assert ServiceClient.objects.get(name="erp").organization_id == str(org.pk)
