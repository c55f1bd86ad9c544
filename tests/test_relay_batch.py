"""relay_batch: claim, publish (publish_many when possible), ack, leases, FIFO, malformed rows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from django_arc.events.event import create_event
from django_arc.events.transports import MemoryTransport
from django_arc.outbox import EventOutbox, OutboxEvent, RelayResult, store_event
from django_arc.outbox.policy import DEAD, exponential_backoff
from django_arc.outbox.store import store_event_without_row, store_events_without_rows
from tests.outbox_support import RecordingTransport

pytestmark = pytest.mark.django_db


def _store(outbox: EventOutbox, n: int, type: str = "products.created", **meta) -> list[str]:
    return [outbox.store(create_event(type, {"i": i}, **meta)).event_id for i in range(n)]


def test_relay_publishes_in_order_with_publish_many_and_marks_delivered():
    transport = RecordingTransport()
    outbox = EventOutbox(transport)
    ids = _store(outbox, 5)

    result = outbox.relay_batch(limit=10, worker_id="w1")

    assert result == RelayResult(relayed=5, attempted=5, used_publish_many=True)
    assert transport.ids == ids
    assert transport.calls == ["publish_many"]
    rows = list(OutboxEvent.objects.all())
    assert {r.status for r in rows} == {"delivered"}
    assert all(r.delivered_at is not None and r.lease_owner is None for r in rows)
    # The published event carries the stored id, type, payload and meta.
    assert transport.published[0].payload == {"i": 0}
    assert transport.published[0].type == "products.created"

    # Nothing left: the next batch is empty and publishes nothing.
    assert outbox.relay_batch(limit=10, worker_id="w1") == RelayResult()
    assert len(transport.published) == 5


def test_relay_uses_publish_one_by_one_without_publish_many():
    transport = RecordingTransport(many=False)
    outbox = EventOutbox(transport)
    _store(outbox, 3)
    result = outbox.relay_batch(limit=10)
    assert result.relayed == 3 and not result.used_publish_many
    assert transport.calls == ["publish"] * 3


def test_relay_with_memory_transport_delivers_to_subscribers():
    transport = MemoryTransport()
    seen = []
    transport.subscribe("products.*", seen.append)
    outbox = EventOutbox(transport)
    ids = _store(outbox, 3)
    _store(outbox, 1, type="orders.created")
    result = outbox.relay_batch(limit=100)
    assert result.relayed == 4
    assert [e.id for e in seen] == ids
    assert len(transport.published) == 4


def test_limit_is_respected_and_oldest_first():
    transport = RecordingTransport()
    outbox = EventOutbox(transport)
    ids = _store(outbox, 7)
    assert outbox.relay_batch(limit=3).relayed == 3
    assert outbox.relay_batch(limit=3).relayed == 3
    assert outbox.relay_batch(limit=3).relayed == 1
    assert transport.ids == ids


def test_rows_not_yet_visible_or_not_pending_are_not_claimed():
    transport = RecordingTransport()
    outbox = EventOutbox(transport)
    later, dead, done, ready = _store(outbox, 4)
    OutboxEvent.objects.filter(event_id=later).update(
        visible_at=timezone.now() + timedelta(minutes=5)
    )
    OutboxEvent.objects.filter(event_id=dead).update(status="dead")
    OutboxEvent.objects.filter(event_id=done).update(status="delivered")
    result = outbox.relay_batch(limit=10)
    assert result.attempted == 1
    assert transport.ids == [ready]


def test_claim_query_count_is_constant_in_batch_size():
    outbox = EventOutbox(RecordingTransport())
    _store(outbox, 50)
    with CaptureQueriesContext(connection) as small:
        outbox.relay_batch(limit=5)
    with CaptureQueriesContext(connection) as big:
        outbox.relay_batch(limit=45)
    assert len(big) == len(small)


def test_malformed_rows_go_dead_without_publish():
    transport = RecordingTransport()
    outbox = EventOutbox(transport)
    good, bad_payload, bad_meta, bad_type = _store(outbox, 4)
    OutboxEvent.objects.filter(event_id=bad_payload).update(payload=[1, 2])
    OutboxEvent.objects.filter(event_id=bad_meta).update(meta={"timestamp": "not a date"})
    OutboxEvent.objects.filter(event_id=bad_type).update(type="")

    result = outbox.relay_batch(limit=10)

    assert result.attempted == 4
    assert result.malformed == 3
    assert result.relayed == 1
    assert transport.ids == [good]
    dead = {r.event_id: r for r in OutboxEvent.objects.filter(status="dead")}
    assert set(dead) == {bad_payload, bad_meta, bad_type}
    assert all(r.last_error.startswith("malformed event:") for r in dead.values())
    assert all(r.lease_owner is None for r in dead.values())


def test_published_event_keeps_row_event_id_even_if_meta_id_differs():
    transport = RecordingTransport()
    outbox = EventOutbox(transport)
    [event_id] = _store(outbox, 1)
    OutboxEvent.objects.update(meta={"id": "something-else"})
    outbox.relay_batch()
    assert transport.ids == [event_id]


def test_live_lease_is_not_claimed_but_expired_lease_is():
    transport = RecordingTransport()
    outbox = EventOutbox(transport)
    [event_id] = _store(outbox, 1)
    OutboxEvent.objects.update(
        lease_owner="A", lease_expires_at=timezone.now() + timedelta(seconds=30)
    )
    assert outbox.relay_batch(worker_id="B").attempted == 0
    OutboxEvent.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    result = outbox.relay_batch(worker_id="B")
    assert result.relayed == 1
    assert transport.ids == [event_id]


class _StealingTransport(RecordingTransport):
    """While worker A publishes, A's lease runs out and worker B takes over and delivers."""

    def __init__(self, thief: EventOutbox) -> None:
        super().__init__()
        self.thief = thief
        self.thief_result: RelayResult | None = None

    def publish_many(self, events):
        super().publish_many(events)
        OutboxEvent.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        self.thief_result = self.thief.relay_batch(worker_id="B")


def test_late_ack_after_lease_takeover_counts_ownership_mismatch():
    b_transport = RecordingTransport()
    outbox_b = EventOutbox(b_transport)
    a_transport = _StealingTransport(outbox_b)
    outbox_a = EventOutbox(a_transport, lease_seconds=30)
    ids = _store(outbox_a, 3)

    result = outbox_a.relay_batch(worker_id="A")

    assert a_transport.thief_result.relayed == 3
    assert b_transport.ids == ids
    assert result.attempted == 3
    assert result.relayed == 0
    assert result.ownership_mismatches == 3
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"delivered"}


class _StealingFailingTransport(RecordingTransport):
    def __init__(self, thief: EventOutbox) -> None:
        super().__init__(many=False)
        self.thief = thief

    def publish(self, event):
        OutboxEvent.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        self.thief.relay_batch(worker_id="B")
        raise ConnectionError("A's broker is down")


def test_late_fail_after_takeover_does_not_touch_the_row():
    outbox_b = EventOutbox(RecordingTransport())
    outbox_a = EventOutbox(_StealingFailingTransport(outbox_b))
    _store(outbox_a, 1)
    result = outbox_a.relay_batch(worker_id="A")
    assert result.publish_failed == 1
    assert result.ownership_mismatches == 1
    row = OutboxEvent.objects.get()
    assert row.status == "delivered"
    assert row.attempts == 0 and row.last_error == ""


class _SkewedThief(RecordingTransport):
    """While worker A publishes, worker B relays from a host whose clock is ``skew`` off."""

    def __init__(self, thief: EventOutbox, skew: timedelta, monkeypatch) -> None:
        super().__init__()
        self.thief, self.skew, self.monkeypatch = thief, skew, monkeypatch
        self.thief_result: RelayResult | None = None

    def publish_many(self, events):
        super().publish_many(events)
        self.thief_result = _with_clock(self.monkeypatch, self.skew, self.thief.relay_batch, "B")


def _with_clock(monkeypatch, skew: timedelta, relay, worker_id: str) -> RelayResult:
    """``relay(worker_id=…)`` as a process on a host whose clock is ``skew`` off would run it."""
    real_now = timezone.now
    with monkeypatch.context() as m:
        m.setattr(timezone, "now", lambda: real_now() + skew)
        return relay(worker_id=worker_id)


#: Hosts whose clocks differ share a database server; SQLite is a file on one host, whose
#: clock every process on it reads (and the lease clock there is that host's, through Python)
hosts_share_the_database = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite lives on one host: one clock"
)


@hosts_share_the_database
def test_a_relay_whose_clock_runs_ahead_does_not_take_a_live_lease_over(monkeypatch):
    """Leases are stamped and compared by the database's clock: a relay on a host whose
    clock runs minutes ahead took every batch another worker was still publishing (its lease
    looked run out), so each event went out twice with no worker dead."""
    b_transport = RecordingTransport()
    thief = _SkewedThief(EventOutbox(b_transport), timedelta(minutes=5), monkeypatch)
    outbox_a = EventOutbox(thief, lease_seconds=30)
    ids = _store(outbox_a, 3)

    result = outbox_a.relay_batch(worker_id="A")

    assert thief.thief_result.attempted == 0
    assert b_transport.ids == []
    assert thief.ids == ids
    assert result.relayed == 3 and result.ownership_mismatches == 0
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"delivered"}


@hosts_share_the_database
def test_a_dead_workers_lease_runs_out_by_the_databases_clock(monkeypatch):
    """A worker on a host whose clock ran ten minutes ahead claimed a batch and died: its
    lease runs out ``lease_seconds`` after the claim for every other worker, not ten minutes
    later, when the others' clocks reach the time it wrote."""
    transport = RecordingTransport()
    dead = EventOutbox(RecordingTransport(), lease_seconds=0.2)
    ids = _store(dead, 2)
    real_now = timezone.now
    with monkeypatch.context() as m:
        m.setattr(timezone, "now", lambda: real_now() + timedelta(minutes=10))
        assert len(dead._claim(10, "dead")) == 2
    time.sleep(0.3)

    result = EventOutbox(transport).relay_batch(worker_id="B")

    assert result.relayed == 2
    assert transport.ids == ids


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York"])
def test_leases_are_in_the_projects_time_with_naive_datetimes(zone):
    """Under ``USE_TZ = False`` Django stores naive times in ``TIME_ZONE``, but SQLite's
    ``Now()`` is UTC: the leases the claim stamped with it read back hours off (the admin
    showed a batch leased until nine hours ago in Tokyo), and a lease written in the
    project's time (by the release before, whose dead worker's batch an upgrade finds) was
    compared with UTC, so a run-out one stayed leased for nine more hours in Tokyo (and one
    still live was taken over in New York). Each database keeps one clock for its leases."""
    with override_settings(USE_TZ=False, TIME_ZONE=zone):
        outbox = EventOutbox(RecordingTransport(), lease_seconds=30)
        ids = _store(outbox, 2)
        OutboxEvent.objects.filter(event_id=ids[0]).update(
            lease_owner="dead", lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        OutboxEvent.objects.filter(event_id=ids[1]).update(
            lease_owner="live", lease_expires_at=timezone.now() + timedelta(minutes=1)
        )

        claimed = outbox._claim(10, "w")

        assert [row.event_id for row in claimed] == [ids[0]]
        lease = OutboxEvent.objects.get(event_id=ids[0]).lease_expires_at
        assert abs(lease - (timezone.now() + timedelta(seconds=30))) < timedelta(minutes=1)


@hosts_share_the_database
def test_a_policy_that_parks_an_event_until_the_end_of_time_leaves_the_relay_running(
    monkeypatch,
):
    """A failure policy may park an event as far out as a ``datetime`` goes (``datetime.max``,
    for an operator to requeue). Moving that retry onto the database's clock when the
    database runs ahead of the relay overflowed: ``OverflowError`` left ``relay_batch``
    (and stopped ``run_relay``) with the row still leased, and every batch that claimed it
    again did the same. The farthest time stays as it is."""
    farthest = datetime.max.replace(tzinfo=UTC)
    outbox = EventOutbox(
        RecordingTransport(fail_types={"orders.created"}),
        failure_policy=lambda attempts, error: farthest,
    )
    ids = _store(outbox, 1, type="orders.created")

    result = _with_clock(monkeypatch, -timedelta(minutes=5), outbox.relay_batch, "behind")

    assert result.publish_failed == 1 and result.ack_failed == 0
    row = OutboxEvent.objects.get(event_id=ids[0])
    assert row.status == "pending" and row.attempts == 1 and row.lease_owner is None
    assert row.visible_at == farthest
    assert outbox.relay_batch(worker_id="next").attempted == 0


def _store_by_path(path: str, event) -> None:
    """``event`` stored the way ``path`` names: each of the outbox's insert statements."""
    if path.startswith("receiver"):
        store_event_without_row(event)
    elif path.startswith("store_event"):
        store_event(event)
    elif path == "store_many":
        EventOutbox(RecordingTransport()).store_many([event])
    else:
        store_events_without_rows([(event, None), (create_event("x.y", {}), None)])


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="servers on several hosts share PostgreSQL only"
)
@pytest.mark.parametrize(
    "path",
    ["receiver", "receiver keyed", "store_event", "store_event keyed", "store_many", "batch"],
)
def test_an_event_stored_on_a_server_whose_clock_runs_ahead_is_relayed_at_once(path, monkeypatch):
    """A new row's ``visible_at`` and ``created_at`` are the database's time: stamped by an
    application server whose clock ran a day ahead (a container started with a wrong
    clock), its events waited a day for the relays' clocks to reach their ``visible_at``,
    and came out after events of their partition that other servers stored later."""
    transport = RecordingTransport()
    key = {"idempotency_key": "clock-key"} if path.endswith("keyed") else {}
    event = create_event("orders.created", {"n": 1}, partition_key="order-1", **key)
    real_now = timezone.now
    with monkeypatch.context() as m:
        m.setattr(timezone, "now", lambda: real_now() + timedelta(days=1))
        with transaction.atomic():
            _store_by_path(path, event)
    later = EventOutbox(transport).store(
        create_event("orders.shipped", {"n": 1}, partition_key="order-1")
    )

    result = EventOutbox(transport).relay_batch(worker_id="B")

    assert transport.ids[:1] == [str(event.meta.id)]
    assert str(later.event_id) in transport.ids
    assert result.relayed == OutboxEvent.objects.count()
    row = OutboxEvent.objects.get(event_id=str(event.meta.id))
    assert row.status == "delivered"
    assert abs(row.created_at - real_now()) < timedelta(minutes=1)
    assert row.visible_at == row.created_at


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="servers on several hosts share PostgreSQL only"
)
def test_an_event_a_relay_behind_in_time_delivered_is_kept_for_the_retention(monkeypatch):
    """``delivered_at`` is the database's time, which ``purge()`` counts the retention back
    from: a relay whose clock ran two days behind stamped its deliveries two days old, and
    the next purge of rows delivered more than a day ago deleted them at once (with them
    the dedupe keys a retried request's events are checked against, arc.W008)."""
    transport = RecordingTransport()
    outbox = EventOutbox(transport)
    ids = _store(outbox, 2)
    assert _with_clock(monkeypatch, -timedelta(days=2), outbox.relay_batch, "B").relayed == 2

    assert outbox.purge(older_than=timedelta(days=1)) == 0

    assert sorted(OutboxEvent.objects.values_list("event_id", flat=True)) == sorted(ids)
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"delivered"}
    assert outbox.purge(older_than=timedelta(0)) == 2


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="servers on several hosts share PostgreSQL only"
)
def test_a_retry_scheduled_by_a_relay_behind_in_time_waits_its_backoff(monkeypatch):
    """A failure policy computes its retry time on the relay's clock; the relay moves it
    to the database's, which rows are compared with: a relay whose clock ran an hour
    behind scheduled every retry an hour in the past, so a failed event was claimed again
    at once, batch after batch, and went dead within seconds of a broker outage instead of
    backing off. Its deferred partition mate waits with it, FIFO kept."""
    transport = RecordingTransport(many=False)
    outbox = EventOutbox(transport, exponential_backoff(base=60, max=600, jitter=False))
    failed = outbox.store(create_event("x.a", {}, partition_key="a")).event_id
    held = outbox.store(create_event("x.a", {}, partition_key="a")).event_id
    transport.fail_once = {failed}

    result = _with_clock(monkeypatch, -timedelta(hours=1), outbox.relay_batch, "B")

    assert result.publish_failed == 1 and result.deferred == 1
    assert outbox.relay_batch(worker_id="C").attempted == 0
    rows = {row.event_id: row for row in OutboxEvent.objects.all()}
    wait = rows[failed].visible_at - timezone.now()
    assert timedelta(seconds=50) < wait <= timedelta(seconds=60)
    assert rows[held].visible_at == rows[failed].visible_at
    assert rows[failed].attempts == 1 and rows[held].attempts == 0


def test_partition_fifo_defers_later_events_of_a_failed_partition():
    transport = RecordingTransport(many=False)
    outbox = EventOutbox(transport)
    a1 = outbox.store(create_event("x.a", {}, partition_key="a")).event_id
    b1 = outbox.store(create_event("x.b", {}, partition_key="b")).event_id
    a2 = outbox.store(create_event("x.a", {}, partition_key="a")).event_id
    n1 = outbox.store(create_event("x.n", {})).event_id
    a3 = outbox.store(create_event("x.a", {}, partition_key="a")).event_id
    transport.fail_once = {a1}

    result = outbox.relay_batch(limit=10)

    assert result.publish_failed == 1
    assert result.deferred == 2
    assert result.relayed == 2
    assert transport.ids == [b1, n1]
    rows = {r.event_id: r for r in OutboxEvent.objects.all()}
    assert rows[a1].attempts == 1 and rows[a1].status == "pending"
    # Deferred rows are released (no lease, no attempt counted) and wait for a1's retry.
    for eid in (a2, a3):
        assert rows[eid].status == "pending" and rows[eid].attempts == 0
        assert rows[eid].lease_owner is None
        assert rows[eid].visible_at == rows[a1].visible_at

    OutboxEvent.objects.filter(status="pending").update(visible_at=timezone.now())
    assert outbox.relay_batch(limit=10).relayed == 3
    assert transport.ids == [b1, n1, a1, a2, a3]


def test_a_failed_batch_costs_the_statements_of_one_failed_event():
    """An outage fails every event of a batch: their retries, dead letters and the events
    their partition holds back were written one UPDATE per row (a batch of 40: 40 UPDATEs
    on every pass of the relay). They are one UPDATE, each row left as it was before."""
    policy_calls = []

    def policy(attempts, error):
        policy_calls.append(attempts)
        if len(policy_calls) % 3 == 0:
            return DEAD
        return timezone.now() + timedelta(seconds=60 + len(policy_calls))

    def fail(n):
        OutboxEvent.objects.all().delete()
        transport = RecordingTransport(fail_types={"x.down"}, many=False)
        outbox = EventOutbox(transport, failure_policy=policy)
        held = [outbox.store(create_event("x.down", {}, partition_key="p")).event_id]
        held += _store(outbox, n, type="x.down", partition_key="p")  # held back by the first
        failing = _store(outbox, n, type="x.down")
        malformed = _store(outbox, 1, type="x.down")
        OutboxEvent.objects.filter(event_id__in=malformed).update(payload=[1])
        OutboxEvent.objects.filter(event_id=failing[0]).update(attempts=5)
        with CaptureQueriesContext(connection) as ctx:
            result = outbox.relay_batch(limit=100, worker_id="w")
        assert (result.publish_failed, result.deferred, result.malformed) == (n + 1, n, 1)
        assert result.ownership_mismatches == 0 and result.ack_failed == 0
        return len(ctx), held, failing, malformed

    assert fail(2)[0] == fail(20)[0]
    policy_calls.clear()
    _, held, failing, malformed = fail(3)
    rows = {row.event_id: row for row in OutboxEvent.objects.all()}
    assert all(row.lease_owner is None and row.lease_expires_at is None for row in rows.values())
    first = rows[held[0]]
    assert (first.status, first.attempts) == ("pending", 1)
    assert "broker refused x.down" in first.last_error
    for event_id in held[1:]:  # released, no attempt counted, until the first's retry
        assert (rows[event_id].status, rows[event_id].attempts) == ("pending", 0)
        assert rows[event_id].visible_at == first.visible_at and not rows[event_id].last_error
    # the policy's decisions, one each, in the order the rows failed: its third is dead
    assert [rows[e].attempts for e in failing] == [6, 1, 1]
    assert [rows[e].status for e in failing] == ["pending", "dead", "pending"]
    assert rows[failing[0]].visible_at != rows[failing[2]].visible_at
    assert rows[failing[0]].visible_at > timezone.now() + timedelta(seconds=50)
    assert rows[malformed[0]].status == "dead"
    assert rows[malformed[0]].last_error.startswith("malformed event:")


def test_a_failed_batch_releases_rows_held_back_by_a_dead_letter_and_by_a_retry_together():
    """Rows held back by a partition whose first event went dead are released now (the
    database's clock: ``Now()`` on PostgreSQL), the ones held back by a retry at its time:
    in one UPDATE the CASE put ``Now()`` as a parameter, which psycopg cannot adapt. Every
    row of the batch stayed leased (ack_failed), the dead letter was never written, and the
    next pass after the lease failed them the same way, for ever."""

    def policy(attempts, error):
        if "a.down" in str(error):
            return DEAD
        return timezone.now() + timedelta(seconds=60)

    transport = RecordingTransport(fail_types={"a.down", "b.down"}, many=False)
    outbox = EventOutbox(transport, failure_policy=policy)
    a = _store(outbox, 2, type="a.down", partition_key="a")
    b = _store(outbox, 2, type="b.down", partition_key="b")
    before = timezone.now()
    result = outbox.relay_batch(limit=10, worker_id="w")
    assert (result.ack_failed, result.ownership_mismatches) == (0, 0)
    assert (result.publish_failed, result.dead_lettered, result.deferred) == (2, 1, 2)
    rows = {row.event_id: row for row in OutboxEvent.objects.all()}
    assert all(row.lease_owner is None for row in rows.values())
    assert (rows[a[0]].status, rows[a[0]].attempts) == ("dead", 1)
    assert (rows[a[1]].status, rows[a[1]].attempts) == ("pending", 0)
    assert rows[a[1]].visible_at < before + timedelta(seconds=30)  # released now
    assert (rows[b[0]].status, rows[b[0]].attempts) == ("pending", 1)
    assert rows[b[1]].visible_at == rows[b[0]].visible_at > before + timedelta(seconds=50)


def test_a_failed_batch_leaves_rows_another_worker_took_over_alone():
    transport = RecordingTransport(fail_types={"x.down"})
    outbox = EventOutbox(transport)
    ids = _store(outbox, 3, type="x.down")
    real_publish = transport.publish

    def taken_over(event):
        OutboxEvent.objects.filter(event_id=ids[1]).update(lease_owner="other")
        return real_publish(event)

    transport.publish = taken_over
    result = outbox.relay_batch(limit=10, worker_id="w")
    assert (result.publish_failed, result.ownership_mismatches) == (3, 1)
    rows = {row.event_id: row for row in OutboxEvent.objects.all()}
    assert rows[ids[1]].lease_owner == "other" and rows[ids[1]].attempts == 0
    assert rows[ids[0]].attempts == rows[ids[2]].attempts == 1


def test_publish_many_failure_falls_back_to_single_publishes():
    transport = RecordingTransport(fail_types={"bad.type"})
    outbox = EventOutbox(transport)
    ok1 = outbox.store(create_event("ok.type", {})).event_id
    outbox.store(create_event("bad.type", {}))
    ok2 = outbox.store(create_event("ok.type", {})).event_id
    result = outbox.relay_batch(limit=10)
    assert result.used_publish_many
    assert result.relayed == 2 and result.publish_failed == 1
    assert transport.calls == ["publish_many", "publish", "publish", "publish"]
    assert transport.ids == [ok1, ok2]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_skip_locked_claims_are_disjoint_across_connections():
    """Two workers claiming at the same moment never get the same row."""
    import threading

    from django.db import connections, transaction

    outbox = EventOutbox(RecordingTransport())
    ids = _store(outbox, 20)
    claimed: dict[str, list[str]] = {}
    inside = threading.Event()
    release = threading.Event()

    def hold_claim() -> None:
        # Worker A's claim transaction stays open while B claims.
        try:
            with transaction.atomic():
                rows = list(outbox.claim_queryset(8))
                claimed["A"] = [r.event_id for r in rows]
                inside.set()
                release.wait(10)
        finally:
            connections.close_all()

    t = threading.Thread(target=hold_claim)
    t.start()
    assert inside.wait(10)
    try:
        b_rows = outbox._claim(100, "B")
        claimed["B"] = [r.event_id for r in b_rows]
    finally:
        release.set()
        t.join()
    assert claimed["A"] == ids[:8]
    assert claimed["B"] == ids[8:]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="plan check is for PostgreSQL")
def test_claim_query_uses_an_index_and_never_scans_delivered_rows():
    outbox = EventOutbox(RecordingTransport())
    outbox.store_many(create_event("a.b", {"i": i}) for i in range(3000))
    OutboxEvent.objects.filter(
        id__in=OutboxEvent.objects.order_by("id")[:2980].values("id")
    ).update(status="delivered", delivered_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboxEvent._meta.db_table}")
    plan = outbox.explain_claim(100)
    assert "Seq Scan" not in plan, plan
    assert "Bitmap" not in plan, plan
    # Rows stream out of the pending index in claim order: no sort of the backlog.
    assert "Sort" not in plan, plan
    assert "Index Scan using arc_outbox_pending_visible" in plan, plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="plan check is for PostgreSQL")
def test_claim_plan_is_index_ordered_even_with_stale_statistics():
    """Right after a burst of inserts the statistics still say "empty table"; the claim must
    not fall back to sorting every pending row."""
    outbox = EventOutbox(RecordingTransport())
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboxEvent._meta.db_table}")  # stats: no rows
    outbox.store_many(create_event("a.b", {"i": i}) for i in range(5000))
    plan = outbox.explain_claim(100)
    assert "Sort" not in plan, plan
    assert "Index Scan using arc_outbox_pending_visible" in plan, plan


class _RefusesOne(MemoryTransport):
    """A transport with ``Transport``'s own ``publish_many`` (one ``publish`` per event)
    whose broker refuses one event: raising part way through a batch, it has published the
    events before that one."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    def publish(self, event):
        if event.id == self.refused:
            raise ConnectionError("broker refused it")
        return super().publish(event)


def test_a_transport_publishing_event_by_event_gets_no_event_twice_when_one_fails():
    """The relay published a batch with ``publish_many`` and, when it raised, the whole batch
    again one event at a time: with ``Transport``'s own ``publish_many`` the events before
    the refused one had gone out already, and went out twice. Such a transport is published
    one event at a time from the start (it saves no round trip): each event once, the
    refused one retried alone."""
    outbox = EventOutbox(MemoryTransport())
    ids = _store(outbox, 3)
    transport = _RefusesOne(ids[1])
    result = EventOutbox(transport).relay_batch(limit=10, worker_id="w1")
    assert [event.id for event in transport.published] == [ids[0], ids[2]]
    assert result.relayed == 2 and result.publish_failed == 1
    assert not result.used_publish_many
    statuses = dict(OutboxEvent.objects.values_list("event_id", "status"))
    assert [statuses[i] for i in ids] == ["delivered", "pending", "delivered"]
