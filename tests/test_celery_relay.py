"""Celery tasks driving the outbox: in-process behaviour, and a real worker process.

The worker test runs ``celery -A example worker`` as a subprocess with a Redis broker
(``ARC_REDIS_URL``) against the PostgreSQL test database; an in-memory SQLite database cannot
be shared with another process, so it is skipped there.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_arc.events import create_event, get_transport, publish
from django_arc.events.transports import MemoryTransport
from django_arc.outbox import OutboxEvent
from django_arc.tasks import purge_outbox, relay_outbox
from example.celery import app as example_app

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("ARC_REDIS_URL", "")
MEMORY = {"EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}}}


def _store(n: int, prefix: str = "orders.created") -> list[str]:
    return [publish(create_event(prefix, {"n": i})).id for i in range(n)]


# -- in process ---------------------------------------------------------------------------------
def test_the_example_beat_schedules_the_idempotency_purge_with_registered_tasks():
    """The shop keeps idempotency keys in the database store, and docs/idempotency.md says to
    schedule their purge with beat; the example's schedule had only the outbox's tasks, so
    its expired keys were never deleted. Every scheduled name must be a registered task:
    beat sends by name, and a typo is only a worker's "unregistered task" error."""
    scheduled = {entry["task"] for entry in example_app.conf.beat_schedule.values()}
    assert {"django_arc.relay_outbox", "django_arc.purge_outbox"} < scheduled
    assert "django_arc.purge_idempotency" in scheduled
    assert scheduled <= set(example_app.tasks.keys())


@pytest.mark.django_db
def test_relay_task_publishes_pending_rows_and_reports_counters():
    with override_settings(ARC={**MEMORY, "OUTBOX": {"BATCH_SIZE": 10}}):
        ids = _store(25)
        totals = relay_outbox()  # a direct call runs the task body synchronously
        published = get_transport().published
    assert totals["relayed"] == 25
    assert totals["attempted"] == 25
    assert totals["batches"] == 3  # 10 + 10 + 5 (short batch: backlog drained)
    assert totals["publish_failed"] == 0
    assert sorted(e.id for e in published) == sorted(ids)
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.django_db
def test_relay_task_is_bounded_by_max_batches():
    with override_settings(ARC=MEMORY):
        _store(12)
        totals = relay_outbox(batch_size=5, max_batches=2)
    assert totals["relayed"] == 10
    assert totals["batches"] == 2
    assert OutboxEvent.objects.filter(status="pending").count() == 2


@pytest.mark.django_db
def test_purge_task_deletes_only_delivered_rows_older_than_retention():
    with override_settings(ARC={**MEMORY, "OUTBOX": {"DELIVERED_RETENTION_DAYS": 7}}):
        _store(4)
        rows = list(OutboxEvent.objects.order_by("id"))
        old = timezone.now() - timedelta(days=8)
        OutboxEvent.objects.filter(pk=rows[0].pk).update(status="delivered", delivered_at=old)
        OutboxEvent.objects.filter(pk=rows[1].pk).update(
            status="delivered", delivered_at=timezone.now() - timedelta(days=1)
        )
        OutboxEvent.objects.filter(pk=rows[2].pk).update(status="dead", last_error="x")
        assert purge_outbox() == 1
        assert purge_outbox(days=0) == 1  # the recent delivered row
    assert sorted(OutboxEvent.objects.values_list("status", flat=True)) == ["dead", "pending"]


class _Unbuildable:
    """A transport whose constructor reaches a broker that is down."""

    down = True

    def __new__(cls, **options):
        if cls.down:
            raise ConnectionError("broker down:\nsecond line")
        return MemoryTransport()


def _outbox_lines(caplog) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage().splitlines()[0])
        for r in caplog.records
        if r.name == "django_arc.outbox" and r.levelno >= logging.WARNING
    ]


@pytest.mark.django_db
def test_a_relay_tick_whose_transport_cannot_be_built_is_one_line_a_minute(caplog):
    """``relay_outbox`` built the outbox (``get_outbox()``) unguarded: a transport whose
    constructor connects to a broker that is down raised out of every beat tick, a
    traceback a second in the worker's log (Celery's "Task ... raised unexpected"), as long
    as the broker was down. The tick now reports it as ``arc_relay`` reports an outage: an
    ERROR for the first tick (the reason escaped), then at most one a minute, a WARNING
    when the outbox builds again; the task succeeds with ``errors: 1`` and nothing relayed,
    and the next tick tries again."""
    caplog.set_level(logging.INFO)
    with override_settings(ARC={"EVENTS": {"TRANSPORT": _Unbuildable, "OPTIONS": {}}}):
        _store(3)
        try:
            results = [relay_outbox.apply() for _ in range(3)]
            _Unbuildable.down = False
            relayed = relay_outbox.apply()
        finally:
            _Unbuildable.down = True
    assert [r.state for r in results] == ["SUCCESS"] * 3
    assert [(r.result["batches"], r.result["errors"]) for r in results] == [(0, 1)] * 3
    assert relayed.state == "SUCCESS" and relayed.result["relayed"] == 3
    assert _outbox_lines(caplog) == [
        (
            "ERROR",
            "relay_outbox cannot build the outbox relay; nothing relayed: ConnectionError: "
            "broker down:\\nsecond line",
        ),
        ("WARNING", "relay_outbox builds the outbox relay again after 3 tick(s) failed"),
    ]
    assert not [r for r in caplog.records if r.name.startswith("celery") and r.levelno >= 40]


@pytest.mark.django_db
def test_relay_ticks_during_a_database_outage_stop_at_their_failure_and_log_once(
    monkeypatch, caplog
):
    """A tick during a database outage retried its batch every half second up to
    ``max_batches`` (10: 5 s a tick, for a tick beat sends every second, so ticks piled up
    in the queue), and each tick's own ``run_relay`` logged the outage's "first" ERROR:
    one a tick. A tick now stops at its first failed batch (the next tick retries), and the
    ticks share one streak: one ERROR for the outage, one WARNING when it ends."""
    from django.db import OperationalError

    from django_arc.outbox import EventOutbox

    real = EventOutbox.relay_batch
    down = [True]

    def relay_batch(self, limit=None, worker_id=None):
        if down[0]:
            raise OperationalError("the database is restarting")
        return real(self, limit, worker_id)

    monkeypatch.setattr(EventOutbox, "relay_batch", relay_batch)
    caplog.set_level(logging.INFO)
    with override_settings(ARC=MEMORY):
        results = [relay_outbox.apply(kwargs={"max_batches": 10}) for _ in range(3)]
        down[0] = False
        after = relay_outbox.apply()
    assert [(r.result["batches"], r.result["errors"]) for r in results] == [(1, 1)] * 3
    assert after.result["errors"] == 0
    assert _outbox_lines(caplog) == [
        ("ERROR", "relay batch 1 failed: OperationalError: the database is restarting"),
        ("WARNING", "relay batches succeed again after 3 failed in a row"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"batch_size": -1}, "batch_size must be an integer from 1, got -1."),
        ({"batch_size": 0}, "batch_size must be an integer from 1, got 0."),
        ({"batch_size": 2.5}, "batch_size must be an integer from 1, got 2.5."),
        ({"max_batches": 0}, "max_batches must be an integer from 1, got 0."),
        ({"max_batches": -3}, "max_batches must be an integer from 1, got -3."),
        ({"max_batches": "ten"}, "max_batches must be an integer from 1, got 'ten'."),
        ({"max_batches": True}, "max_batches must be an integer from 1, got True."),
        ({"worker_id": "w\n" * 101}, "is 202 characters; the outbox's lease column holds at"),
        ({"worker_id": 5}, "worker id must be text, got int"),
        ({"worker_id": ["w"]}, "worker id must be text, got list"),
        ({"worker_id": "w\x00"}, "holds a NUL character, which the outbox's lease column"),
        ({"worker_id": "w\ud800"}, "holds a lone surrogate, which the outbox's lease column"),
    ],
    ids=[
        "batch-1",
        "batch0",
        "batch-float",
        "max0",
        "max-3",
        "max-text",
        "max-bool",
        "worker",
        "worker-int",
        "worker-list",
        "worker-nul",
        "worker-surrogate",
    ],
)
def test_a_tick_given_arguments_out_of_range_relays_nothing_and_says_so_once(caplog, kwargs, said):
    """``relay_outbox(batch_size=-1)`` (a beat entry's kwargs) raised ``ValueError`` out of
    every tick, a traceback a second, while ``max_batches=0`` was made 1 and relayed: two
    rules for one task's arguments. One now: an argument the tick cannot run with relays
    nothing and is said once (an ERROR naming it, the value escaped; then at most one a
    minute), no traceback; the task succeeds with ``errors: 1`` (docs/decisions.md)."""
    caplog.set_level(logging.INFO)
    with override_settings(ARC=MEMORY):
        _store(2)
        results = [relay_outbox.apply(kwargs=kwargs) for _ in range(3)]
    assert [r.state for r in results] == ["SUCCESS"] * 3
    assert [(r.result["batches"], r.result["errors"]) for r in results] == [(0, 1)] * 3
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"pending"}
    lines = [r for r in caplog.records if r.name == "django_arc.outbox" and r.levelno >= 30]
    assert [(r.levelname, bool(r.exc_info)) for r in lines] == [("ERROR", False)], lines
    message = lines[0].getMessage()
    assert message.startswith("relay_outbox refuses its arguments; nothing relayed: ")
    assert said in message and "\n" not in message
    assert not [r for r in caplog.records if r.name.startswith("celery") and r.levelno >= 40]


@pytest.mark.django_db
@pytest.mark.parametrize("size", [0, -5, "many", True])
def test_a_tick_under_a_batch_size_setting_it_cannot_run_with_names_the_setting(caplog, size):
    """With ``BATCH_SIZE`` 0 or less and arc.E008 silenced (a worker runs no checks), every
    tick raised ``ValueError: batch_size must be ...`` (naming the argument no one passed),
    a traceback a second. The tick relays nothing and logs the setting's name once, as a
    tick that cannot build the outbox does, no traceback."""
    caplog.set_level(logging.INFO)
    with override_settings(ARC={**MEMORY, "OUTBOX": {"BATCH_SIZE": size}}):
        _store(2)
        results = [relay_outbox.apply() for _ in range(2)]
    assert [(r.state, r.result["errors"]) for r in results] == [("SUCCESS", 1)] * 2
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"pending"}
    lines = [r for r in caplog.records if r.name == "django_arc.outbox" and r.levelno >= 30]
    assert [(r.levelname, bool(r.exc_info)) for r in lines] == [("ERROR", False)], lines
    assert (
        f"ARC['OUTBOX']['BATCH_SIZE'] must be an integer from 1 to 10000 (rows a batch "
        f"claims), got {size!r} (arc.E008)." in lines[0].getMessage()
    )


@pytest.mark.django_db
def test_reset_relay_streaks_lets_the_next_failed_tick_be_logged(caplog):
    """The task's streaks outlive a tick, so one test's failed tick silenced the next
    test's ERROR for a minute (and its "again" WARNING came in a later test), with no
    public way to forget them. ``reset_relay_streaks()`` forgets them (docs/events.md)."""
    from django_arc.tasks import reset_relay_streaks

    caplog.set_level(logging.INFO)

    def errors() -> int:
        return len([r for r in caplog.records if r.levelname == "ERROR"])

    with override_settings(ARC={"EVENTS": {"TRANSPORT": _Unbuildable, "OPTIONS": {}}}):
        relay_outbox.apply()
        relay_outbox.apply()
        assert errors() == 1  # a streak: the second tick within the minute is counted
        reset_relay_streaks()
        relay_outbox.apply()
        assert errors() == 2
        relay_outbox.apply(kwargs={"max_batches": 0})
        reset_relay_streaks()
        relay_outbox.apply(kwargs={"max_batches": 0})
    assert errors() == 4
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


@pytest.mark.django_db
def test_a_refusal_long_after_the_last_one_is_said_as_the_first(monkeypatch, caplog):
    """No tick ends the refusals' streak (a tick with good arguments may be another beat
    entry's), so it never ended: a refusal an hour after three others said "(4 failed in a
    row ...)" of refusals long past. Refusals within a minute of each other are one streak
    (one line a minute, counted); one a minute or more after the last starts a new one."""
    import types

    from django_arc import logs

    now = [1000.0]
    monkeypatch.setattr(logs, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    caplog.set_level(logging.INFO)

    def refused_lines() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith("relay_outbox refuses its arguments")
        ]

    with override_settings(ARC=MEMORY):
        for at in (0, 1, 2, 61):  # a bad beat entry's ticks: the first, then one a minute
            now[0] = 1000.0 + at
            relay_outbox.apply(kwargs={"max_batches": 0})
            relay_outbox.apply()  # another entry's good tick between them
        assert len(refused_lines()) == 2
        assert "in a row" not in refused_lines()[0]
        assert "(4 failed in a row;" in refused_lines()[1]
        now[0] = 1000.0 + 3600  # an hour later, a refusal again
        relay_outbox.apply(kwargs={"max_batches": 0})
    lines = refused_lines()
    assert len(lines) == 3
    assert "in a row" not in lines[2], lines[2]


@pytest.mark.django_db
def test_ticks_failing_at_once_in_threads_log_the_first_failure_as_the_first(monkeypatch, caplog):
    """A thread pool's ticks share the task's streaks. A streak counted a failure, then its
    line read the count again: a second tick failing in between made the first tick's
    line say "2 failed in a row" and lose the first failure's traceback (``exc_info`` was
    ``count == 1``). Two ticks are made to fail at once (both inside the streak's step,
    held at its clock); the first failure's line is the first's: no count, its traceback."""
    import threading
    import types

    from django_arc import logs

    barrier = threading.Barrier(2)

    def monotonic() -> float:
        try:  # holds a streak's step until the other tick reaches it too (or 1 s passes)
            barrier.wait(timeout=1)
        except threading.BrokenBarrierError:
            pass
        return time.monotonic()

    monkeypatch.setattr(logs, "time", types.SimpleNamespace(monotonic=monotonic))
    caplog.set_level(logging.INFO)
    with override_settings(ARC={"EVENTS": {"TRANSPORT": _Unbuildable, "OPTIONS": {}}}):
        results: list = []
        ticks = [threading.Thread(target=lambda: results.append(relay_outbox())) for _ in "ab"]
        for tick in ticks:
            tick.start()
        for tick in ticks:
            tick.join()
    assert [r["errors"] for r in results] == [1, 1]
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "in a row" not in errors[0].getMessage()
    assert errors[0].exc_info and errors[0].exc_info[0] is ConnectionError


def test_the_example_beat_schedule_lets_a_relay_tick_expire():
    """Beat sends a relay tick every second whether the last one ran or not: while workers
    are busy or the database is down they piled up in the queue, each run in turn long
    after the next ones had done its work. The example's entry expires a tick that waited
    longer than a few seconds (the worker discards it), as docs/outbox.md advises."""
    entry = example_app.conf.beat_schedule["arc-relay-outbox"]
    assert 0 < entry["options"]["expires"] <= 30


# -- a real worker ------------------------------------------------------------------------------
def _kill(proc: subprocess.Popen) -> None:
    """SIGTERM the worker's process group, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_real_celery_worker_relays_the_outbox():
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs a database it can share: run with PostgreSQL")
    ids = _store(120)
    assert OutboxEvent.objects.filter(status="pending").count() == 120

    from celery import Celery

    queue = f"arc-test-{uuid.uuid4().hex}"  # never share a queue with another test run
    settings_dict = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "ARC_TEST_DB": "postgres",
        "ARC_PG_NAME": settings_dict["NAME"],  # the test database, not the base one
        "ARC_PG_HOST": str(settings_dict["HOST"]),
        "ARC_PG_PORT": str(settings_dict["PORT"]),
        "ARC_PG_USER": str(settings_dict["USER"]),
        "ARC_PG_PASSWORD": str(settings_dict["PASSWORD"] or ""),
        "CELERY_BROKER_URL": REDIS_URL,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
    }
    log = tempfile.NamedTemporaryFile("w+", prefix="arc-celery-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "example",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-Q",
            queue,
            "-n",
            f"{queue}@%h",
            "-l",
            "info",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT / "example_project",
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # A bare app pointed at the worker's broker: tasks are sent by name, like beat does.
        sender = Celery("arc-test-sender", broker=REDIS_URL)
        sender.send_task(
            "django_arc.relay_outbox", kwargs={"batch_size": 50, "max_batches": 10}, queue=queue
        )
        sender.close()
        deadline = time.monotonic() + 90
        delivered = 0
        while time.monotonic() < deadline and proc.poll() is None:
            delivered = OutboxEvent.objects.filter(status="delivered").count()
            if delivered == 120:
                break
            time.sleep(0.5)
        log.seek(0)
        output = log.read()
        assert delivered == 120, f"worker exit={proc.poll()} delivered={delivered}\n{output}"
        rows = OutboxEvent.objects.filter(event_id__in=ids)
        assert set(rows.values_list("status", flat=True)) == {"delivered"}
        assert all(r.delivered_at is not None and r.lease_owner is None for r in rows)
        assert "django_arc.relay_outbox" in output
        assert "succeeded" in output
    finally:
        _kill(proc)
        log.close()
        os.unlink(log.name)
    assert proc.poll() is not None


@pytest.mark.django_db
def test_purge_task_deletes_a_batch_per_statement():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with override_settings(ARC={**MEMORY, "OUTBOX": {"DELIVERED_RETENTION_DAYS": 7}}):
        _store(5)
        OutboxEvent.objects.update(
            status="delivered", delivered_at=timezone.now() - timedelta(days=8)
        )
        with CaptureQueriesContext(connection) as ctx:
            assert purge_outbox(batch_size=2) == 5
    deletes = [q for q in ctx.captured_queries if q["sql"].upper().startswith("DELETE")]
    assert len(deletes) == 3
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db
def test_only_the_first_line_of_an_unbuilt_outbox_streak_carries_a_traceback(monkeypatch, caplog):
    """A broker down a long time logs the relay tick's ERROR again each minute; the first
    line carries the traceback, the later ones say how many failed, without it (a
    traceback on every line passed every test: the minute never passed in them)."""
    from django_arc import tasks
    from django_arc.logs import FailureStreak

    monkeypatch.setattr(tasks, "_unbuilt", FailureStreak(interval=0.0))  # each tick's line
    caplog.set_level(logging.INFO)
    with override_settings(ARC={"EVENTS": {"TRANSPORT": _Unbuildable, "OPTIONS": {}}}):
        for _ in range(2):
            assert relay_outbox.apply().result["errors"] == 1
    errors = [r for r in caplog.records if r.name == "django_arc.outbox" and r.levelno >= 40]
    assert [bool(r.exc_info) for r in errors] == [True, False]
    assert errors[1].getMessage().endswith(" (2 failed in a row; logged at most every 0 s)")
