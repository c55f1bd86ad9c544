"""The Bulk preset: SPEC §6 routes and bodies, all or nothing, indexed errors, the single-row
rules (permissions, tenancy, field guards, hooks, presets), one event per row, and SQL that
does not grow with the number of items."""

import json

import pytest
from django.db import connection
from django.db.models import Prefetch
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from shop.models import Product
from tests.factories import (
    AuthorFactory,
    BookFactory,
    MembershipFactory,
    OrganizationFactory,
    UserFactory,
)
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Article, Book, Review

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return client_for(UserFactory())


def books(n, author, prefix="b"):
    return [
        {"title": f"{prefix}{i}", "isbn": f"{prefix}-{i}", "author": author.pk} for i in range(n)
    ]


# -- create ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 50])
def test_bulk_create_writes_every_row_with_one_event_each(api, n):
    author = AuthorFactory()
    r = api.post("/api/bulk-books/bulk/", {"items": books(n, author)}, format="json")
    assert r.status_code == 201, r.content
    data = r.json()["data"]
    assert data["created"] == n and len(data["ids"]) == n
    assert sorted(Book.objects.values_list("pk", flat=True)) == sorted(data["ids"])
    events = OutboxEvent.objects.filter(type="bulk-books.created")
    assert sorted(e.payload["id"] for e in events) == sorted(data["ids"])
    assert AuditLog.objects.filter(action="created", resource="bulk-books").count() == n


def test_more_than_max_items_is_400_naming_the_limit_and_writes_nothing(api):
    author = AuthorFactory()
    body = assert_error(
        api.post("/api/bulk-books/bulk/", {"items": books(51, author)}, format="json"),
        400,
        "VALIDATION_ERROR",
    )
    assert "At most 50 items" in body["details"]["items"][0]
    assert not Book.objects.exists() and not OutboxEvent.objects.exists()
    for bad in ({"items": []}, {"items": "x"}, {}, [1]):
        assert_error(api.post("/api/bulk-books/bulk/", bad, format="json"), 400, "VALIDATION_ERROR")


def test_a_bad_item_in_the_middle_writes_nothing_and_is_indexed(api):
    author = AuthorFactory()
    items = books(5, author)
    items[2]["pages"] = "many"
    items[3]["author"] = 999999
    body = assert_error(
        api.post("/api/bulk-books/bulk/", {"items": items}, format="json"), 400, "VALIDATION_ERROR"
    )
    assert set(body["details"]["items"]) == {"2", "3"}
    assert body["details"]["items"]["2"]["pages"] == ["A valid integer is required."]
    assert "does not exist" in body["details"]["items"]["3"]["author"][0]
    assert not Book.objects.exists()
    assert not OutboxEvent.objects.exists() and not AuditLog.objects.exists()


def test_hooks_run_per_item_and_a_refusal_rolls_the_batch_back(api):
    author = AuthorFactory()
    items = books(3, author)
    items[1]["title"] = "forbidden"
    assert_error(
        api.post("/api/bulk-books/bulk/", {"items": items}, format="json"), 422, "TITLE_FORBIDDEN"
    )
    assert not Book.objects.exists() and not OutboxEvent.objects.exists()


def test_a_unique_violation_is_409_for_the_whole_batch(api):
    author = AuthorFactory()
    BookFactory(isbn="dup")
    items = books(3, author)
    items[2]["isbn"] = "dup"
    assert_error(
        api.post("/api/bulk-books/bulk/", {"items": items}, format="json"), 409, "CONFLICT"
    )
    assert Book.objects.count() == 1 and not OutboxEvent.objects.exists()


def test_field_guards_apply_per_item_reject_and_strip(api):
    author = AuthorFactory()
    items = books(3, author)
    items[1]["price"] = "1.00"  # writable_by("pricing")
    body = assert_error(
        api.post("/api/bulk-books/bulk/", {"items": items}, format="json"),
        403,
        "FIELD_WRITE_DENIED",
    )
    assert body["details"] == {"fields": ["price"], "items": {"1": ["price"]}}
    assert not Book.objects.exists()
    r = api.post("/api/strip-bulk-books/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    assert str(Book.objects.get(isbn="b-1").price) == "10.00"  # stripped: the default


def test_bulk_permissions_are_the_single_row_ones():
    author = AuthorFactory()
    r = client_for().post("/api/bulk-books/bulk/", {"items": books(1, author)}, format="json")
    assert_error(r, 401, "UNAUTHORIZED")


# -- update and delete ---------------------------------------------------------------------------


def test_a_bulk_update_by_a_to_many_filter_updates_each_row_once(api):
    """A book with two matching reviews joined twice: the update saw it twice (``updated``
    2, two update events for one row)."""
    book, other = BookFactory(title="x", pages=10), BookFactory(title="y", pages=10)
    for body in ("good one", "good two"):
        Review.objects.create(book=book, body=body)
    Review.objects.create(book=other, body="bad")
    r = api.patch(
        "/api/bulk-books/bulk/",
        {"filter": {"reviews__body[icontains]": "good"}, "data": {"pages": 11}},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["data"] == {"updated": 1, "ids": [book.pk]}
    assert OutboxEvent.objects.filter(type="bulk-books.updated").count() == 1
    assert Book.objects.get(pk=other.pk).pages == 10


def test_bulk_update_by_items_and_by_filter(api):
    rows = [BookFactory(title=f"x{i}", pages=10 + i) for i in range(4)]
    items = [{"id": rows[0].pk, "pages": 1}, {"id": rows[2].pk, "title": "renamed"}]
    r = api.patch("/api/bulk-books/bulk/", {"items": items}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"] == {"updated": 2, "ids": [rows[0].pk, rows[2].pk]}
    assert Book.objects.get(pk=rows[0].pk).pages == 1
    assert Book.objects.get(pk=rows[2].pk).title == "renamed"
    event = OutboxEvent.objects.get(type="bulk-books.updated", payload__id=rows[2].pk)
    assert event.payload["changed"] == ["title"] and event.payload["previous"] == {"title": "x2"}
    # by filter: the query language's allowlist
    r = api.patch(
        "/api/bulk-books/bulk/",
        {"filter": {"pages[gte]": 12}, "data": {"title": "big"}},
        format="json",
    )
    assert r.json()["data"]["updated"] == 2, r.content
    assert sorted(Book.objects.filter(title="big").values_list("pk", flat=True)) == [
        rows[2].pk,
        rows[3].pk,
    ]
    for bad in (
        {"filter": {"isbn": "x"}, "data": {"title": "y"}},  # not in filter_fields
        {"filter": {}, "data": {"title": "y"}},
        {"filter": {"pages[gte]": 0}, "data": {}},
    ):
        assert_error(
            api.patch("/api/bulk-books/bulk/", bad, format="json"), 400, "VALIDATION_ERROR"
        )


def test_bulk_update_refuses_a_filter_it_does_not_know_instead_of_widening(api):
    """A list ignores an unknown parameter; a bulk update ignoring ``titel`` would update
    every row ``pages[gte]`` matches."""
    rows = [BookFactory(title=f"x{i}", pages=20) for i in range(3)]
    body = assert_error(
        api.patch(
            "/api/bulk-books/bulk/",
            {"filter": {"titel": "x0", "pages[gte]": 10, "search": "x"}, "data": {"pages": 1}},
            format="json",
        ),
        400,
        "VALIDATION_ERROR",
    )
    assert body["details"] == {
        "filter": {
            "titel": ["Not a filter of this resource."],
            "search": ["Not a filter of this resource."],
        }
    }
    assert [Book.objects.get(pk=r.pk).pages for r in rows] == [20, 20, 20]


@pytest.mark.parametrize("key", [None, "surrogate-1"])
@pytest.mark.parametrize(
    "filters",
    [{"status": "\ud800"}, {"name[contains]": "a\udfff"}, {"status[in]": "active,\ud800"}],
    ids=["eq", "contains", "in"],
)
def test_a_bulk_filter_value_with_a_lone_surrogate_is_400_and_updates_nothing(filters, key):
    """A JSON body can carry a lone surrogate no query string can: as a filter value it
    reached the driver, which cannot encode it (a 500 on SQLite and PostgreSQL alike) —
    on the example's cached, idempotent products, keyed or not. It is refused like a NUL."""
    org = OrganizationFactory()
    user = MembershipFactory(organization=org, role="admin").user
    headers = {"HTTP_X_ORGANIZATION_ID": str(org.pk)}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    client = client_for(user, **headers)
    product = Product.objects.create(organization=org, name="a", sku="s", price=1)
    body = assert_error(
        client.patch(
            "/api/products/bulk/",
            json.dumps({"filter": filters, "data": {"price": "2"}}),  # ASCII: \ud800 escaped
            content_type="application/json",
        ),
        400,
        "VALIDATION_ERROR",
    )
    (name,) = filters
    assert body["details"]["filter"][name] == ["contains a lone surrogate"]
    product.refresh_from_db()
    assert product.price == 1
    assert not OutboxEvent.objects.exists() and not AuditLog.objects.exists()


def test_a_bulk_filter_value_that_does_not_parse_is_listed_like_every_field_error(api):
    """A VALIDATION_ERROR lists messages per field (SPEC §3): a filter value the query
    language refuses is listed under its name like an unknown filter, not given as the one
    string an INVALID_QUERY carries."""
    row = BookFactory(pages=20)
    body = assert_error(
        api.patch(
            "/api/bulk-books/bulk/",
            {"filter": {"pages[gte]": "many", "titel": "x"}, "data": {"pages": 1}},
            format="json",
        ),
        400,
        "VALIDATION_ERROR",
    )
    assert body["details"] == {"filter": {"titel": ["Not a filter of this resource."]}}
    body = assert_error(
        api.patch(
            "/api/bulk-books/bulk/",
            {"filter": {"pages[gte]": "many"}, "data": {"pages": 1}},
            format="json",
        ),
        400,
        "VALIDATION_ERROR",
    )
    assert body["details"] == {"filter": {"pages[gte]": ["'many' is not a valid integer"]}}
    assert Book.objects.get(pk=row.pk).pages == 20


@pytest.mark.parametrize(
    ("filters", "key", "message"),
    [
        (
            {"title": None, "pages[gte]": 1},
            "title",
            "Null is not a filter value: `[exists]`, where allowed, finds the rows without one.",
        ),
        ({"title": ["", "x"]}, "title", "A list is a value of `[in]` and `[nin]` only."),
        ({"title": {"eq": ""}}, "title", "An object is not a filter value."),
        (
            {"pages[in]": [1, None]},
            "pages[in]",
            "Null is not a filter value: `[exists]`, where allowed, finds the rows without one.",
        ),
    ],
    ids=["null", "list", "object", "null-in-a-list"],
)
def test_a_bulk_filter_value_the_query_string_cannot_spell_is_400_and_updates_nothing(
    api, filters, key, message
):
    """A JSON null became the empty string, so ``{"title": null}`` updated every row whose
    title is empty (not the rows without one, nor none); a list outside ``[in]`` filtered on
    its items joined by commas. Neither has a query-string spelling: 400 naming the filter."""
    untitled, other = BookFactory(title="", pages=1), BookFactory(title="x", pages=1)
    body = assert_error(
        api.patch(
            "/api/bulk-books/bulk/", {"filter": filters, "data": {"pages": 9}}, format="json"
        ),
        400,
        "VALIDATION_ERROR",
    )
    assert body["details"] == {"filter": {key: [message]}}
    assert sorted(Book.objects.values_list("pages", flat=True)) == [1, 1]
    assert OutboxEvent.objects.count() == 0
    # the empty title, spelled as the query string spells it, is still a filter
    r = api.patch(
        "/api/bulk-books/bulk/", {"filter": {"title": ""}, "data": {"pages": 9}}, format="json"
    )
    assert r.status_code == 200 and r.json()["data"]["ids"] == [untitled.pk], r.content
    assert Book.objects.get(pk=other.pk).pages == 1


def test_a_bulk_filter_updates_refused_data_names_data_not_items(api):
    """``{"filter": …, "data": …}`` has no ``items``, yet a ``data`` naming a field the
    caller may not write answered ``details.items: {"0": ["price"], "1": ["price"]}`` (one
    entry per matched row), and an invalid value ``details.items: {"0": {"pages": …}}``;
    with no row matched the same body answered ``details.data``. Every error of ``data``
    names ``data`` now, whether or not a row matched."""
    BookFactory(pages=20), BookFactory(pages=30)
    for filters in ({"pages[gte]": 10}, {"pages[gte]": 1000}):
        body = assert_error(
            api.patch(
                "/api/bulk-books/bulk/",
                {"filter": filters, "data": {"price": "9.99", "pages": 1}},
                format="json",
            ),
            403,
            "FIELD_WRITE_DENIED",
        )
        assert body["details"] == {"fields": ["price"], "data": ["price"]}, filters
        assert body["error"] == "Not permitted to write fields: price"
        body = assert_error(
            api.patch(
                "/api/bulk-books/bulk/",
                {"filter": filters, "data": {"pages": "many"}},
                format="json",
            ),
            400,
            "VALIDATION_ERROR",
        )
        assert list(body["details"]) == ["data"] and list(body["details"]["data"]) == ["pages"]
    assert sorted(Book.objects.values_list("pages", flat=True)) == [20, 30]
    assert OutboxEvent.objects.count() == 0


def test_bulk_update_data_is_checked_even_when_the_filter_matches_no_row(api):
    BookFactory(pages=20)
    for data, status, code in (
        ({"pages": "many"}, 400, "VALIDATION_ERROR"),
        ({"price": "9.99"}, 403, "FIELD_WRITE_DENIED"),
    ):
        body = assert_error(
            api.patch(
                "/api/bulk-books/bulk/",
                {"filter": {"pages[gte]": 1000}, "data": data},
                format="json",
            ),
            status,
            code,
        )
        if status == 400:
            assert set(body["details"]["data"]) == {"pages"}
    ok = api.patch(
        "/api/bulk-books/bulk/",
        {"filter": {"pages[gte]": 1000}, "data": {"pages": 1}},
        format="json",
    )
    assert ok.status_code == 200 and ok.json()["data"] == {"updated": 0, "ids": []}


def test_bulk_update_by_a_filter_matching_no_row_updates_nothing(api):
    BookFactory(pages=5)
    r = api.patch(
        "/api/bulk-books/bulk/",
        {"filter": {"pages[gte]": 1000}, "data": {"title": "big"}},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["data"] == {"updated": 0, "ids": []}


def test_one_serializer_per_batch_keeps_items_apart(api):
    # the batch shares one serializer: an item's values or errors never leak into the next
    author = AuthorFactory()
    items = books(3, author)
    items[0]["pages"] = "many"
    del items[1]["title"]
    body = assert_error(
        api.post("/api/bulk-books/bulk/", {"items": items}, format="json"), 400, "VALIDATION_ERROR"
    )
    assert body["details"]["items"] == {
        "0": {"pages": ["A valid integer is required."]},
        "1": {"title": ["This field is required."]},
    }
    r = api.post("/api/bulk-books/bulk/", {"items": books(3, author)}, format="json")
    assert r.status_code == 201, r.content
    assert sorted(Book.objects.values_list("title", flat=True)) == ["b0", "b1", "b2"]


def test_bulk_update_filter_matching_more_than_max_items_is_refused(api):
    BookFactory.create_batch(51, pages=5)
    body = assert_error(
        api.patch(
            "/api/bulk-books/bulk/",
            {"filter": {"pages[lte]": 5}, "data": {"pages": 6}},
            format="json",
        ),
        400,
        "VALIDATION_ERROR",
    )
    assert "more than 50" in body["details"]["filter"][0]
    assert not Book.objects.filter(pages=6).exists()


def test_bulk_update_bad_item_writes_nothing(api):
    rows = BookFactory.create_batch(3)
    items = [
        {"id": rows[0].pk, "pages": 1},
        {"id": 999999, "pages": 2},
        {"id": rows[2].pk, "pages": "x"},
    ]
    body = assert_error(
        api.patch("/api/bulk-books/bulk/", {"items": items}, format="json"), 400, "VALIDATION_ERROR"
    )
    assert body["details"]["items"] == {"1": {"id": ["Not found."]}}
    items[1] = {"id": rows[1].pk, "pages": 2}
    body = assert_error(
        api.patch("/api/bulk-books/bulk/", {"items": items}, format="json"), 400, "VALIDATION_ERROR"
    )
    assert set(body["details"]["items"]) == {"2"}
    assert not Book.objects.filter(pages__in=[1, 2]).exists() and not OutboxEvent.objects.exists()


def test_bulk_delete(api):
    rows = BookFactory.create_batch(3)
    r = api.delete("/api/bulk-books/bulk/", {"ids": [rows[0].pk, rows[2].pk]}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"] == {"deleted": 2, "ids": [rows[0].pk, rows[2].pk]}
    assert list(Book.objects.values_list("pk", flat=True)) == [rows[1].pk]
    events = OutboxEvent.objects.filter(type="bulk-books.deleted")
    assert sorted(e.payload["id"] for e in events) == [rows[0].pk, rows[2].pk]
    assert all(e.payload["soft"] is False for e in events)
    assert_error(
        api.delete("/api/bulk-books/bulk/", {"ids": [rows[1].pk, 0]}, format="json"),
        400,
        "VALIDATION_ERROR",
    )
    assert Book.objects.filter(pk=rows[1].pk).exists()


def test_an_id_with_a_fraction_names_no_row(api):
    """``int()`` would truncate 1.9 to row 1's id: a fraction names no row, as in the URL;
    a whole number written as a float is that number, as DRF's ``IntegerField`` reads it."""
    keep, other = BookFactory(title="keep"), BookFactory(title="other")
    assert_error(api.delete(f"/api/bulk-books/{keep.pk}.9/"), 404, "NOT_FOUND")
    refused = api.delete("/api/bulk-books/bulk/", {"ids": [keep.pk + 0.9]}, format="json")
    assert_error(refused, 400, "VALIDATION_ERROR")
    assert refused.json()["details"]["ids"] == {"0": {"id": ["Not found."]}}
    patch = {"items": [{"id": keep.pk + 0.9, "title": "x"}]}
    assert_error(api.patch("/api/bulk-books/bulk/", patch, format="json"), 400, "VALIDATION_ERROR")
    assert set(Book.objects.values_list("title", flat=True)) == {"keep", "other"}
    whole = api.patch(
        "/api/bulk-books/bulk/", {"items": [{"id": float(other.pk), "title": "y"}]}, format="json"
    )
    assert whole.status_code == 200, whole.content
    assert Book.objects.get(pk=other.pk).title == "y"
    assert Book.objects.get(pk=keep.pk).title == "keep"


def test_bulk_update_stamps_auto_now_fields_as_a_single_update_does():
    user = UserFactory()
    api = client_for(user)
    rows = [Article.objects.create(slug=f"e{i}", title=f"E{i}", owner=user) for i in range(2)]
    stamped = {row.pk: row.edited_at for row in rows}
    single = api.patch(f"/api/mine-articles/{rows[0].pk}/", {"title": "one"}, format="json")
    assert single.status_code == 200, single.content
    patch = {"items": [{"id": row.pk, "title": "many"} for row in rows]}
    assert api.patch("/api/mine-articles/bulk/", patch, format="json").status_code == 200
    for row in Article.objects.filter(pk__in=stamped):
        assert row.title == "many" and row.edited_at > stamped[row.pk]


# -- composed with the other presets --------------------------------------------------------------


@pytest.fixture
def tenants():
    a, b = OrganizationFactory(), OrganizationFactory()

    def member(org, role):
        user = MembershipFactory(organization=org, role=role).user
        return user, client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))

    return a, b, member


def test_bulk_with_every_preset(tenants):
    a, b, member = tenants
    editor, as_editor = member(a, "editor")
    other_editor, as_other_editor = member(a, "editor")
    _, as_admin = member(a, "admin")
    _, as_b = member(b, "admin")
    items = [{"slug": f"s{i}", "title": f"T{i}"} for i in range(3)]
    r = as_editor.post("/api/all-articles/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    ids = r.json()["data"]["ids"]
    assert set(Article.objects.values_list("organization_id", "owner_id")) == {(a.pk, editor.pk)}
    # tenant and owner fields are the presets': refused in a body like for one row
    r = as_editor.post(
        "/api/all-articles/bulk/",
        {"items": [{"slug": "z", "title": "z", "owner": 1}]},
        format="json",
    )
    assert_error(r, 403, "FIELD_WRITE_DENIED")
    # another tenant cannot touch them: "Not found." per item
    r = as_b.patch(
        "/api/all-articles/bulk/", {"items": [{"id": ids[0], "title": "x"}]}, format="json"
    )
    assert_error(r, 400, "VALIDATION_ERROR")
    assert_error(
        as_b.delete("/api/all-articles/bulk/", {"ids": ids}, format="json"), 400, "VALIDATION_ERROR"
    )
    # another editor of the same tenant: OWNERSHIP_DENIED per item, nothing written
    r = as_other_editor.patch(
        "/api/all-articles/bulk/", {"items": [{"id": ids[1], "title": "x"}]}, format="json"
    )
    body = assert_error(r, 403, "OWNERSHIP_DENIED")
    assert body["details"]["items"]["0"]["code"] == "OWNERSHIP_DENIED"
    r = as_other_editor.patch(
        "/api/all-articles/bulk/",
        {"filter": {"title": "T1"}, "data": {"title": "x"}},
        format="json",
    )
    assert_error(r, 403, "OWNERSHIP_DENIED")
    assert not Article.objects.filter(title="x").exists()
    # bulk delete of a SoftDelete resource soft-deletes
    r = as_editor.delete("/api/all-articles/bulk/", {"ids": ids[:2]}, format="json")
    assert r.json()["data"] == {"deleted": 2, "ids": ids[:2]}
    assert Article.objects.filter(deleted_at__isnull=False).count() == 2
    assert (
        sorted(d["id"] for d in as_editor.get("/api/all-articles/deleted/").json()["docs"])
        == ids[:2]
    )
    events = OutboxEvent.objects.filter(type="all-articles.deleted")
    assert {e.payload["soft"] for e in events} == {True}
    # soft-deleted rows are invisible to bulk update
    r = as_admin.patch(
        "/api/all-articles/bulk/", {"items": [{"id": ids[0], "title": "x"}]}, format="json"
    )
    assert_error(r, 400, "VALIDATION_ERROR")
    r = as_admin.patch(
        "/api/all-articles/bulk/",
        {"filter": {"title[contains]": "T"}, "data": {"title": "y"}},
        format="json",
    )
    assert r.json()["data"] == {"updated": 1, "ids": [ids[2]]}
    # audited: one row per written row, per verb
    actions = sorted(AuditLog.objects.values_list("action", "object_id"))
    assert actions == sorted(
        [("created", str(i)) for i in ids]
        + [("deleted", str(i)) for i in ids[:2]]
        + [("updated", str(ids[2]))]
    )


def test_each_row_of_a_bulk_gets_its_own_idempotency_suffix(api, settings):
    """Events of one request never collapse in the outbox: with a request key, each row's
    event key is the request's scoped key, then its own type and id (SPEC §10)."""
    settings.ARC = {**settings.ARC, "IDEMPOTENCY": {"ENABLED": True}}
    author = AuthorFactory()
    r = api.post(
        "/api/bulk-books/bulk/",
        {"items": books(3, author)},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert r.status_code == 201, r.content
    ids = r.json()["data"]["ids"]
    keys = sorted(OutboxEvent.objects.values_list("dedupe_key", flat=True))
    scoped = keys[0].split(":")[0]
    assert len(scoped) == 64
    assert keys == sorted(f"{scoped}:bulk-books.created:{pk}" for pk in ids)


def test_bulk_sql_does_not_grow_with_the_number_of_items(api):
    """One query per related field, one INSERT, one audit INSERT, the events: the same count
    for 2 items and for 50."""
    counts = {}
    for n in (2, 50):
        authors = [AuthorFactory() for _ in range(3)]
        items = [
            {"title": f"t{n}-{i}", "isbn": f"{n}-{i}", "author": authors[i % 3].pk}
            for i in range(n)
        ]
        with CaptureQueriesContext(connection) as ctx:
            r = api.post("/api/bulk-books/bulk/", {"items": items}, format="json")
        assert r.status_code == 201, r.content
        counts[n] = len(ctx)
    assert counts[2] == counts[50], counts


def test_bulk_sql_is_constant_with_every_preset(tenants):
    a, _, member = tenants
    _, as_editor = member(a, "editor")
    counts = {}
    # n=1 first, unmeasured: the membership and the user's roles are cached on the (test
    # client's reused) user after the first requests; a real request pays them once each.
    for n in (1, 2, 50):
        items = [{"slug": f"n{n}-{i}", "title": f"T{i}"} for i in range(n)]
        with CaptureQueriesContext(connection) as ctx:
            r = as_editor.post("/api/all-articles/bulk/", {"items": items}, format="json")
        assert r.status_code == 201, r.content
        ids = r.json()["data"]["ids"]
        with CaptureQueriesContext(connection) as upd:
            r = as_editor.patch(
                "/api/all-articles/bulk/",
                {"items": [{"id": pk, "title": "u"} for pk in ids]},
                format="json",
            )
        assert r.status_code == 200, r.content
        with CaptureQueriesContext(connection) as dele:
            r = as_editor.delete("/api/all-articles/bulk/", {"ids": ids}, format="json")
        assert r.status_code == 200, r.content
        counts[n] = (len(ctx), len(upd), len(dele))
    assert counts[2] == counts[50], counts
    assert counts[2][0] <= 6, counts  # savepoint, INSERT rows, audit, outbox, release (+1)


# -- a project's own serializer -------------------------------------------------------------------


def no_bad_title(attrs):
    if attrs.get("title") == "bad":
        raise serializers.ValidationError({"title": ["bad title"]})


class CheckedBookSerializer(serializers.ModelSerializer):
    """Only a validator of the project's: bulk keeps it and still writes in one statement."""

    class Meta:
        model = Book
        fields = ["id", "title", "isbn", "pages", "author"]
        validators = [no_bad_title]


class ConfirmedBookSerializer(CheckedBookSerializer):
    """A write-only value no column holds, read by the project's own create() and update()."""

    confirm = serializers.BooleanField(write_only=True, required=False)
    saved: list = []

    class Meta(CheckedBookSerializer.Meta):
        fields = [*CheckedBookSerializer.Meta.fields, "confirm"]

    def create(self, validated_data):
        self.saved.append(("create", validated_data.pop("confirm", None)))
        return super().create(validated_data)

    def update(self, instance, validated_data):
        self.saved.append(("update", validated_data.pop("confirm", None)))
        return super().update(instance, validated_data)


project_site = ResourceSite(name="bulk-project")
OPEN_BULK = {k: P.require_auth() for k in ("list", "get", "create", "update", "delete")}


@project_site.register
class CheckedBookResource(Resource):
    model = Book
    name = "checked-books"
    serializer_class = CheckedBookSerializer
    presets = [presets.Bulk()]
    permissions = OPEN_BULK


@project_site.register
class ConfirmedBookResource(Resource):
    model = Book
    name = "confirmed-books"
    serializer_class = ConfirmedBookSerializer
    presets = [presets.Bulk()]
    permissions = OPEN_BULK


@project_site.register
class BulkOnlyBookResource(Resource):
    """Bulk and nothing else: the generated serializer, no audit, no other preset."""

    model = Book
    fields = ["id", "title", "isbn", "pages", "author"]
    name = "bulk-only-books"
    filter_fields = {"title": ["eq", "in", "nin"]}
    presets = [presets.Bulk()]
    permissions = OPEN_BULK


@project_site.register
class IsbnBulkBookResource(Resource):
    """Bulk over rows addressed by a text lookup field: a bulk body's ids are ISBNs."""

    model = Book
    fields = ["id", "title", "isbn", "author"]
    name = "isbn-bulk-books"
    lookup_field = "isbn"
    presets = [presets.Bulk()]
    permissions = OPEN_BULK


@project_site.register
class ReviewedBulkBookResource(Resource):
    """Bulk and audit over rows rendering a reverse relation (their reviews' ids), which a
    hook fills on create."""

    model = Book
    fields = ["id", "title", "isbn", "author", "reviews"]
    read_only_fields = ["reviews"]
    name = "reviewed-bulk-books"
    presets = [presets.Bulk(), presets.Audited()]
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update", "delete")}

    def after_create(self, request, instance):
        if instance.title.startswith("reviewed"):
            Review.objects.create(book=instance, body="first")


class AuthorNamedReviewSerializer(serializers.ModelSerializer):
    author_name = serializers.CharField(source="book.author.name", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "body", "book", "author_name"]


@project_site.register
class AuthorNamedBulkReviewResource(Resource):
    """Bulk over rows rendering a field of a row their relation's relation is (a review's
    book's author's name), which a list joins."""

    model = Review
    serializer_class = AuthorNamedReviewSerializer
    name = "author-named-bulk-reviews"
    presets = [presets.Bulk()]
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update", "delete")}


class ReviewBodySerializer(serializers.ModelSerializer):
    class Meta:
        model = Review
        fields = ["body"]


class ShownReviewsBookSerializer(serializers.ModelSerializer):
    reviews = ReviewBodySerializer(many=True, read_only=True)

    class Meta:
        model = Book
        fields = ["id", "title", "isbn", "author", "reviews"]


@project_site.register
class ShownReviewsBulkBookResource(Resource):
    """Rows rendering their reviews, narrowed by the project's own ``Prefetch`` to those
    not hidden; a hook adds a shown and a hidden review to each new row."""

    model = Book
    serializer_class = ShownReviewsBookSerializer
    name = "shown-reviews-bulk-books"
    presets = [presets.Bulk()]
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update", "delete")}

    def get_queryset(self, request):
        shown = Review.objects.exclude(body="hidden").order_by("pk")
        return super().get_queryset(request).prefetch_related(Prefetch("reviews", queryset=shown))

    def after_create(self, request, instance):
        Review.objects.create(book=instance, body="shown")
        Review.objects.create(book=instance, body="hidden")


@pytest.fixture
def project_api(settings, api):
    ConfirmedBookSerializer.saved.clear()
    with site_mounted(settings, "p", project_site):
        yield api


@pytest.mark.parametrize("name", ["checked-books", "confirmed-books"])
def test_the_project_serializers_validators_refuse_a_bulk_item_as_a_single_write(project_api, name):
    api, author = project_api, AuthorFactory()
    row = BookFactory(title="ok", author=author)
    url = f"/p/{name}/"
    single = api.post(url, {"title": "bad", "isbn": "s1", "author": author.pk}, format="json")
    assert_error(single, 400, "VALIDATION_ERROR")
    good = {"title": "fine", "isbn": "b0", "author": author.pk}
    items = [good, {"title": "bad", "isbn": "b1", "author": author.pk}]
    refused = api.post(f"{url}bulk/", {"items": items}, format="json")
    assert_error(refused, 400, "VALIDATION_ERROR")
    assert refused.json()["details"]["items"] == {"1": {"title": ["bad title"]}}
    patch = {"items": [{"id": row.pk, "title": "bad"}]}
    assert_error(api.patch(f"{url}bulk/", patch, format="json"), 400, "VALIDATION_ERROR")
    assert list(Book.objects.values_list("title", flat=True)) == ["ok"]
    assert not OutboxEvent.objects.exists()


def test_a_project_serializer_that_saves_rows_its_own_way_saves_each_bulk_item(project_api):
    """Its create()/update() run for every item (they read ``confirm``, which no column
    holds), in the batch's transaction, with one event per row."""
    api, author = project_api, AuthorFactory()
    items = [
        {"title": f"t{i}", "isbn": f"c{i}", "author": author.pk, "confirm": True} for i in range(3)
    ]
    created = api.post("/p/confirmed-books/bulk/", {"items": items}, format="json")
    assert created.status_code == 201, created.content
    ids = created.json()["data"]["ids"]
    assert sorted(Book.objects.values_list("title", flat=True)) == ["t0", "t1", "t2"]
    patch = {"items": [{"id": i, "title": "u", "confirm": False} for i in ids[:2]]}
    updated = api.patch("/p/confirmed-books/bulk/", patch, format="json")
    assert updated.status_code == 200, updated.content
    assert ConfirmedBookSerializer.saved == [("create", True)] * 3 + [("update", False)] * 2
    assert sorted(Book.objects.values_list("title", flat=True)) == ["t2", "u", "u"]
    assert OutboxEvent.objects.filter(type="confirmed-books.created").count() == 3
    assert OutboxEvent.objects.filter(type="confirmed-books.updated").count() == 2
    clash = [*items[:1], {"title": "x", "isbn": "c0", "author": author.pk}]
    before = Book.objects.count()
    assert api.post("/p/confirmed-books/bulk/", {"items": clash}, format="json").status_code == 400
    assert Book.objects.count() == before  # validated one by one: the taken isbn is indexed


def test_a_project_serializer_of_model_columns_keeps_bulk_sql_constant(project_api):
    api, author = project_api, AuthorFactory()

    def statements(n, prefix):
        items = [
            {"title": f"{prefix}{i}", "isbn": f"{prefix}-{i}", "author": author.pk}
            for i in range(n)
        ]
        with CaptureQueriesContext(connection) as queries:
            response = api.post("/p/checked-books/bulk/", {"items": items}, format="json")
        assert response.status_code == 201, response.content
        return len(queries)

    assert statements(2, "a") == statements(20, "b")


def test_bulk_create_loads_the_reverse_relations_it_renders_once(project_api):
    """The created rows' events and audit rows render their reviews: one query for all
    the rows, as a list loads them, not one per row (2 items and 20 cost the same); the
    reviews an ``after_create`` hook added are in them."""
    api, author = project_api, AuthorFactory()

    def statements(n, prefix):
        items = [
            {"title": f"{prefix}{i}", "isbn": f"{prefix}-{i}", "author": author.pk}
            for i in range(n)
        ]
        with CaptureQueriesContext(connection) as queries:
            response = api.post("/p/reviewed-bulk-books/bulk/", {"items": items}, format="json")
        assert response.status_code == 201, response.content
        return len(queries)

    plain = statements(2, "plain")
    assert statements(20, "more") == plain
    assert statements(3, "reviewed") == plain + 3  # the hook's INSERTs
    events = OutboxEvent.objects.filter(type="reviewed-bulk-books.created")
    rendered = {e.payload["data"]["title"]: e.payload["data"]["reviews"] for e in events}
    reviews = dict(Review.objects.values_list("book__title", "pk"))
    assert rendered["reviewed0"] == [reviews["reviewed0"]] and rendered["plain0"] == []
    audited = AuditLog.objects.filter(resource="reviewed-bulk-books", action="created")
    assert {row.after["title"]: row.after["reviews"] for row in audited} == rendered


def test_bulk_create_loads_the_forward_relations_it_renders_once(project_api):
    """The created rows render a field of their book's author (``source="book.author.name"``),
    which a list joins: each row's author was read with its own query (2 items: 7 statements,
    20: 25). It is loaded once for all the rows."""
    api = project_api
    books = [BookFactory(author=AuthorFactory(name=f"writer {i}")) for i in range(20)]

    def statements(n, prefix):
        items = [{"body": f"{prefix}{i}", "book": books[i].pk} for i in range(n)]
        with CaptureQueriesContext(connection) as queries:
            response = api.post(
                "/p/author-named-bulk-reviews/bulk/", {"items": items}, format="json"
            )
        assert response.status_code == 201, response.content
        return len(queries)

    assert statements(2, "a") == statements(20, "b")
    events = OutboxEvent.objects.filter(type="author-named-bulk-reviews.created")
    rendered = {e.payload["data"]["body"]: e.payload["data"]["author_name"] for e in events}
    assert rendered["b0"] == "writer 0" and rendered["b19"] == "writer 19"


def test_a_created_row_renders_its_relations_as_the_projects_prefetch_narrows_them(project_api):
    """A project's ``Prefetch`` narrowing a relation the rows render (their reviews, the
    hidden ones left out) held for a list, a read and a bulk create's rows, but a single
    create rendered the new row's relation whole: its answer and event showed the hidden
    review its hook added, which no read of the row shows. It renders them narrowed too."""
    api, author = project_api, AuthorFactory()
    url = "/p/shown-reviews-bulk-books/"
    single = api.post(url, {"title": "one", "isbn": "s-1", "author": author.pk}, format="json")
    assert single.status_code == 201, single.content
    items = [{"title": "many", "isbn": "s-2", "author": author.pk}]
    assert api.post(f"{url}bulk/", {"items": items}, format="json").status_code == 201
    shown = [{"body": "shown"}]
    created = single.json()["data"]
    assert created["reviews"] == shown
    assert api.get(f"{url}{created['id']}/").json()["data"]["reviews"] == shown
    events = OutboxEvent.objects.filter(type="shown-reviews-bulk-books.created")
    assert [e.payload["data"]["reviews"] for e in events] == [shown, shown]


def test_bulk_alone_creates_updates_and_deletes(project_api):
    api, author = project_api, AuthorFactory()
    created = api.post(
        "/p/bulk-only-books/bulk/", {"items": books(2, author, prefix="solo")}, format="json"
    )
    assert created.status_code == 201, created.content
    first, second = created.json()["data"]["ids"]
    patch = {"items": [{"id": first, "pages": 7}]}
    assert api.patch("/p/bulk-only-books/bulk/", patch, format="json").status_code == 200
    gone = api.delete("/p/bulk-only-books/bulk/", {"ids": [second]}, format="json")
    assert gone.json()["data"] == {"deleted": 1, "ids": [second]}
    assert list(Book.objects.values_list("pk", "pages")) == [(first, 7)]
    types = sorted(OutboxEvent.objects.values_list("type", flat=True))
    assert types == ["bulk-only-books." + t for t in ("created", "created", "deleted", "updated")]
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize("value", ["\ud800", "97\udfff", "97\x00"])
def test_a_text_id_with_a_lone_surrogate_or_a_nul_names_no_row(project_api, value):
    """A bulk body's JSON can carry a lone surrogate no URL can: as a text lookup value it
    reached the driver, which cannot encode it (a 500 on SQLite and PostgreSQL alike). It
    names no row, like a NUL."""
    api = project_api
    BookFactory(title="keep", isbn="97")
    for method, body, key in (
        ("delete", {"ids": [value]}, "ids"),
        ("patch", {"items": [{"id": value, "title": "x"}]}, "items"),
    ):
        refused = getattr(api, method)(
            "/p/isbn-bulk-books/bulk/", json.dumps(body), content_type="application/json"
        )
        assert_error(refused, 400, "VALIDATION_ERROR")
        assert refused.json()["details"][key] == {"0": {"id": ["Not found."]}}
    assert list(Book.objects.values_list("title", flat=True)) == ["keep"]
    assert not OutboxEvent.objects.exists()


def test_a_bulk_in_item_with_a_comma_or_empty_is_400_and_updates_no_other_row(project_api):
    """The body's ``[in]`` list was joined with commas into the query string's value, which
    is split at commas again: ``["Hello, world"]`` updated the rows titled ``Hello`` and
    `` world`` (rows the request never named) and not ``Hello, world``; an item ``""`` was
    skipped. Neither has a query-string spelling: 400 naming the filter, nothing written."""
    hello, world = BookFactory(title="Hello", pages=1), BookFactory(title=" world", pages=1)
    both = BookFactory(title="Hello, world", pages=1)
    message = (
        "An `[in]`/`[nin]` item cannot contain a comma or be empty: the query "
        "string has no spelling for it."
    )
    for items in (["Hello, world"], ["Hello", ""]):
        body = assert_error(
            project_api.patch(
                "/p/bulk-only-books/bulk/",
                {"filter": {"title[in]": items}, "data": {"pages": 9}},
                format="json",
            ),
            400,
            "VALIDATION_ERROR",
        )
        assert body["details"] == {"filter": {"title[in]": [message]}}
    assert [Book.objects.get(pk=b.pk).pages for b in (hello, world, both)] == [1, 1, 1]
    assert OutboxEvent.objects.count() == 0
    r = project_api.patch(
        "/p/bulk-only-books/bulk/",
        {"filter": {"title[in]": ["Hello", "x"]}, "data": {"pages": 9}},
        format="json",
    )
    assert r.status_code == 200 and r.json()["data"]["ids"] == [hello.pk], r.content


class ViewNarrowedBookResource(Resource):
    """Rows rendering their reviews; a hook adds a shown and a hidden review to each new
    row. Routed through a ViewSet subclass whose own ``get_queryset`` narrows the reviews."""

    model = Book
    serializer_class = ShownReviewsBookSerializer
    name = "view-narrowed-books"
    presets = [presets.Bulk()]
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update", "delete")}
    # routed by hand for the whole run (as_viewset() at import): never cached, or every test
    # turning the cache on would connect Review's signals (test_query_cache_invalidation's
    # fast deletes)
    cache = False

    def after_create(self, request, instance):
        Review.objects.create(book=instance, body="shown")
        Review.objects.create(book=instance, body="hidden")

    def after_update(self, request, instance):
        Review.objects.create(book=instance, body="hidden")


class ShownReviewsViewSet(ViewNarrowedBookResource.as_viewset()):
    def get_queryset(self):
        shown = Review.objects.exclude(body="hidden").order_by("pk")
        return super().get_queryset().prefetch_related(Prefetch("reviews", queryset=shown))


@pytest.fixture
def view_narrowed_api(settings, api):
    from django.urls import clear_url_caches, include, path
    from rest_framework.routers import SimpleRouter

    import tests.urls

    router = SimpleRouter()
    router.register("view-narrowed-books", ShownReviewsViewSet, basename="view-narrowed-books")
    patterns = [*tests.urls.urlpatterns, path("vn/", include(router.urls))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    try:
        yield api
    finally:
        clear_url_caches()


def test_writes_render_relations_through_the_viewsets_own_queryset(view_narrowed_api):
    """A ViewSet subclass's ``get_queryset`` narrowing a ``Prefetch`` is what a read renders;
    creates (single and bulk) and updates rendered, in their answers and events, through
    ``Resource.get_queryset`` instead: the hidden review a read never shows."""
    api, author = view_narrowed_api, AuthorFactory()
    url = "/vn/view-narrowed-books/"
    single = api.post(url, {"title": "one", "isbn": "v-1", "author": author.pk}, format="json")
    assert single.status_code == 201, single.content
    items = [{"title": f"many{i}", "isbn": f"v-{i + 2}", "author": author.pk} for i in range(2)]
    bulk = api.post(f"{url}bulk/", {"items": items}, format="json")
    assert bulk.status_code == 201, bulk.content
    shown = [{"body": "shown"}]
    created = single.json()["data"]
    assert created["reviews"] == shown
    read = api.get(f"{url}{created['id']}/")
    assert read.status_code == 200, read.content
    assert read.json()["data"]["reviews"] == shown
    events = OutboxEvent.objects.filter(type="view-narrowed-books.created").order_by("pk")
    assert [e.payload["data"]["reviews"] for e in events] == [shown] * 3
    patched = api.patch(f"{url}{created['id']}/", {"title": "renamed"}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["data"]["reviews"] == shown
    ids = bulk.json()["data"]["ids"]
    patch = {"items": [{"id": i, "pages": 3} for i in ids]}
    assert api.patch(f"{url}bulk/", patch, format="json").status_code == 200
    updated = OutboxEvent.objects.filter(type="view-narrowed-books.updated").order_by("pk")
    assert [e.payload["data"]["reviews"] for e in updated] == [shown] * 3


def test_a_viewset_subclass_prefetching_a_rendered_relation_its_own_way_reads(
    view_narrowed_api,
):
    """``super().get_queryset().prefetch_related(Prefetch("reviews", queryset=…))`` put the
    ``Prefetch`` after the plain ``"reviews"`` django-arc prefetches: Django refused it
    (``ValueError``), a get answered 404 and a list 500."""
    api, book = view_narrowed_api, BookFactory()
    Review.objects.create(book=book, body="shown")
    Review.objects.create(book=book, body="hidden")
    url = "/vn/view-narrowed-books/"
    one, many = api.get(f"{url}{book.pk}/"), api.get(url)
    assert one.status_code == 200, one.content
    assert many.status_code == 200, many.content
    assert one.json()["data"]["reviews"] == [{"body": "shown"}]
    assert many.json()["docs"][0]["reviews"] == [{"body": "shown"}]
