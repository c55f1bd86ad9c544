"""Storing events: same transaction as the write, dedupe by idempotency key, receiver modes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_arc.events.event import create_child_event, create_event
from django_arc.outbox import EventOutbox, OutboxEvent, store_event
from django_arc.outbox.store import store_event_without_row
from django_arc.signals import resource_event
from tests.outbox_support import RecordingTransport

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def test_store_inserts_a_pending_row_with_the_envelope():
    event = create_event(
        "products.created",
        {"id": 7, "name": "Mug"},
        correlation_id="req-1",
        resource="products",
        resource_id=7,
        organization_id=3,
        partition_key="products:7",
    )
    row = EventOutbox(RecordingTransport()).store(event)

    row = OutboxEvent.objects.get(pk=row.pk)
    assert row.event_id == event.id
    assert row.type == "products.created"
    assert row.payload == {"id": 7, "name": "Mug"}
    assert row.meta["correlation_id"] == "req-1"
    assert row.meta["resource_id"] == "7"
    assert row.meta["organization_id"] == "3"
    assert row.status == "pending"
    assert row.attempts == 0
    assert row.partition_key == "products:7"
    assert row.dedupe_key is None
    assert row.lease_owner is None and row.delivered_at is None
    assert row.visible_at <= row.created_at or row.visible_at == row.created_at


def test_store_returns_the_saved_row_and_sends_model_signals():
    from django.db.models.signals import post_save, pre_save

    seen = []

    def before(sender, instance, **kwargs):
        seen.append(("pre", instance.pk, kwargs["using"]))

    def after(sender, instance, created, **kwargs):
        seen.append(("post", instance.pk, created))

    pre_save.connect(before, sender=OutboxEvent, dispatch_uid="test-outbox-pre")
    post_save.connect(after, sender=OutboxEvent, dispatch_uid="test-outbox-post")
    try:
        row = store_event(create_event("products.created", {"id": 1, "price": Decimal("9.50")}))
    finally:
        pre_save.disconnect(dispatch_uid="test-outbox-pre", sender=OutboxEvent)
        post_save.disconnect(dispatch_uid="test-outbox-post", sender=OutboxEvent)

    stored = OutboxEvent.objects.get()
    assert row.pk == stored.pk and not row._state.adding
    assert seen == [("pre", None, "default"), ("post", stored.pk, True)]
    assert stored.payload == {"id": 1, "price": "9.50"}
    assert stored.last_error == "" and stored.attempts == 0


def test_rolled_back_transaction_leaves_no_row():
    with pytest.raises(Boom):
        with transaction.atomic():
            store_event(create_event("products.created", {"id": 1}))
            assert OutboxEvent.objects.count() == 1
            raise Boom
    assert OutboxEvent.objects.count() == 0


def test_signal_receiver_stores_inside_the_senders_transaction():
    kept = create_event("products.created", {"id": 1})
    dropped = create_event("products.created", {"id": 2})
    with transaction.atomic():
        resource_event.send(sender=None, event=kept)
    with pytest.raises(Boom):
        with transaction.atomic():
            resource_event.send(sender=None, event=dropped)
            raise Boom
    assert list(OutboxEvent.objects.values_list("event_id", flat=True)) == [kept.id]


def test_receiver_row_matches_store_and_model_signals_see_it():
    """The receiver inserts without building a model instance unless a model signal listens;
    either way the row is the one ``store`` writes."""
    from django.db.models.signals import post_save

    quiet = create_event("products.created", {"id": 1, "price": Decimal("9.50")}, user_id=4)
    listened = create_event("products.created", {"id": 2}, partition_key="p" * 300)
    seen = []

    def after(sender, instance, created, **kwargs):
        seen.append((instance.event_id, instance.pk, created))

    with transaction.atomic():
        resource_event.send(sender=None, event=quiet)
        post_save.connect(after, sender=OutboxEvent, dispatch_uid="test-outbox-receiver-post")
        try:
            resource_event.send(sender=None, event=listened)
        finally:
            post_save.disconnect(dispatch_uid="test-outbox-receiver-post", sender=OutboxEvent)

    first, second = OutboxEvent.objects.order_by("id")
    assert seen == [(listened.id, second.pk, True)]
    assert (first.event_id, first.type, first.payload) == (
        quiet.id,
        "products.created",
        {"id": 1, "price": "9.50"},
    )
    assert first.meta == quiet.meta.to_dict()
    assert (first.status, first.attempts, first.last_error) == ("pending", 0, "")
    assert first.lease_owner is first.lease_expires_at is first.delivered_at is None
    assert first.dedupe_key is None and first.partition_key is None
    assert first.visible_at == first.created_at
    assert second.partition_key == "p" * 255


def test_duplicate_dedupe_key_returns_existing_row_and_keeps_transaction_usable():
    outbox = EventOutbox(RecordingTransport())
    first = create_event("orders.created", {"n": 1}, idempotency_key="k1:orders.created:9")
    retry = create_event("orders.created", {"n": 2}, idempotency_key="k1:orders.created:9")
    with transaction.atomic():
        row1 = outbox.store(first)
        row2 = outbox.store(retry)
        # The transaction is still usable after the ignored duplicate.
        other = outbox.store(create_event("orders.created", {"n": 3}))
    assert row2.pk == row1.pk
    assert row2.event_id == first.id
    assert row2.payload == {"n": 1}
    assert OutboxEvent.objects.count() == 2
    assert other.pk != row1.pk


def test_the_receivers_keyed_insert_is_one_statement_and_skips_duplicates():
    """A keyed request's events (``store_event_without_row``, the ``resource_event``
    receiver's path): one ``INSERT … ON CONFLICT DO NOTHING`` each, no read back; a retry
    with the same key, or the same event again, adds nothing and leaves the transaction
    usable."""
    first = create_event("orders.created", {"n": 1}, idempotency_key="k1:orders.created:9")
    retry = create_event("orders.created", {"n": 2}, idempotency_key="k1:orders.created:9")
    with transaction.atomic():
        with CaptureQueriesContext(connection) as ctx:
            store_event_without_row(first)
        assert len(ctx) == 1 and "ON CONFLICT DO NOTHING" in ctx[0]["sql"]
        store_event_without_row(retry)
        store_event_without_row(first)
        store_event_without_row(create_event("orders.created", {"n": 3}, idempotency_key="k2"))
    rows = list(OutboxEvent.objects.order_by("id").values("event_id", "payload", "dedupe_key"))
    assert rows == [
        {"event_id": first.id, "payload": {"n": 1}, "dedupe_key": "k1:orders.created:9"},
        {"event_id": rows[1]["event_id"], "payload": {"n": 3}, "dedupe_key": "k2"},
    ]
    assert OutboxEvent.objects.get(event_id=first.id).meta["idempotency_key"] == (
        "k1:orders.created:9"
    )


def test_same_event_stored_twice_with_key_is_a_no_op():
    outbox = EventOutbox(RecordingTransport())
    event = create_event("orders.created", {}, idempotency_key="abc")
    assert outbox.store(event).pk == outbox.store(event).pk
    assert OutboxEvent.objects.count() == 1


def test_long_dedupe_key_is_hashed_but_still_dedupes():
    key = "x" * 2000
    outbox = EventOutbox(RecordingTransport())
    row1 = outbox.store(create_event("a.b", {}, idempotency_key=key))
    row2 = outbox.store(create_event("a.b", {}, idempotency_key=key))
    assert row1.pk == row2.pk
    assert row1.dedupe_key.startswith("sha256:") and len(row1.dedupe_key) <= 512
    assert OutboxEvent.objects.get().meta["idempotency_key"] == key


def test_distinct_dedupe_keys_do_not_collapse():
    outbox = EventOutbox(RecordingTransport())
    outbox.store(create_event("products.created", {}, idempotency_key="k:products.created:1"))
    outbox.store(create_event("products.created", {}, idempotency_key="k:products.created:2"))
    assert OutboxEvent.objects.count() == 2


def test_a_child_of_a_keyed_event_is_stored_once_and_never_taken_for_its_parent():
    """A child inherits its parent's idempotency key (SPEC §8) but is another event: stored,
    and deduped only against the same child made again (a parent delivered twice)."""
    outbox = EventOutbox(RecordingTransport())
    parent = create_event("orders.created", {"id": 9}, idempotency_key="k:orders.created:9")
    outbox.store(parent)
    reserved = create_child_event(parent, "stock.reserved", {"sku": "LAMP-1"})
    assert reserved.meta.idempotency_key == parent.meta.idempotency_key
    outbox.store(reserved)
    outbox.store(create_child_event(parent, "stock.reserved", {"sku": "LAMP-1"}))  # again
    outbox.store(create_child_event(parent, "stock.reserved", {"sku": "DESK-2"}))
    outbox.store(create_child_event(parent, "mail.sent", {"sku": "LAMP-1"}))
    rows = OutboxEvent.objects.order_by("id")
    assert [(row.type, row.payload) for row in rows] == [
        ("orders.created", {"id": 9}),
        ("stock.reserved", {"sku": "LAMP-1"}),
        ("stock.reserved", {"sku": "DESK-2"}),
        ("mail.sent", {"sku": "LAMP-1"}),
    ]
    assert {row.meta["idempotency_key"] for row in rows} == {"k:orders.created:9"}
    assert len({row.dedupe_key for row in rows}) == 4


def _age(seconds: float) -> None:
    """Every stored row ``seconds`` older."""
    from datetime import timedelta

    from django.db.models import F

    OutboxEvent.objects.update(created_at=F("created_at") - timedelta(seconds=seconds))


@pytest.mark.parametrize("path", ["receiver", "store_event", "batch", "store_many"])
def test_a_key_older_than_the_idempotency_ttl_no_longer_dedupes(path):
    """After ``TTL_SECONDS`` a request sent with the same key is a new request (SPEC §10):
    its events are stored although the outbox still holds the first run's, whose key is
    cleared; within the TTL the same key still dedupes. Every insert path: one event
    without a row back, ``store_event``, a batch (PostgreSQL's and the others'), and
    ``EventOutbox.store_many`` (which skipped such an event for as long as the old row
    was kept)."""
    from django_arc.outbox.store import store_events_without_rows

    def store(event):
        if path == "receiver":
            store_event_without_row(event)
        elif path == "store_event":
            store_event(event)
        elif path == "store_many":
            EventOutbox(RecordingTransport()).store_many([event, create_event("x.y", {})])
        else:
            store_events_without_rows([(event, None), (create_event("x.y", {}), None)])

    key = "k1:orders.updated:9"
    with override_settings(ARC={"IDEMPOTENCY": {"TTL_SECONDS": 3600}}):
        store(create_event("orders.updated", {"n": 1}, idempotency_key=key))
        _age(3000)
        store(create_event("orders.updated", {"n": 2}, idempotency_key=key))  # a retry
        assert OutboxEvent.objects.filter(type="orders.updated").count() == 1
        _age(700)
        with transaction.atomic():
            store(create_event("orders.updated", {"n": 3}, idempotency_key=key))
    rows = OutboxEvent.objects.filter(type="orders.updated").order_by("id")
    assert [(row.payload, row.dedupe_key) for row in rows] == [({"n": 1}, None), ({"n": 3}, key)]


def test_a_child_events_key_dedupes_however_old():
    """A dead-lettered parent may be requeued any time later: its handler's children must
    still be taken for the ones it made before."""
    parent = create_event("orders.created", {"id": 9}, idempotency_key="k:orders.created:9")
    with override_settings(ARC={"IDEMPOTENCY": {"TTL_SECONDS": 60}}):
        store_event_without_row(create_child_event(parent, "stock.reserved", {"sku": "L"}))
        _age(3600)
        store_event_without_row(create_child_event(parent, "stock.reserved", {"sku": "L"}))
    assert OutboxEvent.objects.count() == 1


@pytest.mark.parametrize(
    "payload",
    [{"x": float("nan")}, {"x": "\x00"}, {"x": "\ud800"}],
    ids=["nan", "nul", "surrogate"],
)
def test_store_refuses_unstorable_json_before_sql_and_the_transaction_stays_usable(payload):
    # store() does not go through publish(): the columns' encoder refuses the same values
    with transaction.atomic():
        with pytest.raises(ValueError):
            EventOutbox(RecordingTransport()).store(create_event("orders.x", payload))
        EventOutbox(RecordingTransport()).store(create_event("orders.y", {"ok": 1}))
    assert list(OutboxEvent.objects.values_list("type", flat=True)) == ["orders.y"]


def test_store_rejects_non_events():
    with pytest.raises(TypeError):
        store_event({"type": "x"})  # type: ignore[arg-type]


def test_duplicate_event_id_without_key_is_an_integrity_error():
    event = create_event("a.b", {})
    store_event(event)
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            store_event(event)


def test_store_many_skips_duplicates():
    outbox = EventOutbox(RecordingTransport())
    events = [create_event("a.b", {"i": i}, idempotency_key=f"k{i % 3}") for i in range(6)]
    outbox.store_many(events)
    assert OutboxEvent.objects.count() == 3


def test_json_payload_with_decimals_and_datetimes_is_stored():
    import datetime
    import decimal

    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    store_event(create_event("a.b", {"price": decimal.Decimal("9.50"), "at": when}))
    row = OutboxEvent.objects.get()
    assert row.payload == {"price": "9.50", "at": "2024-01-02T03:04:05Z"}


@override_settings(ARC={"EVENTS": {"OUTBOX": False}})
def test_outbox_off_publishes_after_commit_only(django_capture_on_commit_callbacks):
    from django_arc.events import get_transport

    transport = get_transport()
    transport.clear()
    committed = create_event("products.created", {"id": 1})
    rolled_back = create_event("products.created", {"id": 2})

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            resource_event.send(sender=None, event=committed)
            assert transport.published == []  # not before commit
    assert len(callbacks) == 1
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Boom):
            with transaction.atomic():
                resource_event.send(sender=None, event=rolled_back)
                raise Boom
    assert callbacks == []
    assert [e.id for e in transport.published] == [committed.id]
    assert OutboxEvent.objects.count() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent inserts need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_keys_store_one_row_on_postgres():
    import threading

    from django.db import connections

    barrier = threading.Barrier(4)
    rows: list[int] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                rows.append(store_event(create_event("a.b", {"i": i}, idempotency_key="same")).pk)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(rows)) == 1
    assert OutboxEvent.objects.count() == 1


@pytest.mark.parametrize("path", ["store_event", "receiver"])
def test_a_keyed_event_sends_model_signals_and_keeps_a_receivers_time(path):
    """The event of a keyed request (its idempotency key is the row's dedupe key) was
    stored with ``bulk_create``, which sends no model signal: a ``pre_save`` receiver
    delaying events never ran for it (the event went out at once) and ``post_save``
    receivers never saw it. It is stored like any event: ``pre_save`` before the insert (its
    ``visible_at`` kept), ``post_save`` once, when the row was stored, not for a repeat."""
    from datetime import timedelta

    from django.db.models.signals import post_save, pre_save
    from django.utils import timezone

    later = timezone.now() + timedelta(hours=1)
    seen = []

    def delay(sender, instance, **kwargs):
        seen.append("pre")
        instance.visible_at = later

    def after(sender, instance, created, **kwargs):
        seen.append(("post", instance.event_id, created, instance.visible_at))

    store = store_event if path == "store_event" else store_event_without_row
    first = create_event("orders.updated", {"n": 1}, idempotency_key="signals-key")
    pre_save.connect(delay, sender=OutboxEvent)
    post_save.connect(after, sender=OutboxEvent)
    try:
        store(first)
        store(create_event("orders.updated", {"n": 1}, idempotency_key="signals-key"))
    finally:
        pre_save.disconnect(delay, sender=OutboxEvent)
        post_save.disconnect(after, sender=OutboxEvent)

    stored = OutboxEvent.objects.get()
    assert stored.event_id == first.id and stored.visible_at == later
    assert seen == ["pre", ("post", first.id, True, later), "pre"]
    assert EventOutbox(RecordingTransport()).relay_batch().attempted == 0


def test_a_time_a_pre_save_receiver_gives_a_new_row_is_kept():
    """A new row is stamped with the database's time on PostgreSQL, except where a
    ``pre_save`` receiver set one of its own (a project delaying an event): that one is
    stored, and the row is not relayed before it."""
    from datetime import timedelta

    from django.db.models.signals import pre_save
    from django.utils import timezone

    later = timezone.now() + timedelta(hours=1)

    def delay(sender, instance, **kwargs):
        instance.visible_at = later

    pre_save.connect(delay, sender=OutboxEvent)
    try:
        row = store_event(create_event("orders.created", {"n": 1}))
    finally:
        pre_save.disconnect(delay, sender=OutboxEvent)
    stored = OutboxEvent.objects.get()
    assert stored.visible_at == row.visible_at == later
    assert stored.created_at == row.created_at
    assert EventOutbox(RecordingTransport()).relay_batch().attempted == 0
