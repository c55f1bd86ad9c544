"""fix-seen9a: what earlier reviewers saw in bulk writes and nobody fixed — the batched bulk
update's lock order, a row-by-row save's unique conflict naming its item, how a ``filter``
update names its rows in a 500, and the forced-values check after the presets'
``after_write``."""

import re
import threading

import pytest
from django.db import connection
from django.db.models.signals import pre_save
from django.test.utils import CaptureQueriesContext

from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from django_arc.presets import Audited
from shop.models import Order, Product
from tests.factories import AuthorFactory, BookFactory, OrganizationFactory, UserFactory
from tests.factories import member_client as fs9a_member_client
from tests.helpers import client_for, in_thread
from tests.testapp.models import Article, Book

pytestmark = pytest.mark.django_db

FS9A_FAULT = {"code": "INTERNAL_ERROR", "error": "Internal server error"}


@pytest.fixture
def fs9a_api():
    client = client_for(UserFactory())
    client.raise_request_exception = False
    return client


@pytest.fixture
def fs9a_orgs():
    return OrganizationFactory(), OrganizationFactory()


@pytest.fixture
def fs9a_row_by_row():
    """A project's ``pre_save`` receiver on Book, doing nothing: its bulk writes save row by
    row (``signals.saves_its_own_way``), each item through its own serializer."""

    def fs9a_listen(sender, instance, **kwargs):
        return None

    pre_save.connect(fs9a_listen, sender=Book, weak=False, dispatch_uid="fs9a-listen")
    try:
        yield
    finally:
        pre_save.disconnect(sender=Book, dispatch_uid="fs9a-listen")


def _fs9a_statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries]


# -- 1. the batched bulk update locks its rows in primary-key order ---------------------------


def test_fs9a_a_batched_bulk_update_locks_its_rows_in_primary_key_order_before_writing(fs9a_api):
    """The batched bulk update wrote with one ``UPDATE … WHERE id IN (…)``, which locks rows
    in the order its plan reads them (an index's for a few ids, the table's physical order,
    which every UPDATE changes, for many), while the row-by-row update and the bulk delete
    lock theirs first in primary-key order (rev-fixes45): two bulk updates over overlapping
    rows could each hold a row the other waited for, PostgreSQL's deadlock. Its rows are
    locked first now, in primary-key order, whatever order the items name them in."""
    one, two, three = BookFactory(title="a"), BookFactory(title="b"), BookFactory(title="c")
    items = [{"id": pk, "pages": 7} for pk in (three.pk, one.pk, two.pk)]
    with CaptureQueriesContext(connection) as captured:
        r = fs9a_api.patch("/api/bulk-books/bulk/", {"items": items}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["ids"] == [three.pk, one.pk, two.pk]
    statements = _fs9a_statements(captured)
    table = re.escape(f'"{Book._meta.db_table}"')
    head = re.compile(rf'SELECT {table}\."id"( AS "pk")? FROM {table} WHERE {table}\."id" IN \(')
    locks = [i for i, sql in enumerate(statements) if head.match(sql)]
    assert len(locks) == 1, "\n".join(sql[:150] for sql in statements)
    locked = " FOR UPDATE" if connection.features.has_select_for_update else ""
    lock = statements[locks[0]]
    assert re.search(rf' ORDER BY (1|{table}\."id") ASC{locked}$', lock), lock
    updates = [
        i for i, sql in enumerate(statements) if sql.startswith(f'UPDATE "{Book._meta.db_table}"')
    ]
    assert len(updates) == 1 and locks[0] < updates[0], "\n".join(s[:150] for s in statements)
    assert set(Book.objects.values_list("pages", flat=True)) == {7}


def test_fs9a_a_bulk_soft_delete_locks_its_rows_in_primary_key_order_before_stamping():
    """``SoftDelete``'s bulk delete stamps its rows with one ``UPDATE``, which locked them in
    its plan's order as the batched bulk update did. They are locked first, in primary-key
    order; a row deleted meanwhile is still the 400 naming it (test_write_races)."""
    user = UserFactory()
    client = client_for(user)
    rows = [Article.objects.create(slug=f"fs9a-{i}", title="t", owner=user) for i in range(3)]
    ids = [row.pk for row in reversed(rows)]
    with CaptureQueriesContext(connection) as captured:
        r = client.delete("/api/mine-articles/bulk/", {"ids": ids}, format="json")
    assert r.status_code == 200, r.content
    statements = _fs9a_statements(captured)
    table = re.escape(f'"{Article._meta.db_table}"')
    head = re.compile(rf'SELECT {table}\."id"( AS "pk")? FROM {table} WHERE .*{table}\."id" IN \(')
    locked = " FOR UPDATE" if connection.features.has_select_for_update else ""
    locks = [
        i
        for i, sql in enumerate(statements)
        if head.match(sql) and re.search(rf' ORDER BY (1|{table}\."id") ASC{locked}$', sql)
    ]
    update = f'UPDATE "{Article._meta.db_table}"'
    updates = [i for i, sql in enumerate(statements) if sql.startswith(update)]
    shown = "\n".join(sql[:160] for sql in statements)
    assert len(locks) == 1 and len(updates) == 1 and locks[0] < updates[0], shown
    assert Article.objects.filter(deleted_at__isnull=True).count() == 0


# -- 2. a row-by-row save's unique conflict names its item ------------------------------------


@pytest.mark.parametrize("keyed", [False, True])
def test_fs9a_a_row_by_row_bulk_creates_unique_conflict_names_the_item(
    fs9a_api, fs9a_row_by_row, keyed, settings
):
    """On the row-by-row path (a model whose saves run the project's code) each item keeps
    its serializer's unique check, but a value taken after it ran (another request
    committing it, or an earlier item of the batch) is the database's ``IntegrityError``,
    which answered the whole request's 409 naming no item. It is the item's 409 now, listed
    as the batch's other refusals are, and nothing of the batch is written."""
    author = AuthorFactory()
    items = [
        {"title": "a", "isbn": "fs9a-0", "author": author.pk},
        {"title": "b", "isbn": "fs9a-dup", "author": author.pk},
        {"title": "c", "isbn": "fs9a-dup", "author": author.pk},
    ]
    headers = {}
    if keyed:
        settings.ARC = {**settings.ARC, "IDEMPOTENCY": {"ENABLED": True}}
        headers = {"HTTP_IDEMPOTENCY_KEY": "fs9a-conflict"}
    r = fs9a_api.post("/api/bulk-books/bulk/", {"items": items}, format="json", **headers)
    assert r.status_code == 409, r.content
    if keyed:  # the answer is kept and replayed (a keyed request's transaction rolled back)
        again = fs9a_api.post("/api/bulk-books/bulk/", {"items": items}, format="json", **headers)
        assert (again.status_code, again.json()["details"]) == (409, r.json()["details"])
        assert again["X-Idempotency-Replayed"] == "true"
    body = r.json()
    assert body["code"] == "CONFLICT"
    assert body["details"] == {
        "items": {"2": {"code": "CONFLICT", "error": "The request conflicts with existing data"}}
    }
    assert not Book.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize("shape", ["items", "filter"])
def test_fs9a_a_row_by_row_bulk_updates_unique_conflict_names_the_row(
    fs9a_api, fs9a_row_by_row, shape
):
    """The same on a row-by-row update: two rows given one unique value pass their checks
    (each against the table before the write) and the second save is refused; the 409 names
    that item (``items``' index) or, for a ``filter``'s rows, the row's id under ``ids``."""
    one = BookFactory(title="same", isbn="fs9a-1")
    two = BookFactory(title="same", isbn="fs9a-2")
    if shape == "items":
        body = {"items": [{"id": one.pk, "isbn": "fs9a-x"}, {"id": two.pk, "isbn": "fs9a-x"}]}
        named = {
            "items": {
                "1": {"code": "CONFLICT", "error": "The request conflicts with existing data"}
            }
        }
    else:
        body = {"filter": {"title": "same"}, "data": {"isbn": "fs9a-x"}}
        named = {
            "ids": {
                str(two.pk): {
                    "code": "CONFLICT",
                    "error": "The request conflicts with existing data",
                }
            }
        }
    r = fs9a_api.patch("/api/bulk-books/bulk/", body, format="json")
    assert r.status_code == 409, r.content
    assert r.json()["details"] == named
    assert sorted(Book.objects.values_list("isbn", flat=True)) == ["fs9a-1", "fs9a-2"]
    assert not OutboxEvent.objects.exists()


def test_fs9a_a_row_by_row_bulk_delete_refused_for_rows_referring_names_the_row(
    fs9a_orgs, monkeypatch
):
    """A model's own ``delete()`` deletes each row of a bulk delete (rev-signals); a row
    that orders still refer to (``on_delete=PROTECT``) raised ``ProtectedError`` for the
    whole request, naming no row. It is that row's 409, with the message the error handler
    gives it; no row is deleted."""
    mine, _ = fs9a_orgs
    client = fs9a_member_client(mine, "admin")
    free = Product.objects.create(organization=mine, name="a", sku="FS9A-A", price=1)
    ordered = Product.objects.create(organization=mine, name="b", sku="FS9A-B", price=1)
    Order.objects.create(organization=mine, product=ordered, customer_email="c@example.com")
    original = Product.delete
    monkeypatch.setattr(Product, "delete", lambda self, *a, **k: original(self, *a, **k))
    r = client.delete("/api/products/bulk/", {"ids": [free.pk, ordered.pk]}, format="json")
    assert r.status_code == 409, r.content
    message = "Cannot delete: other records still refer to this one"
    assert (r.json()["code"], r.json()["error"]) == ("CONFLICT", message)
    assert r.json()["details"] == {"ids": {"1": {"code": "CONFLICT", "error": message}}}
    assert Product.objects.count() == 2
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a race between two connections")
def test_fs9a_a_bulk_item_losing_a_unique_race_is_the_items_409():
    """The race itself, on PostgreSQL: a row-by-row bulk create validated both items, then,
    held before its first save, another request commits the second item's ISBN. The
    second save's ``IntegrityError`` was the whole request's 409 naming nothing; it is that
    item's 409 now, and the first item's row is not kept."""
    author = AuthorFactory()
    entered, released = threading.Event(), threading.Event()
    calls = []

    def fs9a_hold_first_save(sender, instance, **kwargs):
        calls.append(instance.isbn)
        if len(calls) == 1:
            entered.set()
            assert released.wait(30)

    items = [
        {"title": "a", "isbn": "fs9a-r0", "author": author.pk},
        {"title": "b", "isbn": "fs9a-r1", "author": author.pk},
    ]
    pre_save.connect(fs9a_hold_first_save, sender=Book, weak=False, dispatch_uid="fs9a-hold")
    try:
        thread, results = in_thread(
            lambda: client_for(UserFactory()).post(
                "/api/bulk-books/bulk/", {"items": items}, format="json"
            )
        )
        try:
            assert entered.wait(30)
            body = {"title": "c", "isbn": "fs9a-r1", "author": author.pk}
            assert (
                client_for(UserFactory()).post("/api/books/", body, format="json").status_code
                == 201
            )
        finally:
            released.set()
            thread.join(30)
    finally:
        pre_save.disconnect(sender=Book, dispatch_uid="fs9a-hold")
    (response,) = results
    assert not isinstance(response, BaseException), response
    assert response.status_code == 409, response.content
    assert response.json()["details"] == {
        "items": {"1": {"code": "CONFLICT", "error": "The request conflicts with existing data"}}
    }
    assert sorted(Book.objects.values_list("isbn", flat=True)) == ["fs9a-r1"]
    assert not OutboxEvent.objects.filter(type="bulk-books.created").exists()


# -- 3. a filter update names its rows by id ------------------------------------------------


def _fs9a_move_sku_to(org, sku):
    """A ``pre_save`` receiver of a project's moving one product (by its SKU) to ``org``."""

    def fs9a_move_one(sender, instance, **kwargs):
        if instance.sku == sku:
            instance.organization_id = org.pk

    return fs9a_move_one


def test_fs9a_a_filter_updates_forced_values_fault_names_the_row_by_id(fs9a_orgs):
    """A ``filter`` update's 500 for a row moved out of the caller's tenant named it
    ``{"items": {"1": …}}``: its index among the matched rows, arc's order, under a key the
    body does not have. It names the row by its id under ``ids``, as the answer's ``ids``
    lists the rows; nothing is written, no row lands in the other tenant."""
    mine, other = fs9a_orgs
    client = fs9a_member_client(mine, "admin")
    client.raise_request_exception = False
    first = Product.objects.create(organization=mine, name="lamp a", sku="FS9A-1", price=1)
    second = Product.objects.create(organization=mine, name="lamp b", sku="FS9A-2", price=1)
    receiver = _fs9a_move_sku_to(other, "FS9A-2")
    pre_save.connect(receiver, sender=Product, weak=False, dispatch_uid="fs9a-move")
    try:
        r = client.patch(
            "/api/products/bulk/",
            {"filter": {"name[contains]": "lamp"}, "data": {"price": "2.00"}},
            format="json",
        )
    finally:
        pre_save.disconnect(sender=Product, dispatch_uid="fs9a-move")
    assert r.status_code == 500, r.content
    assert r.json()["details"] == {"ids": {str(second.pk): FS9A_FAULT}}
    assert not Product.objects.filter(organization=other).exists()
    assert sorted(Product.objects.values_list("pk", "price")) == [(first.pk, 1), (second.pk, 1)]
    assert not OutboxEvent.objects.exists()


# -- 4. the forced-values check after the presets' after_write -------------------------------


@pytest.fixture
def fs9a_audit_moves(monkeypatch, fs9a_orgs):
    """``Audited`` (a preset watching every write) changed to move each row it records to the
    other organization and save it, after arc's forced-values check ran."""
    _, other = fs9a_orgs
    single, many = Audited.after_write, Audited.after_write_many

    def moved(instance):
        if isinstance(instance, Product):
            instance.organization_id = other.pk
            instance.save()

    def fs9a_after_write(self, view, verb, instance, before, after):
        single(self, view, verb, instance, before, after)
        moved(instance)

    def fs9a_after_write_many(self, view, verb, records):
        many(self, view, verb, records)
        for instance, _, _ in records:
            moved(instance)

    monkeypatch.setattr(Audited, "after_write", fs9a_after_write)
    monkeypatch.setattr(Audited, "after_write_many", fs9a_after_write_many)


@pytest.mark.parametrize(
    "route", ["create", "update", "bulk create", "bulk update", "bulk filter update"]
)
def test_fs9a_a_presets_after_write_moving_a_row_to_another_tenant_writes_nothing(
    fs9a_orgs, fs9a_audit_moves, route
):
    """The forced-values check ran after the resource's hooks and before the presets'
    ``after_write``: a preset moving the row (its tenant) then wrote the caller's row into
    another organization, answered 201/200 as the caller's. The check runs again after
    them: 500, nothing written, no row in the other tenant."""
    mine, other = fs9a_orgs
    client = fs9a_member_client(mine, "admin")
    client.raise_request_exception = False
    existing = Product.objects.create(organization=mine, name="old", sku="FS9A-0", price=1)
    new = {"name": "new", "sku": "FS9A-9", "price": "1.00"}
    if route == "create":
        r = client.post("/api/products/", new, format="json")
    elif route == "update":
        r = client.patch(f"/api/products/{existing.pk}/", {"name": "x"}, format="json")
    elif route == "bulk create":
        r = client.post("/api/products/bulk/", {"items": [new]}, format="json")
    elif route == "bulk update":
        body = {"items": [{"id": existing.pk, "name": "x"}]}
        r = client.patch("/api/products/bulk/", body, format="json")
    else:
        body = {"filter": {"name[contains]": "old"}, "data": {"name": "x"}}
        r = client.patch("/api/products/bulk/", body, format="json")
    assert r.status_code == 500, r.content
    assert r.json()["code"] == "INTERNAL_ERROR"
    if route.startswith("bulk"):
        key, name = ("ids", str(existing.pk)) if "filter" in route else ("items", "0")
        assert r.json()["details"] == {key: {name: FS9A_FAULT}}
    assert not Product.objects.filter(organization=other).exists()
    assert list(Product.objects.values_list("pk", "organization_id", "name")) == [
        (existing.pk, mine.pk, "old")
    ]
    assert not OutboxEvent.objects.exists()
    assert not AuditLog.objects.exists()
