"""``manage.py arc_relay``: in-process runs, log lines, exit codes, graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from django_arc.events import get_transport
from django_arc.events.event import create_event
from django_arc.outbox import EventOutbox, OutboxEvent, store_event
from tests.outbox_support import read_published
from tests.relay_procs import REPO, relay_env, start_relay

MEMORY = {"EVENTS": {"TRANSPORT": "django_arc.events.transports.MemoryTransport"}}


def _lines(out: StringIO, event: str) -> list[dict]:
    rows = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    return [r for r in rows if r["event"] == event]


@pytest.mark.django_db
@override_settings(ARC=MEMORY)
def test_once_relays_one_batch_and_logs_counts():
    ids = [store_event(create_event("products.created", {"i": i})).event_id for i in range(5)]
    out = StringIO()
    call_command("arc_relay", "--once", "--batch-size", "3", "--worker-id", "w-test", stdout=out)

    assert [e.id for e in get_transport().published] == ids[:3]
    assert OutboxEvent.objects.filter(status="delivered").count() == 3
    [batch] = _lines(out, "arc_relay.batch")
    assert batch["worker"] == "w-test"
    assert batch["relayed"] == 3 and batch["attempted"] == 3 and batch["publish_failed"] == 0
    # the memory transport publishes event by event: the relay does so from the start
    assert batch["used_publish_many"] is False
    [stop] = _lines(out, "arc_relay.stop")
    assert stop["batches"] == 1 and stop["relayed"] == 3


@pytest.mark.django_db
@override_settings(ARC=MEMORY)
def test_the_start_line_says_the_batch_size_the_relay_uses():
    """``--batch-size`` is capped at 10,000 (a batch claims no more; docs/outbox.md), but
    the ``arc_relay.start`` line said the size asked for: ``batch_size: 50000`` for batches
    of 10,000, what an operator reading it to size the lease took at its word."""
    out = StringIO()
    call_command("arc_relay", "--once", "--batch-size", "50000", stdout=out)
    assert _lines(out, "arc_relay.start")[0]["batch_size"] == 10_000
    out = StringIO()
    call_command("arc_relay", "--once", "--batch-size", "7", stdout=out)
    assert _lines(out, "arc_relay.start")[0]["batch_size"] == 7


@pytest.mark.django_db
@override_settings(ARC=MEMORY)
def test_the_key_value_lines_escape_the_worker_id(caplog):
    """``arc_relay``'s start, batch and stop lines on the ``django_arc.outbox.relay``
    logger wrote ``--worker-id`` as given: operator text holding a newline (or an ANSI
    escape) forged a second line in the log, where the relay's other lines escape what
    they quote (``log_text``). They escape it too; the JSON lines on stdout are JSON."""
    store_event(create_event("products.created", {"i": 1}))
    worker = "w1\nevent=arc_relay.stop worker=forged\x1b[31m"
    out = StringIO()
    with caplog.at_level("INFO", logger="django_arc.outbox.relay"):
        call_command("arc_relay", "--once", "--worker-id", worker, stdout=out)
    lines = [r.getMessage() for r in caplog.records if r.name == "django_arc.outbox.relay"]
    assert [line.split(" ", 1)[0] for line in lines] == [
        "event=arc_relay.start",
        "event=arc_relay.batch",
        "event=arc_relay.stop",
    ]
    escaped = "worker=w1\\nevent=arc_relay.stop worker=forged\\x1b[31m"
    assert all(escaped in line and "\n" not in line and "\x1b" not in line for line in lines)
    assert {row["worker"] for row in map(json.loads, out.getvalue().splitlines())} == {worker}


@pytest.mark.django_db
@override_settings(ARC=MEMORY)
def test_max_batches_stops_after_n_batches_including_idle_polls():
    for i in range(5):
        store_event(create_event("products.created", {"i": i}))
    out = StringIO()
    call_command(
        "arc_relay", "--max-batches", "4", "--batch-size", "2", "--interval", "0", stdout=out
    )
    assert OutboxEvent.objects.filter(status="pending").count() == 0
    assert [b["relayed"] for b in _lines(out, "arc_relay.batch")] == [2, 2, 1]
    assert _lines(out, "arc_relay.stop")[0]["batches"] == 4


@pytest.mark.django_db
@override_settings(ARC=MEMORY)
def test_verbosity_zero_is_silent_and_verbosity_two_logs_idle_polls():
    out = StringIO()
    call_command("arc_relay", "--once", verbosity=0, stdout=out)
    assert out.getvalue() == ""
    out = StringIO()
    call_command("arc_relay", "--once", verbosity=2, stdout=out)
    [batch] = _lines(out, "arc_relay.batch")
    assert batch["attempted"] == 0


@pytest.mark.django_db
@override_settings(ARC={"EVENTS": {"TRANSPORT": "nowhere.NoSuchTransport"}})
def test_bad_transport_is_a_configuration_error():
    with pytest.raises(CommandError) as info:
        call_command("arc_relay", "--once", stdout=StringIO())
    assert info.value.returncode == 2
    assert "nowhere" in str(info.value)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setting", "value", "want"),
    [
        ("BATCH_SIZE", 0, "an integer from 1 to 10000"),
        ("BATCH_SIZE", -3, "an integer from 1 to 10000"),
        ("LEASE_SECONDS", "soon", "a positive number of seconds"),
        ("MAX_ATTEMPTS", "many", "an integer of 1 or more"),
        # arc's exponential_backoff refuses fewer than 1: its bare ValueError before
        ("MAX_ATTEMPTS", 0, "an integer of 1 or more"),
        ("MAX_ATTEMPTS", -2, "an integer of 1 or more"),
        # fix-seen6b: int(True) ran as 1, and a lease of 0 or less (published twice) or one
        # whose end cannot be computed ran, while arc.E008 refuses them
        ("BATCH_SIZE", True, "an integer from 1 to 10000"),
        ("MAX_ATTEMPTS", True, "an integer of 1 or more"),
        ("MAX_ATTEMPTS", False, "an integer of 1 or more"),
        ("LEASE_SECONDS", 0, "a positive number of seconds"),
        ("LEASE_SECONDS", -30, "a positive number of seconds"),
        ("LEASE_SECONDS", True, "a positive number of seconds"),
        ("LEASE_SECONDS", float("inf"), "a positive number of seconds"),
    ],
)
def test_an_outbox_setting_the_relay_cannot_run_with_is_a_configuration_error(setting, value, want):
    """With arc.E008 silenced (or on a host that runs no checks), a ``BATCH_SIZE`` of 0
    or less made ``arc_relay`` die of ``ValueError: batch_size must be ...`` (a traceback
    naming an option nobody passed, exit 1), and a ``LEASE_SECONDS`` or ``MAX_ATTEMPTS``
    ``int()``/``float()`` cannot read of their bare ``ValueError``. Each is the command's
    configuration error (exit 2) naming the setting."""
    with override_settings(ARC={**MEMORY, "OUTBOX": {setting: value}}):
        with pytest.raises(CommandError) as info:
            call_command("arc_relay", "--once", stdout=StringIO())
    assert info.value.returncode == 2
    assert f"ARC['OUTBOX']['{setting}'] must be {want}" in str(info.value)
    assert f"got {value!r} (arc.E008)" in str(info.value)


@pytest.mark.parametrize(
    "bad", [["--batch-size", "0"], ["--interval", "-1"], ["--max-batches", "x"]]
)
def test_invalid_arguments_are_rejected(bad):
    with pytest.raises(CommandError):
        call_command("arc_relay", *bad, stdout=StringIO())


def _run_relay(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "django", "arc_relay", *args],
        env=relay_env(tmp_path, **env),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_subprocess_exits_non_zero_on_configuration_error(tmp_path):
    # System checks (arc.E008) catch the bad path before the relay starts...
    proc = _run_relay(tmp_path, "--once", ARC_RELAY_TEST_TRANSPORT="nowhere.NoSuchTransport")
    assert proc.returncode != 0
    assert "nowhere.NoSuchTransport" in proc.stderr
    # ...and with checks skipped the relay itself refuses with exit status 2, no traceback.
    proc = _run_relay(
        tmp_path, "--once", "--skip-checks", ARC_RELAY_TEST_TRANSPORT="nowhere.NoSuchTransport"
    )
    assert proc.returncode == 2
    assert "cannot configure the outbox relay" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="subprocesses need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_sigterm_finishes_the_current_batch_then_exits_zero(tmp_path):
    outbox = EventOutbox(None)
    outbox.store_many(create_event("products.created", {"i": i}) for i in range(300))
    # Each publish_many waits after writing until the hold file exists, so SIGTERM lands
    # mid-batch: a fixed 1.5 s there let a test process stalled that long send it during the
    # second batch (200 published).
    hold = tmp_path / "hold"
    env = relay_env(tmp_path, ARC_RELAY_TEST_HOLD=str(hold))
    log = tmp_path / "relay.log"
    proc = start_relay(["--batch-size", "100", "--interval", "0.05", "--worker-id", "t1"], env, log)
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("*.jsonl")):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "worker never published"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        hold.touch()  # the worker finds the file only after the signal's handler has run
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout and proc.stdout.close()

    published = [eid for ids in read_published(tmp_path).values() for eid in ids]
    assert len(published) == 100
    delivered = set(
        OutboxEvent.objects.filter(status="delivered").values_list("event_id", flat=True)
    )
    assert delivered == set(published)
    assert OutboxEvent.objects.filter(status="pending", lease_owner__isnull=True).count() == 200
    text = log.read_text()
    assert '"event":"arc_relay.batch"' in text and '"relayed":100' in text
    assert '"event":"arc_relay.stop"' in text


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="subprocesses need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_second_sigterm_abandons_a_stuck_batch_and_leaves_it_leased(tmp_path):
    outbox = EventOutbox(None)
    outbox.store_many(create_event("products.created", {"i": i}) for i in range(10))
    env = relay_env(tmp_path, ARC_RELAY_TEST_DELAY="30")  # a transport that hangs
    log = tmp_path / "relay.log"
    proc = start_relay(["--batch-size", "10", "--worker-id", "stuck"], env, log)
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("*.jsonl")):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "worker never published"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert proc.poll() is None  # first signal: still finishing the batch
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout and proc.stdout.close()
    # Nothing was acknowledged; the rows stay leased and will be re-claimed after expiry.
    assert OutboxEvent.objects.filter(status="pending", lease_owner="stuck").count() == 10
