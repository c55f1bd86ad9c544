"""rev-fixes74: fix-bagfk's key-column check, looked at from its edges."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import assert_error, site_mounted
from tests.test_fix_bagfk import SHAPES, _url, bagfk  # noqa: F401
from tests.testapp.models import (
    KeyBadge,
    Oddity,
    Periodical,
    PeriodicalProxy,
    Placement,
    TenantShelf,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("shape", SHAPES)
def test_rf74_the_rows_own_unchanged_product_by_any_shape_is_taken(bagfk, shape):  # noqa: F811
    """A key by the relation's name (``product``) re-sending the row's own product."""
    body, _ = SHAPES[shape]
    order, mine = bagfk["order"], bagfk["mine"]
    r = bagfk["editor"].patch(_url(order), body(mine.pk), format="json")
    assert r.status_code == 200, r.content
    order.refresh_from_db()
    assert order.product_id == mine.pk


# -- a one-to-one column (unique) through a bag ------------------------------------------

keyed_site = ResourceSite(name="rev-fixes74")


class _BadgeSerializer(serializers.ModelSerializer):
    extra = serializers.DictField(source="*", required=False, write_only=True)
    pid = serializers.IntegerField(source="product_id", required=False, write_only=True)

    class Meta:
        model = KeyBadge
        fields = ["id", "organization", "product", "name", "extra", "pid"]


@keyed_site.register
class Rf74BadgeResource(Resource):
    model = KeyBadge
    name = "rf74-badges"
    serializer_class = _BadgeSerializer
    read_only_fields = ["id"]
    presets = [presets.MultiTenant()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


@pytest.fixture
def badges(settings):
    org, elsewhere = OrganizationFactory(), OrganizationFactory()
    editor = member_client(org, "editor")
    mine, second = ProductFactory(organization=org), ProductFactory(organization=org)
    other = ProductFactory(organization=elsewhere)
    badge = KeyBadge.objects.create(organization=org, name="b")
    taken = KeyBadge.objects.create(organization=org, name="t", product=second)
    with site_mounted(settings, "rf74", keyed_site):
        yield {
            "editor": editor,
            "mine": mine,
            "second": second,
            "other": other,
            "badge": badge,
            "taken": taken,
        }


@pytest.mark.parametrize(
    "body",
    [
        lambda p: {"extra": {"product_id": p}},
        lambda p: {"extra": {"product": p}},
        lambda p: {"pid": p},
    ],
)
def test_rf74_a_one_to_one_column_through_a_bag_is_judged_not_a_500(badges, body):
    """Before: a 500 (DRF's ``UniqueValidator`` on the unbound relation field read its
    ``source_attrs``) for every value, the caller's own product included."""
    editor, badge = badges["editor"], badges["badge"]
    url = f"/rf74/rf74-badges/{badge.pk}/"
    r = editor.patch(url, body(badges["other"].pk), format="json")
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert f'Invalid pk \\"{badges["other"].pk}\\"' in json.dumps(error["details"]), error
    # a product another badge holds: the one-to-one's own 400, not the database's 409
    r = editor.patch(url, body(badges["second"].pk), format="json")
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert "already exists" in json.dumps(error["details"]), error
    r = editor.patch(url, body(badges["mine"].pk), format="json")
    assert r.status_code == 200, r.content
    badge.refresh_from_db()
    assert badge.product_id == badges["mine"].pk
    # the badge's own product sent again is taken (its own row is no clash)
    r = editor.patch(url, body(badges["mine"].pk), format="json")
    assert r.status_code == 200, r.content


# -- a multi-table child, its proxy, and a many-to-many through a bag -------------------


class _PeriodicalSerializer(serializers.ModelSerializer):
    extra = serializers.DictField(source="*", required=False, write_only=True)

    class Meta:
        model = Periodical
        fields = ["id", "title", "shelf", "shelves", "extra"]


@keyed_site.register
class Rf74PeriodicalResource(Resource):
    model = Periodical
    name = "rf74-periodicals"
    serializer_class = _PeriodicalSerializer
    read_only_fields = ["id"]
    presets = [presets.MultiTenant()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


@keyed_site.register
class Rf74PeriodicalProxyResource(Rf74PeriodicalResource):
    model = PeriodicalProxy
    name = "rf74-periodical-proxies"


@pytest.fixture
def shelves(settings):
    org, elsewhere = OrganizationFactory(), OrganizationFactory()
    editor = member_client(org, "editor")
    mine = TenantShelf.objects.create(organization=org, name="mine")
    theirs = TenantShelf.objects.create(organization=elsewhere, name="theirs")
    row = Periodical.objects.create(organization=org, title="p")
    with site_mounted(settings, "rf74", keyed_site):
        yield {"editor": editor, "mine": mine, "theirs": theirs, "row": row}


@pytest.mark.parametrize("name", ["rf74-periodicals", "rf74-periodical-proxies"])
@pytest.mark.parametrize("extra", [{"shelf_id": "T"}, {"shelf": "T"}, {"shelves": ["T"]}])
def test_rf74_a_child_or_proxy_names_no_other_tenants_shelf_through_a_bag(shelves, name, extra):
    row, theirs = shelves["row"], shelves["theirs"]
    body = {k: [theirs.pk] if isinstance(v, list) else theirs.pk for k, v in extra.items()}
    r = shelves["editor"].patch(f"/rf74/{name}/{row.pk}/", {"extra": body}, format="json")
    assert r.status_code == 400, r.content
    row.refresh_from_db()
    assert row.shelf_id is None and not row.shelves.exists()


def test_rf74_the_tenants_own_shelves_through_a_bag_are_linked_in_one_query(shelves):
    row, mine = shelves["row"], shelves["mine"]
    second = TenantShelf.objects.create(organization=mine.organization, name="second")
    url = f"/rf74/rf74-periodicals/{row.pk}/"
    with CaptureQueriesContext(connection) as queries:
        r = shelves["editor"].patch(
            url, {"extra": {"shelves": [mine.pk, second.pk], "shelf_id": mine.pk}}, format="json"
        )
    assert r.status_code == 200, r.content
    assert sorted(r.json()["data"]["shelves"]) == sorted([mine.pk, second.pk])
    row.refresh_from_db()
    assert row.shelf_id == mine.pk
    assert set(row.shelves.values_list("pk", flat=True)) == {mine.pk, second.pk}
    # the two ids in one query (arc's many-to-many reading), the shelf in one more
    named = [q for q in queries if 'FROM "testapp_tenantshelf"' in q["sql"] and "WHERE" in q["sql"]]
    read = [q for q in named if "periodical" not in q["sql"]]
    assert len(read) == 2, [q["sql"] for q in named]
    # a list emptied, and a value that is no list: the relation's own answers
    r = shelves["editor"].patch(url, {"extra": {"shelves": []}}, format="json")
    assert r.status_code == 200, r.content
    assert not row.shelves.exists()
    r = shelves["editor"].patch(url, {"extra": {"shelves": mine.pk}}, format="json")
    assert_error(r, 400, "VALIDATION_ERROR")


class _OdditySerializer(serializers.ModelSerializer):
    extra = serializers.DictField(source="*", required=False, write_only=True)

    class Meta:
        model = Oddity
        fields = ["id", "code", "extra"]


@keyed_site.register
class Rf74OddityResource(Resource):
    model = Oddity
    name = "rf74-oddities"
    serializer_class = _OdditySerializer
    read_only_fields = ["id"]
    presets = [presets.MultiTenant()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


def test_rf74_a_many_to_many_through_a_model_names_no_other_tenants_shelf(shelves):
    """``shelves`` goes through ``Placement``: DRF builds it read-only, but ``set()``
    takes a bag's ids (through_defaults): another tenant's shelf was placed, 200."""
    org = shelves["mine"].organization
    oddity = Oddity.objects.create(organization=org)
    url = f"/rf74/rf74-oddities/{oddity.pk}/"
    theirs, mine = shelves["theirs"], shelves["mine"]
    r = shelves["editor"].patch(url, {"extra": {"shelves": [theirs.pk]}}, format="json")
    assert r.status_code == 400, r.content
    assert not Placement.objects.exists()
    r = shelves["editor"].patch(url, {"extra": {"shelves": [mine.pk]}}, format="json")
    assert r.status_code == 200, r.content
    assert list(Placement.objects.values_list("shelf_id", flat=True)) == [mine.pk]
