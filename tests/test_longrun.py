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


def _wait(predicate, proc, log, seconds=30.0):
    """Until ``predicate()``; the deadline is for a relay that never gets there, not a
    timing: a relay process starting Django on a loaded machine took more than 8 s."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def _published(directory):
    return {eid for ids in read_published(directory).values() for eid in ids}


@pytest.mark.slow
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
        second = _relays_another(outbox, proc, log)
        assert second.id in _published(tmp_path)
    finally:
        _stop(proc)


def _relays_another(outbox, proc, log):
    """A second event, stored now, is delivered by the running relay ``proc``."""
    second = create_event("products.created", {"i": 2})
    outbox.store_many([second])
    _wait(
        lambda: OutboxEvent.objects.filter(event_id=second.id, status="delivered").exists(),
        proc,
        log,
    )
    return second


def _stop(proc) -> None:
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout and proc.stdout.close()


def _relay_backends():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {row[0] for row in cursor.fetchall()}


def _terminate_sleeping_relay() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
            " AND clock_timestamp() - state_change BETWEEN interval '100 milliseconds'"
            " AND interval '600 milliseconds'"
        )
        return cursor.fetchone() is not None


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="subprocesses need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_relay_loop_honours_conn_max_age_and_health_checks(tmp_path):
    """A relay running for days is a series of batches, as a web worker is a series of
    requests: with CONN_HEALTH_CHECKS a connection the server closed while the relay idled is
    replaced before the next batch (no failed batch, no ERROR line), and one older than
    CONN_MAX_AGE is replaced (a failover, a rotated credential, a pooler's limit)."""
    outbox = EventOutbox(None)
    first = create_event("products.created", {"i": 1})
    outbox.store_many([first])
    log = tmp_path / "relay.log"
    env = relay_env(tmp_path, ARC_RELAY_TEST_CONN_MAX_AGE="1")
    proc = start_relay(["--interval", "1", "--worker-id", "aged"], env, log)
    try:
        _wait(lambda: first.id in _published(tmp_path), proc, log)
        seen: list[set[int]] = []
        _wait(lambda: len(seen.append(_relay_backends()) or seen[-1]) == 1, proc, log)
        (backend,) = seen[-1]
        # older than CONN_MAX_AGE: replaced by a new backend
        _wait(lambda: _relay_backends() - {backend}, proc, log)
        # ended while the relay sleeps between polls (idle 0.1 to 0.6 s of its 1 s), so the
        # end never falls between the health check and the batch's statements
        _wait(lambda: _terminate_sleeping_relay(), proc, log)
        _relays_another(outbox, proc, log)
    finally:
        _stop(proc)
    assert "arc_relay.error" not in log.read_text()


# -- a Redis Streams consumer that runs for days ------------------------------------------------
REDIS_URL = os.environ.get("ARC_REDIS_URL", "")


def _consumer_thread(transport):
    thread = threading.Thread(
        target=transport.run_forever, kwargs={"count": 10, "block_ms": 100}, daemon=True
    )
    thread.start()
    return thread


def _until(predicate, seconds=30.0):
    """Whether ``predicate()`` came true; the deadline is for what never does (a consumer
    reconnecting to a restarted Redis backs off a second between tries)."""
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
            # the handler runs before its XACK: the entry is pending until the ack lands
            assert _until(
                lambda: not producer.client.xpending(producer.stream, producer.group)["pending"]
            ), producer.client.xpending(producer.stream, producer.group)
        finally:
            consumer.stop()
            thread.join(timeout=5)
            producer.close()
            consumer.close()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_pubsub_listener_hears_again_after_a_redis_restart(tmp_path):
    from django_arc.events.transports import RedisPubSubTransport

    with redis_server(tmp_path) as server:
        producer = RedisPubSubTransport(server["url"])
        listener = RedisPubSubTransport(server["url"])
        got = []
        listener.subscribe("*", got.append)
        listener.start()
        try:
            before = create_event("products.created", {"i": 1})
            assert _until(lambda: producer.publish(before) and before.id in [e.id for e in got])
            server["stop"]()
            time.sleep(0.3)
            server["start"]()
            after = create_event("products.created", {"i": 2})

            def heard() -> bool:
                try:
                    producer.publish(after)
                except Exception:  # noqa: BLE001 - the producer's pool reconnects
                    return False
                time.sleep(0.1)
                return after.id in [e.id for e in got]

            assert _until(heard), "the listener never heard again"
        finally:
            listener.close()
            producer.close()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db
def test_relay_publishes_again_after_its_redis_restarted_or_killed_its_connection(tmp_path):
    from django_arc.events.transports import RedisStreamsTransport

    with redis_server(tmp_path) as server:
        transport = RedisStreamsTransport(server["url"], stream="s", group="g")
        outbox = EventOutbox(transport)
        try:
            outbox.store(create_event("products.created", {"i": 1}))
            assert outbox.relay_batch(worker_id="w").relayed == 1
            server["stop"]()
            server["start"]()
            outbox.store(create_event("products.created", {"i": 2}))
            assert outbox.relay_batch(worker_id="w").relayed == 1
            transport.client.execute_command("CLIENT", "KILL", "TYPE", "normal")
            outbox.store(create_event("products.created", {"i": 3}))
            assert outbox.relay_batch(worker_id="w").relayed == 1
            assert transport.client.xlen("s") == 2  # the restart lost the first
        finally:
            transport.close()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_stream_consumer_reads_again_after_its_blocked_connection_is_killed(tmp_path):
    from django_arc.events.transports import RedisStreamsTransport

    with redis_server(tmp_path) as server:
        producer = RedisStreamsTransport(server["url"], stream="s", group="g", consumer="p")
        consumer = RedisStreamsTransport(server["url"], stream="s", group="g", consumer="c")
        got = []
        consumer.subscribe("*", got.append)
        consumer.ensure_group()
        thread = threading.Thread(
            target=consumer.run_forever, kwargs={"count": 10, "block_ms": 2000}, daemon=True
        )
        thread.start()
        try:
            # the consumer waits in XREADGROUP BLOCK; the server drops it (CLIENT KILL)
            assert _until(
                lambda: any(
                    "xreadgroup" in str(c.get("cmd", "")) for c in producer.client.client_list()
                )
            )
            producer.client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            event = create_event("products.created", {"i": 1})
            producer.publish(event)
            assert _until(lambda: event.id in [e.id for e in got])
        finally:
            consumer.stop()
            thread.join(timeout=5)
            producer.close()
            consumer.close()


# -- a deployment that runs for months ----------------------------------------------------------
@pytest.mark.django_db
def test_arc_purge_outbox_refuses_a_retention_reaching_before_the_year_1():
    """``--days 800000`` (or a setting that large, or one that is no number) was a
    traceback on SQLite (``OverflowError: date value out of range`` computing the cut-off;
    ``float()`` of ``"7d"``), not the command's error naming what to change; PostgreSQL
    computes the cut-off itself, and answers the same now. No row is deleted."""
    from datetime import timedelta
    from io import StringIO

    from django.core.management import CommandError, call_command
    from django.test import override_settings
    from django.utils import timezone

    outbox = EventOutbox(None)
    outbox.store_many([create_event("products.created", {"i": 1})])
    OutboxEvent.objects.update(status="delivered", delivered_at=timezone.now() - timedelta(days=30))
    for days in ("800000", "999999.5", "999999999"):
        with pytest.raises(CommandError, match="--days is too large: .* before the year 1"):
            call_command("arc_purge_outbox", "--days", days)
    for setting in (800_000, "7d", float("nan"), -1):
        with override_settings(ARC={"OUTBOX": {"DELIVERED_RETENTION_DAYS": setting}}):
            with pytest.raises(CommandError, match="DELIVERED_RETENTION_DAYS"):
                call_command("arc_purge_outbox")
    assert OutboxEvent.objects.count() == 1
    call_command("arc_purge_outbox", "--days", "-0", stdout=StringIO())  # zero days: all
    assert OutboxEvent.objects.count() == 0


def test_the_default_failure_policy_gives_a_broker_outage_one_to_two_minutes():
    """What docs/outbox.md tells operators: with the defaults an event whose publishes fail
    for about one to two minutes is dead (an outage longer than that needs a requeue), and
    MAX_ATTEMPTS = 16 stretches that to half an hour to an hour."""
    from django.utils import timezone

    from django_arc.outbox import DEAD, exponential_backoff

    def span(max_attempts: int, jitter: bool) -> tuple[float, object]:
        policy = exponential_backoff(max_attempts=max_attempts, jitter=jitter)
        total = 0.0
        for attempts in range(1, max_attempts):
            start = timezone.now()
            total += (policy(attempts, None) - start).total_seconds()
        return total, policy(max_attempts, None)

    total, last = span(8, jitter=False)
    assert 126 < total < 128 and last is DEAD
    assert 63 < span(8, jitter=True)[0] < 128
    total, last = span(16, jitter=False)
    assert 4000 < total < 4050 and last is DEAD  # about an hour; at least half with jitter


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_a_blocking_read_longer_than_the_socket_timeout_returns_instead_of_failing():
    """redis-py 8 (admitted by the pins) gives a client built from a URL a 5 s socket
    timeout: ``consume(block_ms=…)`` of 5 s or more failed with ``TimeoutError`` whenever
    the stream stayed quiet, and an idle ``run_forever`` logged a traceback every 6 s for as
    long as it ran. A read now waits no longer than the socket allows, and returns."""
    import uuid

    from django_arc.events.transports import RedisStreamsTransport

    # 2.5 s: the read blocks 2 s and has 0.5 s to answer (a 0.5 s timeout left 100 ms,
    # which a loaded machine can miss); the uncapped 5 s block outlasts it
    url = REDIS_URL + ("&" if "?" in REDIS_URL else "?") + "socket_timeout=2.5"
    transport = RedisStreamsTransport(url, stream=f"arc-test:{uuid.uuid4().hex}", group="g")
    try:
        assert transport.consume(count=10, block_ms=5000) == 0
    finally:
        transport.client.delete(transport.stream)
        transport.close()


def _blocked_reader(client, name):
    """Whether the connection named ``name`` waits in a blocking XREADGROUP."""
    return any(
        c.get("name") == name and c.get("cmd") == "xreadgroup" and "b" in c.get("flags", "")
        for c in client.client_list()
    )


def _consume_in_thread(transport, block_ms):
    outcome = {}

    def consume():
        try:
            outcome["handled"] = transport.consume(count=10, block_ms=block_ms)
        except Exception as exc:  # noqa: BLE001 - what the test looks at
            outcome["error"] = exc

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_a_client_set_on_the_transport_later_has_its_own_socket_timeout_read():
    """The socket timeout was read once per transport: a project that set
    ``transport.client`` to another client (one with a shorter timeout) after a read kept
    the first client's, and a quiet stream's read failed with ``TimeoutError`` again."""
    import uuid

    import redis

    from django_arc.events.transports import RedisStreamsTransport

    blocks = []

    class Recording(redis.Redis):
        """Records the BLOCK its XREADGROUP would send, and answers no entry: what is
        asserted is the block asked for, not a read timed against the socket's timeout
        (which a loaded machine missed by its 100 ms of leeway)."""

        def xreadgroup(self, *args, **kwargs):
            blocks.append(kwargs.get("block"))
            return []

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=None)
    transport = RedisStreamsTransport(client=client, stream=f"arc-test:{uuid.uuid4().hex}")
    try:
        assert transport.consume(count=10, block_ms=100) == 0
        transport.client = Recording.from_url(REDIS_URL, socket_timeout=0.5)
        client.close()
        assert transport.consume(count=10, block_ms=2000) == 0
        assert blocks == [400]  # four fifths of the new client's 0.5 s, not 2,000 ms
    finally:
        transport.client.delete(transport.stream)
        transport.close()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_consume_block_ms_0_waits_until_an_entry_comes():
    """``block_ms=0`` is XREADGROUP's ``BLOCK 0``: wait until an entry comes. 7160c1d's
    ``max(1, …)`` made it a read of 1 ms, returning 0 at once: ``run_forever(block_ms=0)``
    became a busy loop of XAUTOCLAIM and XREADGROUP on an idle stream."""
    import uuid

    import redis

    from django_arc.events.transports import RedisStreamsTransport

    blocks = []

    class Client(redis.Redis):
        """The BLOCK each XREADGROUP sends (Redis may hold a 1 ms block ~100 ms)."""

        def xreadgroup(self, *args, **kwargs):
            blocks.append(kwargs.get("block"))
            return super().xreadgroup(*args, **kwargs)

    name = f"arc-test-{uuid.uuid4().hex[:8]}"
    client = Client.from_url(REDIS_URL, socket_timeout=None, client_name=name)
    transport = RedisStreamsTransport(client=client, stream=f"arc-test:{name}", group="g")
    producer = RedisStreamsTransport(REDIS_URL, stream=transport.stream, group="g")
    transport.ensure_group()
    got = []
    transport.subscribe("*", got.append)
    thread, outcome = _consume_in_thread(transport, 0)
    try:
        assert _until(lambda: not thread.is_alive() or _blocked_reader(producer.client, name))
        event = create_event("products.created", {"i": 1})
        producer.publish(event)
        thread.join(timeout=5)
        assert outcome == {"handled": 1} and [e.id for e in got] == [event.id]
        assert blocks == [0]
    finally:
        producer.client.delete(transport.stream)
        thread.join(timeout=5)
        producer.close()
        transport.close()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_a_read_blocked_when_its_stream_is_deleted_creates_the_group_again():
    """A consumer spends its idle time blocked in XREADGROUP; a stream deleted then (DEL,
    FLUSHDB, an eviction) answers that read ``UNBLOCKED the stream key no longer exists``,
    not ``NOGROUP``: 758b408's recovery missed it, so the read failed (``run_forever``
    logging it as the consumer's failure, with a traceback) before the next one recovered.
    """
    import uuid

    import redis

    from django_arc.events.transports import RedisStreamsTransport

    name = f"arc-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=None, client_name=name)
    transport = RedisStreamsTransport(client=client, stream=f"arc-test:{name}", group="g")
    producer = RedisStreamsTransport(REDIS_URL, stream=transport.stream, group="g")
    transport.ensure_group()
    got = []
    transport.subscribe("*", got.append)
    thread, outcome = _consume_in_thread(transport, 30_000)
    try:
        assert _until(lambda: _blocked_reader(producer.client, name))
        producer.client.delete(transport.stream)
        event = create_event("products.created", {"i": 1})
        producer.publish(event)
        thread.join(timeout=10)
        assert outcome == {"handled": 1} and [e.id for e in got] == [event.id]
    finally:
        producer.client.delete(transport.stream)
        thread.join(timeout=5)
        producer.close()
        transport.close()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_a_lost_group_named_inside_a_wrapping_clients_message_is_created_again(caplog):
    """A client that wraps the server's error in its own text (a tracing or retrying
    wrapper, ``"XAUTOCLAIM failed: NOGROUP ..."``) still names NOGROUP: the group is created
    again and the read retried, not failed at every read for ever; the loss is a WARNING
    (no traceback, no ERROR: not the consumer's failure)."""
    import logging
    import uuid

    import redis

    from django_arc.events.transports import RedisStreamsTransport

    class Wrapping(redis.Redis):
        def _wrapped(self, name, *args, **kwargs):
            try:
                return getattr(super(), name)(*args, **kwargs)
            except redis.ResponseError as exc:
                raise redis.ResponseError(f"{name.upper()} failed: {exc}") from exc

        def xautoclaim(self, *args, **kwargs):
            return self._wrapped("xautoclaim", *args, **kwargs)

        def xreadgroup(self, *args, **kwargs):
            return self._wrapped("xreadgroup", *args, **kwargs)

    name = f"arc-test-{uuid.uuid4().hex[:8]}"
    transport = RedisStreamsTransport(
        client=Wrapping.from_url(REDIS_URL), stream=f"arc-test:{name}", group="g"
    )
    producer = RedisStreamsTransport(REDIS_URL, stream=transport.stream, group="g")
    got = []
    transport.subscribe("*", got.append)
    try:
        transport.ensure_group()
        producer.client.delete(transport.stream)  # the group with it
        event = create_event("products.created", {"i": 1})
        producer.publish(event)
        caplog.set_level(logging.DEBUG, logger="django_arc")
        assert transport.consume(block_ms=None) == 1
        assert [e.id for e in got] == [event.id]
        lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("dj")]
        assert lines == [
            (
                "WARNING",
                f"Stream {transport.stream} has no group g (Redis lost it); creating it again",
            )
        ], lines
    finally:
        producer.client.delete(transport.stream)
        producer.close()
        transport.close()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_consume_block_ms_0_under_a_socket_timeout_blocks_four_fifths_of_it():
    """``block_ms=0`` ("until an entry comes") under a client's socket timeout (redis-py
    8's default 5 s) is no ``BLOCK 0``: that read outlasted the socket on a quiet stream and
    failed with ``TimeoutError``. It blocks four fifths of the timeout, and the caller reads
    again."""
    import uuid

    import redis

    from django_arc.events.transports import RedisStreamsTransport

    blocks = []

    class Recording(redis.Redis):
        def xreadgroup(self, *args, **kwargs):
            blocks.append(kwargs.get("block"))
            return []

    transport = RedisStreamsTransport(
        client=Recording.from_url(REDIS_URL, socket_timeout=0.5),
        stream=f"arc-test:{uuid.uuid4().hex}",
    )
    try:
        assert transport.consume(count=10, block_ms=0) == 0
        assert blocks == [400]
    finally:
        transport.client.delete(transport.stream)
        transport.close()


@pytest.mark.redis
def test_a_client_without_a_connection_pool_blocks_as_asked():
    """A client of another shape (a cluster client, a test double: no ``connection_pool``)
    has no socket timeout to read: its reads block as long as asked, not capped by a guess."""
    from django_arc.events.transports import RedisStreamsTransport

    blocks = []

    class PoolLess:
        def xgroup_create(self, *args, **kwargs):
            return True

        def xautoclaim(self, *args, **kwargs):
            return ["0-0", [], []]

        def xreadgroup(self, *args, **kwargs):
            blocks.append(kwargs.get("block"))
            return []

    transport = RedisStreamsTransport(client=PoolLess(), stream="arc-test:pool-less")
    assert transport.consume(count=10, block_ms=2000) == 0
    assert transport.consume(count=10, block_ms=0) == 0
    assert blocks == [2000, 0]


@pytest.mark.redis
def test_a_private_redis_server_whose_port_was_taken_starts_on_another(tmp_path, monkeypatch):
    """``redis_server`` picks a free port, then starts the server on it: another process
    (the other backend's test run, a client's ephemeral port) may take the port in between.
    The server then exits, and waiting for the port to accept a connection reached the
    other process: the test went on against it. The server starts on another port."""
    import socket

    from redis import Redis

    from tests import redis_support

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks = iter([taken])
        free_port = redis_support.free_port
        monkeypatch.setattr(redis_support, "free_port", lambda: next(picks, None) or free_port())
        with redis_server(tmp_path) as server:
            assert f":{taken}/" not in server["url"]
            assert Redis.from_url(server["url"], socket_timeout=5).ping()
