"""An integer its column cannot hold (beyond 64 bits; beyond 32 for an ``IntegerField`` on
PostgreSQL) is a 400 naming the field, on every Django and database.

Found by schemathesis against the example project under Django 4.2 on SQLite, where integer
fields have no range validators: ``POST /api/orders/`` with ``"quantity": -9.6e35`` was a 500
(the driver's ``OverflowError``).
"""

import pytest
from django.db import connection, models
from django.test.utils import isolate_apps
from rest_framework.test import APIClient

from django_arc import Resource
from django_arc.serializers import build_serializer_class
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


@pytest.mark.parametrize(
    ("pages", "message"),
    [
        (2**31, "Ensure this value is less than or equal to 2147483647."),
        (-(2**31) - 1, "Ensure this value is greater than or equal to -2147483648."),
    ],
)
def test_an_integer_its_column_cannot_hold_anywhere_is_400_on_every_database(pages, message):
    """``Book.pages`` is an ``IntegerField``, 32 bits on PostgreSQL. SQLite's integers all
    have 64 bits, and DRF bounds a field by the current database, so SQLite stored 2**31
    (201) where PostgreSQL answered 400: a project's tests on SQLite passed a write that
    production refuses. The bound is now the column type's on every database."""
    from tests.factories import AuthorFactory
    from tests.testapp.models import Book

    client = APIClient()
    author = AuthorFactory()
    body = {"title": "t", "isbn": "i", "author": author.pk, "pages": pages}
    r = client.post("/api/books/", body, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["details"] == {"pages": [message]}
    assert not Book.objects.exists()
    r = client.post("/api/books/", {**body, "pages": 2**31 - 1}, format="json")
    assert r.status_code == 201, r.content
    r = client.patch(f"/api/books/{r.json()['data']['id']}/", {"pages": pages}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["details"] == {"pages": [message]}
    assert Book.objects.get().pages == 2**31 - 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("big", 2**63, "Ensure this value is less than or equal to 9223372036854775807."),
        (
            "big",
            -(2**63) - 1,
            "Ensure this value is greater than or equal to -9223372036854775808.",
        ),
        ("positive_big", -1, "Ensure this value is greater than or equal to 0."),
    ],
)
@isolate_apps("tests.testapp")
def test_a_big_integer_field_is_bounded_by_its_column_type_too(monkeypatch, field, value, message):
    """DRF (3.16 and up, the floor) maps ``BigIntegerField`` and ``PositiveBigIntegerField``
    to its own ``BigIntegerField``, which the mapping to :class:`ArcIntegerField` (made for
    DRF's ``IntegerField``) skipped: those fields had only the current database's range.
    Django 4.2's SQLite backend reports none (simulated here on any Django), so there
    ``{"big": 2**63}`` reached the driver (its ``OverflowError``, a 500) and
    ``{"positive_big": -1}`` the column's CHECK (an ``IntegrityError``, 409; PostgreSQL 400)."""
    monkeypatch.setattr(connection.ops, "integer_field_range", lambda internal_type: (None, None))

    class Counter(models.Model):
        big = models.BigIntegerField(default=0)
        positive_big = models.PositiveBigIntegerField(default=0)

        class Meta:
            app_label = "testapp"

    resource = type(
        "CounterResource",
        (Resource,),
        {"model": Counter, "name": "counters", "fields": ["id", "big", "positive_big"]},
    )
    serializer_class = build_serializer_class(resource())
    serializer = serializer_class(data={field: value})
    assert not serializer.is_valid()
    assert serializer.errors == {field: [message]}
    assert serializer_class(data={"big": 2**63 - 1, "positive_big": 0}).is_valid()
