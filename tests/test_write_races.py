"""Plain writes (no ``Idempotency-Key``) racing each other on one row, on PostgreSQL: two
threads, each with its own connection, one held at a hook while the other commits.

What must hold whatever the interleaving: a request answers as it would have had it run
second (a row deleted meanwhile is 404, a unique value taken meanwhile is the 400 naming
the field), never a 500; nothing it wrote stands when it fails, and every event in the
outbox is a write that happened (no ``updated`` for a row that is gone, no second
``deleted``, no row brought back by an update).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections
from django.db.models.signals import post_save
from django.utils import timezone
from rest_framework.test import APIClient

from django_arc import Resource, ResourceSite, route
from django_arc import permissions as P
from django_arc.actions import INSTANCE
from django_arc.audit.models import AuditLog
from django_arc.generics import ResourceGenericViewSet
from django_arc.mixins import ActionMixin
from django_arc.outbox import OutboxEvent
from django_arc.sites import _all_sites
from tests.factories import AuthorFactory, BookFactory, OrganizationFactory, UserFactory
from tests.helpers import assert_error, in_thread, site_mounted
from tests.testapp.models import Article, Book
from tests.testapp.resources import (
    PUBLIC,
    BookResource,
    BulkBookResource,
    MineArticleResource,
    SlugArticleResource,
    SoftArticleResource,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL's row locks and threads"
    ),
]


class Gate:
    """Holds the first call of a patched method until :meth:`open`; later calls (the other
    request's) pass straight through."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.calls = 0

    def hold(self, original):
        def held(*args, **kwargs):
            self.calls += 1
            if self.calls == 1:
                self.entered.set()
                assert self.released.wait(30)
            return original(*args, **kwargs)

        return held

    def open(self) -> None:
        self.released.set()


_started: list[tuple[Gate, threading.Thread]] = []


@pytest.fixture(autouse=True)
def _no_thread_left():
    """A failed test still opens its gates and joins its threads: a transaction left open
    would block the flush of the next test."""
    yield
    while _started:
        gate, thread = _started.pop()
        gate.open()
        thread.join(30)


def held_request(monkeypatch, owner, name, send):
    """Start ``send`` in a thread, held inside ``owner.name`` until the gate opens."""
    gate = Gate()
    monkeypatch.setattr(owner, name, gate.hold(getattr(owner, name)))
    thread, results = in_thread(send)
    _started.append((gate, thread))
    assert gate.entered.wait(30)
    return gate, thread, results


def finish(gate, thread, results):
    gate.open()
    thread.join(30)
    (response,) = results
    assert not isinstance(response, BaseException), response
    return response


def wait_for_lock_wait(timeout: float = 20.0) -> None:
    """Until another backend waits on a lock (the held request's statement queued behind
    this test's transaction), so the race is the one the test means."""
    deadline = time.monotonic() + timeout
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("no backend waited on a lock")


def events(type_: str) -> list:
    return list(OutboxEvent.objects.filter(type=type_).order_by("id"))


def user_client() -> APIClient:
    client = APIClient()
    client.force_authenticate(UserFactory())
    return client


# -- an update or an action racing a DELETE -----------------------------------------------------


@pytest.mark.parametrize("atomic_requests", [False, True])
def test_a_patch_of_a_row_deleted_meanwhile_is_404_and_does_not_bring_it_back(
    monkeypatch, atomic_requests
):
    """With ``ATOMIC_REQUESTS`` the row is read inside the request's transaction, still
    without a lock: the same race, the same answer."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", atomic_requests)
    book = BookFactory(title="old")
    gate, thread, results = held_request(
        monkeypatch,
        BookResource,
        "before_update",
        lambda: APIClient().patch(f"/api/books/{book.pk}/", {"title": "new"}, format="json"),
    )
    assert APIClient().delete(f"/api/books/{book.pk}/").status_code == 200
    response = finish(gate, thread, results)
    assert_error(response, 404, "NOT_FOUND")
    assert not Book.objects.filter(pk=book.pk).exists()
    assert len(events("books.deleted")) == 1
    assert events("books.updated") == []


def test_an_action_on_a_row_deleted_meanwhile_is_404_with_no_event(monkeypatch):
    """The action's row was read before the DELETE committed; its ``save()`` must not
    re-insert it, and its ``save(update_fields=…)`` (which Django refuses for a missing row)
    must not be a 500."""
    user = UserFactory()
    api = APIClient()
    api.force_authenticate(user)
    row = Article.objects.create(slug="a", title="t", owner=user)
    gate, thread, results = held_request(
        monkeypatch,
        ActionMixin,
        "action_input",
        lambda: api.post(
            f"/api/audited-articles/{row.pk}/action/", {"action": "bump"}, format="json"
        ),
    )
    assert user_client().delete(f"/api/audited-articles/{row.pk}/").status_code == 200
    response = finish(gate, thread, results)
    assert_error(response, 404, "NOT_FOUND")
    assert not Article.objects.filter(pk=row.pk).exists()
    assert events("audited-articles.bump") == []
    assert list(AuditLog.objects.values_list("action", flat=True)) == ["deleted"]


class RoutedBookResource(Resource):
    model = Book
    name = "routed-books"
    fields = ["id", "title", "isbn", "author"]
    permissions = PUBLIC

    @route("POST", "retitle", detail=True, permissions=P.allow_public(), response=INSTANCE)
    def retitle(self, request, instance):
        instance.title = "retitled"
        instance.save()
        return instance


def test_a_detail_route_on_a_row_deleted_meanwhile_is_404_and_does_not_bring_it_back(
    monkeypatch, settings
):
    """A ``@route(detail=True)`` of an unsafe method reads its row inside its transaction,
    but without a lock: a DELETE committed between that read and its ``save()`` must not be
    undone by an INSERT."""
    book = BookFactory(title="old")
    gate = Gate()
    get_object = ResourceGenericViewSet.get_object

    def read_then_wait(view):
        obj = get_object(view)
        gate.hold(lambda: None)()
        return obj

    site = ResourceSite(name="races-routes")
    site.register(RoutedBookResource)
    try:
        with site_mounted(settings, "races-routes", site):
            monkeypatch.setattr(ResourceGenericViewSet, "get_object", read_then_wait)
            url = f"/races-routes/routed-books/{book.pk}/retitle/"
            thread, results = in_thread(lambda: APIClient().post(url))
            _started.append((gate, thread))
            assert gate.entered.wait(30)
            assert APIClient().delete(f"/api/books/{book.pk}/").status_code == 200
            response = finish(gate, thread, results)
    finally:
        _all_sites.remove(site)
    assert_error(response, 404, "NOT_FOUND")
    assert not Book.objects.filter(pk=book.pk).exists()


# -- two DELETEs, soft deletes and restores -----------------------------------------------------


def test_the_second_of_two_racing_deletes_is_404_with_one_event(monkeypatch):
    book = BookFactory()
    gate, thread, results = held_request(
        monkeypatch,
        BookResource,
        "before_delete",
        lambda: APIClient().delete(f"/api/books/{book.pk}/"),
    )
    assert APIClient().delete(f"/api/books/{book.pk}/").status_code == 200
    response = finish(gate, thread, results)
    assert_error(response, 404, "NOT_FOUND")
    assert len(events("books.deleted")) == 1


def test_the_second_of_two_racing_soft_deletes_is_404_with_one_event(monkeypatch):
    row = Article.objects.create(slug="s", title="t")
    gate, thread, results = held_request(
        monkeypatch,
        SoftArticleResource,
        "before_delete",
        lambda: user_client().delete(f"/api/soft-articles/{row.pk}/"),
    )
    assert user_client().delete(f"/api/soft-articles/{row.pk}/").status_code == 200
    stamped = Article.objects.get(pk=row.pk).deleted_at
    response = finish(gate, thread, results)
    assert_error(response, 404, "NOT_FOUND")
    assert Article.objects.get(pk=row.pk).deleted_at == stamped
    assert len(events("soft-articles.deleted")) == 1


def test_a_soft_delete_of_a_row_hard_deleted_meanwhile_is_404(monkeypatch):
    row = Article.objects.create(slug="s", title="t")
    gate, thread, results = held_request(
        monkeypatch,
        SoftArticleResource,
        "before_delete",
        lambda: user_client().delete(f"/api/soft-articles/{row.pk}/"),
    )
    Article.objects.filter(pk=row.pk).delete()
    response = finish(gate, thread, results)
    assert_error(response, 404, "NOT_FOUND")
    assert events("soft-articles.deleted") == []


def test_a_restore_racing_a_restore_answers_404_to_the_second_with_one_event(monkeypatch):
    row = Article.objects.create(slug="r", title="t", deleted_at=timezone.now())
    gate = Gate()
    get_object = ResourceGenericViewSet.get_object

    def read_then_wait(view):
        obj = get_object(view)
        gate.hold(lambda: None)()
        return obj

    monkeypatch.setattr(ResourceGenericViewSet, "get_object", read_then_wait)
    thread, results = in_thread(lambda: user_client().post(f"/api/soft-articles/{row.pk}/restore/"))
    _started.append((gate, thread))
    assert gate.entered.wait(30)
    assert user_client().post(f"/api/soft-articles/{row.pk}/restore/").status_code == 200
    response = finish(gate, thread, results)
    assert_error(response, 404, "NOT_FOUND")
    assert Article.objects.get(pk=row.pk).deleted_at is None
    assert len(events("soft-articles.restored")) == 1


# -- bulk routes racing a DELETE ----------------------------------------------------------------


@pytest.fixture(params=["batched", "row by row"])
def rf41_saved(request):
    """How the bulk update writes: one ``bulk_update`` (``"batched"``), or each row through
    ``save()``, as it does where a receiver listens to the model's saves (``"row by row"``,
    rev-signals: one connected for every model, ``sender=None``, as django-haystack's and
    django-elasticsearch-dsl's are). The row by row path saved a row deleted meanwhile
    into the whole request's 404; it answers as the batch now (rev-fixes41). Yields the Book
    rows the receiver saw saved after :meth:`list.clear`, or None when batched."""
    if request.param == "batched":
        yield None
        return
    seen = []

    def rf41_saw(sender, instance, **kwargs):
        if sender is Book:
            seen.append(instance.pk)

    post_save.connect(rf41_saw, weak=False, dispatch_uid="rf41-every-model")
    try:
        yield seen
    finally:
        post_save.disconnect(dispatch_uid="rf41-every-model")


def test_a_bulk_update_naming_a_row_deleted_meanwhile_is_the_400_naming_it(monkeypatch, rf41_saved):
    """Its ``bulk_update`` matched one row of two: it answered 200 with an ``updated`` event
    and an audit row for the row that was gone."""
    kept, gone = BookFactory(title="kept"), BookFactory(title="gone")
    if rf41_saved is not None:
        rf41_saved.clear()
    items = [{"id": kept.pk, "title": "x"}, {"id": gone.pk, "title": "y"}]
    gate, thread, results = held_request(
        monkeypatch,
        BulkBookResource,
        "before_update",
        lambda: user_client().patch("/api/bulk-books/bulk/", {"items": items}, format="json"),
    )
    assert APIClient().delete(f"/api/bulk-books/{gone.pk}/").status_code == 200
    response = finish(gate, thread, results)
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"] == {"items": {"1": {"id": ["Not found."]}}}
    assert Book.objects.get(pk=kept.pk).title == "kept"
    assert events("bulk-books.updated") == []
    assert list(AuditLog.objects.values_list("action", "object_id")) == [("deleted", str(gone.pk))]
    assert rf41_saved in (None, [])  # the rows are locked before any save


def test_a_bulk_update_by_filter_leaves_out_a_row_deleted_meanwhile(monkeypatch, rf41_saved):
    """A filter names no row: the one gone by the time of the UPDATE is not among those it
    updated (as if it had been deleted before the request), and gets no event."""
    kept, gone = BookFactory(title="race"), BookFactory(title="race")
    if rf41_saved is not None:
        rf41_saved.clear()
    body = {"filter": {"title": "race"}, "data": {"pages": 7}}
    gate, thread, results = held_request(
        monkeypatch,
        BulkBookResource,
        "before_update",
        lambda: user_client().patch("/api/bulk-books/bulk/", body, format="json"),
    )
    assert APIClient().delete(f"/api/bulk-books/{gone.pk}/").status_code == 200
    response = finish(gate, thread, results)
    assert response.status_code == 200, response.content
    assert response.json()["data"] == {"updated": 1, "ids": [kept.pk]}
    assert Book.objects.get(pk=kept.pk).pages == 7
    assert [e.meta["resource_id"] for e in events("bulk-books.updated")] == [str(kept.pk)]
    assert rf41_saved in (None, [kept.pk])


def test_a_bulk_delete_naming_a_row_deleted_meanwhile_is_the_400_naming_it(monkeypatch):
    kept, gone = BookFactory(), BookFactory()
    gate, thread, results = held_request(
        monkeypatch,
        BulkBookResource,
        "before_delete",
        lambda: user_client().delete(
            "/api/bulk-books/bulk/", {"ids": [kept.pk, gone.pk]}, format="json"
        ),
    )
    assert APIClient().delete(f"/api/bulk-books/{gone.pk}/").status_code == 200
    response = finish(gate, thread, results)
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"] == {"ids": {"1": {"id": ["Not found."]}}}
    assert Book.objects.filter(pk=kept.pk).exists()
    assert [e.meta["resource_id"] for e in events("bulk-books.deleted")] == [str(gone.pk)]


def test_a_bulk_soft_delete_naming_a_row_deleted_meanwhile_is_the_400_naming_it(monkeypatch):
    user = UserFactory()
    owner = APIClient()
    owner.force_authenticate(user)
    kept = Article.objects.create(slug="k", title="t", owner=user)
    gone = Article.objects.create(slug="g", title="t", owner=user)
    gate, thread, results = held_request(
        monkeypatch,
        MineArticleResource,
        "before_delete",
        lambda: owner.delete(
            "/api/mine-articles/bulk/", {"ids": [kept.pk, gone.pk]}, format="json"
        ),
    )
    other = APIClient()
    other.force_authenticate(user)
    assert other.delete(f"/api/mine-articles/{gone.pk}/").status_code == 200
    stamped = Article.objects.get(pk=gone.pk).deleted_at
    response = finish(gate, thread, results)
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"] == {"ids": {"1": {"id": ["Not found."]}}}
    assert Article.objects.get(pk=kept.pk).deleted_at is None
    assert Article.objects.get(pk=gone.pk).deleted_at == stamped
    assert len(events("mine-articles.deleted")) == 1


# -- unique values taken meanwhile --------------------------------------------------------------


@pytest.mark.parametrize("atomic_requests", [False, True])
def test_the_loser_of_two_racing_creates_of_one_isbn_is_the_400_naming_isbn(
    monkeypatch, atomic_requests
):
    """With ``ATOMIC_REQUESTS`` the write's transaction is a savepoint of the request's:
    rolled back to it, the request's transaction can still validate the body again."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", atomic_requests)
    author = AuthorFactory()
    body = {"title": "T", "isbn": "978-1", "author": author.pk}
    gate, thread, results = held_request(
        monkeypatch,
        BookResource,
        "after_create",
        lambda: APIClient().post("/api/books/", body, format="json"),
    )
    # the held request has inserted its row, uncommitted: this one validates without
    # seeing it, then its INSERT waits for the held transaction
    other, other_results = in_thread(lambda: APIClient().post("/api/books/", body, format="json"))
    wait_for_lock_wait()
    first = finish(gate, thread, results)
    other.join(30)
    (loser,) = other_results
    assert first.status_code == 201, first.content
    sequential = APIClient().post("/api/books/", body, format="json")
    assert_error(sequential, 400, "VALIDATION_ERROR")
    assert loser.status_code == 400, loser.content
    assert loser.json()["details"] == sequential.json()["details"]
    assert Book.objects.filter(isbn="978-1").count() == 1
    assert len(events("books.created")) == 1


def test_the_loser_of_two_racing_creates_of_one_slug_is_the_400_naming_it(monkeypatch):
    """``Article``'s ``(organization, slug)`` constraint, as the slug route's resource
    writes it: the loser answers the sequential duplicate's 400, not a 409."""
    org = OrganizationFactory()
    body = {"slug": "same", "title": "t", "organization": org.pk}
    gate, thread, results = held_request(
        monkeypatch,
        SlugArticleResource,
        "after_create",
        lambda: user_client().post("/api/slug-articles/", body, format="json"),
    )
    other, other_results = in_thread(
        lambda: user_client().post("/api/slug-articles/", body, format="json")
    )
    _started.append((Gate(), other))
    wait_for_lock_wait()
    assert finish(gate, thread, results).status_code == 201
    other.join(30)
    sequential = user_client().post("/api/slug-articles/", body, format="json")
    assert_error(sequential, 400, "VALIDATION_ERROR")
    loser = assert_error(other_results[0], 400, "VALIDATION_ERROR")
    assert loser["details"] == sequential.json()["details"]
    assert Article.objects.filter(slug="same").count() == 1
    assert len(events("slug-articles.created")) == 1


def test_the_loser_of_two_racing_patches_to_one_isbn_is_the_400_naming_isbn(monkeypatch):
    first, second = BookFactory(), BookFactory()
    gate, thread, results = held_request(
        monkeypatch,
        BookResource,
        "after_update",
        lambda: APIClient().patch(f"/api/books/{first.pk}/", {"isbn": "X"}, format="json"),
    )
    other, other_results = in_thread(
        lambda: APIClient().patch(f"/api/books/{second.pk}/", {"isbn": "X"}, format="json")
    )
    _started.append((Gate(), other))
    wait_for_lock_wait()
    assert finish(gate, thread, results).status_code == 200
    other.join(30)
    loser = assert_error(other_results[0], 400, "VALIDATION_ERROR")
    assert list(loser["details"]) == ["isbn"]
    assert Book.objects.get(pk=second.pk).isbn != "X"
    assert len(events("books.updated")) == 1


def test_a_create_naming_a_row_deleted_before_it_commits_is_the_400_naming_the_field(
    monkeypatch,
):
    """PostgreSQL checks Django's foreign keys at commit (``DEFERRABLE INITIALLY
    DEFERRED``): a create whose author was deleted after its validation fails there. Its
    body, validated again, says what a create sent after the DELETE hears."""
    author = AuthorFactory()
    body = {"title": "T", "isbn": "978-3", "author": author.pk}
    gate, thread, results = held_request(
        monkeypatch,
        BookResource,
        "after_create",
        lambda: APIClient().post("/api/books/", body, format="json"),
    )
    author.delete()
    response = finish(gate, thread, results)
    sequential = APIClient().post("/api/books/", body, format="json")
    assert_error(sequential, 400, "VALIDATION_ERROR")
    failed = assert_error(response, 400, "VALIDATION_ERROR")
    assert failed["details"] == sequential.json()["details"]
    assert not Book.objects.exists()
    assert events("books.created") == []


class KeyedBookResource(Resource):
    model = Book
    name = "keyed-books"
    fields = ["id", "title", "isbn", "author"]
    permissions = PUBLIC
    idempotent = True


def test_under_a_key_the_loser_of_a_unique_race_stays_409(monkeypatch, settings):
    """A keyed request's write joins the request's transaction, which the
    ``IntegrityError`` leaves broken until the request ends: its body cannot be validated
    again there, and the answer is the 409 the docs name (docs/decisions.md), not a 500."""
    author = AuthorFactory()
    body = {"title": "T", "isbn": "978-2", "author": author.pk}
    site = ResourceSite(name="races-site")
    site.register(KeyedBookResource)
    try:
        with site_mounted(settings, "races", site):

            def post(key):
                return lambda: APIClient().post(
                    "/races/keyed-books/", body, format="json", HTTP_IDEMPOTENCY_KEY=key
                )

            gate, thread, results = held_request(
                monkeypatch, KeyedBookResource, "after_create", post("one")
            )
            other, other_results = in_thread(post("two"))
            _started.append((Gate(), other))
            wait_for_lock_wait()
            assert finish(gate, thread, results).status_code == 201
            other.join(30)
            assert_error(other_results[0], 409, "CONFLICT")
            assert Book.objects.filter(isbn="978-2").count() == 1
            assert len(events("keyed-books.created")) == 1
            # the loser's key was kept with its 409 (an answer below 500), and replays it
            replay = APIClient().post(
                "/races/keyed-books/", body, format="json", HTTP_IDEMPOTENCY_KEY="two"
            )
            assert replay.content == other_results[0].content
    finally:
        _all_sites.remove(site)


def test_overlapping_bulk_creates_write_all_of_one_and_nothing_of_the_other(monkeypatch):
    """Bulk leaves uniqueness to the database (docs/presets/bulk.md): the loser is one 409
    for its whole batch, its other rows, events and audit rows rolled back with it."""
    author = AuthorFactory()

    def batch(*isbns):
        items = [{"title": i, "isbn": i, "author": author.pk} for i in isbns]
        return lambda: user_client().post("/api/bulk-books/bulk/", {"items": items}, format="json")

    gate, thread, results = held_request(
        monkeypatch, BulkBookResource, "after_create", batch("a", "b")
    )
    other, other_results = in_thread(batch("b", "c"))
    _started.append((Gate(), other))
    wait_for_lock_wait()
    assert finish(gate, thread, results).status_code == 201
    other.join(30)
    assert_error(other_results[0], 409, "CONFLICT")
    assert sorted(Book.objects.values_list("isbn", flat=True)) == ["a", "b"]
    assert len(events("bulk-books.created")) == 2
    assert AuditLog.objects.count() == 2


# -- lost updates: documented, not prevented (docs/decisions.md) --------------------------------


def test_two_patches_of_one_row_the_last_save_writes_every_column_it_read(monkeypatch):
    """No row lock and no version check (docs/decisions.md, "Concurrent writes without a
    key"): a PATCH saves the whole row as it read it, so a PATCH of ``price`` committed
    while a PATCH of ``title`` ran is written over. Pinned so that changing it is a choice."""
    book = BookFactory(title="old", price=10)
    gate, thread, results = held_request(
        monkeypatch,
        BookResource,
        "before_update",
        lambda: APIClient().patch(f"/api/books/{book.pk}/", {"title": "new"}, format="json"),
    )
    other = APIClient().patch(f"/api/books/{book.pk}/", {"price": "99.00"}, format="json")
    assert other.status_code == 200
    assert finish(gate, thread, results).status_code == 200
    book.refresh_from_db()
    assert (book.title, str(book.price)) == ("new", "10.00")
    assert len(events("books.updated")) == 2
