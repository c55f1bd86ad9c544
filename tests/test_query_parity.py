"""The same request answers the same on SQLite and on PostgreSQL.

SQLite is the embedded default and the suite's first run; a project moving to PostgreSQL
must not see other rows, another order or another status. Each test here states one answer
and runs in both runs of the suite (``ARC_TEST_DB``), so a difference between the two
databases fails one of them. The rows mix case, accents, ``%``, ``_`` and a backslash, the
characters where ``LIKE`` differs between engines.
"""

import datetime

import pytest
from django.http import QueryDict

from django_arc import Resource
from tests.factories import AuthorFactory, BookFactory, UserFactory
from tests.testapp.models import Article, Book

pytestmark = pytest.mark.django_db

TITLES = [
    "apple",
    "Apple",
    "APPLE pie",
    "Émile",
    "émile",
    "Straße",
    "100% cotton",
    "100 cotton",
    "a_b",
    "axb",
    "back\\slash",
]


@pytest.fixture
def shelf():
    author = AuthorFactory(name="Émile")
    for i, title in enumerate(TITLES):
        BookFactory(title=title, isbn=f"I{i:02d}", pages=100 + i, author=author)


def titles(response):
    assert response.status_code == 200, response.content
    return [d["title"] for d in response.json()["docs"]]


def in_order(*expected):
    """``expected`` in the rows' ``pages`` order (their order in ``TITLES``): the tests sort
    by a number, so they hold whatever the database's text collation."""
    return sorted(expected, key=TITLES.index)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # contains/startswith are case-sensitive (docs): SQLite's LIKE ignored ASCII case
        ("title[contains]=apple", in_order("apple")),
        ("title[contains]=Apple", in_order("Apple")),
        ("title[contains]=PPLE", in_order("APPLE pie")),
        ("title[startswith]=a", in_order("a_b", "apple", "axb")),
        ("title[startswith]=A", in_order("APPLE pie", "Apple")),
        ("title[startswith]=pie", in_order()),
        ("title[contains]=É", in_order("Émile")),
        ("title[contains]=é", in_order("émile")),
        ("title[startswith]=É", in_order("Émile")),
        # the ASCII case is ignored by icontains, like and search on both
        ("title[icontains]=apple", in_order("APPLE pie", "Apple", "apple")),
        ("title[like]=APPLE", in_order("APPLE pie", "Apple", "apple")),
        ("search=aPPle", in_order("APPLE pie", "Apple", "apple")),
        # a related model's text: the same lookup through the join
        ("author__name=Émile&title[contains]=apple", in_order("apple")),
        # an empty value: every row has the empty string at its start
        ("title[startswith]=", TITLES),
    ],
)
def test_contains_and_startswith_respect_case_on_every_database(api, shelf, query, expected):
    """``[contains]=apple`` found ``Apple`` and ``APPLE pie`` on SQLite, whose ``LIKE``
    ignores the case of ASCII letters, and ``apple`` only on PostgreSQL."""
    assert titles(api.get(f"/api/books/?{query}&sort=pages")) == expected


def test_a_bulk_update_by_startswith_leaves_the_other_case_alone(api, shelf):
    """A bulk ``filter`` is the same language: on SQLite ``{"title[startswith]": "a"}``
    also rewrote ``Apple`` and ``APPLE pie``."""
    r = api.patch(
        "/api/bulk-books/bulk/",
        {"filter": {"title[startswith]": "a"}, "data": {"pages": 1}},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["data"]["updated"] == 3
    changed = Book.objects.filter(pages=1).order_by("isbn").values_list("title", flat=True)
    assert list(changed) == ["apple", "a_b", "axb"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("title[contains]=%25", in_order("100% cotton")),
        ("title[contains]=_", in_order("a_b")),
        ("title[contains]=a_b", in_order("a_b")),
        ("title[startswith]=100%25", in_order("100% cotton")),
        ("title[startswith]=a_", in_order("a_b")),
        ("title[contains]=\\", in_order("back\\slash")),
        ("title[icontains]=A_B", in_order("a_b")),
        ("search=%25", in_order("100% cotton")),
        ("search=_", in_order("a_b")),
        ("search=\\", in_order("back\\slash")),
    ],
)
def test_like_wildcards_in_a_value_are_plain_characters(api, shelf, query, expected):
    """``%``, ``_`` and ``\\`` match themselves only, on both databases and through both
    SQL forms (``instr`` on SQLite, an escaped ``LIKE`` elsewhere)."""
    assert titles(api.get(f"/api/books/?{query}&sort=pages")) == expected


@pytest.mark.parametrize(
    "query",
    [
        "pages[gt]=2147483648",
        "pages[lt]=-2147483649",
        "pages[in]=1,3000000000",
        "pages[nin]=3000000000",
        "pages=9223372036854775807",
    ],
)
def test_an_integer_the_column_cannot_hold_is_400_on_every_database(api, shelf, query):
    """``pages`` is an ``IntegerField``, 32 bits on PostgreSQL: there Django's validators
    refused 2147483648 (400) while SQLite, whose integers all have 64 bits, answered 200. The
    range is now the field type's on every database."""
    param = query.split("=", 1)[0]
    r = api.get(f"/api/books/?{query}")
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["code"] == "INVALID_QUERY"
    assert body["details"] == {param: "is out of range"}


def test_an_integer_at_the_edge_of_the_column_filters(api, shelf):
    assert titles(api.get("/api/books/?pages[lt]=2147483647&sort=pages")) == TITLES
    both = "/api/books/?pages[gt]=-2147483648&pages[lte]=101&sort=pages"
    assert titles(api.get(both)) == ["apple", "Apple"]
    assert titles(api.get("/api/books/?pages[gt]=2147483647")) == []


def test_a_64_bit_key_filters_down_to_its_lowest_value(api, shelf):
    """The lowest signed 64-bit integer is a value every database holds; the parser's bound
    had been symmetric (``-(2**63 - 1)``), so ``?author=-9223372036854775808`` was a 400."""
    assert titles(api.get(f"/api/books/?author={-(2**63)}")) == []
    assert titles(api.get(f"/api/books/?author[in]={-(2**63)},{2**63 - 1}")) == []
    r = api.get(f"/api/books/?author={-(2**63) - 1}")
    assert r.status_code == 400, r.content
    assert r.json()["details"] == {"author": "is out of range"}


def test_the_schema_bounds_an_integer_filter_by_the_column_on_every_database():
    """The OpenAPI bounds follow the parser: a 32-bit column is documented as 32 bits on
    SQLite too (the example project's golden schema is generated on SQLite)."""
    from django_arc.filters import query_value_schema
    from tests.testapp.models import Book

    schema = query_value_schema(Book._meta.get_field("pages"))
    assert schema == {"type": "integer", "minimum": -2147483648, "maximum": 2147483647}
    book_id = query_value_schema(Book._meta.get_field("id"))
    assert (book_id["minimum"], book_id["maximum"]) == (-(2**63), 2**63 - 1)


@pytest.mark.parametrize("sort", ["title", "-title", "-published,title", "rating,-title"])
def test_offset_and_keyset_pages_agree_over_mixed_case_and_accents(api, sort):
    """Text sorts in the column's collation, which differs between databases (and between
    PostgreSQL locales), so no order is asserted here; what every database must give is one
    order for both paginations, each row once, with NULL dates and ratings and tied titles
    (``apple`` twice) in the middle of the pages."""
    author = AuthorFactory()
    for i, title in enumerate(TITLES + ["apple", "Émile"]):
        BookFactory(
            title=title,
            author=author,
            rating=None if i % 3 == 0 else i % 2,
            published=None if i % 4 == 0 else datetime.date(2000, 1, 1 + i % 2),
        )
    offset = []
    for page in (1, 2, 3, 4):
        body = api.get(f"/api/books/?sort={sort}&limit=4&page={page}").json()
        offset += [d["id"] for d in body["docs"]]
    keyset, after = [], ""
    while True:
        r = api.get(f"/api/books/?sort={sort}&limit=4&after={after}")
        assert r.status_code == 200, r.content
        keyset += [d["id"] for d in r.json()["docs"]]
        if not r.json()["hasNext"]:
            break
        after = r.json()["next"]
    assert keyset == offset
    assert sorted(keyset) == sorted(Book.objects.values_list("pk", flat=True))


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("owner__username", ["by-ann", "by-bob", "nobody-1", "nobody-2"]),
        ("-owner__username", ["by-bob", "by-ann", "nobody-1", "nobody-2"]),
        ("owner__username,-title", ["by-ann", "by-bob", "nobody-2", "nobody-1"]),
    ],
)
def test_a_sort_through_a_nullable_relation_puts_its_nulls_last(sort, expected):
    """``Article.owner`` is nullable: an article without one reads ``owner__username`` as
    NULL, although ``username`` itself is not nullable. The plain ORDER BY put those rows
    first on SQLite and last on PostgreSQL (ascending), against "NULLs sort last in both
    directions". A resource is declared here, not registered: its query spec is what
    decides the order."""
    resource = type(
        "OwnerSorted",
        (Resource,),
        {
            "model": Article,
            "name": "owner-sorted",
            "fields": ["id", "title"],
            "sort_fields": ["owner__username", "title"],
            "default_sort": "title",
        },
    )()
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    for slug, owner in (("nobody-1", None), ("by-bob", bob), ("nobody-2", None), ("by-ann", ann)):
        Article.objects.create(slug=slug, title=slug, owner=owner)
    spec = resource.query_spec
    query = spec.parse(QueryDict(f"sort={sort}"), {"id", "title"})
    rows = spec.apply(Article.objects.all(), query)
    assert list(rows.values_list("title", flat=True)) == expected
