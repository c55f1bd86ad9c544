"""The relay against a real Redis Streams transport (skipped without ``ARC_REDIS_URL``)."""

from __future__ import annotations

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
