"""rev-fixes45: review of the merges of rev-fixes41 (bulk writes row by row, their rows
locked first) and rev-i18n (field names beyond ASCII, normalised to NFKC)."""

import re

import pytest
from django.db import connection
from django.db.models.signals import pre_save
from django.test.utils import CaptureQueriesContext

from tests.factories import (
    BookFactory,
    OrganizationFactory,
    ProductFactory,
    UserFactory,
    member_client,
)
from tests.helpers import client_for
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


@pytest.fixture
def rf45_api():
    return client_for(UserFactory())


@pytest.fixture
def rf45_row_by_row():
    """A project's ``pre_save`` receiver on Book: its bulk writes save row by row, the rows
    locked first (rev-fixes41)."""

    def rf45_listen(sender, instance, **kwargs):
        return None

    pre_save.connect(rf45_listen, sender=Book, weak=False, dispatch_uid="rf45-listen")
    try:
        yield
    finally:
        pre_save.disconnect(sender=Book, dispatch_uid="rf45-listen")


def _rf45_lock_queries(captured: CaptureQueriesContext) -> list[str]:
    """The statements reading the primary keys of the rows a bulk write locks (on SQLite,
    which has no row locks, the same read without ``FOR UPDATE``); Django 4.2 and 5.x
    spell the column and its ordering differently."""
    table = re.escape(f'"{Book._meta.db_table}"')
    head = re.compile(rf'SELECT {table}\."id"( AS "pk")? FROM {table} WHERE {table}\."id" IN \(')
    return [q["sql"] for q in captured.captured_queries if head.match(q["sql"])]


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_rf45_a_bulk_write_locks_its_rows_in_primary_key_order(
    rf45_api, rf45_row_by_row, method, monkeypatch
):
    """A row-by-row bulk update and a bulk delete lock their rows first (one ``SELECT …
    FOR UPDATE``), which had no ``ORDER BY``: PostgreSQL locks rows in the order its plan
    reads them (a table's physical order, which an UPDATE changes), so two bulk writes over
    overlapping rows could each hold a row the other waited for, a deadlock whose loser
    was a 500. The rows are locked in primary-key order now, whatever order the items name
    them in."""
    one, two, three = BookFactory(title="a"), BookFactory(title="b"), BookFactory(title="c")
    if method == "patch":
        items = [{"id": pk, "pages": 7} for pk in (three.pk, one.pk, two.pk)]
        body = {"items": items}
    else:
        # a model's own delete() deletes each row (rev-signals); a plain one, one DELETE
        original = Book.delete
        monkeypatch.setattr(Book, "delete", lambda self, *a, **k: original(self, *a, **k))
        body = {"ids": [three.pk, one.pk, two.pk]}
    with CaptureQueriesContext(connection) as captured:
        r = getattr(rf45_api, method)("/api/bulk-books/bulk/", body, format="json")
    assert r.status_code == 200, r.content
    locks = _rf45_lock_queries(captured)
    assert len(locks) == 1, "\n".join(q["sql"][:150] for q in captured.captured_queries)
    locked = " FOR UPDATE" if connection.features.has_select_for_update else ""
    table = re.escape(f'"{Book._meta.db_table}"')
    assert re.search(rf' ORDER BY (1|{table}\."id") ASC{locked}$', locks[0]), locks[0]
    if method == "patch":
        assert set(Book.objects.values_list("pages", flat=True)) == {7}
    else:
        assert not Book.objects.exists()


def test_rf45_a_bulk_filter_takes_a_field_name_as_the_query_string_does(rf45_api):
    """rev-i18n compares a filter's field name in NFKC, as Python spells identifiers: a name
    sent decomposed (``größe``, macOS) or in compatibility characters (fullwidth
    ``ｔｉｔｌｅ``) is the field's name in a list's query string. A bulk update's ``filter``
    goes through the same parser but checked its keys first against the names as sent, so
    the spelling a list took was a bulk update's 400 "Not a filter of this resource." It is
    the same name there too; the rows it matches are updated, no other."""
    one, two = BookFactory(title="a1", pages=5), BookFactory(title="a2", pages=5)
    listed = rf45_api.get("/api/bulk-books/", {"ｔｉｔｌｅ": "a1"})
    assert listed.status_code == 200, listed.content
    assert [row["id"] for row in listed.json()["docs"]] == [one.pk], listed.json()
    body = {"filter": {"ｔｉｔｌｅ": "a1"}, "data": {"pages": 9}}
    r = rf45_api.patch("/api/bulk-books/bulk/", body, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["ids"] == [one.pk]
    assert Book.objects.get(pk=one.pk).pages == 9
    assert Book.objects.get(pk=two.pk).pages == 5
    # brackets in compatibility characters too: NFKC reads the whole key, as a list does
    listed = rf45_api.get("/api/bulk-books/", {"title［eq］": "a1"})
    assert [row["id"] for row in listed.json()["docs"]] == [one.pk], listed.json()
    body = {"filter": {"title［eq］": "a1"}, "data": {"pages": 10}}
    r = rf45_api.patch("/api/bulk-books/bulk/", body, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["ids"] == [one.pk]
    assert Book.objects.get(pk=one.pk).pages == 10
    body = {"filter": {"ｔｉｔｌｅ[eq]": "a2", "ｎｏｎｅ": 1}, "data": {"pages": 8}}
    r = rf45_api.patch("/api/bulk-books/bulk/", body, format="json")
    assert r.status_code == 400, r.content
    assert list(r.json()["details"]["filter"]) == ["ｎｏｎｅ"]
    assert Book.objects.get(pk=two.pk).pages == 5


def _rf45_fullwidth(name: str) -> str:
    """``name`` in fullwidth letters (``ｃｏｓｔ``), which NFKC reads as ``name``."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in name)


def test_rf45_a_restricted_field_spelled_in_compatibility_characters_is_refused_alike():
    """rev-i18n reads a field's name in NFKC: ``ｃｏｓｔ`` (fullwidth) is ``cost``. The
    caller's restricted fields are compared after that reading, so another spelling of a
    field a rule hides from the caller is refused as the plain name is (filter, sort,
    select: the 400 of a field that is not filterable, no oracle) and shown to one who may
    read it."""
    org = OrganizationFactory()
    ProductFactory(organization=org, cost=50, sku="SECRET-SKU-1", name="widget")
    editor, admin = member_client(org, "editor"), member_client(org, "admin")
    cost = _rf45_fullwidth("cost")
    for params in ({f"{cost}[gte]": 40}, {"sort": f"-{cost}"}, {"select": f"name,{cost}"}):
        r = editor.get("/api/t-products/", params)  # cost: visible_to("admin")
        assert r.status_code == 400, (params, r.content)
        assert r.json()["code"] == "INVALID_QUERY"
        r = admin.get("/api/t-products/", params)
        assert r.status_code == 200, (params, r.content)
        assert len(r.json()["docs"]) == 1
