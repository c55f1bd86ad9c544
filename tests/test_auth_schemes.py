"""How the caller is authenticated, on every path: session cookies and CSRF, several
authentication classes at once, 401 against 403."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from django_arc.clients import ServiceClient
from django_arc.idempotency.models import IdempotencyRecord
from django_arc.outbox import OutboxEvent
from django_arc.signals import scope_elevated
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import assert_error

BODY = {"name": "Widget", "sku": "W-1", "price": "9.50"}


def session_client(org, role="editor", csrf=True):
    user = MembershipFactory(organization=org, role=role).user
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client, user


PATHS = {
    "create": ("post", "/api/{r}/", BODY),
    "bulk": ("post", "/api/{r}/bulk/", {"items": [BODY]}),
    "action": ("post", "/api/{r}/{pk}/action/", {"action": "double"}),
    "route": ("post", "/api/{r}/raise-prices/", {}),
    "raw": ("post", "/api/{r}/hook/", {}),
    "update": ("patch", "/api/{r}/{pk}/", {"price": "1"}),
    "delete": ("delete", "/api/{r}/{pk}/", None),
}


@pytest.mark.django_db
@pytest.mark.parametrize("resource", ["idem-products", "cached-products"])
@pytest.mark.parametrize("path", list(PATHS))
def test_a_cross_site_session_write_is_refused_and_writes_nothing(resource, path):
    org = OrganizationFactory()
    product = ProductFactory(organization=org, price=4)
    client, _ = session_client(org, "admin")
    method, url, body = PATHS[path]
    url = url.format(r=resource, pk=product.pk)
    before = list(Product.objects.order_by("pk").values_list("pk", "sku", "price"))
    response = getattr(client, method)(
        url,
        json.dumps(body) if body is not None else "",
        content_type="application/json",
        HTTP_X_ORGANIZATION_ID=str(org.pk),
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    body = assert_error(response, 403, "FORBIDDEN")
    assert "CSRF" in json.dumps(body)
    assert list(Product.objects.order_by("pk").values_list("pk", "sku", "price")) == before
    assert not IdempotencyRecord.objects.exists()
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["x-api-key", "bearer"])
def test_a_service_key_beside_a_session_cookie_is_judged_as_the_key(spelling):
    """DRF's first authenticator taking a credential decides who calls: a service key sent
    from a browser holding another user's session is the key's client. ScopeMiddleware
    judged the session's user first, and refused the key's own organization with 403
    ``ORG_REQUIRED`` ("Not a member") before DRF ran."""
    org, other = OrganizationFactory(), OrganizationFactory()
    ProductFactory(organization=org, price=4)
    _, raw = ServiceClient.objects.create_with_key(name="sync", organization_id=org.pk)
    client, _ = session_client(other, "admin")
    credentials = (
        {"HTTP_X_API_KEY": raw}
        if spelling == "x-api-key"
        else {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    )
    response = client.get("/api/idem-products/", HTTP_X_ORGANIZATION_ID=str(org.pk), **credentials)
    assert response.status_code == 200, response.content
    assert response.json()["total"] == 1
    # the session's user alone, naming the key's organization, is still refused
    assert_error(
        client.get("/api/idem-products/", HTTP_X_ORGANIZATION_ID=str(org.pk)),
        403,
        "ORG_REQUIRED",
    )


@pytest.mark.django_db
def test_an_elevation_header_beside_a_key_and_a_superusers_session_audits_nothing():
    """A superuser's session and a service key, asking for elevation: the key calls, and a key
    never elevates (403). The middleware resolved the session's superuser first and sent
    ``scope_elevated`` (the audit's ``arc.scope.elevated`` event) for an elevation that was
    never granted."""
    org = OrganizationFactory()
    _, raw = ServiceClient.objects.create_with_key(name="sync", organization_id=org.pk)
    client, user = session_client(org, "admin")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    sent = []

    def receiver(sender, **kwargs):
        sent.append(kwargs["scope"])

    scope_elevated.connect(receiver)
    try:
        response = client.get(
            "/api/idem-products/", HTTP_X_ARC_SCOPE="platform", HTTP_X_API_KEY=raw
        )
        assert_error(response, 403, "FORBIDDEN")
        assert sent == []
        # the session alone elevates, audited once
        assert client.get("/api/idem-products/", HTTP_X_ARC_SCOPE="platform").status_code == 200
        assert [s.kind for s in sent] == ["elevated"]
    finally:
        scope_elevated.disconnect(receiver)
