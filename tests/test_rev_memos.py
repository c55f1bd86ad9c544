"""rev-memos: the memos the speed work added, asked whether they can outlive, or be shared
beyond, what they were computed from.

A resource routed by hand (``Resource.as_viewset()`` of one on no site) serves requests as a
registered one does: its tenant column is one of those the scope's organization id is read
with (:func:`django_arc.organizations.canonical_organization_id`)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import clear_url_caches, include, path
from rest_framework import serializers
from rest_framework.routers import SimpleRouter

from django_arc import Resource, ResourceSite, presets, sites
from django_arc import permissions as P
from django_arc.clients import ServiceClient
from django_arc.organizations import canonical_organization_id
from shop.models import Membership
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Gauge, Ledger, SlugLedger, UuidOrg, UuidOrgNote

pytestmark = pytest.mark.django_db

MEMBERS = {key: P.require_org_membership() for key in ("list", "get", "create")}


def lenient(user, org_id):
    """A ``MEMBERSHIP_RESOLVER`` letting the ORM read the header: ``01`` is organization 1."""
    roles = Membership.objects.filter(user_id=user.pk, organization_id=org_id)
    return list(roles.values_list("role", flat=True)) or None


class MemoLedgers(Resource):
    model = Ledger
    name = "memo-ledgers"
    presets = [presets.MultiTenant()]
    fields = ["id", "name"]
    permissions = MEMBERS


class MemoSlugLedgers(Resource):
    model = SlugLedger
    name = "memo-slug-ledgers"
    presets = [presets.MultiTenant()]
    fields = ["id", "name"]
    permissions = MEMBERS


@pytest.fixture
def only_these(settings):
    """``MemoLedgers`` on a site of its own, the only one registered, and
    ``MemoSlugLedgers`` routed by hand, the only one so routed; both under ``/rm/``."""
    settings.ARC = {**settings.ARC, "MEMBERSHIP_RESOLVER": "tests.test_rev_memos.lenient"}
    site = ResourceSite(name="rev-memos")
    site.register(MemoLedgers)
    saved_sites = [s for s in sites._all_sites if s is not site]
    saved_by_hand = list(sites._routed_by_hand)
    sites._all_sites[:] = [site]
    sites._routed_by_hand[:] = []
    sites._changed()
    by_hand = MemoSlugLedgers()  # a fresh instance: adopted when routed, in this test
    router = SimpleRouter()
    router.register("memo-slug-ledgers", by_hand.as_viewset(), basename="rm-slug")
    import tests.urls

    patterns = [
        *tests.urls.urlpatterns,
        path("rm/", include(site.urls)),
        path("rm/", include(router.urls)),
    ]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    try:
        yield by_hand
    finally:
        clear_url_caches()
        sites._all_sites[:] = saved_sites
        sites._routed_by_hand[:] = saved_by_hand
        sites._changed()


def test_a_resource_routed_by_hand_counts_among_the_columns_organization_ids_are_read_with(
    only_these,
):
    """``01`` is organization 1 to ``Ledger``'s column (the organization's id) and the
    organization slugged ``01`` to ``SlugLedger``'s (``to_field="slug"``): no spelling is
    canonical, each resource reads the header as its column does. The columns were listed
    from the sites' resources only (and remembered per change of the sites), so with the
    slug column's resource routed by hand, ``01`` became ``1`` for every resource: a member
    of organization 1 sending ``01`` was served the rows of the organization slugged
    ``1``, another tenant's."""
    mine = OrganizationFactory(slug="mine")
    other = OrganizationFactory(slug=str(mine.pk))  # slugged like mine's id
    SlugLedger.objects.create(organization=other, name="theirs")
    Ledger.objects.create(organization=mine, name="mine")
    member = MembershipFactory(organization=mine, role="member").user
    client = client_for(member, HTTP_X_ORGANIZATION_ID=f"0{mine.pk}")

    slugged = client.get("/rm/memo-slug-ledgers/")
    assert slugged.status_code == 200, slugged.content
    assert slugged.json()["docs"] == []  # the organization slugged "0<id>": none
    assert canonical_organization_id(f"0{mine.pk}") == f"0{mine.pk}"
    # the id column still reads the header as organization ``mine``
    listed = client.get("/rm/memo-ledgers/")
    assert listed.status_code == 200, listed.content
    assert [d["name"] for d in listed.json()["docs"]] == ["mine"]


class StampedGaugeSerializer(serializers.ModelSerializer):
    """A project serializer whose field has a default of a mutable value, which its
    ``create()`` completes: DRF gives every serializer its own copy of its declared fields
    (``copy.deepcopy``), their defaults included."""

    labels = serializers.JSONField(default={})

    class Meta:
        model = Gauge
        fields = ["id", "reading", "labels"]

    def create(self, validated_data):
        validated_data["labels"].setdefault("created_by", self.context["request"].user.username)
        return super().create(validated_data)


class StampedGauges(Resource):
    model = Gauge
    name = "stamped-gauges"
    serializer_class = StampedGaugeSerializer
    permissions = {key: P.require_auth() for key in ("list", "get", "create")}


def test_a_fields_default_is_each_requests_own(settings):
    """The serializer's fields are built once per class and copied for each serializer
    (``serializers._clone``): a copy of the field's attributes, which shared the default's
    value itself. A ``default={}`` completed by ``create()`` on one request was the next
    request's default as completed: bob's gauge was stamped ``created_by: alice``, a value
    of another caller's request (another tenant's, where the rows have one)."""
    site = ResourceSite(name="rev-memos-gauges")
    site.register(StampedGauges)
    try:
        with site_mounted(settings, "rmg", site):
            for user in ("alice", "bob"):
                client = client_for(UserFactory(username=user))
                created = client.post("/rmg/stamped-gauges/", {"reading": 1}, format="json")
                assert created.status_code == 201, created.content
                assert created.json()["data"]["labels"] == {"created_by": user}
            stored = dict(Gauge.objects.values_list("labels__created_by", "reading"))
            assert set(stored) == {"alice", "bob"}
            # the declared default itself is left as declared
            assert StampedGaugeSerializer._declared_fields["labels"].default == {}
    finally:
        sites._all_sites.remove(site)
        sites._changed()


class StaffWordedGaugeSerializer(serializers.ModelSerializer):
    """A project serializer rewording a field's error for staff callers as it is built (DRF
    gives every serializer fields of its own, their ``error_messages`` included)."""

    class Meta:
        model = Gauge
        fields = ["id", "reading"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_staff:
            self.fields["reading"].error_messages["invalid"] = "Staff: a number, please."


class StaffWordedGauges(Resource):
    model = Gauge
    name = "staff-worded-gauges"
    serializer_class = StaffWordedGaugeSerializer
    permissions = {key: P.require_auth() for key in ("list", "get", "create")}


def test_a_fields_error_messages_are_each_requests_own(settings):
    """A field's ``error_messages`` dict was the prototype's, shared by every copy: the
    staff wording one request set was every later caller's."""
    site = ResourceSite(name="rev-memos-worded")
    site.register(StaffWordedGauges)
    try:
        with site_mounted(settings, "rmw", site):
            staff = client_for(UserFactory(username="staff", is_staff=True))
            refused = staff.post("/rmw/staff-worded-gauges/", {"reading": "x"}, format="json")
            assert refused.status_code == 400, refused.content
            assert refused.json()["details"]["reading"] == ["Staff: a number, please."]
            member = client_for(UserFactory(username="member"))
            refused = member.post("/rmw/staff-worded-gauges/", {"reading": "x"}, format="json")
            assert refused.status_code == 400, refused.content
            assert refused.json()["details"]["reading"] == ["A valid number is required."]
    finally:
        sites._all_sites.remove(site)
        sites._changed()


class MemoUuidNotes(Resource):
    model = UuidOrgNote
    name = "memo-uuid-notes"
    presets = [presets.MultiTenant()]
    fields = ["id", "title"]
    permissions = MEMBERS


def test_a_service_client_is_refused_an_organization_a_hand_routed_resource_cannot_find():
    """``arc_create_client --org`` (and the admin's form) checks the organization exists in
    every model the served resources' tenant columns point at: with the only tenant resource
    routed by hand, none was asked, and a key was made for an organization that does not
    exist (it reads nothing, or whatever organization is created under that id later)."""
    saved_sites, saved_by_hand = list(sites._all_sites), list(sites._routed_by_hand)
    sites._all_sites[:] = []
    sites._routed_by_hand[:] = []
    sites._changed()
    try:
        MemoUuidNotes().as_viewset()  # routed by hand: adopted
        missing = "0b0e5b0e-0000-4000-8000-000000000000"
        with pytest.raises(CommandError, match="does not exist"):
            call_command("arc_create_client", name="sync", org=missing, key_only=True)
        assert not ServiceClient.objects.exists()
        found = UuidOrg.objects.create(name="there")
        call_command("arc_create_client", name="sync", org=str(found.pk), key_only=True)
        assert ServiceClient.objects.get().organization_id == str(found.pk)
    finally:
        sites._all_sites[:] = saved_sites
        sites._routed_by_hand[:] = saved_by_hand
        sites._changed()
