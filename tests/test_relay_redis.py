"""The relay against a real Redis Streams transport (skipped without ``ARC_REDIS_URL``)."""

from __future__ import annotations

import functools
import json
import os
import uuid

import pytest

from django_arc.events.event import create_event
from django_arc.events.transports import RedisStreamsTransport
from django_arc.outbox import EventOutbox, OutboxEvent

REDIS_URL = os.environ.get("ARC_REDIS_URL", "")

pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set"),
]


@pytest.fixture
def stream():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    name = f"arc:test:relay:{uuid.uuid4().hex}"
    yield client, name
    client.delete(name)
    client.close()


def test_relay_appends_the_batch_to_the_stream_in_order(stream):
    client, name = stream
    transport = RedisStreamsTransport(url=REDIS_URL, stream=name)
    outbox = EventOutbox(transport)
    ids = [
        outbox.store(create_event("orders.created", {"n": i}, partition_key="o:1")).event_id
        for i in range(25)
    ]

    result = outbox.relay_batch(limit=100)

    assert result.relayed == 25 and result.used_publish_many
    entries = client.xrange(name)
    # arc's entry: exactly the fields type and data, data = JSON.stringify(event)
    assert [sorted(fields) for _, fields in entries] == [[b"data", b"type"]] * 25
    envelopes = [json.loads(fields[b"data"]) for _, fields in entries]
    assert [e["meta"]["id"] for e in envelopes] == ids
    assert entries[3][1][b"type"] == b"orders.created"
    assert list(envelopes[3]) == ["type", "payload", "meta"]
    assert envelopes[3]["type"] == "orders.created" and envelopes[3]["payload"] == {"n": 3}
    assert envelopes[3]["meta"]["partitionKey"] == "o:1"
    assert "partition_key" not in envelopes[3]["meta"]
    assert OutboxEvent.objects.filter(status="delivered").count() == 25
    transport.close()


def test_unreachable_redis_schedules_a_retry_instead_of_losing_the_event():
    # A port nothing listens on: every publish fails with a connection error.
    transport = RedisStreamsTransport(url="redis://127.0.0.1:1/0", stream="arc:nowhere")
    outbox = EventOutbox(transport)
    outbox.store(create_event("orders.created", {}))
    result = outbox.relay_batch()
    assert result.publish_failed == 1 and result.relayed == 0
    row = OutboxEvent.objects.get()
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error.startswith("ConnectionError")


class _Traced(RedisStreamsTransport):
    """A project's Redis transport that records what it publishes (tracing, routing)."""

    def __init__(self, **options):
        super().__init__(**options)
        self.traced = []

    def publish(self, event):
        self.traced.append(event.id)
        return super().publish(event)

    def publish_many(self, events):
        events = list(events)
        self.traced.extend(event.id for event in events)
        return super().publish_many(events)


def test_a_subclass_overriding_publish_is_relayed_through_it(stream):
    """The relay spliced the rows into ``publish_wire``, passing by a project's subclass's
    ``publish``/``publish_many`` (which the outbox-off path calls): its events went out
    untraced. Such a transport is now relayed through its own methods, still one
    pipeline per batch; a batch refused is retried one event at a time through ``publish``."""
    client, name = stream
    transport = _Traced(url=REDIS_URL, stream=name)
    outbox = EventOutbox(transport)
    ids = [outbox.store(create_event("orders.created", {"n": i})).event_id for i in range(3)]

    result = outbox.relay_batch(limit=10)

    assert result.relayed == 3 and result.used_publish_many
    assert transport.traced == ids
    entries = [json.loads(fields[b"data"]) for _, fields in client.xrange(name)]
    assert [e["meta"]["id"] for e in entries] == ids
    assert OutboxEvent.objects.filter(status="delivered").count() == 3
    transport.close()


def test_a_plain_redis_transport_is_still_spliced(stream):
    client, name = stream
    transport = RedisStreamsTransport(url=REDIS_URL, stream=name)
    outbox = EventOutbox(transport)
    outbox.store(create_event("orders.created", {"n": 1}))
    sent = []
    real = transport.publish_wire

    def spy(messages):
        messages = list(messages)
        sent.extend(messages)
        return real(messages)

    transport.publish_wire = spy  # an instance's own publish_wire: its author's choice
    assert outbox.relay_batch(limit=10).relayed == 1
    assert [t for t, _ in sent] == ["orders.created"]
    transport.close()


class _Wrapped:
    """A project's wrapper around a Redis transport: its own ``publish``/``publish_many``,
    everything else (``publish_wire`` too) reached through ``__getattr__``."""

    def __init__(self, inner):
        self.inner = inner
        self.traced = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def publish(self, event):
        self.traced.append(event.id)
        return self.inner.publish(event)

    def publish_many(self, events):
        events = list(events)
        self.traced.extend(event.id for event in events)
        return self.inner.publish_many(events)


def test_a_wrapper_with_its_own_publish_is_relayed_through_it(stream):
    client, name = stream
    inner = RedisStreamsTransport(url=REDIS_URL, stream=name)
    transport = _Wrapped(inner)
    outbox = EventOutbox(transport)
    ids = [outbox.store(create_event("orders.created", {"n": i})).event_id for i in range(2)]
    assert outbox.relay_batch(limit=10).relayed == 2
    assert transport.traced == ids
    assert [json.loads(f[b"data"])["meta"]["id"] for _, f in client.xrange(name)] == ids
    inner.close()


def test_a_transport_whose_instance_carries_its_own_methods_is_relayed_through_them(stream):
    """A ``publish_many`` set on the transport instance (instrumentation patching the object,
    not its class) is the project's: the relay publishes through it. A ``publish_wire`` set
    on the instance is the project's choice too: the relay splices the rows into it, even
    beside a ``publish`` of its own."""
    client, name = stream
    transport = RedisStreamsTransport(url=REDIS_URL, stream=name)
    traced = []
    original = transport.publish_many

    def publish_many(events):
        events = list(events)
        traced.extend(event.id for event in events)
        return original(events)

    transport.publish_many = publish_many
    outbox = EventOutbox(transport)
    ids = [outbox.store(create_event("orders.created", {"n": i})).event_id for i in range(2)]
    assert outbox.relay_batch(limit=10).relayed == 2
    assert traced == ids
    inner = RedisStreamsTransport(url=REDIS_URL, stream=name)
    wrapped = _Wrapped(inner)
    wrapped.publish_wire = inner.publish_wire
    outbox = EventOutbox(wrapped)
    more = [outbox.store(create_event("orders.created", {"n": i})).event_id for i in range(2)]
    assert outbox.relay_batch(limit=10).relayed == 2
    assert wrapped.traced == []  # spliced into the instance's publish_wire
    assert [json.loads(f[b"data"])["meta"]["id"] for _, f in client.xrange(name)] == ids + more
    transport.close()
    inner.close()


class _TracingMixin:
    """A project's mixin listed before the transport: ``class T(Mixin, Transport)``."""

    def publish(self, event):
        self.traced.append(event.id)
        return super().publish(event)

    def publish_many(self, events):
        events = list(events)
        self.traced.extend(event.id for event in events)
        return super().publish_many(events)


class _MixedIn(_TracingMixin, RedisStreamsTransport):
    def __init__(self, **options):
        super().__init__(**options)
        self.traced = []


def test_a_mixin_listed_before_the_transport_is_relayed_through_it(stream):
    """``takes_wire`` counted only a subclass of the class defining ``publish_wire`` as an
    override: a mixin's ``publish``/``publish_many`` listed before the Redis transport (the
    way a tracing mixin is written) was passed by, every relayed event untraced, while the
    outbox-off path called it. A method found before that class in the MRO now counts."""
    client, name = stream
    transport = _MixedIn(url=REDIS_URL, stream=name)
    outbox = EventOutbox(transport)
    ids = [outbox.store(create_event("orders.created", {"n": i})).event_id for i in range(3)]
    assert outbox.relay_batch(limit=10).relayed == 3
    assert transport.traced == ids
    assert [json.loads(f[b"data"])["meta"]["id"] for _, f in client.xrange(name)] == ids
    transport.close()


class _Redacting(RedisStreamsTransport):
    """A project's Redis transport removing a field before it leaves (in place)."""

    def publish(self, event):
        event.payload.pop("card", None)
        return super().publish(event)

    def publish_many(self, events):
        events = list(events)
        for event in events:
            event.payload.pop("card", None)
        return super().publish_many(events)


def test_a_subclass_redacting_the_payload_in_place_is_relayed_redacted(stream):
    """The relay hands such a transport ``Event`` s through its own methods, but each
    carried its row's payload text, which ``publish_many`` spliced as it was: a field the
    subclass removed in place (``event.payload.pop("card")``) went out on the stream, where
    the outbox-off path sent it redacted. The events are now encoded from their payload,
    on the stream as the outbox-off path writes them."""
    client, name = stream
    transport = _Redacting(url=REDIS_URL, stream=name)
    outbox = EventOutbox(transport)
    event = create_event("orders.created", {"n": 1, "card": "4242"})
    outbox.store(event)
    transport.publish(event)  # the outbox-off path
    assert outbox.relay_batch(limit=10).relayed == 1
    direct, relayed = (json.loads(f[b"data"]) for _, f in client.xrange(name))
    assert relayed["payload"] == direct["payload"] == {"n": 1}
    assert relayed == direct
    transport.close()


def test_a_transport_method_wrapped_in_place_is_relayed_through_it(stream, monkeypatch):
    """Instrumentation (tracing) patching the Redis transport class itself, its
    ``publish_many`` wrapped with ``functools.wraps``: the relay spliced the rows into
    ``publish_wire`` past it, while the outbox-off path called it. A wrapped ``publish`` or
    ``publish_many`` (``__wrapped__``) now counts as the project's."""
    client, name = stream
    traced = []
    original = RedisStreamsTransport.publish_many

    @functools.wraps(original)
    def publish_many(self, events):
        events = list(events)
        traced.extend(event.id for event in events)
        return original(self, events)

    monkeypatch.setattr(RedisStreamsTransport, "publish_many", publish_many)
    transport = RedisStreamsTransport(url=REDIS_URL, stream=name)
    outbox = EventOutbox(transport)
    ids = [outbox.store(create_event("orders.created", {"n": i})).event_id for i in range(2)]
    assert outbox.relay_batch(limit=10).relayed == 2
    assert traced == ids
    assert [json.loads(f[b"data"])["meta"]["id"] for _, f in client.xrange(name)] == ids
    transport.close()
