"""fix-bagfk: a foreign key's column written without the declared relation field (a
``DictField``/``JSONField(source="*")`` key, a nested ``source="*"`` serializer's plain
field, a top-level ``IntegerField(source="product_id")``) names only the rows the declared
relation field would accept: the same narrowed queryset, the same 400."""

import json

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from shop.models import Order
from tests.factories import OrderFactory, OrganizationFactory, ProductFactory, member_client
from tests.helpers import assert_error, site_mounted
from tests.testapp.models import Folder, Rack, RackItem, RgComment, RgPlace, UuidThing

pytestmark = pytest.mark.django_db

bagfk_site = ResourceSite(name="fix-bagfk")

MEMBERS = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


class _BagfkInner(serializers.Serializer):
    """Inside ``meta`` (its values the row's own): a plain field named by the column, and a
    bag of more of the row's values."""

    product_id = serializers.IntegerField(required=False)
    inner = serializers.DictField(source="*", required=False)


class _BagfkOrderSerializer(serializers.ModelSerializer):
    extra = serializers.DictField(source="*", required=False, write_only=True)
    bag = serializers.JSONField(source="*", binary=True, required=False, write_only=True)
    meta = _BagfkInner(source="*", required=False, write_only=True)
    pid = serializers.IntegerField(source="product_id", required=False, write_only=True)
    code = serializers.CharField(source="product_id", required=False, write_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "product",
            "quantity",
            "customer_email",
            "organization",
            *("extra", "bag", "meta", "pid", "code"),
        ]
        # a create may name its product through any of the other shapes
        extra_kwargs = {"product": {"required": False}}


@bagfk_site.register
class BagfkOrderResource(Resource):
    model = Order
    name = "bagfk-orders"
    serializer_class = _BagfkOrderSerializer
    read_only_fields = ["id"]
    presets = [presets.MultiTenant()]
    permissions = MEMBERS


class _BagfkBulkOrderSerializer(_BagfkOrderSerializer):
    """A bulk write takes no nested serializer (arc.E011): the bag alone."""

    meta = None

    class Meta(_BagfkOrderSerializer.Meta):
        fields = ["id", "product", "quantity", "customer_email", "organization", "extra"]


@bagfk_site.register
class BagfkBulkOrderResource(Resource):
    model = Order
    name = "bagfk-bulk-orders"
    serializer_class = _BagfkBulkOrderSerializer
    read_only_fields = ["id"]
    presets = [presets.MultiTenant(), presets.Bulk()]
    permissions = MEMBERS


class _BagfkFolderSerializer(serializers.ModelSerializer):
    extra = serializers.DictField(source="*", required=False, write_only=True)

    class Meta:
        model = Folder
        fields = ["id", "organization", "name", "parent", "extra"]


@bagfk_site.register
class BagfkFolderResource(Resource):
    """A tenant's tree whose folders each caller reads only when owning them."""

    model = Folder
    name = "bagfk-folders"
    serializer_class = _BagfkFolderSerializer
    read_only_fields = ["id"]
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = {**MEMBERS, "list": P.require_owner(), "get": P.require_owner()}


MISSING = 'Invalid pk "{}" - object does not exist.'


def _at(path, message):
    """DRF's shape for an error inside nested fields: ``{"extra": {"product_id": [...]}}``."""
    detail = [message]
    for name in reversed(path.split(".")):
        detail = {name: detail}
    return detail


#: (body, the field path the 400 names) for a product id ``p``: each way a body sets
#: ``product_id`` without the declared ``product`` field
SHAPES = {
    "dict-attname": (lambda p: {"extra": {"product_id": p}}, "extra.product_id"),
    "dict-name": (lambda p: {"extra": {"product": p}}, "extra.product"),
    "json-text": (lambda p: {"bag": json.dumps({"product_id": p})}, "bag.product_id"),
    "json-text-name": (lambda p: {"bag": json.dumps({"product": p})}, "bag.product"),
    "nested-plain": (lambda p: {"meta": {"product_id": p}}, "meta.product_id"),
    "nested-bag": (lambda p: {"meta": {"inner": {"product_id": p}}}, "meta.inner.product_id"),
    "top-integer": (lambda p: {"pid": p}, "pid"),
    "top-char": (lambda p: {"code": str(p)}, "code"),
}


@pytest.fixture
def bagfk(settings):
    org, elsewhere = OrganizationFactory(), OrganizationFactory()
    editor = member_client(org, "editor")
    mine, other = ProductFactory(organization=org), ProductFactory(organization=elsewhere)
    order = OrderFactory(product=mine, organization=org)
    with site_mounted(settings, "bagfk", bagfk_site):
        yield {"editor": editor, "mine": mine, "other": other, "order": order, "org": org}


def _url(order):
    return f"/bagfk/bagfk-orders/{order.pk}/"


@pytest.mark.parametrize("shape", SHAPES)
def test_bagfk_another_tenants_product_by_any_shape_is_a_missing_row(bagfk, shape):
    """Before: 200, the order pointing at the other tenant's product."""
    body, path = SHAPES[shape]
    other, order = bagfk["other"], bagfk["order"]
    r = bagfk["editor"].patch(_url(order), body(other.pk), format="json")
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert error["details"] == _at(path, MISSING.format(other.pk)), error
    order.refresh_from_db()
    assert order.product_id == bagfk["mine"].pk


@pytest.mark.parametrize("shape", SHAPES)
def test_bagfk_a_product_the_caller_may_name_is_written_by_any_shape(bagfk, shape):
    body, _ = SHAPES[shape]
    order, org = bagfk["order"], bagfk["org"]
    second = ProductFactory(organization=org)
    with CaptureQueriesContext(connection) as queries:
        r = bagfk["editor"].patch(_url(order), body(second.pk), format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["product"] == second.pk
    order.refresh_from_db()
    assert order.product_id == second.pk
    # one query reads the named product (narrowed to the tenant), as the declared
    # ``product`` field's would
    named = [q for q in queries if 'FROM "shop_product"' in q["sql"]]
    assert len(named) == 1, [q["sql"] for q in queries]


@pytest.mark.parametrize("shape", ["dict-attname", "nested-plain", "top-integer"])
def test_bagfk_the_rows_own_unchanged_id_costs_no_query(bagfk, shape):
    body, _ = SHAPES[shape]
    order, mine = bagfk["order"], bagfk["mine"]
    with CaptureQueriesContext(connection) as queries:
        r = bagfk["editor"].patch(_url(order), body(mine.pk), format="json")
    assert r.status_code == 200, r.content
    assert not [q for q in queries if 'FROM "shop_product"' in q["sql"]]


def test_bagfk_the_declared_relation_still_refuses_and_a_missing_id_reads_alike(bagfk):
    order, other = bagfk["order"], bagfk["other"]
    r = bagfk["editor"].patch(_url(order), {"product": other.pk}, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
        "product": [MISSING.format(other.pk)]
    }
    r = bagfk["editor"].patch(_url(order), {"extra": {"product_id": 999999}}, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == _at(
        "extra.product_id", MISSING.format(999999)
    )


def test_bagfk_null_where_the_column_refuses_it_is_a_400(bagfk):
    """``product`` is not nullable: DRF's answer for the relation, not the database's."""
    order = bagfk["order"]
    r = bagfk["editor"].patch(_url(order), {"extra": {"product_id": None}}, format="json")
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert error["details"] == _at("extra.product_id", "This field may not be null.")


def test_bagfk_a_create_and_a_bulk_create_are_judged_once_per_id(bagfk):
    editor, other, mine = bagfk["editor"], bagfk["other"], bagfk["mine"]
    base = {"quantity": 1, "customer_email": "a@example.com"}
    r = editor.post(
        "/bagfk/bagfk-orders/", {**base, "extra": {"product_id": other.pk}}, format="json"
    )
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == _at(
        "extra.product_id", MISSING.format(other.pk)
    )
    assert Order.objects.count() == 1
    items = [{**base, "extra": {"product_id": mine.pk}} for _ in range(5)]
    with CaptureQueriesContext(connection) as queries:
        r = editor.post("/bagfk/bagfk-bulk-orders/bulk/", {"items": items}, format="json")
    assert r.status_code in (200, 201), r.content
    assert Order.objects.filter(product=mine).count() == 6
    named = [q for q in queries if 'FROM "shop_product"' in q["sql"]]
    assert len(named) == 1, [q["sql"] for q in queries]
    items.append({**base, "extra": {"product_id": other.pk}})
    r = editor.post("/bagfk/bagfk-bulk-orders/bulk/", {"items": items}, format="json")
    assert r.status_code == 400, r.content
    assert Order.objects.count() == 6
    assert "shop_product" not in str(r.content) and str(other.pk) in json.dumps(r.json())


# -- a target the caller reads only when owning it -------------------------------------


@pytest.fixture
def bagfk_folders(settings):
    org = OrganizationFactory()
    me, colleague = member_client(org, "editor"), member_client(org, "editor")
    with site_mounted(settings, "bagfk", bagfk_site):
        yield {"me": me, "colleague": colleague}


def _folder(client, name):
    r = client.post("/bagfk/bagfk-folders/", {"name": name}, format="json")
    assert r.status_code == 201, r.content
    return r.json()["data"]["id"]


def test_bagfk_another_owners_folder_as_parent_through_a_bag_is_a_missing_row(bagfk_folders):
    me, colleague = bagfk_folders["me"], bagfk_folders["colleague"]
    mine, theirs = _folder(me, "mine"), _folder(colleague, "theirs")
    url = f"/bagfk/bagfk-folders/{mine}/"
    r = me.patch(url, {"parent": theirs}, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
        "parent": [MISSING.format(theirs)]
    }
    for key in ("parent_id", "parent"):
        r = me.patch(url, {"extra": {key: theirs}}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == _at(
            f"extra.{key}", MISSING.format(theirs)
        )
    assert Folder.objects.get(pk=mine).parent_id is None
    # a folder of mine, and null (the column allows it), are taken
    second = _folder(me, "second")
    r = me.patch(url, {"extra": {"parent_id": second}}, format="json")
    assert r.status_code == 200, r.content
    assert Folder.objects.get(pk=mine).parent_id == second
    r = me.patch(url, {"extra": {"parent_id": None}}, format="json")
    assert r.status_code == 200, r.content
    assert Folder.objects.get(pk=mine).parent_id is None


@pytest.mark.parametrize(
    "value, message",
    [
        (2**70, MISSING.format(2**70)),
        ("x\x00", "Incorrect type. Expected pk value, received str."),
        ("abc", "Incorrect type. Expected pk value, received str."),
        ([1], "Incorrect type. Expected pk value, received list."),
    ],
)
def test_bagfk_a_value_no_key_reads_is_the_relations_400(bagfk, value, message):
    """Never a 500: the relation's own answer for what no primary key is."""
    order = bagfk["order"]
    r = bagfk["editor"].patch(_url(order), {"extra": {"product_id": value}}, format="json")
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert error["details"] == _at("extra.product_id", message), error


# -- a generic pair's halves through a bag -----------------------------------------------


class _BagfkCommentSerializer(serializers.ModelSerializer):
    extra = serializers.DictField(source="*", required=False, write_only=True)

    class Meta:
        model = RgComment
        fields = ["id", "organization", "text", "content_type", "object_id", "extra"]


@bagfk_site.register
class BagfkCommentResource(Resource):
    model = RgComment
    name = "bagfk-comments"
    serializer_class = _BagfkCommentSerializer
    read_only_fields = ["id"]
    presets = [presets.MultiTenant()]
    permissions = MEMBERS


def test_bagfk_a_generic_pair_through_a_bag_names_only_the_tenants_rows(bagfk):
    editor, org = bagfk["editor"], bagfk["org"]
    elsewhere = OrganizationFactory()
    mine = RgPlace.objects.create(organization=org, name="mine")
    theirs = RgPlace.objects.create(organization=elsewhere, name="theirs")
    kind = ContentType.objects.get_for_model(RgPlace).pk
    r = editor.post(
        "/bagfk/bagfk-comments/",
        {"text": "t", "content_type": kind, "object_id": mine.pk},
        format="json",
    )
    assert r.status_code == 201, r.content
    url = f"/bagfk/bagfk-comments/{r.json()['data']['id']}/"
    for extra in (
        {"object_id": theirs.pk},
        {"content_type_id": kind, "object_id": theirs.pk},
        {"content_type": kind, "object_id": theirs.pk},
    ):
        r = editor.patch(url, {"extra": extra}, format="json")
        assert_error(r, 400, "VALIDATION_ERROR")
        assert str(theirs.pk) in json.dumps(r.json()["details"])
        assert RgComment.objects.get().object_id == mine.pk
    second = RgPlace.objects.create(organization=org, name="second")
    r = editor.patch(url, {"extra": {"object_id": second.pk}}, format="json")
    assert r.status_code == 200, r.content
    assert RgComment.objects.get().object_id == second.pk


# -- a key to another column (``to_field``) and a UUID key ------------------------------


class _BagfkRackItemSerializer(serializers.ModelSerializer):
    extra = serializers.DictField(source="*", required=False, write_only=True)

    class Meta:
        model = RackItem
        fields = ["id", "rack", "thing", "name", "extra"]


@bagfk_site.register
class BagfkRackItemResource(Resource):
    model = RackItem
    name = "bagfk-rack-items"
    serializer_class = _BagfkRackItemSerializer
    read_only_fields = ["id"]
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update")}


def test_bagfk_a_to_field_key_and_a_uuid_key_through_a_bag_are_read_as_their_relation(bagfk):
    """Nothing narrows these rows: a value naming no row is the relation's 400 (a 500
    before on SQLite, the foreign key check failing at commit), a row's value is taken."""
    from rest_framework.test import APIClient

    client = APIClient()
    rack, other = Rack.objects.create(label="a"), Rack.objects.create(label="b")
    item = RackItem.objects.create(rack=rack, name="i")
    url = f"/bagfk/bagfk-rack-items/{item.pk}/"
    r = client.patch(url, {"extra": {"rack_id": "nope"}}, format="json")
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert error["details"] == _at("extra.rack_id", "Object with label=nope does not exist.")
    missing = "00000000-0000-0000-0000-000000000001"
    r = client.patch(url, {"extra": {"thing_id": missing}}, format="json")
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert error["details"] == _at("extra.thing_id", MISSING.format(missing))
    thing = UuidThing.objects.create(name="t")
    r = client.patch(url, {"extra": {"rack_id": "b", "thing": str(thing.pk)}}, format="json")
    assert r.status_code == 200, r.content
    item.refresh_from_db()
    assert (item.rack_id, item.thing_id) == (other.label, thing.pk)
    r = client.patch(url, {"extra": {"thing_id": None}}, format="json")
    assert r.status_code == 200, r.content
    assert RackItem.objects.get().thing_id is None
