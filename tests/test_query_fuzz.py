"""Random query strings never produce a 5xx: every answer is 200 or a 400 INVALID_QUERY."""

from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_arc.query import OPERATOR_ALIASES, OPERATORS, REFUSED_OPERATORS
from tests.budget import examples
from tests.factories import BookFactory

pytestmark = pytest.mark.django_db

FIELDS = [
    "title",
    "pages",
    "price",
    "rating",
    "published",
    "is_available",
    "author",
    "author__name",
    "uid",
    "isbn",
    "created_at",
    "id",
    "nope",
    "page",
    "limit",
    "sort",
    "select",
    "search",
    "after",
    "format",
]
# every operator the language knows, its aliases and refusals, plus garbage spellings
OPS = sorted(OPERATORS | set(OPERATOR_ALIASES) | REFUSED_OPERATORS) + ["", "x", "GT", "in]"]
values = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(alphabet="0123456789", min_size=19, max_size=80),  # beyond any integer column
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        [
            "true",
            "false",
            "null",
            "",
            ",",
            "1,2,,3",
            "2024-02-30",
            "1e999",
            "-0",
            "0x10",
            "\x00",
            "١٢",
            "９",
            "'; DROP TABLE x;--",
            "%",
            "_",
            "2024-01-01T00:00:00+99:00",
            "00000000-0000-0000-0000-000000000000",
        ]
    ),
)
keys = st.one_of(
    st.builds(lambda f, o: f"{f}[{o}]" if o else f, st.sampled_from(FIELDS), st.sampled_from(OPS)),
    st.text(max_size=12),
)


@pytest.fixture(scope="module")
def books(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        BookFactory.create_batch(5)
        yield
        from tests.testapp.models import Author, Book

        Book.objects.all().delete()
        Author.objects.all().delete()


@settings(
    max_examples=examples(400),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(params=st.lists(st.tuples(keys, values), max_size=6))
def test_random_query_strings_never_5xx(api, books, params):
    query = urlencode(params)
    response = api.get(f"/api/books/?{query}")
    assert response.status_code in (200, 400), (query, response.content)
    body = response.json()
    if response.status_code == 400:
        assert body["code"] == "INVALID_QUERY"
        assert body["details"]
    else:
        assert body["success"] is True


@settings(
    max_examples=examples(100),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    limit=st.one_of(st.integers(min_value=1, max_value=10**80), st.just(10**19)),
    page=st.integers(min_value=1, max_value=10**80),
    keyset=st.booleans(),
)
def test_any_positive_limit_is_capped_and_any_page_answers(api, books, limit, page, keyset):
    """SPEC §3: limit is capped at MAX_PAGE_SIZE, never an error, however many digits; a
    page past the end is an empty page."""
    query = f"limit={limit}&after=" if keyset else f"limit={limit}&page={page}"
    response = api.get(f"/api/books/?{query}")
    assert response.status_code == 200, (query, response.content)
    body = response.json()
    assert body["limit"] == min(limit, 100)
    assert body["docs"] or (not keyset and (page - 1) * body["limit"] >= 5)
    if not keyset:
        assert body["total"] == 5
