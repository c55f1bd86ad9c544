"""rev-fixes57: review of rev-numbers, rev-fixes54 and rev-generic."""

from __future__ import annotations

import pytest

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from tests.factories import UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import idempotency_store
from tests.test_rev_numbers import rev_num_api, rev_num_post  # noqa: F401
from tests.testapp.models import Author, Book, RevNumTally

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("store", ["database", "cache"])
@pytest.mark.parametrize(
    "first, second",
    [
        ("12345678901234567.891", "12345678901234567.8910"),
        ("12345678901234567.891", "1.2345678901234567891e16"),
    ],
)
def test_rf57_one_inexact_number_spelled_two_ways_is_one_body(rev_num_api, store, first, second):  # noqa: F811
    """A number no float holds was fingerprinted by its text, so the same number with a
    trailing zero or an exponent under the same key was 422 IDEMPOTENCY_KEY_REUSED, though
    the decimal stored is the same (and 1.1 / 1.10 of a float-held number replay)."""
    with idempotency_store(store):
        one = rev_num_post(rev_num_api, f'{{"wide": {first}}}', HTTP_IDEMPOTENCY_KEY="s")
        assert one.status_code == 201, one.content
        two = rev_num_post(rev_num_api, f'{{"wide": {second}}}', HTTP_IDEMPOTENCY_KEY="s")
        assert two.status_code == 201, two.content
        assert two["X-Idempotency-Replayed"] == "true"
        assert two.content == one.content
        other = rev_num_post(
            rev_num_api, '{"wide": 12345678901234567.892}', HTTP_IDEMPOTENCY_KEY="s"
        )
        assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED")
    assert RevNumTally.objects.count() == 1


rf57_bulk_site = ResourceSite(name="rev-fixes57-bulk")
rf57_bulk_site.register(
    type(
        "Rf57BulkTallyResource",
        (Resource,),
        {
            "model": RevNumTally,
            "name": "rf57-tallies",
            "fields": ["id", "count", "amount", "wide"],
            "filter_fields": {"amount": ["eq", "lte"], "wide": ["eq", "lte"]},
            "presets": [presets.Bulk()],
            "permissions": {k: P.allow_public() for k in ("list", "get", "update")},
        },
    )
)


@pytest.mark.parametrize("column", ["amount", "wide"])
def test_rf57_a_bulk_filter_number_no_float_holds_reads_as_the_query_string_does(settings, column):
    """A bulk ``filter``'s JSON number became the text of its float: ``1e-400`` (which no
    float holds: it is 0.0) filtered ``<= 0.0`` and updated the row of zero, where the same
    value in the query string (and in a body's decimal) is read from its text."""
    row = RevNumTally.objects.create(count=1)
    api = client_for(None)
    with site_mounted(settings, "rf57b", rf57_bulk_site):
        listed = api.get(f"/rf57b/rf57-tallies/?{column}[lte]=1e-400")
        response = api.patch(
            "/rf57b/rf57-tallies/bulk/",
            f'{{"filter": {{"{column}[lte]": 1e-400}}, "data": {{"count": 2}}}}',
            content_type="application/json",
        )
    assert listed.status_code == 400, listed.content
    assert list(assert_error(response, 400, "VALIDATION_ERROR")["details"]) == ["filter"]
    row.refresh_from_db()
    assert row.count == 1


def test_rf57_a_bulk_id_no_float_holds_names_no_row():
    """``{"ids": [1.0000000000000000001]}`` is the float 1.0 and deleted row 1, where the
    URL's ``/1.0000000000000000001/`` names no row: a bulk id is read as written."""
    api = client_for(UserFactory())
    author = Author.objects.create(name="rf57-ids")
    book = Book.objects.create(title="kept", isbn="rf57-2", pages=5, author=author)
    inexact = f"{book.pk}.0000000000000000001"
    assert api.get(f"/api/bulk-books/{inexact}/").status_code == 404
    for method, body, where in [
        ("delete", f'{{"ids": [{inexact}]}}', "ids"),
        ("patch", f'{{"items": [{{"id": {inexact}, "title": "changed"}}]}}', "items"),
    ]:
        response = getattr(api, method)(
            "/api/bulk-books/bulk/", body, content_type="application/json"
        )
        assert list(assert_error(response, 400, "VALIDATION_ERROR")["details"]) == [where]
    book.refresh_from_db()
    assert book.title == "kept"


@pytest.mark.parametrize("url", ["/api/books/", "/api/bulk-books/"])
@pytest.mark.parametrize("suffix", [".5", ".0000000000000000001"])
def test_rf57_a_relation_named_by_a_fraction_is_no_row(url, suffix):
    """``{"author": 1.5}`` was author 1 (``int()`` truncates; ``1.0000000000000000001`` is
    the float 1.0), where the URL's ``/1.5/`` names no row: 400 naming the field, no book.
    ``1.0`` is still author 1."""
    api = client_for(UserFactory())
    author = Author.objects.create(name="rf57-fraction")
    sent = f"{author.pk}{suffix}"
    response = api.post(
        url,
        f'{{"title": "t", "isbn": "rf57-f", "author": {sent}}}',
        content_type="application/json",
    )
    assert list(assert_error(response, 400, "VALIDATION_ERROR")["details"]) == ["author"]
    assert not Book.objects.exists()
    whole = api.post(
        url,
        f'{{"title": "t", "isbn": "rf57-w", "author": {author.pk}.0}}',
        content_type="application/json",
    )
    assert whole.status_code == 201, whole.content
    assert whole.json()["data"]["author"] == author.pk


@pytest.mark.parametrize("field", ["count", "big", "small"])
def test_rf57_an_integer_sent_with_a_fraction_no_float_holds_is_400(rev_num_api, field):  # noqa: F811
    """``{"count": 1.0000000000000000001}`` is the float 1.0 and was stored as 1, where the
    same text as a string (or a filter) is no integer: 400 naming the field, no row.
    ``1.0`` is still 1."""
    response = rev_num_post(rev_num_api, f'{{"{field}": 1.0000000000000000001}}')
    assert list(assert_error(response, 400, "VALIDATION_ERROR")["details"]) == [field]
    assert not RevNumTally.objects.exists()
    whole = rev_num_post(rev_num_api, f'{{"{field}": 1.0}}')
    assert whole.status_code == 201 and whole.json()["data"][field] == 1, whole.content
