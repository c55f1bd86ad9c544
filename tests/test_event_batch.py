"""``events.publish_many`` / ``signals.event_batch``: every receiver still sees every event,
and the outbox stores a batch with one INSERT, in the caller's transaction."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_arc import events
from django_arc.outbox.models import OutboxEvent
from django_arc.signals import event_batch, resource_event

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
