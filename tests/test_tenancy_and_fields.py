"""Tenancy injection attempts, field guards (reject/strip/hidden/redact), public reads."""

import pytest
from rest_framework.test import APIClient

from shop.models import Product
from tests.factories import OrganizationFactory, ProductFactory, member_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def orgs():
    return OrganizationFactory(), OrganizationFactory()


member = member_client


def test_body_org_of_another_tenant_on_create_is_refused_under_reject(orgs):
    a, b = orgs
    r = member(a, "admin").post(
        "/api/t-products/",
        {"name": "x", "sku": "S1", "price": "1", "organization": b.pk},
        format="json",
    )
    assert r.status_code == 403
    assert r.json()["code"] == "FIELD_WRITE_DENIED"
    assert r.json()["details"] == {"fields": ["organization"]}
    assert not Product.objects.exists()


def test_body_org_of_own_tenant_is_accepted(orgs):
    a, _ = orgs
    r = member(a, "admin").post(
        "/api/t-products/",
        {"name": "x", "sku": "S1", "price": "1", "organization": a.pk},
        format="json",
    )
    assert r.status_code == 201
    assert Product.objects.get().organization_id == a.pk


def test_body_org_is_overwritten_under_strip(orgs):
    a, b = orgs
    client = member(a, "admin")
    r = client.post(
        "/api/strip-products/",
        {"name": "x", "sku": "S1", "price": "1", "organization": b.pk},
        format="json",
    )
    assert r.status_code == 201
    product = Product.objects.get()
    assert product.organization_id == a.pk
    r = client.patch(
        f"/api/strip-products/{product.pk}/",
        {"organization": b.pk, "organization_id": b.pk, "name": "y"},
        format="json",
    )
    assert r.status_code == 200
    product.refresh_from_db()
    assert (product.organization_id, product.name) == (a.pk, "y")


def test_update_cannot_move_a_row_to_another_org(orgs):
    a, b = orgs
    product = ProductFactory(organization=a)
    for body in ({"organization": b.pk}, {"organization_id": b.pk}):
        r = member(a, "admin").patch(f"/api/t-products/{product.pk}/", body, format="json")
        assert r.status_code == 403
        assert r.json()["code"] == "FIELD_WRITE_DENIED"
    product.refresh_from_db()
    assert product.organization_id == a.pk


@pytest.mark.parametrize(
    "query",
    [
        "organization={B}",
        "organization[ne]={A}",
        "organization[in]={A},{B}",
        "organization_id={B}",
        "organization[in]={B}",
    ],
)
def test_query_string_injection_never_widens_results(orgs, query):
    a, b = orgs
    ProductFactory(organization=a, name="mine")
    ProductFactory(organization=b, name="theirs")
    r = member(a, "viewer").get("/api/t-products/?" + query.format(A=a.pk, B=b.pk))
    assert r.status_code == 200
    assert {d["name"] for d in r.json()["docs"]} <= {"mine"}


def test_reject_lists_every_denied_field_and_writes_nothing(orgs):
    a, _ = orgs
    product = ProductFactory(organization=a, status="draft", cost=3)
    r = member(a, "editor").patch(
        f"/api/t-products/{product.pk}/",
        {"cost": "1.00", "status": "active", "name": "n"},
        format="json",
    )
    assert r.status_code == 403
    assert r.json()["error"] == "Not permitted to write fields: cost, status"
    assert r.json()["details"] == {"fields": ["cost", "status"]}
    product.refresh_from_db()
    assert (product.status, product.name) != ("active", "n")


def test_strip_applies_the_rest(orgs):
    a, _ = orgs
    product = ProductFactory(organization=a, status="draft", cost=3, name="old")
    r = member(a, "editor").patch(
        f"/api/strip-products/{product.pk}/",
        {"cost": "1.00", "status": "active", "name": "new"},
        format="json",
    )
    assert r.status_code == 200
    product.refresh_from_db()
    assert (product.status, str(product.cost), product.name) == ("draft", "3.00", "new")


def test_admin_may_write_restricted_fields(orgs):
    a, _ = orgs
    product = ProductFactory(organization=a, status="draft")
    r = member(a, "admin").patch(
        f"/api/t-products/{product.pk}/", {"cost": "1.00", "status": "active"}, format="json"
    )
    assert r.status_code == 200
    assert r.json()["data"]["status"] == "active" and r.json()["data"]["cost"] == "1.00"


def test_global_strip_setting(orgs, settings):
    settings.ARC = {**settings.ARC, "ON_FIELD_WRITE_DENIED": "strip"}
    a, _ = orgs
    product = ProductFactory(organization=a, status="draft")
    r = member(a, "editor").patch(
        f"/api/t-products/{product.pk}/", {"status": "active", "name": "ok"}, format="json"
    )
    assert r.status_code == 200
    product.refresh_from_db()
    assert (product.status, product.name) == ("draft", "ok")


def test_hidden_field_absent_from_every_response(orgs):
    a, _ = orgs
    product = ProductFactory(organization=a, secret_notes="TOP-SECRET")
    admin = member(a, "admin")
    responses = [
        admin.get("/api/t-products/"),
        admin.get(f"/api/t-products/{product.pk}/"),
        admin.get("/api/t-products/?select=name"),
        admin.get("/api/t-products/?select=secret_notes"),
        admin.get("/api/t-products/?secret_notes=TOP-SECRET"),
        admin.get("/api/t-products/?secret_notes[contains]=TOP"),
        admin.get("/api/t-products/?sort=secret_notes"),
        admin.patch(
            f"/api/t-products/{product.pk}/", {"secret_notes": "x", "name": "n"}, format="json"
        ),
        admin.post("/api/t-products/", {"secret_notes": "x"}, format="json"),
    ]
    for r in responses:
        assert b"TOP-SECRET" not in r.content
    assert responses[0].status_code == 200
    assert all("secret_notes" not in d for d in responses[0].json()["docs"])
    assert "secret_notes" not in responses[1].json()["data"]
    for r in responses[3:7]:
        assert r.status_code == 400 and r.json()["code"] == "INVALID_QUERY"
    assert responses[7].status_code == 200  # hidden key dropped as if unknown
    assert "secret_notes" not in responses[7].json()["data"]
    assert "secret_notes" not in responses[8].json()["details"]
    product.refresh_from_db()
    assert product.secret_notes == "TOP-SECRET"


def test_search_never_matches_hidden_fields(orgs):
    a, _ = orgs
    ProductFactory(organization=a, name="plain", sku="P1", secret_notes="needle")
    r = member(a, "admin").get("/api/t-products/?search=needle")
    assert r.json()["docs"] == []


def test_visible_to_and_redact_for(orgs):
    a, _ = orgs
    product = ProductFactory(organization=a, cost=7, sku="SKU-9")
    admin_doc = member(a, "admin").get(f"/api/t-products/{product.pk}/").json()["data"]
    editor_doc = member(a, "editor").get(f"/api/t-products/{product.pk}/").json()["data"]
    viewer_doc = member(a, "viewer").get("/api/t-products/").json()["docs"][0]
    assert admin_doc["cost"] == "7.00" and admin_doc["sku"] == "SKU-9"
    assert "cost" not in editor_doc and editor_doc["sku"] == "SKU-9"
    assert "cost" not in viewer_doc and viewer_doc["sku"] == "***"
    r = member(a, "editor").get("/api/t-products/?select=cost")
    assert r.status_code == 400  # cannot select what you cannot see


def test_public_permission_does_not_lift_tenancy(orgs):
    ProductFactory(organization=orgs[0])
    r = APIClient().get("/api/guarded/")
    assert r.status_code == 403
    assert r.json()["code"] == "ORG_REQUIRED"
    assert r.json()["details"] == {"missing": "organization"}


def test_allow_public_reads_lists_all_tenants(orgs):
    ProductFactory(organization=orgs[0])
    ProductFactory(organization=orgs[1])
    r = APIClient().get("/api/catalog/")
    assert r.status_code == 200 and r.json()["total"] == 2
    # a member naming an org still sees only that org
    r = member(orgs[0], "viewer").get("/api/catalog/")
    assert r.json()["total"] == 1


def test_elevation_by_non_admin_is_403(orgs):
    client = member(orgs[0], "admin")
    client.credentials(HTTP_X_ORGANIZATION_ID=str(orgs[0].pk), HTTP_X_ARC_SCOPE="platform")
    r = client.get("/api/t-products/")
    assert r.status_code == 403
    assert r.json()["code"] == "FORBIDDEN"


def test_elevated_request_emits_audit_event(orgs, django_user_model):
    from django_arc.outbox.models import OutboxEvent

    root = django_user_model.objects.create_superuser("root", "r@x.io", "pw")
    client = APIClient()
    client.force_authenticate(root)
    client.credentials(HTTP_X_ARC_SCOPE="platform")
    assert client.get("/api/t-products/").status_code == 200
    events = OutboxEvent.objects.filter(type="arc.scope.elevated")
    assert events.count() == 1
    payload = events.get().payload
    assert payload["user_id"] in (root.pk, str(root.pk))
    assert payload["method"] == "GET" and payload["path"] == "/api/t-products/"


def test_inactive_service_key_is_401(orgs):
    from django_arc.clients import ServiceClient

    client_row, key = ServiceClient.objects.create_with_key(
        name="old", organization_id=orgs[0].pk, scopes=["products:write"], active=False
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    r = client.get("/api/t-products/")
    assert r.status_code == 401
    assert r.json()["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("page_size", [1, 20, 100])
def test_member_list_costs_one_membership_query_plus_count_and_page(orgs, page_size):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ProductFactory.create_batch(100, organization=orgs[0])
    for role in ("admin", "viewer"):
        client = member(orgs[0], role)
        with CaptureQueriesContext(connection) as ctx:
            r = client.get(f"/api/t-products/?limit={page_size}&sort=price")
        assert len(r.json()["docs"]) == page_size
        sqls = [q["sql"] for q in ctx.captured_queries]
        assert sum("shop_membership" in q for q in sqls) == 1
        # membership + count + page: field rules use the org roles resolved with the
        # membership, never a per-request lookup of the user's groups
        assert len(sqls) == 3, sqls


def test_member_write_costs_no_extra_scope_queries(orgs, django_assert_max_num_queries):
    product = ProductFactory(organization=orgs[0])
    client = member(orgs[0], "admin")
    # membership, object lookup, savepoint, update, outbox insert, release
    with django_assert_max_num_queries(6):
        r = client.patch(f"/api/t-products/{product.pk}/", {"name": "n"}, format="json")
    assert r.status_code == 200


def test_unreadable_fields_cannot_be_probed_through_the_query_string(orgs):
    a, _ = orgs
    ProductFactory(organization=a, cost=50, sku="SECRET-SKU-1", name="widget")
    viewer, editor, admin = member(a, "viewer"), member(a, "editor"), member(a, "admin")
    for client, url in [
        (editor, "/api/t-products/?cost[gte]=40"),  # cost: visible_to("admin")
        (editor, "/api/t-products/?sort=-cost"),
        (viewer, "/api/t-products/?sku=SECRET-SKU-1"),  # sku: redact_for("viewer")
    ]:
        r = client.get(url)
        assert r.status_code == 400, url
        assert r.json()["code"] == "INVALID_QUERY"
        # the same answer as for a field that is not filterable at all: no oracle
        assert "not allowed" in next(iter(r.json()["details"].values()))
    # search skips fields the caller sees masked
    assert viewer.get("/api/t-products/?search=SECRET-SKU").json()["docs"] == []
    assert len(editor.get("/api/t-products/?search=SECRET-SKU").json()["docs"]) == 1
    r = admin.get("/api/t-products/?cost[gte]=40&sort=-cost")
    assert len(r.json()["docs"]) == 1, r.json()


def test_relations_in_a_body_may_only_point_into_the_callers_tenant(orgs):
    from shop.models import Order

    a, b = orgs
    mine, theirs = ProductFactory(organization=a), ProductFactory(organization=b)
    client = member(a, "editor")
    body = {"quantity": 1, "customer_email": "x@example.com"}
    r = client.post("/api/t-orders/", {**body, "product": theirs.pk}, format="json")
    assert r.status_code == 400
    assert r.json()["code"] == "VALIDATION_ERROR"
    missing = client.post("/api/t-orders/", {**body, "product": 99999999}, format="json")
    # another tenant's product is indistinguishable from one that does not exist
    assert r.json()["details"]["product"][0].replace(str(theirs.pk), "N") == missing.json()[
        "details"
    ]["product"][0].replace("99999999", "N")
    assert not Order.objects.exists()
    r = client.post("/api/t-orders/", {**body, "product": mine.pk}, format="json")
    assert r.status_code == 201
    order = Order.objects.get()
    r = client.patch(f"/api/t-orders/{order.reference}/", {"product": theirs.pk}, format="json")
    assert r.status_code == 400
    order.refresh_from_db()
    assert order.product_id == mine.pk


def test_membership_is_cached_across_requests_and_forgotten_on_change(
    orgs, django_capture_on_commit_callbacks
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from shop.models import Membership

    a, _ = orgs
    client = member(a, "editor")
    ProductFactory(organization=a)
    assert client.get("/api/t-products/").status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/api/t-products/").status_code == 200
    assert not any("shop_membership" in q["sql"] for q in ctx.captured_queries)
    assert len(ctx.captured_queries) == 2  # count + page: tenancy costs no query now
    # revoked: forgotten when the deletion commits (the test's transaction never does)
    with django_capture_on_commit_callbacks(execute=True):
        Membership.objects.filter(organization=a).delete()
    r = client.get("/api/t-products/")
    assert r.status_code == 403 and r.json()["code"] == "ORG_REQUIRED"
