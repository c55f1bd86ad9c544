"""One restricted field followed through every channel a value can leave by (rev-fieldrules).

``t-products`` / ``idem-products`` / ``cached-products`` share the SPEC §2 product's rules:
``cost`` is ``visible_to("admin")``, ``sku`` is ``redact_for("viewer")``, ``secret_notes`` is
``hidden()``, ``status`` is ``writable_by("admin")``. Two tenants, and in tenant A a viewer,
an editor and an admin. Each test walks one family of channels and asserts that the values
(``7.00``, ``SKU-A1``, ``TOPSECRET``) never reach a caller the rule denies them to, while
the caller the rule admits still gets them (so none of these can pass by answering nothing).
"""

import json

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.outbox import OutboxEvent
from shop.models import Product
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import site_mounted

pytestmark = pytest.mark.django_db

RFR_SECRET = "TOPSECRET-rfr"


@pytest.fixture
def rfr_world():
    a, b = OrganizationFactory(), OrganizationFactory()
    row = ProductFactory(
        organization=a, cost=7, secret_notes=RFR_SECRET, sku="SKU-A1", name="alpha"
    )
    ProductFactory(organization=a, cost=9, secret_notes=RFR_SECRET + "2", sku="SKU-A2", name="beta")
    ProductFactory(
        organization=b, cost=3, secret_notes="B-" + RFR_SECRET, sku="SKU-B1", name="gamma"
    )
    return {
        "row": row,
        "b": b,
        "viewer": member_client(a, "viewer"),
        "editor": member_client(a, "editor"),
        "admin": member_client(a, "admin"),
    }


def _rfr_refused(response, name):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "INVALID_QUERY" and name in body["details"], body
    return body


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("cost[gte]=1", "cost[gte]"),
        ("cost[exists]=true", "cost[exists]"),
        ("cost[in]=7", "cost[in]"),
        ("cost=", "cost"),
        ("cost[gte]=not-a-number", "cost[gte]"),  # the refusal comes before the value's parse
        ("sku=SKU-A1", "sku"),  # masked for the viewer: no oracle either
        ("sku[eq]=SKU-A1", "sku[eq]"),
        ("secret_notes=x", "secret_notes"),
        ("secret_notes[exists]=1", "secret_notes[exists]"),
        ("sort=cost", "sort"),
        ("sort=sku", "sort"),
        ("select=cost", "select"),
        ("select=secret_notes", "select"),
    ],
)
def test_rfr_the_query_string_refuses_every_operator_on_a_field_the_viewer_cannot_read(
    rfr_world, query, parameter
):
    _rfr_refused(rfr_world["viewer"].get(f"/api/t-products/?{query}"), parameter)


def test_rfr_the_admin_may_probe_what_it_reads_and_search_skips_what_the_viewer_sees_masked(
    rfr_world,
):
    viewer, admin = rfr_world["viewer"], rfr_world["admin"]
    r = admin.get("/api/t-products/?cost[gte]=8&select=cost")
    assert r.status_code == 200, r.content
    assert [doc["cost"] for doc in r.json()["docs"]] == ["9.00"]
    # sku is a search field: the admin finds the row by it, the viewer (masked) does not
    assert admin.get("/api/t-products/?search=SKU-A1").json()["total"] == 1
    assert viewer.get("/api/t-products/?search=SKU-A1").json()["total"] == 0
    # a hidden field is no search field for anyone, the admin included
    assert admin.get(f"/api/t-products/?search={RFR_SECRET}").json()["total"] == 0
    # selecting a masked field is allowed and shows the mask
    r = viewer.get("/api/t-products/?select=sku")
    assert {doc["sku"] for doc in r.json()["docs"]} == {"***"}


def test_rfr_reads_render_each_role_its_own_row(rfr_world):
    row = rfr_world["row"]
    url = f"/api/t-products/{row.pk}/"
    viewer = rfr_world["viewer"].get(url).json()["data"]
    editor = rfr_world["editor"].get(url).json()["data"]
    admin = rfr_world["admin"].get(url).json()["data"]
    assert "cost" not in viewer and viewer["sku"] == "***" and "secret_notes" not in viewer
    assert "cost" not in editor and editor["sku"] == "SKU-A1" and "secret_notes" not in editor
    assert admin["cost"] == "7.00" and admin["sku"] == "SKU-A1" and "secret_notes" not in admin
    # the browsable API's page (rendered answer and forms) carries no value the JSON hides
    page = rfr_world["viewer"].get(url + "?format=api").content
    assert b"7.00" not in page and b"SKU-A1" not in page and RFR_SECRET.encode() not in page
    page = rfr_world["editor"].get(url + "?format=api").content
    assert b"7.00" not in page and RFR_SECRET.encode() not in page and b"SKU-A1" in page


def test_rfr_writes_drop_a_hidden_key_refuse_an_unreadable_one_and_echo_neither(rfr_world):
    row, editor = rfr_world["row"], rfr_world["editor"]
    url = f"/api/t-products/{row.pk}/"
    r = editor.patch(url, {"secret_notes": "overwritten", "name": "renamed"}, format="json")
    assert r.status_code == 200, r.content
    assert "secret_notes" not in r.json()["data"] and "cost" not in r.json()["data"]
    r = editor.patch(url, {"cost": "1.00"}, format="json")
    assert r.json()["details"] == {"fields": ["cost"]} and r.status_code == 403
    row.refresh_from_db()
    assert (row.name, row.secret_notes, row.cost) == ("renamed", RFR_SECRET, 7)
    # another row's unique value: a 409 naming no value (the clash itself is the documented
    # oracle of a unique field the caller may write)
    r = editor.patch(url, {"sku": "SKU-A2"}, format="json")
    assert r.status_code == 409, r.content
    assert b"SKU-A2" not in r.content and RFR_SECRET.encode() not in r.content


def test_rfr_bulk_and_action_inputs_are_guarded_and_answers_shaped(rfr_world):
    row, editor, admin = rfr_world["row"], rfr_world["editor"], rfr_world["admin"]
    url = "/api/idem-products/"
    r = editor.patch(
        url + "bulk/", {"filter": {"cost[gte]": 5}, "data": {"name": "x"}}, format="json"
    )
    assert r.status_code == 400, r.content
    r = editor.patch(
        url + "bulk/", {"items": [{"id": row.pk, "secret_notes": "x", "name": "q"}]}, format="json"
    )
    assert r.status_code == 200 and r.json()["data"] == {"updated": 1, "ids": [row.pk]}
    r = editor.post(
        url + "bulk/",
        {"items": [{"name": "n", "sku": "S9", "price": "1.00", "cost": "1"}]},
        format="json",
    )
    assert r.status_code == 403 and r.json()["details"]["items"] == {"0": ["cost"]}
    r = editor.post(f"{url}{row.pk}/action/", {"action": "double"}, format="json")
    assert r.status_code == 200 and "cost" not in r.json()["data"]
    r = admin.post(f"{url}{row.pk}/action/", {"action": "double"}, format="json")
    assert r.status_code == 200 and r.json()["data"]["cost"] == "7.00"
    row.refresh_from_db()
    assert (row.name, row.secret_notes) == ("q", RFR_SECRET)


def test_rfr_the_query_cache_keeps_each_roles_rendering(rfr_world):
    """Whichever role fills an entry first, another role's answer is its own."""
    row = rfr_world["row"]
    url = f"/api/cached-products/{row.pk}/"
    for first, second in (("admin", "viewer"), ("viewer", "admin"), ("admin", "editor")):
        rfr_world[first].get(url)
        data = rfr_world[second].get(url).json()["data"]
        assert ("cost" in data) is (second == "admin"), (first, second, data)
        assert (data["sku"] == "***") is (second == "viewer"), (first, second, data)
    listing = rfr_world["viewer"].get("/api/cached-products/").json()["docs"]
    assert listing and all("cost" not in doc and doc["sku"] == "***" for doc in listing)


def test_rfr_events_never_carry_a_hidden_value(rfr_world):
    row, admin = rfr_world["row"], rfr_world["admin"]
    admin.patch(f"/api/t-products/{row.pk}/", {"name": "renamed"}, format="json")
    admin.post(
        "/api/t-products/",
        {"name": "n", "sku": "N1", "price": "1.00", "secret_notes": "dropped"},
        format="json",
    )
    Product.objects.filter(sku="N1").update(secret_notes=RFR_SECRET)
    admin.delete(f"/api/t-products/{Product.objects.get(sku='N1').pk}/")
    events = list(OutboxEvent.objects.order_by("id"))
    assert [e.type for e in events] == [
        "t-products.updated",
        "t-products.created",
        "t-products.deleted",
    ]
    for event in events:
        assert RFR_SECRET not in str(event.payload) and "secret_notes" not in str(event.payload)
    assert events[0].payload["changed"] == ["name"]


# -- a write through another field naming the same column ---------------------------------

rfr_site = ResourceSite(name="rev-fieldrules")


class _RfrAliasSerializer(serializers.ModelSerializer):
    """Each ruled column also written under another name."""

    notes_alias = serializers.CharField(source="secret_notes", required=False, write_only=True)
    cost_eur = serializers.DecimalField(
        source="cost", max_digits=10, decimal_places=2, required=False, write_only=True
    )
    state = serializers.CharField(source="status", required=False)

    class Meta:
        model = Product
        fields = [
            "id", "name", "sku", "price", "cost", "secret_notes", "status", "organization",
            "notes_alias", "cost_eur", "state",
        ]  # fmt: skip


@rfr_site.register
class RfrAliasProductResource(Resource):
    model = Product
    name = "rfr-alias-products"
    serializer_class = _RfrAliasSerializer
    presets = [presets.MultiTenant()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}
    field_permissions = {
        "secret_notes": F.hidden(),
        "cost": F.visible_to("admin"),
        # the rule on the alias: the column's own field writes the same column
        "state": F.writable_by("admin"),
    }


@pytest.mark.parametrize(
    "body, denied",
    [
        ({"notes_alias": "overwritten"}, "notes_alias"),
        ({"cost_eur": "1.00"}, "cost_eur"),
        ({"status": "archived"}, "status"),
    ],
)
def test_rfr_a_column_a_rule_keeps_from_a_caller_is_not_written_under_another_name(
    settings, rfr_world, body, denied
):
    """``notes_alias = CharField(source="secret_notes")`` beside ``secret_notes`` hidden,
    ``cost_eur = DecimalField(source="cost")`` beside ``cost`` visible to admins, and
    ``status`` beside ``state = CharField(source="status")`` writable by admins: an editor
    wrote all three columns (200) through the name no rule named -> 403 naming it."""
    row = rfr_world["row"]
    with site_mounted(settings, "rfr", rfr_site):
        r = rfr_world["editor"].patch(
            f"/rfr/rfr-alias-products/{row.pk}/", {**body, "name": "renamed"}, format="json"
        )
    assert r.status_code == 403, r.content
    assert r.json()["code"] == "FIELD_WRITE_DENIED" and r.json()["details"] == {"fields": [denied]}
    row.refresh_from_db()
    assert (row.name, row.secret_notes, row.cost, row.status) == ("alpha", RFR_SECRET, 7, "active")


def test_rfr_a_caller_a_rule_admits_writes_the_column_under_either_name(settings, rfr_world):
    row, admin = rfr_world["row"], rfr_world["admin"]
    with site_mounted(settings, "rfr", rfr_site):
        url = f"/rfr/rfr-alias-products/{row.pk}/"
        r = admin.patch(url, {"cost_eur": "1.50", "status": "archived"}, format="json")
        assert r.status_code == 200, r.content
        assert r.json()["data"]["cost"] == "1.50" and r.json()["data"]["state"] == "archived"
        # hidden is hidden from everyone: the alias writes it for no one
        r = admin.patch(url, {"notes_alias": "overwritten"}, format="json")
        assert r.status_code == 403 and r.json()["details"] == {"fields": ["notes_alias"]}
        # and the editor still writes what no rule keeps from it
        r = rfr_world["editor"].patch(url, {"name": "renamed"}, format="json")
        assert r.status_code == 200, r.content
    row.refresh_from_db()
    assert (row.name, row.cost, row.status, row.secret_notes) == (
        "renamed",
        1.5,
        "archived",
        RFR_SECRET,
    )


def test_rfr_the_schema_says_who_may_write_a_column_under_another_name():
    """The request schema's aliases carry their column's write rule, naming no hidden
    field; a field with no ruled column is left as it was."""
    schema = SchemaGenerator(patterns=rfr_site.urls[0]).get_schema(public=True)
    request = schema["components"]["schemas"]["RfrAliasProductRequest"]["properties"]
    assert request["cost_eur"]["description"] == "Writable only by: admin."
    assert request["notes_alias"]["description"] == "Not writable."
    assert request["status"]["description"] == "Writable only by: admin."
    assert "description" not in request["name"]
    assert "secret_notes" not in json.dumps(schema)


class _RfrReadOnlyAliasSerializer(serializers.ModelSerializer):
    made = serializers.DateTimeField(source="created_at", required=False)
    legacy_id = serializers.IntegerField(source="id", required=False, write_only=True)

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "organization", "created_at", "made", "legacy_id"]


@rfr_site.register
class RfrReadOnlyAliasResource(Resource):
    model = Product
    name = "rfr-read-only-aliases"
    serializer_class = _RfrReadOnlyAliasSerializer
    presets = [presets.MultiTenant()]
    read_only_fields = ["id", "created_at"]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


@pytest.mark.parametrize(
    "body, denied",
    [({"made": "2001-01-01T00:00:00Z"}, "made"), ({"legacy_id": 999}, "legacy_id")],
)
def test_rfr_a_read_only_column_is_not_written_under_another_name(
    settings, rfr_world, body, denied
):
    """``read_only_fields = ["id", "created_at"]``: never writable by anyone, yet ``made =
    DateTimeField(source="created_at")`` rewrote the row's creation time (200), and
    ``legacy_id = IntegerField(source="id")`` answered 404 after trying to move the row ->
    both refused by name, as the column's own field is."""
    row = rfr_world["row"]
    created = row.created_at
    with site_mounted(settings, "rfr", rfr_site):
        r = rfr_world["admin"].patch(f"/rfr/rfr-read-only-aliases/{row.pk}/", body, format="json")
        assert r.status_code == 403, r.content
        assert r.json()["details"] == {"fields": [denied]}
        shown = rfr_world["admin"].get(f"/rfr/rfr-read-only-aliases/{row.pk}/").json()["data"]
    assert shown["made"] == shown["created_at"] and "legacy_id" not in shown
    row.refresh_from_db()
    assert (row.pk, row.created_at) == (rfr_world["row"].pk, created)
