"""The wire contract with arc 2.9.1 (``classytic/arc`` at tag ``v2.9.1``), both ways.

The golden entries below are what arc's own code writes, derived from its source:

* ``src/events/EventTransport.ts`` 348-362 (``createEvent``): ``{type, payload, meta: {id,
  timestamp, ...meta}}``, in that key order; 27-129: the camelCase ``EventMeta`` keys;
  ``src/events/eventPlugin.ts`` 153-157: ``correlationId`` (from the request context) first.
* ``src/events/transports/redis-stream.ts`` 189-211 (``publish``): ``XADD <stream> MAXLEN ~
  10000 * type <event.type> data <JSON.stringify(event)>``; ``JSON.stringify`` writes a
  ``Date`` as ``toISOString()`` (UTC, milliseconds, ``Z``), drops ``undefined`` members, adds
  no spaces and leaves non-ASCII characters unescaped.
* ``src/events/transports/redis.ts`` 69-74 and 129-132: ``PUBLISH arc-events:<type>
  <the same JSON>``.

They are written to a real Redis with the exact commands arc sends and read back by
django-arc's transports; django-arc's own entries are checked field by field against what
arc's readers require (``redis-stream.ts`` 394-420: fields ``type`` and ``data``, ``data``
a JSON object with a string ``type`` and a ``meta.id``; 404-407: ``timestamp`` revived from a
string).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from datetime import UTC, datetime

import pytest

from django_arc.events import create_event, wire
from django_arc.events.event import Event, EventMeta
from django_arc.events.transports import RedisPubSubTransport, RedisStreamsTransport
from django_arc.outbox import EventOutbox

REDIS_URL = os.environ.get("ARC_REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test)")

# -- golden data: byte for byte what arc 2.9.1 writes ------------------------------------------

#: ``app.events.publish("product.created", doc, {resource, resourceId, userId, organizationId})``
#: inside a request (correlationId injected first, eventPlugin.ts 153-157).
ARC_CRUD = (
    '{"type":"product.created","payload":{"_id":"665f1c2e9b1d4a0012345678","name":"Lampe '
    'à huile","price":19.9,"tags":["déco","été"],"stock":null},"meta":{"id":"3f2a4d6e-8b1c-'
    '4e5f-9a0b-1c2d3e4f5a6b","timestamp":"2026-04-17T10:18:40.123Z","correlationId":"req-7f3a"'
    ',"resource":"product","resourceId":"665f1c2e9b1d4a0012345678","userId":"u-42",'
    '"organizationId":"org-3"}}'
)

#: ``createEvent`` with every ``EventMeta`` field set, a nested payload with an escaped quote,
#: a newline and an emoji.
ARC_FULL = (
    '{"type":"order.placed","payload":{"note":"say \\"hi\\"\\nthen 🎉","lines":[{"sku":"A-1",'
    '"qty":2}],"total":42},"meta":{"id":"9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","timestamp":'
    '"2026-04-17T23:59:59.999Z","schemaVersion":2,"correlationId":"corr-1","causationId":"'
    'cause-1","partitionKey":"order:o-1","resource":"order","resourceId":"o-1","userId":'
    '"u-1","organizationId":"org-1","source":"commerce","idempotencyKey":"idem-1",'
    '"aggregate":{"type":"order","id":"o-1"}}}'
)

#: ``createEvent("cache.cleared", undefined)``: ``payload`` is undefined, so it is absent.
ARC_NO_PAYLOAD = (
    '{"type":"cache.cleared","meta":{"id":"0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6",'
    '"timestamp":"2026-01-02T03:04:05.006Z"}}'
)

ARC_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ARC_META_KEYS = {
    "id",
    "timestamp",
    "schemaVersion",
    "correlationId",
    "causationId",
    "partitionKey",
    "resource",
    "resourceId",
    "userId",
    "organizationId",
    "source",
    "idempotencyKey",
    "aggregate",
}


def expected_crud() -> Event:
    return Event(
        type="product.created",
        payload={
            "_id": "665f1c2e9b1d4a0012345678",
            "name": "Lampe à huile",
            "price": 19.9,
            "tags": ["déco", "été"],
            "stock": None,
        },
        meta=EventMeta(
            id="3f2a4d6e-8b1c-4e5f-9a0b-1c2d3e4f5a6b",
            timestamp=datetime(2026, 4, 17, 10, 18, 40, 123000, tzinfo=UTC),
            correlation_id="req-7f3a",
            resource="product",
            resource_id="665f1c2e9b1d4a0012345678",
            user_id="u-42",
            organization_id="org-3",
            schema_version=1,
        ),
    )


def expected_full() -> Event:
    return Event(
        type="order.placed",
        payload={"note": 'say "hi"\nthen 🎉', "lines": [{"sku": "A-1", "qty": 2}], "total": 42},
        meta=EventMeta(
            id="9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            timestamp=datetime(2026, 4, 17, 23, 59, 59, 999000, tzinfo=UTC),
            schema_version=2,
            correlation_id="corr-1",
            causation_id="cause-1",
            partition_key="order:o-1",
            resource="order",
            resource_id="o-1",
            user_id="u-1",
            organization_id="org-1",
            source="commerce",
            idempotency_key="idem-1",
            aggregate={"type": "order", "id": "o-1"},
        ),
    )


def arc_reads(fields: dict[bytes, bytes]) -> dict:
    """What arc's ``processEntry`` (redis-stream.ts 387-421) requires before it dispatches:
    non-empty ``type`` and ``data`` fields, ``data`` a JSON object with a string ``type`` and a
    truthy ``meta.id``. Returns the parsed envelope; fails the test where arc would drop it."""
    assert fields.get(b"type"), "arc acks and drops an entry without 'type'"
    assert fields.get(b"data"), "arc acks and drops an entry without 'data'"
    parsed = json.loads(fields[b"data"])
    assert isinstance(parsed, dict) and isinstance(parsed.get("type"), str)
    assert parsed.get("meta", {}).get("id"), "arc drops an event without meta.id"
    return parsed


def assert_arc_layout(envelope: dict, event: Event) -> None:
    """django-arc's envelope, field by field, against arc's ``DomainEvent`` layout."""
    assert list(envelope) == ["type", "payload", "meta"]
    assert envelope["type"] == event.type
    assert envelope["payload"] == event.payload
    meta = envelope["meta"]
    assert set(meta) <= ARC_META_KEYS, set(meta) - ARC_META_KEYS
    assert list(meta)[:2] == ["id", "timestamp"]
    assert ARC_TS.match(meta["timestamp"]), meta["timestamp"]
    assert None not in meta.values()  # JSON.stringify drops undefined: absent, never null
    for attr, key in wire.META_KEYS.items():
        value = getattr(event.meta, attr)
        if attr == "timestamp":
            assert meta[key] == wire.format_timestamp(value)
        elif value is None:
            assert key not in meta
        else:
            assert meta[key] == value, key


# -- encoding, without Redis ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("golden", "expected"),
    [(ARC_CRUD, expected_crud), (ARC_FULL, expected_full)],
    ids=["crud", "full-meta"],
)
def test_arc_envelopes_decode_with_every_meta_field_and_encode_back_byte_for_byte(golden, expected):
    event = wire.decode(golden.encode("utf-8"))
    assert event == expected()
    # django-arc writes the very same bytes for the same event (apart from schemaVersion,
    # which django-arc always writes; arc leaves it out unless set).
    mine = wire.encode(event)
    if '"schemaVersion"' not in golden:
        mine = mine.replace(',"schemaVersion":1', "")
    assert mine.encode("utf-8") == golden.encode("utf-8")


def test_arc_envelope_without_payload_decodes_to_an_empty_payload():
    event = wire.decode(ARC_NO_PAYLOAD)
    assert event.type == "cache.cleared" and event.payload == {}
    assert event.meta.timestamp == datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    assert event.meta.schema_version == 1 and event.meta.correlation_id is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "data is not JSON"),
        ("[1, 2]", "data is not a JSON object"),
        ('{"payload": {}, "meta": {"id": "x"}}', "data.type is missing or not a string"),
        ('{"type": "a.b", "payload": {}}', "data.meta is missing or not an object"),
        ('{"type": "a.b", "meta": {"timestamp": "2026-01-01T00:00:00.000Z"}}', "meta.id"),
        ('{"type": "a.b", "meta": {"id": "x", "timestamp": "yesterday"}}', "meta.timestamp"),
        ('{"type": "", "meta": {"id": "x"}}', "data.type is missing or not a string"),
        ('{"type": "a.b", "meta": {"id": "x", "schemaVersion": true}}', "meta.schemaVersion"),
        ('{"type": "a.b", "meta": {"id": "x", "schemaVersion": "1"}}', "meta.schemaVersion"),
        (b"\xff\xfe", "data is not UTF-8"),
    ],
)
def test_what_is_not_an_arc_event_is_refused_with_the_reason(raw, reason):
    with pytest.raises(wire.WireError, match=re.escape(reason)):
        wire.decode(raw)


def test_django_arc_events_survive_the_wire_unchanged():
    event = create_event(
        "products.created",
        {"name": "Mug", "price": "9.50"},
        correlation_id="req-1",
        resource="products",
        resource_id=7,
        user_id=3,
        partition_key="products:7",
        aggregate={"type": "product", "id": "7"},
    )
    envelope = json.loads(wire.encode(event))
    assert_arc_layout(envelope, event)
    assert envelope["meta"]["resourceId"] == "7" and envelope["meta"]["partitionKey"]
    assert wire.decode(wire.encode(event)) == event


# -- Redis Streams: arc → django-arc -----------------------------------------------------------


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def names(redis_client):
    stream = f"arc-wire:{uuid.uuid4().hex}"
    yield stream, f"{stream}:dlq"
    redis_client.delete(stream, f"{stream}:dlq")


def arc_xadd(client, stream: str, event_type: str, data: str) -> bytes:
    """The command arc's publish sends (redis-stream.ts 200-211), byte for byte."""
    return client.execute_command(
        "XADD", stream, "MAXLEN", "~", "10000", "*", "type", event_type, "data", data
    )


@needs_redis
def test_stream_entries_written_by_arc_reach_django_arc_subscribers(redis_client, names):
    stream, dlq = names
    for golden in (ARC_CRUD, ARC_FULL, ARC_NO_PAYLOAD):
        arc_xadd(redis_client, stream, json.loads(golden)["type"], golden)
    consumer = RedisStreamsTransport(REDIS_URL, stream=stream, dead_stream=dlq)
    got: list[Event] = []
    consumer.subscribe("*", got.append)
    try:
        assert consumer.run_once() == 3
    finally:
        consumer.close()
    assert got[0] == expected_crud()
    assert got[1] == expected_full()
    assert got[2].type == "cache.cleared"
    assert redis_client.xlen(dlq) == 0
    assert redis_client.xpending(stream, "default")["pending"] == 0


@needs_redis
def test_unreadable_entries_are_dead_lettered_with_the_reason_never_silently_acked(
    redis_client, names
):
    stream, dlq = names
    consumer = RedisStreamsTransport(REDIS_URL, stream=stream, dead_stream=dlq)
    consumer.ensure_group()
    arc_xadd(redis_client, stream, "a.b", '{"type":"a.b","payload":{}}')  # no meta
    redis_client.xadd(stream, {"type": "a.b"})  # no data: arc would ack it silently
    old = redis_client.xadd(stream, {"type": "a.b", "id": "1", "event": "{}"})  # old django-arc
    try:
        assert consumer.run_once() == 0
    finally:
        consumer.close()
    dead = redis_client.xrange(dlq)
    assert len(dead) == 3
    for _, fields in dead:
        assert fields[b"originalStream"] == stream.encode()
        assert fields[b"group"] == b"default"
        assert ARC_TS.match(fields[b"failedAt"].decode())
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert reasons[0] == "data.meta is missing or not an object"
    assert reasons[1] == "entry has no 'data' field (fields: ['type'])"
    assert "Migrating" in reasons[2]
    assert dead[2][1][b"originalId"] == old and dead[2][1][b"event"] == b"{}"  # nothing lost
    assert redis_client.xpending(stream, "default")["pending"] == 0


# -- Redis Streams: django-arc → arc -----------------------------------------------------------


@needs_redis
@pytest.mark.django_db
def test_entries_django_arc_writes_are_what_arc_reads(redis_client, names):
    stream, dlq = names
    transport = RedisStreamsTransport(REDIS_URL, stream=stream, dead_stream=dlq)
    direct = create_event("products.created", {"name": "Lampe"}, resource="products")
    relayed = create_event(
        "products.updated",
        {"price": "9.50", "note": "été"},
        correlation_id="req-2",
        causation_id=direct.id,
        idempotency_key="k-1",
        resource="products",
        resource_id=7,
        organization_id=3,
        partition_key="products:7",
    )
    try:
        transport.publish(direct)
        outbox = EventOutbox(transport)
        outbox.store(relayed)
        assert outbox.relay_batch().relayed == 1  # the relay's spliced envelope
    finally:
        transport.close()
    entries = redis_client.xrange(stream)
    assert len(entries) == 2
    for (_, fields), event in zip(entries, (direct, relayed), strict=True):
        assert list(fields) == [b"type", b"data"]  # arc's fields, nothing else
        assert fields[b"type"] == event.type.encode()
        assert_arc_layout(arc_reads(fields), event)


@needs_redis
def test_defaults_match_arc_on_both_transports(redis_client):
    """``new RedisStreamTransport(redis)`` and ``new RedisEventTransport(redis)`` defaults
    (redis-stream.ts 172-179, redis.ts 112): stream, group, dead-letter stream, channel."""
    streams = RedisStreamsTransport(REDIS_URL)
    pubsub = RedisPubSubTransport(REDIS_URL)
    try:
        assert (streams.stream, streams.group, streams.dead_stream) == (
            "arc:events",
            "default",
            "arc:events:dlq",
        )
        assert streams.max_deliveries == 5  # arc's maxRetries (redis-stream.ts 177)
        assert pubsub.channel("product.created") == "arc-events:product.created"
        event = create_event("wire.defaults", {"n": 1})
        entry_id = streams.publish(event)
        [(_, fields)] = redis_client.xrange("arc:events", min=entry_id, max=entry_id)
        assert_arc_layout(arc_reads(fields), event)
    finally:
        redis_client.xdel("arc:events", entry_id)
        streams.close()
        pubsub.close()


# -- pub/sub, both ways -------------------------------------------------------------------------


@needs_redis
def test_pubsub_messages_cross_both_ways_on_arcs_channels(redis_client):
    prefix = f"arc-wire-{uuid.uuid4().hex}"  # arc's `channel` option
    listener = RedisPubSubTransport(REDIS_URL, channel_prefix=f"{prefix}:")
    got: list[Event] = []
    listener.subscribe("*", got.append)
    arc_side = redis_client.pubsub()
    arc_side.psubscribe(f"{prefix}:*")  # arc's subscribe('*') (redis.ts 141-151, 254-256)
    try:
        listener.listen_once(timeout=0.1)
        assert arc_side.get_message(timeout=1)["type"] == "psubscribe"
        # arc → django-arc: the command arc's publish sends (redis.ts 129-132)
        golden = json.loads(ARC_FULL)
        redis_client.execute_command("PUBLISH", f"{prefix}:{golden['type']}", ARC_FULL)
        # django-arc → arc
        mine = create_event("orders.shipped", {"carrier": "DHL"}, correlation_id="c-9")
        listener.publish(mine)
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            listener.listen_once(timeout=0.2)
        messages = []
        while len(messages) < 2 and time.monotonic() < deadline:
            message = arc_side.get_message(timeout=0.2)
            if message and message["type"] == "pmessage":
                messages.append(message)
    finally:
        listener.close()
        arc_side.close()
    assert got[0] == expected_full()
    assert got[1] == mine
    assert [m["channel"] for m in messages] == [
        f"{prefix}:order.placed".encode(),
        f"{prefix}:orders.shipped".encode(),
    ]
    assert messages[0]["data"] == ARC_FULL.encode("utf-8")
    assert_arc_layout(json.loads(messages[1]["data"]), mine)


@pytest.mark.parametrize("timestamp_us", [123456, 0], ids=["microseconds", "whole-second"])
def test_the_relays_spliced_envelope_is_the_encoded_event(timestamp_us):
    """The relay publishes outbox rows to Redis without building Events; what it splices must
    be the same JSON value as encoding the Event the row holds."""
    from django_arc.outbox.relay import Claimed, event_from_columns, wire_message
    from django_arc.outbox.store import stored_meta

    event = create_event(
        "products.updated",
        {"price": "9.50", "tags": ["été"], "n": None},
        correlation_id="req-9",
        resource_id=7,
        aggregate={"type": "product", "id": "7"},
        timestamp=datetime(2026, 5, 1, 8, 30, 15, timestamp_us, tzinfo=UTC),
    )
    row = Claimed(
        1,
        event.id,
        event.type,
        json.dumps(event.payload, ensure_ascii=False),
        json.dumps(stored_meta(event.meta)),
        None,
        0,
    )
    event_type, data = wire_message(row, check_payload=True)
    assert event_type == event.type
    decoded = event_from_columns(row.event_id, row.type, row.payload, row.meta)
    assert json.loads(data) == json.loads(wire.encode(decoded))
    assert_arc_layout(json.loads(data), decoded)


def test_a_relayed_row_whose_meta_has_no_schema_version_is_published_as_version_1():
    """An outbox row whose meta lacks ``schema_version`` (written before django-arc stored
    it, or by hand): the relay's spliced envelope still carries ``schemaVersion: 1``, as
    the encoded event does (``EventMeta``'s default)."""
    from django_arc.outbox.relay import Claimed, event_from_columns, wire_message

    meta = {"timestamp": "2026-05-01T08:30:15.123456+00:00", "correlation_id": "req-9"}
    row = Claimed(1, "evt-1", "products.updated", '{"price":"9.50"}', json.dumps(meta), None, 0)
    _, data = wire_message(row, check_payload=True)
    envelope = json.loads(data)
    assert envelope["meta"]["schemaVersion"] == 1
    decoded = event_from_columns(row.event_id, row.type, row.payload, row.meta)
    assert envelope == json.loads(wire.encode(decoded))
