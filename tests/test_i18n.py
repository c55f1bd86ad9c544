"""A project that is not English-only and UTC-only: field names beyond ASCII, localised
settings, languages and time zones (rev-i18n)."""

import datetime
import unicodedata

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from shop.models import Order
from tests.factories import BookFactory, OrganizationFactory, ProductFactory, member_client
from tests.testapp.models import Lemma

pytestmark = pytest.mark.django_db


@pytest.fixture
def i18n_lemmas():
    for size, words in ((1, "Zoë"), (2, "Straße"), (3, "ÉTÉ")):
        Lemma.objects.create(größe=size, wörter=words)
    return APIClient()


def test_i18n_a_field_named_beyond_ascii_is_filtered_sorted_and_selected(i18n_lemmas):
    """A model's field may be named beyond ASCII (``größe``: a Python identifier). Such a
    name in ``filter_fields`` was refused as a filter, ``filtering on this field is not
    allowed`` (400), while sorting and selecting by it worked: the filter parameter's name
    had to be ASCII. It filters now, by every operator allowed; an operator that is not is
    still 400 naming the parameter, and a name not filterable still 400."""
    client = i18n_lemmas
    for params, expected in (
        ({"größe": "2"}, ["Straße"]),
        ({"größe[gte]": "2", "sort": "-größe"}, ["ÉTÉ", "Straße"]),
        ({"größe[in]": "1,3", "sort": "größe"}, ["Zoë", "ÉTÉ"]),
        ({"wörter": "Zoë"}, ["Zoë"]),
        ({"search": "straße"}, ["Straße"]),
    ):
        r = client.get("/api/lemmas/", params)
        assert r.status_code == 200, (params, r.content)
        assert [d["wörter"] for d in r.json()["docs"]] == expected, params
    r = client.get("/api/lemmas/", {"select": "größe", "sort": "größe"})
    assert r.status_code == 200, r.content
    assert r.json()["docs"][0] == {"id": Lemma.objects.get(größe=1).pk, "größe": 1}


def test_i18n_a_field_name_sent_decomposed_is_the_same_name(i18n_lemmas):
    """Python normalises an identifier to NFKC: the field ``größe`` has the composed ``ö``.
    A client may send ``o`` + U+0308 (NFD, as macOS spells it), the same name to a reader:
    a filter by it was ignored as an unknown parameter (every row listed to a client that
    believed it filtered), a sort or select by it was 400; each reads the field now."""
    client = i18n_lemmas
    size = unicodedata.normalize("NFD", "größe")
    assert size != "größe"
    r = client.get("/api/lemmas/", {size: "2"})
    assert r.status_code == 200, r.content
    assert [d["wörter"] for d in r.json()["docs"]] == ["Straße"]
    r = client.get("/api/lemmas/", {"sort": f"-{size}", "select": size})
    assert r.status_code == 200, r.content
    assert [d["größe"] for d in r.json()["docs"]] == [3, 2, 1]


def test_i18n_a_field_named_beyond_ascii_is_refused_as_an_ascii_one_is(i18n_lemmas):
    """What may not be asked of a field beyond ASCII is refused naming the parameter sent,
    as for any other field: an operator not allowed, a bad value, a field that is not
    filterable; an unknown plain parameter beyond ASCII is ignored, as an ASCII one is."""
    client = i18n_lemmas
    for params, param in (
        ({"größe[lt]": "2"}, "größe[lt]"),
        ({"größe": "zwei"}, "größe"),
        ({"wörter[startswith]": "Z"}, "wörter[startswith]"),
        ({"sort": "wörter,größe,id"}, "sort"),
    ):
        r = client.get("/api/lemmas/", params)
        assert r.status_code == 400, (params, r.content)
        assert r.json()["code"] == "INVALID_QUERY"
        assert list(r.json()["details"]) == [param]
    r = client.get("/api/lemmas/", {"grüße": "x"})
    assert r.status_code == 200 and r.json()["total"] == 3


def test_i18n_values_are_spelled_as_json_whatever_the_projects_formats(settings):
    """A project's localisation settings (``DATE_INPUT_FORMATS`` with ``01.05.2024``,
    ``DECIMAL_SEPARATOR`` ``,``, ``USE_THOUSAND_SEPARATOR``) do not change the query
    language: values are ISO 8601 dates and JSON numbers, a localised spelling is 400 naming
    the parameter (never read as another value), and the answer's numbers and dates carry
    no separator or local format."""
    settings.DATE_INPUT_FORMATS = ["%d.%m.%Y", "%Y-%m-%d"]
    settings.DECIMAL_SEPARATOR = ","
    settings.THOUSAND_SEPARATOR = "."
    settings.USE_THOUSAND_SEPARATOR = True
    settings.LANGUAGE_CODE = "de"
    BookFactory(title="Buch", pages=12345, price="1234.50", published="2024-05-01")
    client = APIClient()
    found = client.get("/api/books/", {"published": "2024-05-01", "price[gte]": "1234.5"})
    assert found.status_code == 200, found.content
    assert found.json()["total"] == 1
    doc = found.json()["docs"][0]
    assert (doc["pages"], doc["price"], doc["published"]) == (12345, "1234.50", "2024-05-01")
    for param, value in (("published", "01.05.2024"), ("price[gte]", "1234,5")):
        r = client.get("/api/books/", {param: value})
        assert r.status_code == 400, (param, r.content)
        assert list(r.json()["details"]) == [param]


def test_i18n_a_date_on_a_date_time_column_is_midnight_in_the_callers_zone():
    """A date given to a date-time filter (``?placed_at[gte]=2024-01-02``) is midnight of
    that day in the time zone active for the request, as a date-time without offset is (the
    day as its caller lives it, not UTC's); a date names that instant, not the day: a day
    is ``gte`` its date and ``lte`` its last second, or ``lt`` the next date."""
    org = OrganizationFactory()
    order = Order.objects.create(
        organization=org, product=ProductFactory(organization=org), customer_email="a@b.co"
    )
    # 2024-01-01 20:00 UTC: the 2nd in Tokyo (05:00), the 1st in UTC and New York
    placed = datetime.datetime(2024, 1, 1, 20, tzinfo=datetime.UTC)
    Order.objects.filter(pk=order.pk).update(placed_at=placed)
    viewer = member_client(org, "viewer")
    for zone, day, found in (
        ("Asia/Tokyo", "2024-01-02", 1),
        ("UTC", "2024-01-02", 0),
        ("UTC", "2024-01-01", 1),
        ("America/New_York", "2024-01-01", 1),
    ):
        with timezone.override(zone):
            r = viewer.get(
                "/api/orders/", {"placed_at[gte]": day, "placed_at[lte]": f"{day}T23:59:59"}
            )
            at_midnight = viewer.get("/api/orders/", {"placed_at[lte]": day})
        assert r.status_code == 200, r.content
        assert r.json()["total"] == found, (zone, day)
        if found:  # the order is after that midnight, not at it
            assert at_midnight.json()["total"] == 0, (zone, day)


@pytest.mark.django_db
def test_a_parameter_name_ending_in_a_newline_is_no_filter(api):
    """``$`` also matches before a final newline: ``?title%0A=x`` read as ``?title=x`` and
    filtered, though no field has that name (every other unknown name is ignored)."""
    BookFactory(title="Dune")
    BookFactory(title="Emma")
    response = api.get("/api/books/?title%0A=Emma")
    assert response.status_code == 200, response.content
    assert sorted(row["title"] for row in response.json()["docs"]) == ["Dune", "Emma"]
