"""Datetime filter values with any ISO 8601 UTC offset are a filter, never a 500.

Found by schemathesis on PostgreSQL: ``?placed_at[gte]=1025-02-25T10:06:05.832-22:10`` was a
500, because PostgreSQL refuses offsets beyond ±15:59 that Python accepts. Values are compared
in UTC; one whose UTC form leaves years 1-9999 is 400.
"""

import datetime

import pytest
from django.utils import timezone

from shop.models import Order
from tests.factories import OrganizationFactory, ProductFactory, member_client

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
    return member_client(org, "viewer")


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


@pytest.fixture
def local_orders(settings):
    """A project with ``USE_TZ = False`` (columns hold naive times in ``TIME_ZONE``, here
    Paris, UTC+1 in January): three orders placed at 11:00, 12:00 and 13:00 local time."""
    settings.USE_TZ = False
    settings.TIME_ZONE = "Europe/Paris"
    org = OrganizationFactory()
    product = ProductFactory(organization=org)
    for hour in (11, 12, 13):
        order = Order.objects.create(organization=org, product=product, customer_email="a@b.co")
        Order.objects.filter(pk=order.pk).update(placed_at=datetime.datetime(2024, 1, 1, hour))
    return member_client(org, "viewer")


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("2024-01-01T12:00:00", 2),  # naive: local time, as the columns hold it
        ("2024-01-01T11:00:00Z", 2),  # 12:00 in Paris
        ("2024-01-01T11:30:00Z", 1),  # 12:30 in Paris
        ("2024-01-01T12:00:00+01:00", 2),
    ],
)
def test_without_use_tz_a_filter_value_compares_in_local_time(local_orders, value, found):
    """Without ``USE_TZ`` a value with an offset was made aware and sent as such: Django
    refuses an aware datetime on SQLite then (``ValueError``, a 500). It is the local time
    it names now."""
    r = local_orders.get("/api/orders/", {"placed_at[gte]": value})
    assert r.status_code == 200, r.content
    assert r.json()["total"] == found


def test_without_use_tz_a_keyset_cursor_over_a_datetime_pages_on(local_orders):
    """The cursor of a list sorted by a datetime is written naive without ``USE_TZ``, and
    was read back as an aware value the same way: every next page was a 500 on SQLite."""
    seen, cursor = [], ""
    for _ in range(3):
        r = local_orders.get("/api/orders/", {"sort": "placed_at", "limit": 1, "after": cursor})
        assert r.status_code == 200, r.content
        seen += [d["placed_at"] for d in r.json()["docs"]]
        cursor = r.json()["next"]
    assert seen == ["2024-01-01T11:00:00", "2024-01-01T12:00:00", "2024-01-01T13:00:00"]
    assert cursor is None


@pytest.mark.parametrize(
    ("zone", "value", "found"),
    [
        ("Asia/Tokyo", "2024-01-01T21:00:00", 1),  # 12:00 UTC: the order's instant
        ("Asia/Tokyo", "2024-01-01T21:00:01", 0),
        ("UTC", "2024-01-01T12:00:00", 1),
        ("America/New_York", "2024-01-01T07:00:00", 1),
        ("America/New_York", "2024-01-01T12:00:00", 0),  # 17:00 UTC
    ],
)
def test_a_value_without_offset_is_a_time_in_the_callers_time_zone(member, zone, value, found):
    """A project activating each user's time zone (``timezone.activate()`` in a middleware,
    as Django documents) has DRF write a row's datetimes in it, and read a body's value
    without offset in it (as Django's forms and django-filter do): a filter value without
    offset was read in ``TIME_ZONE`` instead, so a Tokyo caller filtering by the time the
    list showed it found nothing."""
    with timezone.override(zone):
        shown = member.get("/api/orders/").json()["docs"][0]["placed_at"]
        r = member.get("/api/orders/", {"placed_at[gte]": value})
    assert r.status_code == 200, r.content
    assert r.json()["total"] == found
    if found:
        assert shown.startswith(value)


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-29T02:30:00",  # Paris skips 02:00-03:00 (a gap): no such local time
        "2026-10-25T02:30:00",  # Paris has 02:00-03:00 twice (a fold): two such times
        "2026-03-29T03:30:00",
    ],
)
def test_a_local_time_in_a_dst_gap_or_fold_is_read_as_drf_reads_a_body(value):
    """A value without offset naming no local time (a DST gap) or two (a fold) is read as
    DRF's ``DateTimeField`` reads the same value in a body, in the zone active for the
    request: DRF takes both (its ``valid_datetime`` check refuses neither a ``zoneinfo``
    gap nor a fold) with ``fold=0``, the offset before the change, and so does the filter.
    A filter refusing them would answer 400 for the value a body of the same request
    stores, and find no row by it. The row is placed at DRF's reading of the value and
    found by it."""
    from rest_framework import serializers

    org = OrganizationFactory()
    order = Order.objects.create(
        organization=org, product=ProductFactory(organization=org), customer_email="a@b.co"
    )
    member = member_client(org, "viewer")
    with timezone.override("Europe/Paris"):
        body = serializers.DateTimeField().run_validation(value)  # no ValidationError
        Order.objects.filter(pk=order.pk).update(placed_at=body)
        r = member.get("/api/orders/", {"placed_at[gte]": value, "placed_at[lte]": value})
        assert r.status_code == 200, r.content
        assert r.json()["total"] == 1
        shown = datetime.datetime.fromisoformat(r.json()["docs"][0]["placed_at"])
    # in UTC: Python never calls a time in a gap or a fold equal to one in another zone
    assert shown.astimezone(datetime.UTC) == body.astimezone(datetime.UTC)
