"""Crash safety: four ``arc_relay`` processes drain 5,000 events on PostgreSQL, one is SIGKILLed.

At-least-once means: every committed event is published, whatever happens to a worker. The
price of a hard kill is bounded: only the rows the dead worker had leased (one batch) can be
published twice, after their lease expires. A graceful run publishes every event exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from django_arc.events.event import create_event
from django_arc.outbox import EventOutbox, OutboxEvent
from tests.outbox_support import read_published
from tests.relay_procs import relay_env, start_relay

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]

EVENTS = 5000
WORKERS = 4
BATCH = 50
LEASE_SECONDS = 3


def _seed() -> set[str]:
    events = [
        create_event("orders.created", {"n": i}, partition_key=f"orders:{i % 97}")
        for i in range(EVENTS)
    ]
    EventOutbox(None).store_many(events)
    return {e.id for e in events}


def _start_workers(tmp_path: Path, slow_first: bool = False) -> list[subprocess.Popen]:
    """``slow_first`` makes w0 linger 1 s between publishing a batch and acknowledging it,
    so the test can kill it inside that window deterministically."""
    procs = []
    for i in range(WORKERS):
        delay = "1.0" if slow_first and i == 0 else "0.03"
        env = relay_env(
            tmp_path, ARC_RELAY_TEST_LEASE=str(LEASE_SECONDS), ARC_RELAY_TEST_DELAY=delay
        )
        args = ["--batch-size", str(BATCH), "--interval", "0.05", "--worker-id", f"w{i}"]
        procs.append(start_relay(args, env, tmp_path / f"w{i}.log"))
    return procs


def _wait(predicate, timeout: float, procs, tmp_path: Path, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for i, proc in enumerate(procs):
            code = proc.poll()
            if code is not None and code != -signal.SIGKILL:
                pytest.fail(f"worker w{i} exited {code}:\n{(tmp_path / f'w{i}.log').read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _delivered() -> int:
    return OutboxEvent.objects.filter(status="delivered").count()


def _stop(procs: list[subprocess.Popen], tmp_path: Path) -> list[int]:
    """SIGTERM every live worker once it has started (logged ``arc_relay.start``, after its
    handlers are installed): on a loaded machine the others can drain every row while one
    is still importing Django, and a SIGTERM then ends it as the default handler does (-15),
    which says nothing about the graceful stop tested here."""
    deadline = time.monotonic() + 30
    for i, proc in enumerate(procs):
        log = tmp_path / f"w{i}.log"
        while proc.poll() is None and time.monotonic() < deadline:
            if log.exists() and b"arc_relay.start" in log.read_bytes():
                break
            time.sleep(0.05)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=20))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
        if proc.stdout:
            proc.stdout.close()
    return codes


def _published_by_pid(tmp_path: Path, procs) -> dict[str, list[str]]:
    by_pid = read_published(tmp_path)
    names = {proc.pid: f"w{i}" for i, proc in enumerate(procs)}
    return {names[pid]: ids for pid, ids in by_pid.items()}


def test_sigkill_of_one_worker_loses_nothing_and_duplicates_only_its_batch(tmp_path):
    stored = _seed()
    procs = _start_workers(tmp_path, slow_first=True)
    victim = 0
    try:
        # Kill w0 mid-run after it published a batch and before it acknowledged it: its lease
        # was taken more than 0.3 s ago (claim + publish take milliseconds, then it lingers).
        def victim_holds_lease() -> bool:
            now = timezone.now()
            return (
                _delivered() >= EVENTS // 5
                and OutboxEvent.objects.filter(
                    status="pending",
                    lease_owner=f"w{victim}",
                    lease_expires_at__gt=now,
                    lease_expires_at__lt=now + timedelta(seconds=LEASE_SECONDS - 0.3),
                ).exists()
            )

        _wait(victim_holds_lease, 40, procs, tmp_path, "w0 to hold a lease mid-run")
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait(timeout=10)
        orphaned = OutboxEvent.objects.filter(status="pending", lease_owner=f"w{victim}")
        leased_by_victim = set(orphaned.values_list("event_id", flat=True))
        lease_ran_out_at = max(orphaned.values_list("lease_expires_at", flat=True))
        assert 0 < len(leased_by_victim) <= BATCH
        assert _delivered() < EVENTS, "the kill came too late to test anything"

        _wait(lambda: _delivered() == EVENTS, 45, procs, tmp_path, "all rows delivered")
        # The orphaned batch could only be re-claimed once its lease ran out. (Compared with
        # the lease itself: a wall-clock bound from the kill raced with how long w0 had held
        # the lease when it was killed.)
        early = OutboxEvent.objects.filter(
            event_id__in=leased_by_victim, delivered_at__lt=lease_ran_out_at
        )
        assert not early.exists()
    finally:
        codes = _stop(procs, tmp_path)

    assert codes[victim] == -signal.SIGKILL
    assert codes[1:] == [0] * (WORKERS - 1)
    assert OutboxEvent.objects.exclude(status="delivered").count() == 0
    assert OutboxEvent.objects.filter(lease_owner__isnull=False).count() == 0

    by_worker = _published_by_pid(tmp_path, procs)
    counts = Counter(eid for ids in by_worker.values() for eid in ids)
    assert set(counts) == stored, "every stored event is published at least once"
    duplicates = {eid for eid, n in counts.items() if n > 1}
    assert duplicates <= leased_by_victim, "duplicates come only from the killed worker's batch"
    assert len(duplicates) <= BATCH
    # w0 was killed after publishing its leased batch, so exactly that batch was re-published.
    assert duplicates == leased_by_victim
    assert max(counts.values()) <= 2
    # Each duplicate is the victim's unacknowledged publish plus one re-publish by a survivor.
    victim_ids = set(by_worker.get(f"w{victim}", []))
    assert duplicates <= victim_ids
    assert len(by_worker) >= 2, "several workers shared the load"


def test_without_kills_every_event_is_published_exactly_once(tmp_path):
    stored = _seed()
    procs = _start_workers(tmp_path)
    try:
        _wait(lambda: _delivered() == EVENTS, 45, procs, tmp_path, "all rows delivered")
    finally:
        codes = _stop(procs, tmp_path)
    assert codes == [0] * WORKERS

    by_worker = _published_by_pid(tmp_path, procs)
    counts = Counter(eid for ids in by_worker.values() for eid in ids)
    assert set(counts) == stored
    assert max(counts.values()) == 1, "no event published twice without a crash"
    assert sum(len(ids) for ids in by_worker.values()) == EVENTS
    assert len([ids for ids in by_worker.values() if ids]) >= 2
    assert OutboxEvent.objects.exclude(status="delivered").count() == 0
