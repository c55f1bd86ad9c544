"""Django's model signals and a model's own ``save()``/``delete()`` at the edges of
django-arc's writes (rev-signals): what a project's receivers and overrides see on each
write path, and what reaches the outbox."""

import gc
import weakref
from contextlib import contextmanager

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.models.signals import post_delete, post_save, pre_save
from django.test.utils import CaptureQueriesContext

from django_arc.outbox.models import OutboxEvent
from django_arc.querycache import invalidation
from shop.models import Product
from tests.factories import AuthorFactory, BookFactory, OrganizationFactory, UserFactory
from tests.factories import member_client as signal_member_client
from tests.helpers import client_for
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return client_for(UserFactory())


@contextmanager
def signal_connected(signal, receiver, sender):
    """``receiver`` connected to ``signal`` for ``sender`` for the block only."""
    uid = f"rev-signals:{receiver.__name__}"
    signal.connect(receiver, sender=sender, weak=False, dispatch_uid=uid)
    try:
        yield
    finally:
        signal.disconnect(sender=sender, dispatch_uid=uid)


def signal_titles(type_):
    return [
        e.payload["data"]["title"] for e in OutboxEvent.objects.filter(type=type_).order_by("id")
    ]


# -- a project's pre_save/post_save receivers, and save() override, on bulk writes -----------


def test_a_bulk_create_runs_the_projects_pre_save_and_post_save_receivers(api):
    """A ``pre_save`` receiver of the project's (a slug, a normalised title) and a
    ``post_save`` one (a profile row, django-simple-history's copy) ran for ``POST /books/``
    and not for ``POST /books/bulk/``: ``bulk_create`` sends no model signal, so the bulk
    rows were stored as the receivers never saw them, unlike the single-row route the
    preset batches. Their rows are saved one by one now, as the single route saves one."""
    saved = []

    def upper_title(sender, instance, **kwargs):
        instance.title = instance.title.upper()

    def saw_created(sender, instance, created=False, **kwargs):
        saved.append((instance.pk, created))

    author = AuthorFactory()
    items = [{"title": f"t{i}", "isbn": f"i{i}", "author": author.pk} for i in range(3)]
    with (
        signal_connected(pre_save, upper_title, Book),
        signal_connected(post_save, saw_created, Book),
    ):
        r = api.post("/api/bulk-books/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    ids = r.json()["data"]["ids"]
    assert list(Book.objects.order_by("pk").values_list("title", flat=True)) == ["T0", "T1", "T2"]
    assert saved == [(pk, True) for pk in ids]
    assert signal_titles("bulk-books.created") == ["T0", "T1", "T2"]


@pytest.mark.parametrize("shape", ["items", "filter"])
def test_a_bulk_update_runs_the_projects_pre_save_and_post_save_receivers(api, shape):
    """``bulk_update`` sends no signal either: a ``pre_save`` receiver's change was neither
    stored nor in the event, and ``post_save`` receivers never heard of the update."""
    books = [BookFactory(title="a0"), BookFactory(title="a1")]
    saved = []

    def upper_title(sender, instance, **kwargs):
        instance.title = instance.title.upper()

    def saw_saved(sender, instance, created=False, **kwargs):
        saved.append((instance.pk, created))

    if shape == "items":
        body = {"items": [{"id": b.pk, "title": f"n{i}"} for i, b in enumerate(books)]}
    else:
        body = {"filter": {"title[startswith]": "a"}, "data": {"title": "n"}}
    with (
        signal_connected(pre_save, upper_title, Book),
        signal_connected(post_save, saw_saved, Book),
    ):
        r = api.patch("/api/bulk-books/bulk/", body, format="json")
    assert r.status_code == 200, r.content
    expected = ["N0", "N1"] if shape == "items" else ["N", "N"]
    assert list(Book.objects.order_by("pk").values_list("title", flat=True)) == expected
    assert sorted(saved) == sorted((b.pk, False) for b in books)
    assert sorted(signal_titles("bulk-books.updated")) == sorted(expected)


def test_a_bulk_create_and_update_run_the_models_own_save(api, monkeypatch):
    """A model's ``save()`` override (a total computed, a field derived) runs for the
    single-row routes, through the serializer's ``save()``, and was skipped by
    ``bulk_create``/``bulk_update``."""
    calls = []
    original = Book.save

    def save(self, *args, **kwargs):
        calls.append(self.title)
        self.pages = len(self.title)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Book, "save", save)
    author = AuthorFactory()
    items = [
        {"title": "abc", "isbn": "i1", "author": author.pk},
        {"title": "abcdef", "isbn": "i2", "author": author.pk},
    ]
    r = api.post("/api/bulk-books/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    assert calls == ["abc", "abcdef"]
    assert list(Book.objects.order_by("pk").values_list("pages", flat=True)) == [3, 6]
    ids = r.json()["data"]["ids"]
    r = api.patch(
        "/api/bulk-books/bulk/", {"items": [{"id": ids[0], "title": "ab"}]}, format="json"
    )
    assert r.status_code == 200, r.content
    assert Book.objects.get(pk=ids[0]).pages == 2
    assert OutboxEvent.objects.get(type="bulk-books.updated").payload["data"]["pages"] == 2


def test_a_bulk_delete_runs_the_models_own_delete_and_names_each_row(api, monkeypatch):
    """A model's ``delete()`` override (soft-delete of its own, files removed) ran for
    ``DELETE /books/{id}/`` and was skipped by the bulk delete's ``QuerySet.delete()``.
    The rows' events still name each row (Django clears a deleted instance's pk)."""
    books = [BookFactory(), BookFactory()]
    deleted = []
    original = Book.delete

    def delete(self, *args, **kwargs):
        deleted.append(self.pk)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Book, "delete", delete)
    r = api.delete("/api/bulk-books/bulk/", {"ids": [b.pk for b in books]}, format="json")
    assert r.status_code == 200, r.content
    assert deleted == [b.pk for b in books]
    assert not Book.objects.exists()
    events = OutboxEvent.objects.filter(type="bulk-books.deleted").order_by("id")
    assert [e.meta["resource_id"] for e in events] == [str(b.pk) for b in books]
    assert [e.payload["id"] for e in events] == [b.pk for b in books]


def test_a_bulk_delete_sends_post_delete_for_each_row(api):
    """Correct before this review, pinned: ``QuerySet.delete()`` collects rows whose model
    has a ``post_delete`` receiver and sends it per row."""
    books = [BookFactory(), BookFactory()]
    seen = []

    def saw_deleted(sender, instance, **kwargs):
        seen.append(instance.pk)

    with signal_connected(post_delete, saw_deleted, Book):
        r = api.delete("/api/bulk-books/bulk/", {"ids": [b.pk for b in books]}, format="json")
    assert r.status_code == 200, r.content
    assert sorted(seen) == sorted(b.pk for b in books)


def test_django_arcs_own_receivers_keep_a_bulk_create_one_insert():
    """The query cache's own ``post_save`` receivers (products are cached) are no project
    code to run per row: a bulk create of a cached resource stays one INSERT."""
    org = OrganizationFactory()
    client = signal_member_client(org, "admin")
    client.get("/api/products/")  # the viewset is built: the cache's receivers connected
    assert post_save.has_listeners(Product)
    items = [{"name": f"p{i}", "sku": f"S-{i}", "price": "1.00"} for i in range(5)]
    with CaptureQueriesContext(connection) as queries:
        r = client.post("/api/products/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    inserts = [q for q in queries if q["sql"].startswith("INSERT") and "shop_product" in q["sql"]]
    assert len(inserts) == 1
    assert Product.objects.count() == 5


# -- a project's receiver moving a row out of the caller's tenant ----------------------------


@pytest.fixture
def signal_orgs():
    return OrganizationFactory(), OrganizationFactory()


def signal_move_to(org):
    """A ``pre_save`` receiver of a project's, setting every product's organization to
    ``org`` (a denormalisation gone wrong: copied from the wrong related row)."""

    def move_to_other_org(sender, instance, **kwargs):
        instance.organization_id = org.pk

    return move_to_other_org


def test_a_receiver_moving_a_created_row_to_another_tenant_writes_nothing(signal_orgs):
    """``MultiTenant`` sets the tenant field from the scope (SPEC §5), then ``save()`` runs
    the project's receivers: one that changed the field wrote the caller's row into another
    organization, answered 201 with that organization's id, and stored an event whose
    ``meta.organization_id`` named the caller's. The write is refused as the server's fault
    now (500 ``INTERNAL_ERROR``, the cause logged): nothing is stored, no event."""
    mine, other = signal_orgs
    client = signal_member_client(mine, "admin")
    client.raise_request_exception = False
    body = {"name": "a", "sku": "S-1", "price": "1.00"}
    with signal_connected(pre_save, signal_move_to(other), Product):
        r = client.post("/api/products/", body, format="json")
    assert r.status_code == 500, r.content
    assert r.json()["code"] == "INTERNAL_ERROR"
    assert not Product.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_receiver_moving_an_updated_row_to_another_tenant_writes_nothing(signal_orgs):
    mine, other = signal_orgs
    client = signal_member_client(mine, "admin")
    client.raise_request_exception = False
    product = Product.objects.create(organization=mine, name="a", sku="S-1", price=1)
    with signal_connected(pre_save, signal_move_to(other), Product):
        r = client.patch(f"/api/products/{product.pk}/", {"name": "b"}, format="json")
    assert r.status_code == 500, r.content
    product.refresh_from_db()
    assert (product.organization_id, product.name) == (mine.pk, "a")
    assert not OutboxEvent.objects.exists()


def test_a_receiver_moving_bulk_rows_to_another_tenant_writes_nothing(signal_orgs):
    mine, other = signal_orgs
    client = signal_member_client(mine, "admin")
    client.raise_request_exception = False
    items = [{"name": f"p{i}", "sku": f"S-{i}", "price": "1.00"} for i in range(2)]
    with signal_connected(pre_save, signal_move_to(other), Product):
        r = client.post("/api/products/bulk/", {"items": items}, format="json")
    assert r.status_code == 500, r.content
    assert r.json()["details"] == {
        "items": {"0": {"code": "INTERNAL_ERROR", "error": "Internal server error"}}
    }
    assert not Product.objects.exists()
    assert not OutboxEvent.objects.exists()
    product = Product.objects.create(organization=mine, name="a", sku="S-9", price=1)
    with signal_connected(pre_save, signal_move_to(other), Product):
        r = client.patch(
            "/api/products/bulk/", {"items": [{"id": product.pk, "name": "b"}]}, format="json"
        )
    assert r.status_code == 500, r.content
    assert Product.objects.get(pk=product.pk).organization_id == mine.pk
    assert not OutboxEvent.objects.exists()


def test_a_receiver_setting_the_same_tenant_again_is_no_move(signal_orgs):
    """A receiver that sets the tenant to the value it holds (the related row read again)
    changes nothing: the write is answered as without it."""
    mine, _ = signal_orgs
    client = signal_member_client(mine, "admin")

    def same_org(sender, instance, **kwargs):
        instance.organization = type(mine).objects.get(pk=instance.organization_id)

    with signal_connected(pre_save, same_org, Product):
        r = client.post(
            "/api/products/", {"name": "a", "sku": "S-1", "price": "1.00"}, format="json"
        )
        assert r.status_code == 201, r.content
        r = client.post(
            "/api/products/bulk/",
            {"items": [{"name": "b", "sku": "S-2", "price": "1.00"}]},
            format="json",
        )
        assert r.status_code == 201, r.content
    assert set(Product.objects.values_list("organization_id", flat=True)) == {mine.pk}


def test_a_receiver_giving_a_created_row_another_owner_writes_nothing():
    """``OwnedBy`` sets the owner on create; a receiver that replaced it created a row the
    caller does not own, answered as theirs."""
    from tests.testapp.models import Article

    caller, someone = UserFactory(), UserFactory()
    client = client_for(caller)
    client.raise_request_exception = False

    def reown(sender, instance, **kwargs):
        instance.owner_id = someone.pk

    with signal_connected(pre_save, reown, Article):
        r = client.post("/api/owned-articles/", {"slug": "s", "title": "t"}, format="json")
    assert r.status_code == 500, r.content
    assert not Article.objects.exists()
    assert not OutboxEvent.objects.exists()


# -- the audit log's rows, as a project listening to them sees them ---------------------------


def test_a_bulk_writes_audit_rows_send_post_save_as_a_single_writes_row_does(api):
    """A single write's audit row is saved with ``save()`` (a ``post_save`` a project may
    forward to its SIEM); a bulk write's were inserted in one statement that sends none, so
    the bulk rows' audit never left. The outbox already stores one by one when its model
    is listened to; the audit log does the same now."""
    from django_arc.audit.models import AuditLog

    seen = []

    def forward(sender, instance, created=False, raw=False, **kwargs):
        seen.append((instance.action, instance.object_id, created, raw))

    author = AuthorFactory()
    items = [{"title": f"t{i}", "isbn": f"i{i}", "author": author.pk} for i in range(2)]
    with signal_connected(post_save, forward, AuditLog):
        r = api.post("/api/bulk-books/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    ids = r.json()["data"]["ids"]
    assert seen == [("created", str(pk), True, False) for pk in ids]
    assert AuditLog.objects.count() == 2


# -- what a project's receivers publish, and writes that go around the resources ---------------


def test_an_event_a_post_save_receiver_publishes_shares_the_writes_transaction(api):
    """Correct before this review, pinned: ``events.publish`` from a project's
    ``post_save`` stores its event in the write's transaction, before the write's own
    event (the receiver runs in ``save()``), and a write that then fails (an after-hook
    raising) rolls both back. A receiver raising is a 500 with nothing stored."""
    from django_arc import events

    def indexed(sender, instance, created=False, **kwargs):
        events.publish(events.create_event("books.indexed", {"id": instance.pk}))

    author = AuthorFactory()
    with signal_connected(post_save, indexed, Book):
        r = api.post(
            "/api/books/", {"title": "ok", "isbn": "i1", "author": author.pk}, format="json"
        )
        assert r.status_code == 201, r.content
        assert list(OutboxEvent.objects.order_by("id").values_list("type", flat=True)) == [
            "books.indexed",
            "books.created",
        ]
        r = api.post(
            "/api/books/", {"title": "boom-after", "isbn": "i2", "author": author.pk}, format="json"
        )
        assert r.status_code == 409, r.content
    assert Book.objects.count() == 1 and OutboxEvent.objects.count() == 2

    def fails(sender, instance, **kwargs):
        raise RuntimeError("the project's receiver failed")

    api.raise_request_exception = False
    with signal_connected(post_save, fails, Book):
        r = api.post(
            "/api/books/", {"title": "x", "isbn": "i3", "author": author.pk}, format="json"
        )
    assert r.status_code == 500 and r.json()["code"] == "INTERNAL_ERROR"
    assert b"the project's receiver failed" not in r.content
    assert Book.objects.count() == 1 and OutboxEvent.objects.count() == 2


def test_a_fixture_load_and_writes_around_the_resources_store_no_event(tmp_path):
    """Pinned (docs/events.md): only writes through a resource (and ``events.publish``)
    store events. ``loaddata`` saves raw and emits nothing; nor do ``QuerySet.update()``,
    ``bulk_create``, a ``Model.save()`` of the project's, or the rows a resource's delete
    removes by cascade (a book's reviews): only the deleted row's event is stored."""
    from django.core.management import call_command

    from tests.testapp.models import Review

    author = AuthorFactory()
    fixture = tmp_path / "books.json"
    fixture.write_text(
        '[{"model": "testapp.book", "pk": 90, "fields": {"title": "f", "isbn": "f-1", '
        f'"author": {author.pk}, "uid": "8d3c6a56-3c3f-4d0e-9d57-2b5f0b7b8f10", '
        '"created_at": "2026-01-01T00:00:00Z"}}]'
    )
    call_command("loaddata", str(fixture), verbosity=0)
    assert Book.objects.filter(pk=90).exists()
    Book.objects.filter(pk=90).update(title="g")
    Book.objects.bulk_create([Book(title="h", isbn="h-1", author=author)])
    BookFactory()
    Review.objects.create(book_id=90, body="r")
    assert not OutboxEvent.objects.exists()
    r = client_for(UserFactory()).delete("/api/books/90/")
    assert r.status_code == 200, r.content
    assert not Review.objects.exists()
    assert [(e.type, e.meta["resource_id"]) for e in OutboxEvent.objects.all()] == [
        ("books.deleted", "90")
    ]


def test_a_django_validation_error_from_pre_save_is_a_400_naming_the_field(api):
    """Pinned: Django's ``ValidationError`` raised by a project's ``pre_save`` is the
    envelope's 400 naming the field, nothing stored."""
    from django.core.exceptions import ValidationError

    def refuse(sender, instance, **kwargs):
        raise ValidationError({"title": "Refused by the project's receiver."})

    author = AuthorFactory()
    with signal_connected(pre_save, refuse, Book):
        r = api.post(
            "/api/books/", {"title": "x", "isbn": "i1", "author": author.pk}, format="json"
        )
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["details"] == {"title": ["Refused by the project's receiver."]}
    assert not Book.objects.exists() and not OutboxEvent.objects.exists()


def test_a_soft_delete_and_restore_send_no_save_signal(api):
    """Pinned (docs/presets/soft-delete.md): a soft delete and a restore are one
    conditional ``UPDATE``; no ``pre_save``/``post_save`` is sent, the events say it."""
    from tests.testapp.models import Article

    article = Article.objects.create(slug="s", title="t")
    seen = []

    def saw(sender, instance, **kwargs):
        seen.append(instance.pk)

    with signal_connected(post_save, saw, Article), signal_connected(pre_save, saw, Article):
        assert api.delete(f"/api/soft-articles/{article.pk}/").status_code == 200
        assert api.post(f"/api/soft-articles/{article.pk}/restore/").status_code == 200
    assert seen == []
    assert list(OutboxEvent.objects.order_by("id").values_list("type", flat=True)) == [
        "soft-articles.deleted",
        "soft-articles.restored",
    ]


# -- a write's own transaction, where the model runs the project's code ------------------------


def signal_plain_site():
    """A site with a resource over Book with no hook, preset or serializer of its own,
    whose write (with the outbox off) is one statement in autocommit."""
    from django_arc import Resource, ResourceSite
    from django_arc import permissions as P

    site = ResourceSite(name="signal-plain")
    site.register(
        type(
            "SignalPlainBooks",
            (Resource,),
            {
                "model": Book,
                "name": "books",
                "fields": ["id", "title", "isbn", "author"],
                "permissions": {
                    "list": P.allow_public(),
                    "get": P.allow_public(),
                    "create": P.allow_public(),
                    "update": P.allow_public(),
                    "delete": P.allow_public(),
                },
            },
        )
    )
    return site


@pytest.mark.parametrize("what", ["post_save", "save"])
def test_with_the_outbox_off_a_receiver_failing_after_its_own_write_leaves_nothing(
    settings, what, monkeypatch
):
    """With ``EVENTS.OUTBOX`` off, a resource whose write is one statement (no hook, no
    preset, no serializer of its own) wrote in autocommit, with no transaction of its own:
    a project's ``post_save`` receiver (or ``save()`` override) that wrote a row of its own
    and then failed left the row and the receiver's row committed behind a 500. The
    model's own code counts as more than one statement now: the write has its
    transaction, and nothing of it stays."""
    from django_arc.sites import _all_sites
    from tests.helpers import site_mounted
    from tests.testapp.models import Review

    settings.ARC = {**settings.ARC, "EVENTS": {**settings.ARC.get("EVENTS", {}), "OUTBOX": False}}

    def review_then_fail(instance):
        Review.objects.create(book=instance, body="auto")
        raise RuntimeError("the project's code failed after writing")

    def receiver(sender, instance, **kwargs):
        review_then_fail(instance)

    original = Book.save

    def save(self, *args, **kwargs):
        original(self, *args, **kwargs)
        review_then_fail(self)

    author = AuthorFactory()
    site = signal_plain_site()
    client = client_for()
    client.raise_request_exception = False
    try:
        with site_mounted(settings, "signal-plain", site):
            if what == "save":
                monkeypatch.setattr(Book, "save", save)
                r = client.post(
                    "/signal-plain/books/",
                    {"title": "t", "isbn": "i", "author": author.pk},
                    format="json",
                )
            else:
                with signal_connected(post_save, receiver, Book):
                    r = client.post(
                        "/signal-plain/books/",
                        {"title": "t", "isbn": "i", "author": author.pk},
                        format="json",
                    )
    finally:
        _all_sites.remove(site)
    assert r.status_code == 500, r.content
    assert not Book.objects.exists()
    assert not Review.objects.exists()


# -- historical models a migration renders (fix-seen9c) -----------------------------------------


def _seen9c_receiver_counts():
    """How many receivers ``post_save`` and ``post_delete`` hold, the collected ones gone:
    a garbage collection, then a send's lookup (which clears receivers whose weak reference
    died, as Django does before every lookup)."""
    gc.collect()
    counts = []
    for signal in (post_save, post_delete):
        signal.has_listeners(Product)
        counts.append(len(signal.receivers))
    return counts


def _seen9c_render_migration_state():
    """Every app's models as their migrations render them (what ``migrate`` does for each
    state it passes through): new historical classes, each sent ``class_prepared``."""
    return MigrationLoader(connection, ignore_no_migrations=True).project_state().apps


def test_seen9c_receivers_of_historical_models_go_with_them(monkeypatch):
    """The query cache connects the historical models a migration renders over a cached
    table (so a data migration's saves invalidate), and never disconnected them: every
    ``migrate`` (forwards and back: about 88 receivers a round trip on each of ``post_save``
    and ``post_delete`` in the test project) added receivers for classes long collected.
    They are held by the class now, so they go when it does; while it lives, a save
    through it still bumps the cached resources of its table."""
    before = _seen9c_receiver_counts()
    rendered = []
    for _ in range(3):
        historical = _seen9c_render_migration_state()
        Historical = historical.get_model("shop", "Product")
        assert post_save.has_listeners(Historical)  # while it lives, it is watched
        rendered.append(weakref.ref(Historical))
        del historical, Historical
    after = _seen9c_receiver_counts()
    assert [ref() for ref in rendered] == [None, None, None]  # the classes are gone
    # and their receivers with them (a class rendered before the test, still alive then,
    # may have gone meanwhile too)
    assert after[0] <= before[0] and after[1] <= before[1], (before, after)
    # a data migration's save through a historical model still invalidates
    bumped = []
    historical = _seen9c_render_migration_state()
    Historical = historical.get_model("shop", "Product")
    org = historical.get_model("shop", "Organization").objects.create(name="o", slug="o")
    monkeypatch.setattr(
        invalidation, "bump_on_commit", lambda keys, using=None: bumped.append(set(keys))
    )
    Historical.objects.create(name="x", sku="X-1", price=1, organization=org)
    assert bumped and all(bumped), bumped


class _Seen9cListener:
    """A project's receiver that is a bound method (connected weakly, as by default)."""

    def heard(self, sender, **kwargs):
        pass

    async def heard_async(self, sender, **kwargs):
        pass


@pytest.mark.parametrize("use_caching", [False, True])
def test_seen9c_project_listens_counts_the_receivers_a_send_would_run(use_caching):
    """``signals.project_listens`` read Django's private ``Signal._live_receivers``, whose
    answer changed shape in Django 5.0; it reads ``has_listeners()`` and the ``receivers``
    entries now, and must count exactly the receivers a send for that sender would run
    that are not django-arc's: connected for the sender or for every sender, alive (a
    collected weak one is not), sync or async, strong or weak. (On both Django 4.2 and
    5.2; ``pre_save``/``post_save`` cache their lookups, ``use_caching``.)"""
    from django.dispatch import Signal

    from django_arc.signals import arc_receiver, project_listens

    signal = Signal(use_caching=use_caching)

    def listening():
        return {s.__name__ for s in (Product, Book, OutboxEvent) if project_listens(signal, s)}

    def arcs_own(sender, **kwargs):
        pass

    def projects(sender, **kwargs):
        pass

    def everyones(sender, **kwargs):
        pass

    assert listening() == set()
    signal.connect(arc_receiver(arcs_own), sender=Product, weak=False)
    assert listening() == set()  # django-arc's own receiver is no project's
    signal.connect(projects, sender=Book)
    assert listening() == {"Book"}
    listener = _Seen9cListener()
    signal.connect(listener.heard, sender=Product)
    assert listening() == {"Book", "Product"}
    del listener
    gc.collect()
    assert listening() == {"Book"}  # a collected weak receiver runs no more
    async_listener = _Seen9cListener()
    signal.connect(async_listener.heard_async, sender=OutboxEvent)
    assert listening() == {"Book", "OutboxEvent"}
    signal.connect(everyones)
    assert listening() == {"Book", "OutboxEvent", "Product"}
    signal.disconnect(everyones)
    assert listening() == {"Book", "OutboxEvent"}
    # the query cache's receivers of a historical model are django-arc's own too
    Historical = _seen9c_render_migration_state().get_model("shop", "Product")
    assert post_save.has_listeners(Historical)
    assert not project_listens(post_save, Historical)
