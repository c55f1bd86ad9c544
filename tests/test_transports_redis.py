"""Redis transports against a real Redis server (``ARC_REDIS_URL``; ``make test`` starts one).

Every test works on its own stream / channel prefix, so runs never see each other's data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from django.test import override_settings

from django_arc.events import create_event, get_transport, with_retry
from django_arc.events.retry import DeadLetteredEvent
from django_arc.events.transports import RedisPubSubTransport, RedisStreamsTransport
from django_arc.signals import event_received

REDIS_URL = os.environ.get("ARC_REDIS_URL", "")
ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
]


@pytest.fixture
def stream_name():
    import redis

    name = f"arc-test:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(name, f"{name}:dlq")
    client.close()


def make_streams(stream: str, consumer: str, **kwargs) -> RedisStreamsTransport:
    """A transport on the test's own stream and dead-letter stream (the default dead-letter
    stream, ``arc:events:dlq``, is shared by every stream, as in arc)."""
    return RedisStreamsTransport(
        REDIS_URL,
        stream=stream,
        group="workers",
        consumer=consumer,
        dead_stream=f"{stream}:dlq",
        **kwargs,
    )


def pending_summary(transport: RedisStreamsTransport) -> dict[str, int]:
    rows = transport.client.xpending_range(transport.stream, transport.group, "-", "+", 100)
    out: dict[str, int] = {}
    for row in rows:
        consumer = (
            row["consumer"].decode() if isinstance(row["consumer"], bytes) else row["consumer"]
        )
        out[consumer] = out.get(consumer, 0) + 1
    return out


# -- streams ------------------------------------------------------------------------------------
def test_streams_publish_consume_and_ack(stream_name):
    producer = make_streams(stream_name, "producer")
    consumer = make_streams(stream_name, "c1")
    got = []
    consumer.subscribe("products.*", got.append)
    try:
        events = [create_event("products.created", {"n": i}) for i in range(3)]
        entry_ids = [producer.publish(e) for e in events]
        assert len(set(entry_ids)) == 3
        assert producer.client.xlen(stream_name) == 3
        assert consumer.consume(count=10, block_ms=100) == 3
        assert [e.id for e in got] == [e.id for e in events]
        assert got[0] == events[0]  # full envelope survives the wire
        assert pending_summary(consumer) == {}  # all acknowledged
        assert consumer.run_once() == 0  # nothing left
    finally:
        producer.close()
        consumer.close()


def test_events_published_before_the_group_exists_are_not_lost(stream_name):
    producer = make_streams(stream_name, "producer")
    consumer = make_streams(stream_name, "late")
    got = []
    consumer.subscribe("*", got.append)
    try:
        early = create_event("orders.created", {})
        producer.publish(early)
        assert consumer.run_once() == 1
        assert [e.id for e in got] == [early.id]
    finally:
        producer.close()
        consumer.close()


def test_streams_publish_many_pipelines_in_order_and_trims(stream_name):
    transport = make_streams(stream_name, "c", maxlen=100)
    try:
        events = [create_event("bulk.item", {"i": i}) for i in range(1000)]
        ids = transport.publish_many(events)
        assert len(ids) == 1000
        assert ids == sorted(ids, key=lambda s: tuple(int(p) for p in s.split("-")))
        length = transport.client.xlen(stream_name)
        assert 100 <= length < 1000  # MAXLEN ~ trims approximately
        assert transport.publish_many([]) == []
    finally:
        transport.close()


def test_failed_handler_leaves_entry_pending_then_redelivered_after_visibility_timeout(
    stream_name,
):
    """A consumer takes over an entry another left pending once it has been idle for the
    taker's ``visibility_timeout``, not before. "Not before" is asked of a consumer whose
    timeout no run of this test reaches (30 s): asked of the one-second consumer, it needed
    its read within a second of the failed delivery, which a loaded machine need not do."""
    first = make_streams(stream_name, "first", visibility_timeout=1)
    patient = make_streams(stream_name, "patient", visibility_timeout=30)
    second = make_streams(stream_name, "second", visibility_timeout=1)
    first.subscribe("*", lambda e: (_ for _ in ()).throw(RuntimeError("crash in handler")))
    got, waited = [], []
    patient.subscribe("*", waited.append)
    second.subscribe("*", got.append)
    try:
        event = create_event("orders.created", {})
        first.publish(event)
        assert first.consume(count=10, block_ms=100) == 0
        assert pending_summary(first) == {"first": 1}
        # Not yet idle long enough: the other consumer must not steal it.
        assert patient.run_once() == 0
        assert waited == [] and pending_summary(first) == {"first": 1}
        time.sleep(1.2)
        assert second.run_once() == 1
        assert [e.id for e in got] == [event.id]
        assert pending_summary(second) == {}
    finally:
        patient.close()
        first.close()
        second.close()


CRASHING_CONSUMER = textwrap.dedent(
    """
    import os, sys, time
    import django
    django.setup()
    from django_arc.events.transports import RedisStreamsTransport

    t = RedisStreamsTransport(os.environ["ARC_REDIS_URL"], stream=sys.argv[1], group="workers",
                              consumer="doomed", visibility_timeout=1)

    def handler(event):
        print("GOT", event.id, flush=True)
        time.sleep(600)  # killed here, before XACK

    t.subscribe("*", handler)
    t.consume(count=10, block_ms=5000)
    """
)


def test_consumer_killed_before_xack_is_redelivered_to_another_consumer(stream_name):
    producer = make_streams(stream_name, "producer")
    patient = make_streams(stream_name, "patient", visibility_timeout=30)
    survivor = make_streams(stream_name, "survivor", visibility_timeout=1)
    got, waited = [], []
    patient.subscribe("*", waited.append)
    survivor.subscribe("*", got.append)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_CONSUMER, stream_name],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        survivor.ensure_group()
        event = create_event("payments.captured", {"amount": "10.00"})
        producer.publish(event)
        line = proc.stdout.readline()  # blocks until the doomed consumer holds the entry
        assert line.strip() == f"GOT {event.id}", proc.stderr.read() if not line else line
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert pending_summary(survivor) == {"doomed": 1}
        # still within the visibility timeout (a 30 s one: the survivor's second may have
        # passed while a loaded machine killed the consumer)
        assert patient.run_once() == 0 and waited == []
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.2)
            survivor.run_once()
        assert [e.id for e in got] == [event.id]
        assert pending_summary(survivor) == {}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
        producer.close()
        patient.close()
        survivor.close()


def test_with_retry_over_streams_dead_letters_and_acks(stream_name):
    transport = make_streams(stream_name, "c")
    calls = []
    dead_seen: list[DeadLetteredEvent] = []

    def handler(event):
        calls.append(event.id)
        raise ValueError(f"cannot process {event.type}")

    transport.subscribe(
        "invoices.*",
        with_retry(
            handler, max_retries=2, backoff=0, transport=transport, on_dead=dead_seen.append
        ),
    )
    try:
        event = create_event("invoices.issued", {"total": 5})
        transport.publish(event)
        assert transport.consume(count=10, block_ms=100) == 1  # handled = dead-lettered + acked
        assert calls == [event.id] * 3
        assert pending_summary(transport) == {}
        [(_, fields)] = transport.client.xrange(f"{stream_name}:dlq")
        assert fields[b"originalStream"] == stream_name.encode()
        assert fields[b"group"] == b"workers"
        assert fields[b"originalId"] == transport.client.xrange(stream_name)[0][0]
        assert fields[b"reason"] == b"ValueError: cannot process invoices.issued"
        [stored] = transport.dead_letters()
        assert stored.event == event
        assert stored.attempts == 3
        assert stored.error == "ValueError: cannot process invoices.issued"
        assert dead_seen and dead_seen[0].event.id == event.id
    finally:
        transport.close()


def test_poison_entries_go_to_the_dead_stream(stream_name):
    transport = make_streams(stream_name, "c", visibility_timeout=0.2, max_deliveries=2)
    transport.subscribe("*", lambda e: (_ for _ in ()).throw(RuntimeError("always")))
    try:
        transport.ensure_group()
        transport.client.xadd(stream_name, {"type": "x.y", "data": "{not json"})
        event = create_event("x.y", {})
        transport.publish(event)
        transport.run_once()
        # malformed entry: dead-lettered and acknowledged at once; the valid one stays pending
        [(_, poison)] = transport.client.xrange(f"{stream_name}:dlq")
        assert poison[b"reason"].startswith(b"data is not JSON")
        assert poison[b"data"] == b"{not json"  # kept, so it can be inspected and replayed
        assert pending_summary(transport) == {"c": 1}
        for _ in range(4):  # redelivered until it exceeds max_deliveries
            time.sleep(0.3)
            transport.run_once()
        assert pending_summary(transport) == {}
        [dead] = transport.dead_letters()
        assert dead.event.id == event.id
        assert "delivered 3 times" in dead.error
    finally:
        transport.close()


def test_streams_glob_subscriptions_and_event_received(stream_name):
    transport = make_streams(stream_name, "c")
    products, everything, received = [], [], []

    def on_received(sender, event, **kwargs):
        received.append((sender, event.type))

    event_received.connect(on_received, weak=False, dispatch_uid="test-streams-received")
    transport.subscribe("products.*", lambda e: products.append(e.type))
    transport.subscribe("*", lambda e: everything.append(e.type))
    try:
        transport.publish_many(
            [create_event("products.created", {}), create_event("orders.created", {})]
        )
        assert transport.run_once() == 2
    finally:
        event_received.disconnect(dispatch_uid="test-streams-received")
        transport.close()
    assert products == ["products.created"]
    assert everything == ["products.created", "orders.created"]
    assert received == [
        (RedisStreamsTransport, "products.created"),
        (RedisStreamsTransport, "orders.created"),
    ]


def test_streams_transport_from_settings(stream_name):
    options = {"url": REDIS_URL, "stream": stream_name, "group": "g", "consumer": "settings"}
    with override_settings(
        ARC={
            "EVENTS": {
                "TRANSPORT": "django_arc.events.transports.RedisStreamsTransport",
                "OPTIONS": options,
            }
        }
    ):
        transport = get_transport()
        assert isinstance(transport, RedisStreamsTransport)
        assert transport.stream == stream_name
        transport.publish(create_event("a.b", {}))
        assert transport.client.xlen(stream_name) == 1


# -- pub/sub ------------------------------------------------------------------------------------
def test_pubsub_delivers_to_listening_glob_subscribers_once():
    prefix = f"arc-test-{uuid.uuid4().hex}:"
    listener = RedisPubSubTransport(REDIS_URL, channel_prefix=prefix)
    publisher = RedisPubSubTransport(REDIS_URL, channel_prefix=prefix)
    products, everything = [], []
    listener.subscribe("products.*", products.append)
    listener.subscribe("*", everything.append)
    try:
        listener.listen_once(timeout=0.1)  # subscribes (and confirms) before publishing
        created = create_event("products.created", {"id": 1})
        assert publisher.publish(created) == 1  # one Redis client listening
        counts = publisher.publish_many(
            [create_event("orders.created", {}), create_event("products.deleted", {})]
        )
        assert counts == [1, 1]
        deadline = time.monotonic() + 5
        while len(everything) < 3 and time.monotonic() < deadline:
            listener.listen_once(timeout=0.5)
        assert [e.type for e in everything] == [
            "products.created",
            "orders.created",
            "products.deleted",
        ]
        assert [e.type for e in products] == ["products.created", "products.deleted"]
        assert everything[0] == created
    finally:
        listener.close()
        publisher.close()


def test_pubsub_is_fire_and_forget_and_background_listener_works():
    prefix = f"arc-test-{uuid.uuid4().hex}:"
    publisher = RedisPubSubTransport(REDIS_URL, channel_prefix=prefix)
    listener = RedisPubSubTransport(REDIS_URL, channel_prefix=prefix)
    got = []
    listener.subscribe("*", got.append)
    try:
        assert publisher.publish(create_event("lost.event", {})) == 0  # nobody listening
        listener.start()
        kept = create_event("kept.event", {})
        publisher.publish(kept)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.id for e in got] == [kept.id]
    finally:
        listener.close()
        publisher.close()
