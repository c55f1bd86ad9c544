"""Numbers end to end: what a body, a filter, a URL's id and a cursor read as a number, and
what the answer, its replay, its cached copy, its event and its audit row say back.

The integer family at and past each column's limits, a decimal of a few digits and one
wider than a binary float holds, a float. Run under ``ARC_TEST_DB=postgres`` too (with
``ARC_REDIS_URL`` for the cached and replayed answers).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import connection

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from tests.factories import UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import REDIS_URL, idempotency_store, query_cache_on_redis
from tests.testapp.models import Author, Book, RevNumTally

pytestmark = pytest.mark.django_db

REV_NUM_FIELDS = ["id", "small", "count", "big", "ubig", "amount", "wide", "ratio"]
REV_NUM_OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
ARABIC_TWELVE = "\u0661\u0662"  # Arabic-Indic digits one and two: int() reads them as 12


def rev_num_wide() -> str:
    """A decimal with more significant digits than a binary float holds (20 + 10), where the
    database holds them: SQLite stores a decimal as a REAL and Django reads it back rounded
    to 15 significant digits, so there one of 15 (docs/decisions.md, "Numbers")."""
    if connection.vendor == "sqlite":
        return "12345.0123456789"
    return "12345678901234567890.0123456789"


rev_num_site = ResourceSite(name="rev-numbers")
rev_num_site.register(
    type(
        "RevNumTallyResource",
        (Resource,),
        {
            "model": RevNumTally,
            "name": "tallies",
            "fields": REV_NUM_FIELDS,
            "filter_fields": {name: REV_NUM_OPS for name in REV_NUM_FIELDS},
            "sort_fields": REV_NUM_FIELDS[1:],
            "idempotent": True,
            "presets": [presets.Audited()],
            "cache": {"stale_seconds": 30},
            "permissions": {
                key: P.allow_public() for key in ("list", "get", "create", "update", "delete")
            },
        },
    )
)


@pytest.fixture
def rev_num_api(settings):
    with site_mounted(settings, "rn", rev_num_site):
        yield client_for()


def rev_num_post(api, body: str, **headers):
    return api.post("/rn/tallies/", body, content_type="application/json", **headers)


# -- writes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, text",
    [
        ("count", "1_000"),
        ("big", ARABIC_TWELVE),
        ("small", "\uff19"),  # a fullwidth nine
        ("amount", "1_0"),
        ("amount", ARABIC_TWELVE),
        ("ratio", "1_0.5"),
        ("ratio", ARABIC_TWELVE),
    ],
)
def test_a_body_number_spelled_with_underscores_or_foreign_digits_is_400(rev_num_api, field, text):
    """``int()``, ``Decimal()`` and ``float()`` read ``"1_000"`` as 1000 (PEP 515) and
    Arabic-Indic or fullwidth digits as ASCII ones: such a string was stored as that number,
    where the query language refuses the same text as a filter value and JavaScript's
    ``Number()`` (an arc client) reads ``NaN``."""
    response = rev_num_post(rev_num_api, json.dumps({field: text}))
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert list(body["details"]) == [field]
    assert not RevNumTally.objects.exists()


@pytest.mark.parametrize("value", ["true", "false"])
def test_a_boolean_for_a_float_is_400_as_for_an_integer_or_a_decimal(rev_num_api, value):
    """``float(True)`` is 1.0: ``{"ratio": true}`` was stored as 1.0, where the integer and
    decimal fields refuse a boolean."""
    for field in ("ratio", "count", "amount"):
        response = rev_num_post(rev_num_api, f'{{"{field}": {value}}}')
        assert assert_error(response, 400, "VALIDATION_ERROR")["details"].keys() == {field}
    assert not RevNumTally.objects.exists()


def test_a_decimal_wider_than_a_float_written_as_a_json_number_keeps_every_digit(rev_num_api):
    """A JSON number was read as a binary float and then turned into the column's decimal:
    ``12345678901234567.891`` (20 significant digits, within the column's 30) was stored as
    ``12345678901234568.0000000000``, silently. Its text is read as the decimal it spells, as
    the same value sent as a string is."""
    response = rev_num_post(rev_num_api, '{"wide": 12345678901234567.891, "amount": 1.1}')
    assert response.status_code == 201, response.content
    assert response.json()["data"]["wide"] == "12345678901234567.8910000000"
    assert response.json()["data"]["amount"] == "1.10"
    row = RevNumTally.objects.get()
    assert row.amount == Decimal("1.1")
    if connection.vendor != "sqlite":
        # SQLite stores a decimal as a REAL, 15 significant digits (docs/decisions.md)
        assert row.wide == Decimal("12345678901234567.891")


@pytest.mark.parametrize(
    "number, message",
    [
        ("1e400", "Ensure that there are no more than 30 digits in total."),
        ("1e-400", "Ensure that there are no more than 30 digits in total."),
        ("0.12345678901234567890123", "Ensure that there are no more than 10 decimal places."),
    ],
)
def test_a_json_number_a_decimal_column_cannot_hold_is_refused_as_its_string_is(
    rev_num_api, number, message
):
    """``1e-400`` was read as the float 0.0 and stored as zero, and ``1e400`` as infinity
    (refused as no number), where the same text as a string was refused for its digits. Both
    spellings now meet the column's digits alike (a number with more decimal places than the
    column's was refused either way: checked)."""
    for spelled in (number, f'"{number}"'):
        response = rev_num_post(rev_num_api, f'{{"wide": {spelled}}}')
        body = assert_error(response, 400, "VALIDATION_ERROR")
        assert body["details"] == {"wide": [message]}, spelled
    assert not RevNumTally.objects.exists()


# -- filters and ids -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "param, value",
    [
        ("id", ARABIC_TWELVE),
        ("count", "\u0663"),
        ("small[in]", "1,\u0661"),
        ("amount[gte]", "\u0661"),
        ("ratio", "\u0661"),
        ("big", "\uff11"),  # a fullwidth one
    ],
)
def test_a_filter_number_in_foreign_digits_is_400_as_one_with_underscores(
    rev_num_api, param, value
):
    """``?id=١٢`` found row 12: a second spelling of every number (and a second query-cache
    entry), which the underscores the language already refused (``?id=1_2``) were too."""
    RevNumTally.objects.create(small=1, count=3, amount=1, ratio=1.0, big=1)
    body = assert_error(rev_num_api.get("/rn/tallies/", {param: value}), 400, "INVALID_QUERY")
    assert list(body["details"]) == [param]


@pytest.mark.parametrize("spelling", ["{pk}_0", "{arabic}", "{pk}\u0660"])
def test_an_id_in_the_url_spelled_with_underscores_or_foreign_digits_names_no_row(
    rev_num_api, spelling
):
    """``/tallies/1_0/`` answered row 10, ``/tallies/١/`` row 1 (a filter refuses both)."""
    rows = [RevNumTally.objects.create() for _ in range(10)]
    first = rows[0].pk
    arabic = str(first).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    path = spelling.format(pk=first, arabic=arabic)
    assert rev_num_api.get(f"/rn/tallies/{first}/").status_code == 200
    assert_error(rev_num_api.get(f"/rn/tallies/{path}/"), 404, "NOT_FOUND")
    patched = rev_num_api.patch(f"/rn/tallies/{path}/", {"count": 5}, format="json")
    assert_error(patched, 404, "NOT_FOUND")
    assert not RevNumTally.objects.filter(count=5).exists()


def test_a_relation_named_by_foreign_digits_is_refused(settings):
    """``{"author": "١"}`` set author 1 as ``{"author": 1}`` does."""
    author = Author.objects.create(name="a")
    arabic = str(author.pk).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for spelled in (arabic, f"{author.pk}_0"[: len(str(author.pk)) + 2]):
        response = client_for().post(
            "/api/books/", {"title": "t", "isbn": spelled, "author": spelled}, format="json"
        )
        body = assert_error(response, 400, "VALIDATION_ERROR")
        assert list(body["details"]) == ["author"], spelled
    assert not Book.objects.exists()


# -- the same numbers everywhere they are told ------------------------------------------------


@pytest.mark.skipif(not REDIS_URL, reason="the query cache needs ARC_REDIS_URL")
@pytest.mark.parametrize("store", ["database", "cache"])
def test_big_integers_decimals_and_floats_read_the_same_everywhere(rev_num_api, store):
    """The 64-bit limits, an integer past 2**53, a decimal wider than a float and a float
    Python writes with an exponent: the live answer, its replay and its cached copy are
    byte for byte one, and the event and audit row hold the same values (checked, found
    correct)."""
    body = (
        '{"big": 9223372036854775807, "ubig": 9007199254740993, "count": -2147483648, '
        f'"small": -32768, "amount": "1234.56", "wide": "{rev_num_wide()}", "ratio": 1e16}}'
    )
    with idempotency_store(store), query_cache_on_redis():
        live = rev_num_post(rev_num_api, body, HTTP_IDEMPOTENCY_KEY="rn-1")
        replay = rev_num_post(rev_num_api, body, HTTP_IDEMPOTENCY_KEY="rn-1")
        assert live.status_code == 201 and replay["X-Idempotency-Replayed"] == "true"
        assert replay.content == live.content
        data = live.json()["data"]
        pk = data["id"]
        first, hit = (rev_num_api.get(f"/rn/tallies/{pk}/") for _ in range(2))
        assert (first["X-Cache"], hit["X-Cache"]) == ("MISS", "HIT")
        assert first.content == hit.content
        assert json.loads(hit.content)["data"] == data
        for params in ({"big": "9223372036854775807"}, {"wide": rev_num_wide()}):
            listed = [rev_num_api.get("/rn/tallies/", params) for _ in range(2)]
            assert [r["X-Cache"] for r in listed] == ["MISS", "HIT"]
            assert listed[0].content == listed[1].content
            assert listed[1].json()["docs"] == [data]
    assert data["big"] == 2**63 - 1 and data["ubig"] == 2**53 + 1
    assert Decimal(data["wide"]) == Decimal(rev_num_wide()) and data["ratio"] == 1e16
    event = OutboxEvent.objects.get(type="tallies.created")
    assert event.payload["data"] == data
    assert AuditLog.objects.get(object_id=str(pk)).after == data


@pytest.mark.parametrize(
    "column, values",
    [
        ("wide", ["0.1", "0.1000000001", "wide", "-0.0000000001", "99999.9999999999"]),
        ("ratio", [0.1, 0.1 + 0.2, 0.3, 1e16, 1e16 + 2, 5e-324, 1 / 3]),
        ("big", [2**63 - 1, 2**63 - 2, 2**53, 2**53 + 1, -(2**63)]),
    ],
)
def test_a_cursor_walk_by_a_number_visits_every_row_once(rev_num_api, column, values):
    """Two rows per value, two per page: the cursor holds each sort key exactly (a decimal
    as its text, a float as its shortest repr, an integer whole), so no page boundary
    between equal or adjacent values skips or repeats a row (checked, found correct)."""
    for value in values * 2:
        RevNumTally.objects.create(**{column: rev_num_wide() if value == "wide" else value})
    expected = sorted(RevNumTally.objects.values_list("id", flat=True))
    for sort in (column, f"-{column}"):
        seen, after = [], ""
        for _ in range(len(expected)):  # a walk that makes no progress fails, not hangs
            page = rev_num_api.get("/rn/tallies/", {"sort": sort, "limit": 2, "after": after})
            assert page.status_code == 200, page.content
            seen += [doc["id"] for doc in page.json()["docs"]]
            after = page.json()["next"]
            if not after:
                break
        else:
            pytest.fail(f"the walk by {sort} did not end: {seen}")
        assert sorted(seen) == expected and len(seen) == len(expected), sort


def test_bulk_ids_and_filters_in_foreign_digits_name_no_row():
    """A bulk body's ids and filter values read as the URL's id and the query string do:
    ``{"ids": ["١"]}`` deleted row 1 and ``{"items": [{"id": "1_0"}]}`` updated row 10."""
    api = client_for(UserFactory())
    author = Author.objects.create(name="a")
    book = Book.objects.create(title="kept", isbn="k", pages=5, author=author)
    arabic = str(book.pk).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    underscored = f"{str(book.pk)[:-1] or '0'}_{str(book.pk)[-1]}"
    sent = [
        ("patch", {"filter": {"pages[gte]": "٥"}, "data": {"title": "changed"}}, "filter"),
        ("patch", {"items": [{"id": arabic, "title": "changed"}]}, "items"),
        ("patch", {"items": [{"id": underscored, "title": "changed"}]}, "items"),
        ("delete", {"ids": [arabic]}, "ids"),
    ]
    for method, body, where in sent:
        response = getattr(api, method)("/api/bulk-books/bulk/", body, format="json")
        assert list(assert_error(response, 400, "VALIDATION_ERROR")["details"]) == [where]
    book.refresh_from_db()
    assert book.title == "kept"


@pytest.mark.parametrize("store", ["database", "cache"])
def test_one_key_with_two_decimals_one_float_holds_alike_is_a_reused_key(rev_num_api, store):
    """Two JSON numbers no float tells apart (``…567.891`` and ``…567.892`` are one double)
    hashed as one body: with the decimal read from its text they are two values, so the
    second under the first's key is 422 ``IDEMPOTENCY_KEY_REUSED``, not the first's replay.
    The same number spelled ``1.1`` or ``1.10`` is still one body (replayed)."""
    with idempotency_store(store):
        first = rev_num_post(
            rev_num_api, '{"wide": 12345678901234567.891}', HTTP_IDEMPOTENCY_KEY="w"
        )
        assert first.status_code == 201, first.content
        other = rev_num_post(
            rev_num_api, '{"wide": 12345678901234567.892}', HTTP_IDEMPOTENCY_KEY="w"
        )
        assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED")
        again = rev_num_post(
            rev_num_api, '{"wide": 12345678901234567.891}', HTTP_IDEMPOTENCY_KEY="w"
        )
        assert again["X-Idempotency-Replayed"] == "true" and again.content == first.content
        plain = rev_num_post(rev_num_api, '{"amount": 1.1}', HTTP_IDEMPOTENCY_KEY="a")
        respelled = rev_num_post(rev_num_api, '{"amount": 1.10}', HTTP_IDEMPOTENCY_KEY="a")
        assert respelled["X-Idempotency-Replayed"] == "true"
        assert respelled.content == plain.content
    assert RevNumTally.objects.count() == 2


@pytest.mark.parametrize("number", ["1e999999999999", "-1e-999999999999", "1" * 5000 + ".5"])
def test_a_json_number_of_any_size_for_a_decimal_is_400(rev_num_api, number):
    """A decimal field reads the number's text: an exponent or a length no context holds is
    its digits' 400, idempotent or not (never a 500)."""
    for headers in ({}, {"HTTP_IDEMPOTENCY_KEY": f"n-{len(number)}-{number[:3]}"}):
        response = rev_num_post(rev_num_api, f'{{"wide": {number}}}', **headers)
        assert list(assert_error(response, 400, "VALIDATION_ERROR")["details"]) == ["wide"]
    assert not RevNumTally.objects.exists()
