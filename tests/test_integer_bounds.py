"""An integer no 64-bit column holds is a 400 naming the field, on every Django and database.

Found by schemathesis against the example project under Django 4.2 on SQLite, where integer
fields have no range validators: ``POST /api/orders/`` with ``"quantity": -9.6e35`` was a 500
(the driver's ``OverflowError``).
"""

import pytest
from rest_framework.test import APIClient

from shop.models import Order
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("quantity", [10**40, -(10**40), 2**63, -(2**63) - 1])
def test_out_of_range_integer_in_a_body_is_400(quantity):
    org = OrganizationFactory()
    product = ProductFactory(organization=org)
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=org, role="editor").user)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    body = {"product": product.pk, "customer_email": "a@b.co", "quantity": quantity}
    r = client.post("/api/orders/", body, format="json")
    assert r.status_code == 400, r.content
    assert list(r.json()["details"]) == ["quantity"]
    assert not Order.objects.exists()
