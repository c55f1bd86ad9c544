"""End to end through the real stack: ScopeMiddleware + DRF auth + the demo shop resources."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from django_arc import signals
from django_arc.clients import ServiceClient
from django_arc.outbox import OutboxEvent
from shop import membership
from shop.models import Membership, Organization, Product
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db

MIDDLEWARE_WITH_SCOPE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_arc.middleware.ScopeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]


@pytest.fixture
def resolver_calls():
    return []


@pytest.fixture(autouse=True)
def wiring(settings, resolver_calls):
    def counting_resolver(user, org_id):
        resolver_calls.append(org_id)
        return membership.resolve_membership(user, org_id)

    settings.MIDDLEWARE = MIDDLEWARE_WITH_SCOPE
    settings.ARC = {"MEMBERSHIP_RESOLVER": counting_resolver}
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "django_arc.auth.ServiceKeyAuthentication",
            "rest_framework.authentication.SessionAuthentication",
        ],
    }


@pytest.fixture
def world(django_user_model):
    a = Organization.objects.create(name="A", slug="a")
    b = Organization.objects.create(name="B", slug="b")
    pa = Product.objects.create(organization=a, name="pa", sku="A1", price=Decimal("1"))
    pb = Product.objects.create(organization=b, name="pb", sku="B1", price=Decimal("2"))
    editor = django_user_model.objects.create_user("editor", password="pw")
    Membership.objects.create(user=editor, organization=a, role="editor")
    root = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    return {"a": a, "b": b, "pa": pa, "pb": pb, "editor": editor, "root": root}


def ids(response):
    return sorted(doc["id"] for doc in response.json()["docs"])


def test_service_key_lists_only_its_org(world):
    _, key = ServiceClient.objects.create_with_key(name="s", organization_id=world["a"].pk)
    api = APIClient()
    response = api.get("/api/products/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200, response.content
    assert ids(response) == [world["pa"].pk]
    other = api.get(f"/api/products/{world['pb'].pk}/", HTTP_X_API_KEY=key)
    assert other.status_code == 404


def test_service_key_naming_other_org_is_403(world):
    _, key = ServiceClient.objects.create_with_key(name="s", organization_id=world["a"].pk)
    response = APIClient().get(
        "/api/products/", HTTP_X_API_KEY=key, HTTP_X_ORGANIZATION_ID=str(world["b"].pk)
    )
    assert response.status_code == 403
    assert response.json()["code"] == "ORG_REQUIRED"


def test_inactive_key_is_401_envelope(world):
    client, key = ServiceClient.objects.create_with_key(name="s", organization_id=world["a"].pk)
    ServiceClient.objects.filter(pk=client.pk).update(active=False)
    response = APIClient().get("/api/products/", HTTP_X_API_KEY=key)
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "UNAUTHORIZED" and body["success"] is False and body["requestId"]


def test_member_session_sees_own_org_and_resolver_runs_once(world, resolver_calls):
    api = APIClient()
    api.force_login(world["editor"])
    response = api.get("/api/products/", HTTP_X_ORGANIZATION_ID=str(world["a"].pk))
    assert response.status_code == 200, response.content
    assert ids(response) == [world["pa"].pk]
    assert resolver_calls == [str(world["a"].pk)]


def test_non_member_is_stopped_by_the_middleware(world, resolver_calls):
    api = APIClient()
    api.force_login(world["editor"])
    response = api.get("/api/products/", HTTP_X_ORGANIZATION_ID=str(world["b"].pk))
    assert response.status_code == 403
    assert response.json()["code"] == "ORG_REQUIRED"
    assert response.json()["details"] == {"organization": str(world["b"].pk)}
    assert resolver_calls == [str(world["b"].pk)]


def test_elevated_admin_sees_all_orgs_and_is_audited_once(world):
    received = []

    def receiver(sender, request, scope, **kwargs):
        received.append(scope)

    signals.scope_elevated.connect(receiver)
    try:
        api = APIClient()
        api.force_login(world["root"])
        response = api.get("/api/products/", HTTP_X_ARC_SCOPE="platform")
        assert response.status_code == 200, response.content
        assert ids(response) == sorted([world["pa"].pk, world["pb"].pk])
        assert len(received) == 1
        narrowed = api.get(
            "/api/products/",
            HTTP_X_ARC_SCOPE="platform",
            HTTP_X_ORGANIZATION_ID=str(world["b"].pk),
        )
        assert ids(narrowed) == [world["pb"].pk]
        assert len(received) == 2
    finally:
        signals.scope_elevated.disconnect(receiver)


def test_an_elevation_to_a_path_with_a_nul_is_recorded_and_answers_as_without_it(world):
    """The elevation event records the request's path: a NUL in it (``/products/%00/``,
    which JSON storage refuses) made the request a 500 — Django's HTML one for a session,
    raised from the middleware — where it is the 404 it is without elevation. The path is
    recorded with U+FFFD in the NUL's place."""
    api = APIClient()
    api.force_login(world["root"])
    response = api.get("/api/products/%00/", HTTP_X_ARC_SCOPE="platform")
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "NOT_FOUND"
    (event,) = OutboxEvent.objects.filter(type="arc.scope.elevated")
    assert event.payload["path"] == "/api/products/\N{REPLACEMENT CHARACTER}/"


def test_an_organization_header_with_a_nul_is_org_required_and_writes_nothing(world):
    """A member's organization header is checked by the resolver, an elevated caller's is
    taken as sent: with a NUL in it, a write to a resource without tenancy was a 500 (its
    event, which records the organization, cannot store a NUL) after the elevation event.
    It is 403 ORG_REQUIRED for everyone, before anything is recorded."""
    author = Author.objects.create(name="a")
    api = APIClient()
    api.force_login(world["root"])
    for headers in ({"HTTP_X_ARC_SCOPE": "platform"}, {}):
        response = api.post(
            "/api/books/",
            {"title": "t", "isbn": "nul", "author": author.pk},
            format="json",
            HTTP_X_ORGANIZATION_ID="1\x00",
            **headers,
        )
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "ORG_REQUIRED"
    assert not Book.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_anonymous_elevation_is_refused(world):
    response = APIClient().get("/api/products/", HTTP_X_ARC_SCOPE="platform")
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


def test_member_cannot_elevate(world):
    api = APIClient()
    api.force_login(world["editor"])
    response = api.get("/api/products/", HTTP_X_ARC_SCOPE="platform")
    assert response.status_code == 403
    assert response.json() | {"requestId": "x"} == {
        "success": False,
        "error": "Elevation not permitted",
        "code": "FORBIDDEN",
        "requestId": "x",
    }
