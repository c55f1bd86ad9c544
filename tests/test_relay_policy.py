"""Failure policy, dead letters, requeue and purge."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from django_arc.events.event import create_event
from django_arc.outbox import DEAD, EventOutbox, OutboxEvent, exponential_backoff, get_outbox
from tests.outbox_support import RecordingTransport

pytestmark = pytest.mark.django_db


def _make_visible() -> None:
    OutboxEvent.objects.filter(status="pending").update(visible_at=timezone.now())


def test_exponential_backoff_grows_caps_and_gives_up():
    policy = exponential_backoff(base=1, max=10, max_attempts=6, jitter=False)
    now = timezone.now()
    delays = [(policy(a, RuntimeError()) - now).total_seconds() for a in range(1, 6)]
    assert [round(d) for d in delays] == [1, 2, 4, 8, 10]
    assert policy(6, RuntimeError()) is DEAD
    assert policy(60, RuntimeError()) is DEAD


def test_exponential_backoff_jitter_stays_in_the_upper_half_and_never_shrinks():
    policy = exponential_backoff(base=timedelta(seconds=2), max=timedelta(minutes=10))
    for _ in range(50):
        previous = 0.0
        for attempts in range(1, 8):
            now = timezone.now()
            delay = (policy(attempts, None) - now).total_seconds()
            nominal = min(600, 2 * 2 ** (attempts - 1))
            assert nominal / 2 - 0.01 <= delay <= nominal + 0.01
            assert delay >= previous - 0.01
            previous = delay


def test_exponential_backoff_rejects_nonsense():
    with pytest.raises(ValueError):
        exponential_backoff(max_attempts=0)
    with pytest.raises(ValueError):
        exponential_backoff(base=-1)


def test_failing_type_is_retried_with_growing_visible_at_then_dead():
    transport = RecordingTransport(fail_types={"payments.captured"})
    outbox = EventOutbox(transport, exponential_backoff(base=1, max=60, max_attempts=4))
    bad = outbox.store(create_event("payments.captured", {"amount": 1})).event_id
    good = outbox.store(create_event("orders.created", {})).event_id

    first = outbox.relay_batch(limit=10)
    assert first.relayed == 1 and first.publish_failed == 1 and first.dead_lettered == 0
    assert transport.ids == [good]

    delays = []
    row = OutboxEvent.objects.get(event_id=bad)
    for expected_attempts in (1, 2, 3):
        assert row.status == "pending"
        assert row.attempts == expected_attempts
        assert row.lease_owner is None and row.lease_expires_at is None
        assert "ConnectionError: broker refused payments.captured" in row.last_error
        delays.append((row.visible_at - timezone.now()).total_seconds())
        # Not visible yet: a batch now does not touch it.
        assert outbox.relay_batch(limit=10).attempted == 0
        _make_visible()
        result = outbox.relay_batch(limit=10)
        assert result.attempted == 1 and result.publish_failed == 1
        row = OutboxEvent.objects.get(event_id=bad)
    assert delays == sorted(delays) and delays[-1] > delays[0]
    assert result.dead_lettered == 1
    assert row.status == "dead"
    assert row.attempts == 4
    assert row.last_error == "ConnectionError: broker refused payments.captured"
    assert [r.event_id for r in outbox.get_dead_lettered(10)] == [bad]
    assert transport.ids == [good]

    # Dead rows are never claimed again...
    _make_visible()
    assert outbox.relay_batch(limit=10).attempted == 0
    # ...until an operator requeues them.
    assert outbox.requeue([row.pk]) == 1
    row.refresh_from_db()
    assert row.status == "pending" and row.attempts == 0 and row.lease_owner is None
    assert row.visible_at <= timezone.now()
    transport.fail_types.clear()
    assert outbox.relay_batch(limit=10).relayed == 1
    assert transport.ids == [good, bad]


def test_requeue_accepts_event_ids_and_querysets_and_ignores_non_dead_rows():
    outbox = EventOutbox(RecordingTransport())
    rows = [outbox.store(create_event("a.b", {"i": i})) for i in range(4)]
    OutboxEvent.objects.filter(pk__in=[r.pk for r in rows[:3]]).update(
        status="dead", attempts=8, last_error="boom"
    )
    OutboxEvent.objects.filter(pk=rows[3].pk).update(status="delivered")
    assert outbox.requeue([rows[0].event_id, str(rows[3].pk)]) == 1
    assert outbox.requeue(OutboxEvent.objects.filter(pk=rows[1].pk)) == 1
    assert outbox.requeue([]) == 0
    statuses = dict(OutboxEvent.objects.values_list("pk", "status"))
    assert statuses == {
        rows[0].pk: "pending",
        rows[1].pk: "pending",
        rows[2].pk: "dead",
        rows[3].pk: "delivered",
    }
    # The reason it died is kept for the record.
    assert OutboxEvent.objects.get(pk=rows[0].pk).last_error == "boom"


def test_purge_removes_only_delivered_rows_older_than_cutoff():
    outbox = EventOutbox(RecordingTransport())
    now = timezone.now()
    old_delivered, new_delivered, old_dead, pending = (
        outbox.store(create_event("a.b", {"i": i})) for i in range(4)
    )
    OutboxEvent.objects.filter(pk=old_delivered.pk).update(
        status="delivered", delivered_at=now - timedelta(days=8)
    )
    OutboxEvent.objects.filter(pk=new_delivered.pk).update(
        status="delivered", delivered_at=now - timedelta(days=1)
    )
    OutboxEvent.objects.filter(pk=old_dead.pk).update(
        status="dead", created_at=now - timedelta(days=30), delivered_at=None
    )
    OutboxEvent.objects.filter(pk=pending.pk).update(created_at=now - timedelta(days=30))

    assert outbox.purge(timedelta(days=7)) == 1
    remaining = set(OutboxEvent.objects.values_list("pk", flat=True))
    assert remaining == {new_delivered.pk, old_dead.pk, pending.pk}
    assert outbox.purge(now - timedelta(hours=1)) == 1
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {old_dead.pk, pending.pk}


def test_broken_failure_policy_is_counted_and_falls_back():
    def broken(attempts, error):
        raise RuntimeError("policy bug")

    transport = RecordingTransport(fail_types={"a.b"})
    outbox = EventOutbox(transport, broken)
    outbox.store(create_event("a.b", {}))
    result = outbox.relay_batch()
    assert result.publish_failed == 1 and result.fail_hook_errors == 1
    row = OutboxEvent.objects.get()
    assert row.status == "pending" and row.attempts == 1
    assert row.visible_at > timezone.now()


def test_policy_returning_garbage_is_a_fail_hook_error():
    transport = RecordingTransport(fail_types={"a.b"})
    outbox = EventOutbox(transport, lambda attempts, error: "tomorrow")
    outbox.store(create_event("a.b", {}))
    assert outbox.relay_batch().fail_hook_errors == 1


def test_custom_policy_decides_dead_immediately():
    transport = RecordingTransport(fail_types={"a.b"})
    outbox = EventOutbox(transport, lambda attempts, error: DEAD)
    outbox.store(create_event("a.b", {}))
    result = outbox.relay_batch()
    assert result.dead_lettered == 1
    assert OutboxEvent.objects.get().status == "dead"


def _policy_at(attempts: int, error: BaseException) -> datetime:
    return timezone.now() + timedelta(hours=attempts)


@override_settings(
    ARC={
        "EVENTS": {"TRANSPORT": "django_arc.events.transports.MemoryTransport"},
        "OUTBOX": {"MAX_ATTEMPTS": 3, "LEASE_SECONDS": 7, "BATCH_SIZE": 11},
    }
)
def test_get_outbox_builds_from_settings():
    outbox = get_outbox()
    assert outbox.lease_seconds == 7 and outbox.batch_size == 11
    assert type(outbox.transport).__name__ == "MemoryTransport"
    # The default policy is exponential_backoff built with MAX_ATTEMPTS.
    assert outbox.failure_policy(3, RuntimeError()) is DEAD
    assert isinstance(outbox.failure_policy(2, RuntimeError()), datetime)
    assert get_outbox() is outbox


@override_settings(
    ARC={
        "EVENTS": {"TRANSPORT": "django_arc.events.transports.MemoryTransport"},
        "OUTBOX": {"FAILURE_POLICY": "tests.test_relay_policy._policy_at"},
    }
)
def test_get_outbox_uses_a_plain_policy_callable():
    assert get_outbox().failure_policy is _policy_at


def test_a_row_failing_past_a_thousand_attempts_keeps_being_retried_at_max():
    """With ``MAX_ATTEMPTS`` set high (retry for as long as a broker is away), the delay's
    ``base * 2**(attempts-1)`` outgrew a float after 1,025 attempts (``OverflowError``); the
    fallback policy computes the same, so the error left ``relay_batch`` and stopped the
    relay at the first such row. The delay stays ``max``, and the row its retry."""
    policy = exponential_backoff(base=1, max=600, max_attempts=10**6, jitter=False)
    for attempts in (1025, 1026, 5000, 10**6 - 1):
        delay = (policy(attempts, RuntimeError()) - timezone.now()).total_seconds()
        assert 599 <= delay <= 600, attempts
    transport = RecordingTransport(fail_types={"a.b"})
    outbox = EventOutbox(transport, policy)
    event_id = outbox.store(create_event("a.b", {})).event_id
    OutboxEvent.objects.filter(event_id=event_id).update(attempts=2000)
    result = outbox.relay_batch()
    assert (result.publish_failed, result.fail_hook_errors, result.dead_lettered) == (1, 0, 0)
    row = OutboxEvent.objects.get()
    assert (row.status, row.attempts) == ("pending", 2001)
    assert row.visible_at > timezone.now() + timedelta(seconds=599)
