"""Long-lived processes: what a relay, consumer or worker that runs for days meets and a
test of seconds does not (a backend the server terminated, a Redis connection killed while
waiting, memos that grow with distinct inputs)."""

from __future__ import annotations

import os
import threading
import time

import pytest
from django.db import connection

from django_arc.events.event import create_event
from django_arc.outbox import EventOutbox, OutboxEvent
from tests.outbox_support import read_published
from tests.redis_support import redis_server
from tests.relay_procs import relay_env, start_relay

pytestmark = [pytest.mark.slow]


def _wait(predicate, proc, log, seconds=8.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def _published(directory):
    return {eid for ids in read_published(directory).values() for eid in ids}


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="subprocesses need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_relay_loop_outlives_its_backend_being_terminated(tmp_path):
    outbox = EventOutbox(None)
    first = create_event("products.created", {"i": 1})
    outbox.store_many([first])
    log = tmp_path / "relay.log"
    proc = start_relay(["--interval", "0.05", "--worker-id", "longrun"], relay_env(tmp_path), log)
    try:
        _wait(lambda: first.id in _published(tmp_path), proc, log)
        # the server ends the relay's connection (pg_terminate_backend: an admin, a
        # failover, an idle timeout): the next batches must reconnect, not die or spin
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND application_name <> 'keep'"
            )
            assert cursor.fetchone()[0] is True
        second = create_event("products.created", {"i": 2})
        outbox.store_many([second])
        _wait(lambda: second.id in _published(tmp_path), proc, log)
        _wait(
            lambda: OutboxEvent.objects.filter(event_id=second.id, status="delivered").exists(),
            proc,
            log,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout and proc.stdout.close()


# -- a Redis Streams consumer that runs for days ------------------------------------------------
REDIS_URL = os.environ.get("ARC_REDIS_URL", "")


def _consumer_thread(transport):
    thread = threading.Thread(
        target=transport.run_forever, kwargs={"count": 10, "block_ms": 100}, daemon=True
    )
    thread.start()
    return thread


def _until(predicate, seconds=6.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_stream_consumer_recreates_its_group_after_redis_lost_it(tmp_path):
    """A Redis restarted without persistence (or one that evicted the stream under an
    allkeys-* policy, or an operator's FLUSHDB) no longer has the consumer group: the next
    publish creates a bare stream, and every XREADGROUP answers NOGROUP. The consumer must
    create its group again, not log the same error every second for ever."""
    from django_arc.events.transports import RedisStreamsTransport

    with redis_server(tmp_path) as server:
        producer = RedisStreamsTransport(server["url"], stream="s", group="g", consumer="p")
        consumer = RedisStreamsTransport(server["url"], stream="s", group="g", consumer="c")
        got = []
        consumer.subscribe("*", got.append)
        thread = _consumer_thread(consumer)
        try:
            before = create_event("products.created", {"i": 1})
            producer.publish(before)
            assert _until(lambda: [e.id for e in got] == [before.id])
            server["stop"]()
            server["start"]()  # no RDB, no AOF: the stream and its group are gone
            after = create_event("products.created", {"i": 2})
            producer.publish(after)
            assert _until(lambda: after.id in [e.id for e in got]), "consumer never read again"
            assert not producer.client.xpending(producer.stream, producer.group)["pending"]
        finally:
            consumer.stop()
            thread.join(timeout=5)
            producer.close()
            consumer.close()
