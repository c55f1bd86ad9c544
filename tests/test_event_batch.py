"""``events.publish_many`` / ``signals.event_batch``: every receiver still sees every event,
and the outbox stores a batch with one INSERT, in the caller's transaction."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_arc import events
from django_arc.events.configured import get_transport
from django_arc.events.transports import MemoryTransport
from django_arc.outbox.models import OutboxEvent
from django_arc.signals import event_batch, resource_event
from tests.factories import AuthorFactory, UserFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


def outbox_inserts(ctx):
    return [
        q
        for q in ctx.captured_queries
        if q["sql"].startswith('INSERT INTO "django_arc_outboxevent"')
    ]


def test_publish_many_is_one_insert_and_every_receiver_sees_every_event():
    seen = []

    def receiver(sender, event, **kwargs):
        seen.append(event.type)

    resource_event.connect(receiver)
    try:
        batch = [events.create_event(f"things.e{i}", {"i": i}) for i in range(30)]
        with CaptureQueriesContext(connection) as ctx, transaction.atomic():
            stored = events.publish_many(batch)
    finally:
        resource_event.disconnect(receiver)
    assert [e.type for e in stored] == seen == [f"things.e{i}" for i in range(30)]
    assert len(outbox_inserts(ctx)) == 1
    rows = list(OutboxEvent.objects.order_by("id"))
    assert [(r.type, r.payload) for r in rows] == [(f"things.e{i}", {"i": i}) for i in range(30)]
    assert [r.event_id for r in rows] == [str(e.id) for e in stored]


def test_a_failing_batch_stores_nothing():
    with pytest.raises(RuntimeError), transaction.atomic(), event_batch():
        events.publish(events.create_event("things.a", {}))
        raise RuntimeError("the write failed")
    assert not OutboxEvent.objects.exists()


def test_nested_batches_flush_once_at_the_outer_end():
    with CaptureQueriesContext(connection) as ctx, transaction.atomic(), event_batch():
        events.publish_many([events.create_event("things.a", {})])
        assert not OutboxEvent.objects.exists()  # still buffered
        events.publish(events.create_event("things.b", {}))
    assert len(outbox_inserts(ctx)) == 1
    assert sorted(OutboxEvent.objects.values_list("type", flat=True)) == ["things.a", "things.b"]


def test_duplicate_dedupe_keys_in_a_batch_keep_one_row():
    first = events.create_event("things.a", {}, idempotency_key="k:1")
    again = events.create_event("things.a", {}, idempotency_key="k:1")
    other = events.create_event("things.a", {}, idempotency_key="k:2")
    with transaction.atomic():
        events.publish_many([first, again, other])
    assert sorted(OutboxEvent.objects.values_list("dedupe_key", flat=True)) == ["k:1", "k:2"]


class _RowFailed(Exception):
    pass


def test_an_event_of_a_savepoint_rolled_back_inside_a_batch_is_not_stored():
    """A batch around several writes, each in its own savepoint (an import going on past a
    row that fails): the failed row's write is rolled back, so its event, still buffered
    when the batch ends, must not be stored with the others (SPEC §8: nothing is published
    for a rolled-back write). Those of the writes that stand are, in one INSERT."""
    with CaptureQueriesContext(connection) as ctx, transaction.atomic(), event_batch():
        events.publish(events.create_event("rows.kept", {"n": 1}))
        for n in (2, 3):
            try:
                with transaction.atomic():
                    events.publish(events.create_event("rows.kept", {"n": n}))
                    with transaction.atomic():
                        events.publish(events.create_event("rows.nested", {"n": n}))
                    if n == 2:
                        raise _RowFailed
            except _RowFailed:
                pass
        events.publish(events.create_event("rows.kept", {"n": 4}))
    assert len(outbox_inserts(ctx)) == 1
    rows = OutboxEvent.objects.order_by("id")
    assert [(r.type, r.payload["n"]) for r in rows] == [
        ("rows.kept", 1),
        ("rows.kept", 3),
        ("rows.nested", 3),
        ("rows.kept", 4),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_batch_spanning_whole_transactions_stores_the_committed_ones_only():
    """A batch opened outside any transaction, around transactions of their own: the events
    of one that rolled back are dropped; those of one that committed are stored."""
    with event_batch():
        with transaction.atomic():
            events.publish(events.create_event("tx.committed", {}))
        try:
            with transaction.atomic():
                events.publish(events.create_event("tx.rolled_back", {}))
                raise _RowFailed
        except _RowFailed:
            pass
        events.publish(events.create_event("tx.autocommit", {}))
    assert sorted(OutboxEvent.objects.values_list("type", flat=True)) == [
        "tx.autocommit",
        "tx.committed",
    ]


# -- the outbox off: a batch is published with one publish_many after the commit ----------------


class CountingTransport(MemoryTransport):
    """The in-process transport, counting the calls a publisher makes."""

    def __init__(self, **options):
        super().__init__(**options)
        self.calls = []

    def publish(self, event):
        self.calls.append("publish")
        super().publish(event)

    def publish_many(self, events):
        self.calls.append(("publish_many", len(events)))
        with self._lock:
            self.published.extend(events)
        for event in events:
            self.dispatch(event)


class RefusingTransport(CountingTransport):
    """Refuses a batch as a whole (one event too long for it), and that event alone."""

    def publish_many(self, events):
        self.calls.append(("publish_many", len(events)))
        raise ValueError("one event is too long")

    def publish(self, event):
        self.calls.append("publish")
        if event.payload.get("n") == 2:
            raise ValueError("too long")
        MemoryTransport.publish(self, event)


@pytest.fixture
def outbox_off(settings):
    def configured(transport_class=CountingTransport):
        events_settings = {
            **settings.ARC.get("EVENTS", {}),
            "OUTBOX": False,
            "TRANSPORT": transport_class,
        }
        settings.ARC = {**settings.ARC, "EVENTS": events_settings}
        return get_transport()

    return configured


@pytest.mark.django_db(transaction=True)
def test_outbox_off_a_bulk_write_is_published_with_one_call_after_the_commit(outbox_off):
    """A bulk write of 20 rows (outbox off) published each event with its own call after
    the commit: 20 round trips on Redis (RedisStreamsTransport pipelines publish_many into
    one). It is one publish_many, after the commit, with the events in order."""
    transport = outbox_off()
    author = AuthorFactory()
    api = client_for(UserFactory())
    items = [{"title": f"t{i}", "isbn": f"off-{i}", "author": author.pk} for i in range(20)]
    created = api.post("/api/bulk-books/bulk/", {"items": items}, format="json")
    assert created.status_code == 201, created.content
    assert transport.calls == [("publish_many", 20)]
    ids = created.json()["data"]["ids"]
    assert [(e.type, e.payload["id"]) for e in transport.published] == [
        ("bulk-books.created", pk) for pk in ids
    ]
    assert OutboxEvent.objects.count() == 0
    transport.clear()
    transport.calls.clear()
    assert api.delete("/api/bulk-books/bulk/", {"ids": ids}, format="json").status_code == 200
    assert transport.calls == [("publish_many", 20)]


@pytest.mark.django_db(transaction=True)
def test_outbox_off_a_refused_bulk_write_publishes_nothing(outbox_off):
    transport = outbox_off()
    api = client_for(UserFactory())
    items = [{"title": "forbidden", "isbn": "x", "author": AuthorFactory().pk}]
    assert api.post("/api/bulk-books/bulk/", {"items": items}, format="json").status_code == 422
    assert transport.calls == [] and transport.published == []


@pytest.mark.django_db(transaction=True)
def test_outbox_off_an_event_of_a_savepoint_rolled_back_inside_a_batch_is_not_published(
    outbox_off,
):
    """The outbox-off twin of the stored batch above: only the events of the writes that
    stand are published, once the transaction commits, in one call."""
    transport = outbox_off()
    with transaction.atomic(), event_batch():
        events.publish(events.create_event("rows.kept", {"n": 1}))
        for n in (2, 3):
            try:
                with transaction.atomic():
                    events.publish(events.create_event("rows.kept", {"n": n}))
                    with transaction.atomic():
                        events.publish(events.create_event("rows.nested", {"n": n}))
                    if n == 2:
                        raise _RowFailed
            except _RowFailed:
                pass
        events.publish(events.create_event("rows.kept", {"n": 4}))
        assert transport.published == []  # not before the commit
    assert [(e.type, e.payload["n"]) for e in transport.published] == [
        ("rows.kept", 1),
        ("rows.kept", 3),
        ("rows.nested", 3),
        ("rows.kept", 4),
    ]
    assert transport.calls == [("publish_many", 4)]


@pytest.mark.django_db(transaction=True)
def test_outbox_off_a_batch_of_a_rolled_back_transaction_publishes_nothing(outbox_off):
    transport = outbox_off()
    with pytest.raises(_RowFailed), transaction.atomic():
        with event_batch():
            events.publish(events.create_event("rows.gone", {"n": 1}))
        raise _RowFailed
    assert transport.published == [] and transport.calls == []


@pytest.mark.django_db(transaction=True)
def test_outbox_off_a_batch_spanning_whole_transactions_publishes_the_committed_ones(
    outbox_off,
):
    transport = outbox_off()
    with event_batch():
        with transaction.atomic():
            events.publish(events.create_event("tx.committed", {}))
        try:
            with transaction.atomic():
                events.publish(events.create_event("tx.rolled_back", {}))
                raise _RowFailed
        except _RowFailed:
            pass
        events.publish(events.create_event("tx.autocommit", {}))
    assert [e.type for e in transport.published] == ["tx.committed", "tx.autocommit"]


@pytest.mark.django_db(transaction=True)
def test_outbox_off_a_batch_the_transport_refuses_is_published_event_by_event(outbox_off):
    """A batch the transport refuses as a whole (one event too long for it) loses only
    that event, as when each was published on its own."""
    transport = outbox_off(RefusingTransport)
    with transaction.atomic(), event_batch():
        for n in (1, 2, 3):
            events.publish(events.create_event("rows.kept", {"n": n}))
    assert [e.payload["n"] for e in transport.published] == [1, 3]
    assert transport.calls == [("publish_many", 3), "publish", "publish", "publish"]


class FailingOnTwoTransport(MemoryTransport):
    """The in-process transport with the base ``publish_many`` (one ``publish`` each), whose
    ``publish`` refuses the event ``n == 2``: the batch call publishes the first event
    before it raises on the second."""

    def publish(self, event):
        if event.payload.get("n") == 2:
            raise ValueError("too long")
        super().publish(event)


@pytest.mark.django_db(transaction=True)
def test_outbox_off_a_batch_failing_part_way_publishes_no_event_twice(outbox_off):
    """A transport whose publish_many publishes event by event (Transport's own, any
    transport that does not pipeline) raised on the second event after publishing the first;
    the event-by-event fallback then published the first again: subscribers got it twice,
    where one publish per event (before the batch was published together) sent it once."""
    transport = outbox_off(FailingOnTwoTransport)
    with transaction.atomic(), event_batch():
        for n in (1, 2, 3):
            events.publish(events.create_event("rows.kept", {"n": n}))
    assert [e.payload["n"] for e in transport.published] == [1, 3]
