"""Datetime filter values with any ISO 8601 UTC offset are a filter, never a 500.

Found by schemathesis on PostgreSQL: ``?placed_at[gte]=1025-02-25T10:06:05.832-22:10`` was a
500, because PostgreSQL refuses offsets beyond ±15:59 that Python accepts. Values are compared
in UTC; one whose UTC form leaves years 1-9999 is 400.
"""

import datetime

import pytest
from rest_framework.test import APIClient

from shop.models import Order
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def member():
    org = OrganizationFactory()
    order = Order.objects.create(
        organization=org, product=ProductFactory(organization=org), customer_email="a@b.co"
    )
    Order.objects.filter(pk=order.pk).update(
        placed_at=datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.UTC)
    )
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=org, role="viewer").user)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    return client


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("2024-01-01T12:00:00Z", 1),
        ("2024-01-01T00:00:00-22:10", 0),  # 22:10 UTC: after the order
        ("2024-01-01T23:59:00+23:59", 1),  # 00:00 UTC: before it
        ("1025-02-25T10:06:05.832000-22:10", 1),
    ],
)
def test_any_offset_filters_in_utc(member, value, found):
    r = member.get("/api/orders/", {"placed_at[gte]": value})
    assert r.status_code == 200, r.content
    assert r.json()["total"] == found


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"])
def test_an_instant_outside_years_1_to_9999_is_400(member, value):
    r = member.get("/api/orders/", {"placed_at[lte]": value})
    assert r.status_code == 400
    assert r.json()["details"] == {"placed_at[lte]": "is out of range"}
