"""Outbox relay rules no test asserted, each found by a hand mutant of ``outbox/relay.py``
that the suite let through:

- a late worker's ack or failure while another worker *holds* the row's lease (claimed,
  still publishing) touches nothing of the holder's (the takeover tests let the thief
  deliver first, so the status alone kept the late worker out);
- the claim orders by ``visible_at``, then the id;
- a dead-lettered row keeps its error; ``requeue`` takes primary keys as digit strings;
  ``relay_batch`` caps a huge ``limit`` at ``MAX_BATCH_SIZE``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_arc.events.event import create_event
from django_arc.outbox import EventOutbox, OutboxEvent
from django_arc.outbox.policy import exponential_backoff
from tests.outbox_support import RecordingTransport

pytestmark = pytest.mark.django_db


class _ClaimedMeanwhile(RecordingTransport):
    """While worker A publishes, A's lease runs out and worker B claims the rows (and is
    still publishing them when A answers)."""

    def __init__(self, thief: EventOutbox, fail: bool = False) -> None:
        super().__init__(many=not fail)
        self.thief, self.fail = thief, fail
        self.claimed = []

    def _steal(self):
        OutboxEvent.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        self.claimed = self.thief._claim(10, "B")

    def publish_many(self, events):
        self._steal()
        super().publish_many(events)

    def publish(self, event):
        self._steal()
        raise ConnectionError("A's broker is down")


def _leased_by_b():
    row = OutboxEvent.objects.get()
    return row.status, row.lease_owner, row.attempts, row.last_error


def test_a_late_ack_leaves_a_row_another_worker_holds_alone():
    a = _ClaimedMeanwhile(EventOutbox(RecordingTransport()))
    outbox_a = EventOutbox(a, lease_seconds=30)
    outbox_a.store(create_event("products.created", {"i": 1}))
    result = outbox_a.relay_batch(worker_id="A")
    assert len(a.claimed) == 1
    assert result.relayed == 0 and result.ownership_mismatches == 1
    assert _leased_by_b() == ("pending", "B", 0, "")


def test_a_late_failure_leaves_a_row_another_worker_holds_alone():
    a = _ClaimedMeanwhile(EventOutbox(RecordingTransport()), fail=True)
    outbox_a = EventOutbox(a, lease_seconds=30)
    outbox_a.store(create_event("products.created", {"i": 1}))
    result = outbox_a.relay_batch(worker_id="A")
    assert len(a.claimed) == 1
    assert result.publish_failed == 1 and result.ownership_mismatches == 1
    assert _leased_by_b() == ("pending", "B", 0, "")


def test_the_claim_takes_the_row_visible_longest_first_not_the_lowest_id():
    """``visible_at`` orders the claim, then the id: a row whose retry came due earlier goes
    before an older row that came due later, on SQLite and PostgreSQL alike."""
    transport = RecordingTransport()
    outbox = EventOutbox(transport)
    older = outbox.store(create_event("products.created", {"i": 1}))
    newer = outbox.store(create_event("products.created", {"i": 2}))
    now = timezone.now()
    OutboxEvent.objects.filter(pk=older.pk).update(visible_at=now - timedelta(minutes=1))
    OutboxEvent.objects.filter(pk=newer.pk).update(visible_at=now - timedelta(minutes=2))
    assert outbox.relay_batch(limit=1, worker_id="A").relayed == 1
    assert [event.id for event in transport.published] == [newer.event_id]


def test_a_dead_lettered_row_keeps_the_error_that_killed_it_and_requeues_by_a_digit_string():
    outbox = EventOutbox(
        RecordingTransport(fail_types={"x.dies"}), exponential_backoff(max_attempts=1)
    )
    row = outbox.store(create_event("x.dies", {}))
    result = outbox.relay_batch(worker_id="A")
    assert result.dead_lettered == 1
    dead = OutboxEvent.objects.get(pk=row.pk)
    assert (dead.status, dead.attempts) == ("dead", 1)
    assert dead.last_error == "ConnectionError: broker refused x.dies"
    # the admin and the command hand primary keys over as text
    assert outbox.requeue([str(row.pk)]) == 1
    again = OutboxEvent.objects.get(pk=row.pk)
    assert (again.status, again.attempts) == ("pending", 0)


def test_a_limit_beyond_the_largest_batch_is_the_largest_batch():
    """``relay_batch(limit=...)`` is capped at ``MAX_BATCH_SIZE``: a limit no database
    integer holds is not sent to the claim's ``LIMIT``."""
    transport = RecordingTransport()
    outbox = EventOutbox(transport)
    outbox.store(create_event("products.created", {}))
    assert outbox.relay_batch(limit=10**20, worker_id="A").relayed == 1
