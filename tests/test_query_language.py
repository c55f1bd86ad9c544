"""The query-string language: operators, typed parsing, allowlists, sort, select, search,
pagination limits and keyset cursors."""

import base64
import datetime
import json
import sys

import pytest
from django.http import QueryDict

from django_arc import Resource
from django_arc.query import MAX_TEXT_PATTERN
from tests.factories import AuthorFactory, BookFactory
from tests.testapp.models import Book, Review

pytestmark = pytest.mark.django_db


def titles(response):
    assert response.status_code == 200, response.content
    return [d["title"] for d in response.json()["docs"]]


def invalid(response, param):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "INVALID_QUERY"
    assert param in body["details"], body
    return body


@pytest.fixture
def shelf():
    tolkien = AuthorFactory(name="Tolkien")
    herbert = AuthorFactory(name="Herbert")
    BookFactory(
        title="Hobbit",
        pages=300,
        price=10,
        rating=4.5,
        author=tolkien,
        published=datetime.date(1937, 9, 21),
        is_available=True,
        isbn="A",
    )
    BookFactory(
        title="Silmarillion",
        pages=450,
        price=25,
        rating=None,
        author=tolkien,
        published=datetime.date(1977, 9, 15),
        is_available=False,
        isbn="B",
    )
    BookFactory(
        title="Dune",
        pages=600,
        price=15,
        rating=4.8,
        author=herbert,
        published=datetime.date(1965, 8, 1),
        is_available=True,
        isbn="C",
    )
    return {"tolkien": tolkien, "herbert": herbert}


def test_equality_and_eq_operator(api, shelf):
    assert titles(api.get("/api/books/?title=Dune")) == ["Dune"]
    assert titles(api.get("/api/books/?title[eq]=Dune")) == ["Dune"]


@pytest.mark.parametrize(
    "query,expected",
    [
        ("pages[gt]=300", ["Dune", "Silmarillion"]),
        ("pages[gte]=300", ["Dune", "Hobbit", "Silmarillion"]),
        ("pages[lt]=450", ["Hobbit"]),
        ("pages[lte]=450", ["Hobbit", "Silmarillion"]),
        ("pages[ne]=300", ["Dune", "Silmarillion"]),
        ("pages[in]=300,600", ["Dune", "Hobbit"]),
        ("pages[nin]=300,600", ["Silmarillion"]),
        ("price[gte]=12&price[lte]=20", ["Dune"]),
        ("title[contains]=ill", ["Silmarillion"]),
        ("title[icontains]=HOB", ["Hobbit"]),
        ("title[like]=hob", ["Hobbit"]),
        ("title[startswith]=Du", ["Dune"]),
        ("rating[exists]=false", ["Silmarillion"]),
        ("rating[exists]=true", ["Dune", "Hobbit"]),
        ("is_available=false", ["Silmarillion"]),
        ("is_available=true", ["Dune", "Hobbit"]),
        ("published[gte]=1960-01-01", ["Dune", "Silmarillion"]),
        ("author__name=Herbert", ["Dune"]),
        ("author__name[icontains]=tolk", ["Hobbit", "Silmarillion"]),
        ("isbn[ne]=A", ["Dune", "Silmarillion"]),
    ],
)
def test_operators(api, shelf, query, expected):
    assert titles(api.get(f"/api/books/?{query}")) == expected


def test_relation_filtered_by_id(api, shelf):
    herbert = shelf["herbert"]
    assert titles(api.get(f"/api/books/?author={herbert.pk}")) == ["Dune"]
    assert titles(api.get(f"/api/books/?author_id={herbert.pk}")) == ["Dune"]
    tolkien = shelf["tolkien"]
    assert titles(api.get(f"/api/books/?author[in]={herbert.pk},{tolkien.pk}")) == [
        "Dune",
        "Hobbit",
        "Silmarillion",
    ]


def test_unknown_plain_parameter_is_ignored(api, shelf):
    assert len(titles(api.get("/api/books/?utm_source=mail&foo=bar"))) == 3


@pytest.mark.parametrize(
    "query,param",
    [
        ("created_at=2020-01-01", "created_at"),  # known model field, not filterable
        ("price=10", "price"),  # eq not allowed on price
        ("pages[regex]=.*", "pages[regex]"),  # refused operator
        ("pages[foo]=1", "pages[foo]"),  # unknown operator
        ("nothing[eq]=1", "nothing[eq]"),  # bracket on unknown field
        ("title[gte]=a", "title[gte]"),  # operator not allowed for this field
        ("pages[gt][x]=1", "pages[gt][x]"),  # malformed
        ("pages=abc", "pages"),  # bad integer
        ("pages=99999999999999999999999", "pages"),  # out of range
        ("price[gte]=1e400", "price[gte]"),  # decimal beyond max_digits
        ("price[gte]=NaN", "price[gte]"),
        ("published[gte]=1965-13-45", "published[gte]"),  # bad date
        ("uid=not-a-uuid", "uid"),
        ("is_available=maybe", "is_available"),
        ("rating[exists]=perhaps", "rating[exists]"),
        ("title=a%00b", "title"),  # NUL byte
        ("author=abc", "author"),  # bad FK id
        ("format=0", "format"),  # DRF's renderer override: it would be a 404
        ("format=xml", "format"),
    ],
)
def test_invalid_queries_are_400_naming_the_parameter(api, shelf, query, param):
    invalid(api.get(f"/api/books/?{query}"), param)


@pytest.mark.parametrize(
    "param", ["title[contains]", "title[icontains]", "title[startswith]", "search"]
)
def test_a_pattern_longer_than_the_limit_is_400_on_every_database(api, shelf, param):
    """Text operators and search become LIKE patterns, which SQLite refuses past 50,000
    bytes: a value over ``MAX_TEXT_PATTERN`` characters is the same 400 everywhere."""
    assert api.get(f"/api/books/?{param}={'é' * MAX_TEXT_PATTERN}").status_code == 200
    invalid(api.get(f"/api/books/?{param}={'é' * 60_000}"), param)


def test_known_format_override_still_works_on_list_and_detail(api, shelf):
    assert len(titles(api.get("/api/books/?format=json"))) == 3
    book_id = api.get("/api/books/").json()["docs"][0]["id"]
    assert api.get(f"/api/books/{book_id}/?format=json").status_code == 200
    invalid(api.get(f"/api/books/{book_id}/?format=yaml"), "format")


def test_sort(api, shelf):
    assert titles(api.get("/api/books/?sort=-pages")) == ["Dune", "Silmarillion", "Hobbit"]
    assert titles(api.get("/api/books/?sort=author__name,-pages")) == [
        "Dune",
        "Silmarillion",
        "Hobbit",
    ]
    invalid(api.get("/api/books/?sort=isbn"), "sort")
    invalid(api.get("/api/books/?sort=-nope"), "sort")


def test_default_sort_applies(api, shelf):
    assert titles(api.get("/api/books/")) == ["Dune", "Hobbit", "Silmarillion"]


def test_select_returns_subset_plus_id(api, shelf):
    r = api.get("/api/books/?select=title,pages")
    docs = r.json()["docs"]
    assert all(set(d) == {"id", "title", "pages"} for d in docs)
    invalid(api.get("/api/books/?select=title,bogus"), "select")


def test_search(api, shelf):
    assert titles(api.get("/api/books/?search=hob")) == ["Hobbit"]
    assert titles(api.get("/api/books/?search=C")) == ["Dune"]  # isbn C (and no title match)
    invalid(api.get("/api/authors/?search=x"), "search")  # no search_fields


@pytest.mark.parametrize(
    "query,param",
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("page=١", "page"),
    ],
)
def test_bad_pagination_is_400(api, shelf, query, param):
    invalid(api.get(f"/api/books/?{query}"), param)


def test_limit_is_capped_never_an_error(api, settings):
    BookFactory.create_batch(3)
    settings.ARC = {"MAX_PAGE_SIZE": 2}
    body = api.get("/api/books/?limit=1000").json()
    assert body["limit"] == 2 and len(body["docs"]) == 2 and body["pages"] == 2


def test_default_page_size_setting(api, settings):
    BookFactory.create_batch(4)
    settings.ARC = {"DEFAULT_PAGE_SIZE": 3}
    assert api.get("/api/books/").json()["limit"] == 3


def test_huge_page_number_is_empty_not_500(api, shelf):
    body = api.get("/api/books/?page=999999999999999999").json()
    assert body["docs"] == [] and body["total"] == 3


TOO_LONG_FOR_INT = "9" * 5000  # past sys.get_int_max_str_digits(): int() refuses it


def test_a_limit_too_long_to_convert_is_capped_like_any_other(api, shelf, settings):
    settings.ARC = {"MAX_PAGE_SIZE": 2}
    huge = api.get(f"/api/books/?limit={TOO_LONG_FOR_INT}")
    assert huge.status_code == 200, huge.content
    assert huge.json() == api.get("/api/books/?limit=999999999").json()
    keyset = api.get(f"/api/books/?limit={TOO_LONG_FOR_INT}&after=")
    assert keyset.status_code == 200 and keyset.json()["limit"] == 2


def test_a_page_too_long_to_convert_is_past_the_last_page(api, shelf):
    huge = api.get(f"/api/books/?page={TOO_LONG_FOR_INT}")
    assert huge.status_code == 200, huge.content
    body, big = huge.json(), api.get("/api/books/?page=999999999").json()
    assert body["docs"] == [] and body["total"] == 3
    assert {**body, "page": None} == {**big, "page": None}
    # answered as the largest page Python writes back: never below a shorter request's
    assert body["page"] == 10 ** sys.get_int_max_str_digits() - 1


def test_leading_zeros_do_not_make_a_number_too_long(api, shelf):
    body = api.get("/api/books/?limit=" + "0" * 5000 + "2").json()
    assert body["limit"] == 2 and len(body["docs"]) == 2
    invalid(api.get("/api/books/?page=" + "0" * 5000), "page")


def walk_keyset(api, url):
    seen, pages = [], 0
    r = api.get(f"{url}&after=")  # an empty cursor starts keyset mode
    while True:
        assert r.status_code == 200, r.content
        body = r.json()
        assert set(body) == {"success", "docs", "limit", "hasNext", "next"}
        seen.extend(d["id"] for d in body["docs"])
        pages += 1
        if not body["hasNext"]:
            assert body["next"] is None
            return seen, pages
        r = api.get(f"{url}&after={body['next']}")


@pytest.mark.parametrize("sort", ["title", "-pages", "rating", "-rating", "price,-title"])
def test_keyset_pagination_visits_every_row_once_in_order(api, sort):
    for i in range(23):
        BookFactory(pages=100 + i % 5, price=i % 3, rating=None if i % 4 == 0 else i % 7)
    full = api.get(f"/api/books/?limit=100&sort={sort}").json()["docs"]
    seen, pages = walk_keyset(api, f"/api/books/?limit=5&sort={sort}")
    assert seen == [d["id"] for d in full]
    assert pages == 5


def test_keyset_cursor_tampering_is_400(api, shelf):
    body = api.get("/api/books/?limit=1&after=").json()
    cursor = body["next"]
    invalid(api.get(f"/api/books/?limit=1&after={cursor}xx"), "after")
    invalid(api.get("/api/books/?after=%%%"), "after")
    # a cursor from another sort order is refused, not misapplied
    invalid(api.get(f"/api/books/?limit=1&sort=-pages&after={cursor}"), "after")
    invalid(api.get("/api/books/?after=&page=2"), "after")


@pytest.mark.parametrize(
    "payload",
    [b"[" * 100_000, b'{"s":"-created_at","v":' + b"[" * 100_000 + b"]}"],
    ids=["nested", "nested-values"],
)
def test_a_deeply_nested_cursor_is_400(api, shelf, payload):
    """JSON nested past Python's recursion limit is a bad cursor like any other."""
    cursor = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    invalid(api.get(f"/api/books/?after={cursor}"), "after")


@pytest.mark.parametrize("value", ["\ud800", "a\udfff", "\x00"])
def test_a_cursor_carrying_a_lone_surrogate_or_a_nul_is_400(api, shelf, value):
    """A cursor is JSON, which can carry a lone surrogate (``"\\ud800"``) no URL can: as a
    text sort key's value it reached the driver, which cannot encode it (a 500 on SQLite and
    PostgreSQL alike). It is a bad cursor, as a NUL is where no text holds one (PostgreSQL);
    on SQLite a row may hold a NUL, so a cursor holding one is a place in the walk
    (tests/test_paging_walks.py)."""
    from django.db import connection

    cursor = api.get("/api/books/?sort=title&limit=1&after=").json()["next"]
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    data["v"][0] = value
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    response = api.get(f"/api/books/?sort=title&limit=1&after={forged}")
    if value == "\x00" and connection.vendor != "postgresql":
        assert response.status_code == 200, response.content
        return
    invalid(response, "after")


@pytest.mark.parametrize("sort", ["title", "created_at", "pages"])
def test_a_cursor_value_ending_in_a_nul_is_a_place_only_in_a_text_column(api, shelf, sort):
    """A NUL is let through a cursor only where a row can hold one: a text column on a
    database whose text holds NUL (SQLite). A date/time or number parse ignores a trailing
    NUL (``fromisoformat("2024-01-01T00:00:00\\x00")`` is a datetime), so a forged
    ``created_at`` cursor ending in one was a 200 on SQLite; it is a bad cursor everywhere,
    and so is every NUL on PostgreSQL."""
    from django.db import connection

    cursor = api.get(f"/api/books/?sort={sort}&limit=1&after=").json()["next"]
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    data["v"][0] = f"{data['v'][0]}\x00"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    response = api.get(f"/api/books/?sort={sort}&limit=1&after={forged}")
    if sort == "title" and connection.vendor != "postgresql":
        assert response.status_code == 200, response.content
        return
    invalid(response, "after")


def test_keyset_list_runs_one_query(api, shelf, django_assert_num_queries):
    with django_assert_num_queries(1):
        api.get("/api/books/?limit=2&after=")


def test_keyset_cursor_keeps_microseconds(api):
    import datetime as dt

    from tests.testapp.models import Book

    base = dt.datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)
    for i in range(6):
        book = BookFactory()
        # six rows inside the same millisecond, distinct microseconds
        Book.objects.filter(pk=book.pk).update(created_at=base + dt.timedelta(microseconds=i))
    for sort in ("created_at", "-created_at"):
        seen, _ = walk_keyset(api, f"/api/books/?limit=2&sort={sort}")
        assert len(seen) == len(set(seen)) == 6, sort


def test_operator_alias_error_names_what_the_client_sent(api):
    body = invalid(api.get("/api/books/?pages[like]=3"), "pages[like]")
    assert "'like'" in body["details"]["pages[like]"]


def test_options_is_405_for_everyone(api):
    r = api.options("/api/books/")
    assert r.status_code == 405
    assert r.json()["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    "query",
    [
        "reviews__body[icontains]=good",
        "reviews__body[icontains]=good&sort=-rating",
        "reviews[in]={first},{second}",
        "reviews__body[icontains]=good&search=x",
    ],
)
def test_a_filter_across_a_to_many_relation_lists_each_row_once(query):
    """``reviews__body`` joins one row per review: a book with two matching reviews was
    listed twice and counted twice (``total``), and a bulk update by that filter saw it
    twice. Declared, not registered: the query spec decides the rows."""
    resource = type(
        "ReviewFiltered",
        (Resource,),
        {
            "model": Book,
            "name": "review-filtered",
            "fields": ["id", "title"],
            "filter_fields": {"reviews__body": ["icontains"], "reviews": ["in"]},
            "sort_fields": ["rating"],
            "search_fields": ["title"],
            "default_sort": "title",
        },
    )()
    book = BookFactory(title="x")
    BookFactory(title="y")
    first = Review.objects.create(book=book, body="good one")
    second = Review.objects.create(book=book, body="good two")
    spec = resource.query_spec
    params = QueryDict(query.format(first=first.pk, second=second.pk))
    rows = spec.apply(Book.objects.all(), spec.parse(params, {"id", "title"}))
    assert list(rows.values_list("title", flat=True)) == ["x"]
    assert rows.count() == 1


# -- fix-seen7: a value outside a field's choices, a number spelled with underscores ---------


def test_a_value_outside_a_fields_choices_is_400_naming_the_parameter():
    """``?status=zz`` on a choices field answered 200 with an empty list: a typo read as "no
    row has it". Equality operators refuse a value outside the field's choices, as
    django-filter's ``ChoiceFilter`` (and DRF's ``ChoiceField``) do; the choices still
    filter."""
    from rest_framework.test import APIClient

    from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory

    org = OrganizationFactory()
    ProductFactory(organization=org, status="active", name="on")
    ProductFactory(organization=org, status="draft", name="off")
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=org, role="admin").user)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    for query, param in (
        ("status=zz", "status"),
        ("status[eq]=Active", "status[eq]"),  # a label is no choice
        ("status[in]=active,zz", "status[in]"),
    ):
        body = invalid(client.get(f"/api/products/?{query}"), param)
        assert "not a valid choice" in body["details"][param], body
    names = lambda r: sorted(d["name"] for d in r.json()["docs"])  # noqa: E731
    assert names(client.get("/api/products/?status=active")) == ["on"]
    assert names(client.get("/api/products/?status[in]=active,draft")) == ["off", "on"]


@pytest.mark.parametrize(
    "query,param",
    [
        ("pages=3_00", "pages"),
        ("pages[in]=300,6_00", "pages[in]"),
        ("price[gte]=1_0", "price[gte]"),
        ("rating[gte]=4_5", "rating[gte]"),
    ],
)
def test_a_number_spelled_with_underscores_is_400(api, shelf, query, param):
    """Python's ``int()``, ``float()`` and ``Decimal()`` read ``"3_00"`` as 300: a filter
    value with an underscore matched as if it had none. Refused, as a JSON number with one
    is."""
    invalid(api.get(f"/api/books/?{query}"), param)
