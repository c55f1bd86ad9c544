"""rev-fixes74: fix-bagfk's key-column check, looked at from its edges."""

import json

import pytest
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import assert_error, site_mounted
from tests.test_fix_bagfk import SHAPES, _url, bagfk  # noqa: F401
from tests.testapp.models import KeyBadge

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
