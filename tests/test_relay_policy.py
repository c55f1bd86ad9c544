"""Failure policy, dead letters, requeue and purge."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

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
    before = timezone.now()
    result = outbox.relay_batch()
    after = timezone.now()
    assert result.publish_failed == 1 and result.fail_hook_errors == 1
    row = OutboxEvent.objects.get()
    assert row.status == "pending" and row.attempts == 1
    assert_first_fallback_delay(row.visible_at, before, after)


def assert_first_fallback_delay(visible_at, before, after) -> None:
    """``visible_at`` is the default backoff's first delay (1 s, its upper half with
    jitter) after a moment within the relay's run. Bracketed by clock readings taken around
    the run rather than compared with the clock after it: half a second may pass between
    the run and that reading on a loaded machine."""
    assert before + timedelta(seconds=0.5) <= visible_at <= after + timedelta(seconds=1)


def test_a_failure_policy_that_raises_logs_one_line_per_batch(caplog):
    """A project's ``FAILURE_POLICY`` raising for every failed event (a bug in it; a broker
    outage fails every event of a batch) logged one ERROR with its traceback per event: a
    hundred tracebacks for a batch of a hundred, every tick. One line a batch now, naming
    the events and carrying the first one's traceback; every event still falls back to the
    default backoff."""

    def broken(attempts, error):
        raise RuntimeError("policy bug")

    transport = RecordingTransport(fail_types={"a.b"})
    outbox = EventOutbox(transport, broken)
    ids = [outbox.store(create_event("a.b", {"i": i})).event_id for i in range(3)]
    caplog.set_level(logging.ERROR, logger="django_arc.outbox")
    before = timezone.now()
    result = outbox.relay_batch()
    after = timezone.now()
    assert (result.publish_failed, result.fail_hook_errors) == (3, 3)
    lines = [r for r in caplog.records if r.name.startswith("django_arc.outbox")]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert (
        lines[0]
        .getMessage()
        .startswith(f"outbox failure policy raised for 3 event(s): {', '.join(map(str, ids))}; ")
    )
    assert "policy bug" in lines[0].getMessage()
    assert lines[0].exc_info and isinstance(lines[0].exc_info[1], RuntimeError)
    rows = OutboxEvent.objects.all()
    assert {(r.status, r.attempts) for r in rows} == {("pending", 1)}
    for row in rows:
        assert_first_fallback_delay(row.visible_at, before, after)


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
    before = timezone.now()
    result = outbox.relay_batch()
    assert (result.publish_failed, result.fail_hook_errors, result.dead_lettered) == (1, 0, 0)
    row = OutboxEvent.objects.get()
    assert (row.status, row.attempts) == ("pending", 2001)
    # max (600 s) after a moment within the run (not compared with the clock after it,
    # which a loaded machine may read more than a second later)
    assert row.visible_at >= before + timedelta(seconds=600)


def _delivered(count: int, days_ago: float) -> None:
    """``count`` delivered rows, delivered ``days_ago`` days ago (one INSERT)."""
    delivered_at = timezone.now() - timedelta(days=days_ago)
    OutboxEvent.objects.bulk_create(
        OutboxEvent(
            event_id=f"purge-{days_ago}-{n}",
            type="a.b",
            status="delivered",
            delivered_at=delivered_at,
        )
        for n in range(count)
    )


def _deletes(ctx) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if q["sql"].upper().startswith("DELETE")]


def test_the_outbox_purge_deletes_a_batch_per_statement():
    """The purge was one ``DELETE`` of every delivered row past retention, in one
    transaction: on a large outbox (a week of events) it held every one of their locks and
    wrote their whole WAL before it committed. It deletes ``batch_size`` rows per statement,
    each committed on its own, and leaves recent, pending and dead rows."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    outbox = EventOutbox(RecordingTransport())
    _delivered(5, 8)
    _delivered(1, 1)
    dead, pending = (outbox.store(create_event("a.b", {"i": i})) for i in range(2))
    OutboxEvent.objects.filter(pk=dead.pk).update(status="dead", last_error="x")
    OutboxEvent.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(days=30))
    with CaptureQueriesContext(connection) as ctx:
        assert outbox.purge(timedelta(days=7), batch_size=2) == 5
    deletes = _deletes(ctx)
    assert len(deletes) == 3  # 2 + 2 + 1
    assert sorted(OutboxEvent.objects.values_list("status", flat=True)) == [
        "dead",
        "delivered",
        "pending",
    ]
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            outbox.purge(timedelta(days=7), batch_size=bad)


def test_the_outbox_purge_of_a_backlog_longer_than_a_batch_uses_several_statements():
    """Without ``batch_size``, 1000 rows a statement, within the backend's parameters."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _delivered(1200, 8)
    with CaptureQueriesContext(connection) as ctx:
        assert EventOutbox(RecordingTransport()).purge(timedelta(days=7)) == 1200
    deletes = _deletes(ctx)
    assert len(deletes) == 2, len(deletes)
    limit = connection.features.max_query_params or float("inf")
    # the captured SQL has its parameters written in: each id is one, and so are the status
    # and the cut-off (counting "%s" there counted none)
    params = [sql.split(" IN (", 1)[1].split(")", 1)[0].count(",") + 1 + 2 for sql in deletes]
    assert all(count <= limit for count in params), params
    assert not OutboxEvent.objects.exists()


def test_the_outbox_purge_deletes_at_most_ten_thousand_rows_a_statement():
    """``purge(batch_size=)`` (the task's ``batch_size``, ``--batch-size``) was not capped:
    on PostgreSQL, which has no parameter limit, ``batch_size=50_000`` deleted a week of
    events in one statement holding every row's lock, what the batches are there to avoid.
    It is capped at 10,000, as a relay batch is (SQLite's 999 parameters cap it sooner)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _delivered(10_001, 8)
    with CaptureQueriesContext(connection) as ctx:
        assert EventOutbox(None).purge(timedelta(days=7), batch_size=50_000) == 10_001
    assert len(_deletes(ctx)) >= 2
    assert not OutboxEvent.objects.exists()


def test_an_outbox_purge_whose_batch_another_purge_deleted_first_stops():
    """A batch none of whose rows its ``DELETE`` matched (another purge, a cron's and a
    Celery beat's at once, deleted them in between) ends the purge: what is left is the
    other purge's or the next run's. Reading on from that batch would select again rows its
    ``DELETE`` did not match: with a batch's rows at one ``delivered_at`` (a bulk write's
    events, relayed in one batch) the same batch for ever."""
    from django.db import connection

    _delivered(5, 8)
    outbox = EventOutbox(RecordingTransport())
    stolen = []

    def another_purge_first(execute, sql, params, many, context):
        if sql.upper().startswith("DELETE") and not stolen:
            stolen.extend(params[:-2])  # the batch's ids (then its status and cut-off)
            OutboxEvent.objects.filter(pk__in=stolen).delete()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(another_purge_first):
        assert outbox.purge(timedelta(days=7), batch_size=2) == 0
    assert len(stolen) == 2 and OutboxEvent.objects.count() == 3


def test_the_outbox_purge_keeps_a_row_that_stopped_being_delivered_past_retention():
    """Each ``DELETE`` checks status and cut-off again, as it deletes: a row chosen for a
    batch that is no longer a delivered row past retention when the batch runs (another
    writer's ``UPDATE`` in between) is kept, never deleted by its id alone."""
    from django.db import connection

    _delivered(3, 8)
    first = OutboxEvent.objects.order_by("id").first()
    outbox = EventOutbox(RecordingTransport())

    def requeue_first(execute, sql, params, many, context):
        if sql.upper().startswith("DELETE"):
            OutboxEvent.objects.filter(pk=first.pk).update(status="pending")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(requeue_first):
        assert outbox.purge(timedelta(days=7)) == 2
    assert list(OutboxEvent.objects.values_list("pk", "status")) == [(first.pk, "pending")]


@override_settings(ARC={"OUTBOX": {"DELIVERED_RETENTION_DAYS": 3}})
def test_the_outbox_purge_command_deletes_delivered_rows_past_retention_in_batches():
    """A project relaying with ``manage.py arc_relay`` (no Celery) had no command to purge
    the outbox: its delivered rows, payloads included, were kept for ever unless someone
    used the admin's action. ``arc_purge_outbox`` does what the ``purge_outbox`` task does,
    for cron."""
    from io import StringIO

    from django.core.management import CommandError, call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _delivered(3, 4)
    _delivered(2, 2)
    dead = EventOutbox(RecordingTransport()).store(create_event("a.b", {}))
    OutboxEvent.objects.filter(pk=dead.pk).update(status="dead", last_error="x")
    out = StringIO()
    with CaptureQueriesContext(connection) as ctx:
        call_command("arc_purge_outbox", "--batch-size", "2", stdout=out)
    assert out.getvalue() == "Deleted 3 delivered outbox event(s) older than 3 day(s).\n"
    assert len(_deletes(ctx)) == 2
    out = StringIO()
    call_command("arc_purge_outbox", "--days", "1.5", stdout=out)
    assert out.getvalue() == "Deleted 2 delivered outbox event(s) older than 1.5 day(s).\n"
    assert list(OutboxEvent.objects.values_list("status", flat=True)) == ["dead"]
    for option, bad, message in (
        ("--batch-size", "0", "--batch-size must be a positive integer"),
        ("--days", "-1", "--days must be a number of days"),
        ("--days", "nan", "--days must be a number of days"),
        ("--days", "inf", "--days is too large"),  # not "0 or more": it is
        ("--days", "1e9", "--days is too large"),
    ):
        with pytest.raises(CommandError, match=message):
            call_command("arc_purge_outbox", option, bad)
    with pytest.raises(CommandError):  # argparse: not a number
        call_command("arc_purge_outbox", "--days", "week")


class _Unbuildable:
    """A transport whose constructor reaches a broker that is down."""

    def __init__(self, **options):
        raise ConnectionError("broker down")


def test_the_outbox_purge_command_needs_no_transport():
    """Purging deletes rows of the outbox's database and publishes nothing: a transport that
    cannot be built (its broker down) must not keep the table from being purged (rev-longrun's
    first version of the command; rev-retention's asked ``get_outbox()``, which builds it)."""
    from io import StringIO

    from django.core.management import call_command

    _delivered(2, 8)
    out = StringIO()
    with override_settings(
        ARC={"EVENTS": {"TRANSPORT": _Unbuildable, "OPTIONS": {}}, "OUTBOX": {}}
    ):
        call_command("arc_purge_outbox", stdout=out)
    assert out.getvalue() == "Deleted 2 delivered outbox event(s) older than 7 day(s).\n"
    assert not OutboxEvent.objects.exists()


def test_each_outbox_purge_batch_starts_where_the_last_one_ended():
    """Each batch's ``SELECT`` was the same query: on PostgreSQL it walked the index entries
    of every row deleted before it (they stay until a vacuum), so a purge of 100,000 rows
    read ten times as much per batch at its end as at its start (measured: 1 → 10 ms per
    SELECT; 100 ms at a million rows). It reads from the last batch's ``delivered_at`` on."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for days in (10, 9, 8):
        _delivered(2, days)
    with CaptureQueriesContext(connection) as ctx:
        assert EventOutbox(RecordingTransport()).purge(timedelta(days=7), batch_size=2) == 6
    selects = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].upper().startswith("SELECT") and "delivered_at" in q["sql"]
    ]
    assert len(selects) == 4  # 2 + 2 + 2, and the empty one
    assert ">=" not in selects[0] and all(">=" in sql for sql in selects[1:]), selects


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York"])
def test_the_outbox_purge_counts_its_age_with_naive_datetimes(zone):
    """Under ``USE_TZ = False`` the cut-off of an age is a naive time in ``TIME_ZONE``, as the
    rows' ``delivered_at``, never hours off: a row delivered seven days and an hour ago goes,
    one delivered an hour short of seven days ago stays."""
    with override_settings(USE_TZ=False, TIME_ZONE=zone):
        _delivered(2, 7 + 1 / 24)
        _delivered(1, 7 - 1 / 24)
        assert EventOutbox(RecordingTransport()).purge(timedelta(days=7)) == 2
        assert OutboxEvent.objects.count() == 1


def test_the_outbox_purge_task_needs_no_transport():
    """The ``purge_outbox`` task asked ``get_outbox()``, which builds the transport: with its
    broker down (a constructor that connects) every run raised and delivered rows were kept,
    where ``arc_purge_outbox`` purges (rev-fixes26)."""
    from django_arc.tasks import purge_outbox

    _delivered(2, 8)
    with override_settings(
        ARC={"EVENTS": {"TRANSPORT": _Unbuildable, "OPTIONS": {}}, "OUTBOX": {}}
    ):
        assert purge_outbox() == 2
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize(
    "days", [-1, float("nan"), float("inf"), "a week", 1e6, 1e9, True], ids=repr
)
def test_the_outbox_purge_task_refuses_a_retention_that_is_no_number_of_days(days):
    """``purge_outbox(days=-1)`` purged every delivered row, those delivered a moment ago
    too (``arc_purge_outbox --days -1`` and ``DELIVERED_RETENTION_DAYS = -1`` are refused):
    it raises ValueError and deletes nothing (rev-fixes26). ``days=1e6`` (a cut-off before
    year 1) raised OverflowError out of the purge, where the command says "too large", and
    ``days=True`` purged what was delivered a day ago, where arc.E008 refuses a bool
    (rev-fixes27)."""
    from django_arc.tasks import purge_outbox

    _delivered(2, 8)
    _delivered(1, 0)
    # naming the task's argument, as the command names --days or the setting
    with pytest.raises(ValueError, match=r"^days (must be a number of days|is too large)"):
        purge_outbox(days=days)
    assert OutboxEvent.objects.count() == 3


@pytest.mark.parametrize(
    "days, message",
    [
        (10**400, "is too large"),  # past a float's range: float() raised OverflowError
        (-(10**400), "must be a number of days, 0 or more"),
        (10**5000, "is too large"),  # past the digits an int's repr may have (3.11+)
        # float() reads them as infinity, no OverflowError: they were "must be a number of
        # days, 0 or more" (the value shown being one), not too large
        (Decimal("1e400"), "is too large"),
        (float("inf"), "is too large"),
        (Fraction(10**400, 3), "is too large"),  # float() overflows, as an int's does
        (Decimal("-1e400"), "must be a number of days, 0 or more"),
        (float("-inf"), "must be a number of days, 0 or more"),
    ],
    ids=["10**400", "-10**400", "10**5000", "Decimal1e400", "inf", "Fraction", "-Decimal", "-inf"],
)
def test_a_retention_past_a_floats_range_is_refused_by_every_purge(days, message):
    """``retention_age`` read ``float(days)`` catching TypeError and ValueError only: an int
    past a float's range (``DELIVERED_RETENTION_DAYS = 10**400``, which arc.E008 refuses at
    start-up, or a task's ``days`` from a JSON message) raised OverflowError out of the
    command, the task and the admin's purge (a 500). Each refuses it its way, naming where
    it came from, and deletes nothing."""
    import re
    from io import StringIO

    from django.core.management import CommandError, call_command

    from django_arc.tasks import purge_outbox

    _delivered(2, 8)
    setting = re.escape("ARC['OUTBOX']['DELIVERED_RETENTION_DAYS']")
    with override_settings(ARC={"OUTBOX": {"DELIVERED_RETENTION_DAYS": days}}):
        with pytest.raises(CommandError, match=f"^{setting} {message}"):
            call_command("arc_purge_outbox", stdout=StringIO())
        # the task with no days= reads the setting: its error names the setting, not days
        with pytest.raises(ValueError, match=f"^{setting} {message}"):
            purge_outbox()
    with pytest.raises(ValueError, match=f"^days {message}"):
        purge_outbox(days=days)
    assert OutboxEvent.objects.count() == 2


def test_rows_delivered_at_the_same_instant_across_a_batch_boundary_are_all_purged_once():
    """Each batch reads from the last one's ``delivered_at`` on (``>=``): rows sharing it with
    the last row of a batch are read by the next one, none skipped, and none deleted twice."""
    _delivered(5, 8)
    _delivered(3, 9)
    _delivered(1, 1)
    assert EventOutbox(None).purge(timedelta(days=7), batch_size=2) == 8
    assert OutboxEvent.objects.count() == 1


def test_a_broken_failure_policy_line_names_twenty_events_counts_the_rest_and_shows_the_first(
    caplog,
):
    """The one line a batch's broken policy logs names at most ``RETRY_LOG_IDS`` events,
    counts the rest (" and 1 more"; none said when all are named) and shows the first
    event's error with its traceback, not the last's (mutation round 6: naming every
    event, " and 0 more" at exactly twenty, or the last event's error passed every test)."""
    from django_arc.outbox.relay import RETRY_LOG_IDS

    calls: list[int] = []

    def broken(attempts, error):
        calls.append(attempts)
        raise RuntimeError(f"policy bug #{len(calls)}")

    caplog.set_level(logging.ERROR, logger="django_arc.outbox")
    for count in (RETRY_LOG_IDS + 1, RETRY_LOG_IDS):
        calls.clear()
        caplog.clear()
        OutboxEvent.objects.all().delete()
        outbox = EventOutbox(RecordingTransport(fail_types={"a.b"}), broken)
        ids = [outbox.store(create_event("a.b", {"i": i})).event_id for i in range(count)]
        assert outbox.relay_batch().fail_hook_errors == count
        [line] = [r for r in caplog.records if r.name.startswith("django_arc.outbox")]
        named = ", ".join(map(str, ids[:RETRY_LOG_IDS]))
        more = " and 1 more" if count > RETRY_LOG_IDS else ""
        assert line.getMessage().startswith(
            f"outbox failure policy raised for {count} event(s): {named}{more}; the default "
            "backoff decided instead (first: RuntimeError: policy bug #1)"
        ), line.getMessage()
        assert str(line.exc_info[1]) == "policy bug #1"


def test_one_event_whose_failure_policy_raises_is_logged(caplog):
    """A batch with a single failed event whose policy raises still logs its line (a
    condition that logged only several was undone with every test green)."""

    def broken(attempts, error):
        raise KeyError("x")

    outbox = EventOutbox(RecordingTransport(fail_types={"a.b"}), broken)
    event_id = outbox.store(create_event("a.b", {})).event_id
    caplog.set_level(logging.ERROR, logger="django_arc.outbox")
    assert outbox.relay_batch().fail_hook_errors == 1
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("django_arc.outbox")]
    assert len(lines) == 1 and lines[0].startswith(
        f"outbox failure policy raised for 1 event(s): {event_id}; "
    ), lines


def test_a_refused_retention_shows_its_value_up_to_sixty_characters():
    """``retention_age``'s refusal shows the value's repr whole up to 60 characters, and
    longer ones as their first 57 and "..." (a bound off by one, or a cut without the
    ellipsis, passed every test)."""
    from django_arc.outbox.relay import retention_age

    sixty = "x" * 58  # its repr, quotes included, is 60 characters
    with pytest.raises(ValueError) as caught:
        retention_age(sixty)
    assert str(caught.value) == f"days must be a number of days, 0 or more, got {sixty!r}."
    with pytest.raises(ValueError) as caught:
        retention_age(sixty + "y")
    assert str(caught.value) == (
        f"days must be a number of days, 0 or more, got {(sixty + 'y')!r:.57}...."
    )


def test_a_signalling_nan_retention_is_refused_as_no_number():
    """``float(Decimal("sNaN"))`` raises ValueError (a quiet NaN is read as NaN): the
    refusal is retention_age's own, naming the setting or argument, not float()'s
    "cannot convert signaling NaN to float" (catching TypeError alone passed every test)."""
    from django_arc.outbox.relay import retention_age

    with pytest.raises(ValueError) as caught:
        retention_age(Decimal("sNaN"), "--days")
    assert str(caught.value) == "--days must be a number of days, 0 or more, got Decimal('sNaN')."
