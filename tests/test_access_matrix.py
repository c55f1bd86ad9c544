"""Every generated route × every kind of caller × a row in the caller's org or another,
against an expected-outcome table. Asserts status, error code, body and the database after."""

import pytest
from rest_framework.test import APIClient

from django_arc.clients import ServiceClient
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/t-products/"


@pytest.fixture
def world(django_user_model):
    org_a, org_b = OrganizationFactory(slug="a"), OrganizationFactory(slug="b")
    people = {}
    for role in ("admin", "editor", "viewer"):
        people[f"a_{role}"] = MembershipFactory(
            organization=org_a, role=role, user=UserFactory(username=f"a_{role}")
        ).user
    people["b_admin"] = MembershipFactory(
        organization=org_b, role="admin", user=UserFactory(username="b_admin")
    ).user
    people["outsider"] = UserFactory(username="outsider")
    people["root"] = django_user_model.objects.create_superuser("root", "r@x.io", "pw")
    _, key_w = ServiceClient.objects.create_with_key(
        name="sync", organization_id=org_a.pk, scopes=["products:write"]
    )
    _, key_r = ServiceClient.objects.create_with_key(
        name="reader", organization_id=org_a.pk, scopes=["products:read"]
    )
    return {"A": org_a, "B": org_b, "people": people, "key_w": key_w, "key_r": key_r}


def caller(world, kind):
    """An APIClient acting as ``kind``."""
    client = APIClient()
    people = world["people"]
    a, b = str(world["A"].pk), str(world["B"].pk)
    if kind == "public":
        return client
    if kind == "no_org":
        client.force_authenticate(people["outsider"])
    elif kind == "non_member_names_A":
        client.force_authenticate(people["outsider"])
        client.credentials(HTTP_X_ORGANIZATION_ID=a)
    elif kind in ("a_admin", "a_editor", "a_viewer"):
        client.force_authenticate(people[kind])
        client.credentials(HTTP_X_ORGANIZATION_ID=a)
    elif kind == "b_admin":
        client.force_authenticate(people[kind])
        client.credentials(HTTP_X_ORGANIZATION_ID=b)
    elif kind == "service_A_scoped":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['key_w']}")
    elif kind == "service_A_unscoped":
        client.credentials(HTTP_X_API_KEY=world["key_r"])
    elif kind == "elevated":
        client.force_authenticate(people["root"])
        client.credentials(HTTP_X_ARC_SCOPE="platform")
    elif kind == "elevated_A":
        client.force_authenticate(people["root"])
        client.credentials(HTTP_X_ARC_SCOPE="platform", HTTP_X_ORGANIZATION_ID=a)
    else:  # pragma: no cover
        raise AssertionError(kind)
    return client


U, ORG, F = (401, "UNAUTHORIZED"), (403, "ORG_REQUIRED"), (403, "FORBIDDEN")
N = (404, "NOT_FOUND")
OK, CREATED = (200, None), (201, None)

# route → caller → expected (status, code); routes on rows name the row's org (A or B).
MATRIX = {
    #                  list  get_A get_B create upd_A upd_B del_A del_B
    "public": (U, U, U, U, U, U, U, U),
    "no_org": (ORG, ORG, ORG, ORG, ORG, ORG, ORG, ORG),
    "non_member_names_A": (ORG, ORG, ORG, ORG, ORG, ORG, ORG, ORG),
    "a_admin": (OK, OK, N, CREATED, OK, N, OK, N),
    "a_editor": (OK, OK, N, CREATED, OK, N, F, F),
    "a_viewer": (OK, OK, N, F, F, F, F, F),
    "b_admin": (OK, N, OK, CREATED, N, OK, N, OK),
    "service_A_scoped": (OK, OK, N, CREATED, OK, N, F, F),
    "service_A_unscoped": (OK, OK, N, F, F, F, F, F),
    "elevated": (OK, OK, OK, ORG, OK, OK, OK, OK),
    "elevated_A": (OK, OK, N, CREATED, OK, N, OK, N),
}
ROUTES = ["list", "get_A", "get_B", "create", "update_A", "update_B", "delete_A", "delete_B"]
CASES = [(kind, route, MATRIX[kind][i]) for kind in MATRIX for i, route in enumerate(ROUTES)]


@pytest.mark.parametrize("kind,route,expected", CASES, ids=[f"{k}-{r}" for k, r, _ in CASES])
def test_access_matrix(world, kind, route, expected):
    rows = {
        "A": ProductFactory(organization=world["A"], name="row-a", price=5),
        "B": ProductFactory(organization=world["B"], name="row-b", price=5),
    }
    client = caller(world, kind)
    verb, _, target = route.partition("_")
    row = rows.get(target)
    before = {p.pk: (p.organization_id, p.name) for p in Product.objects.all()}

    if verb == "list":
        response = client.get(URL)
    elif verb == "get":
        response = client.get(f"{URL}{row.pk}/")
    elif verb == "create":
        response = client.post(URL, {"name": "new", "sku": "NEW-1", "price": "9.50"}, format="json")
    elif verb == "update":
        response = client.patch(f"{URL}{row.pk}/", {"name": "changed"}, format="json")
    else:
        response = client.delete(f"{URL}{row.pk}/")

    status, code = expected
    body = response.json()
    assert response.status_code == status, (kind, route, body)
    assert body["success"] is (status < 400)
    if code:
        assert body["code"] == code
        assert "requestId" in body
    if code == "NOT_FOUND":
        assert body["error"] == "Resource not found" and "details" not in body
    if code == "ORG_REQUIRED":
        assert body["details"]

    after = {p.pk: (p.organization_id, p.name) for p in Product.objects.all()}
    if status >= 400:
        assert after == before, "a refused request changed the database"
        return
    if verb == "list":
        visible = {d["name"] for d in body["docs"]}
        expected_names = {"A": {"row-a"}, "B": {"row-b"}}
        if kind == "elevated":
            assert visible == {"row-a", "row-b"}
        else:
            org = "B" if kind == "b_admin" else "A"
            assert visible == expected_names[org]
        assert body["total"] == len(visible)
    elif verb == "get":
        assert body["data"]["id"] == row.pk
    elif verb == "create":
        created = Product.objects.get(sku="NEW-1")
        caller_org = world["B"] if kind == "b_admin" else world["A"]
        assert created.organization_id == caller_org.pk
        assert body["data"]["organization"] == caller_org.pk
    elif verb == "update":
        assert after[row.pk] == (row.organization_id, "changed")
    else:
        assert row.pk not in after and len(after) == len(before) - 1
