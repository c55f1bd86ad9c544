"""The public events API: envelope rules, publish/emit through the signal, subscribe, retry."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.test import RequestFactory, override_settings

from django_arc import events
from django_arc.events import (
    DeadLetteredEvent,
    Event,
    create_child_event,
    create_event,
    emit,
    get_transport,
    publish,
    subscribe,
    with_retry,
)
from django_arc.events.transports import MemoryTransport
from django_arc.signals import event_received, resource_event, scope_elevated

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class FakeScope:
    user_id: int | None
    organization_id: int | None


@pytest.fixture
def captured():
    """Every event sent on ``resource_event`` (whatever else, e.g. the outbox, receives it)."""
    seen: list[Event] = []

    def grab(sender, event, **kwargs):
        seen.append(event)

    resource_event.connect(grab, weak=False, dispatch_uid="test-capture")
    yield seen
    resource_event.disconnect(dispatch_uid="test-capture")


@pytest.fixture
def memory():
    """A fresh MemoryTransport as the configured transport for one test."""
    with override_settings(ARC={"EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}}}):
        transport = get_transport()
        assert isinstance(transport, MemoryTransport)
        yield transport


# -- envelope -----------------------------------------------------------------------------------
def test_public_names_are_importable_from_django_arc():
    for name in (
        "Event",
        "EventMeta",
        "create_event",
        "create_child_event",
        "publish",
        "subscribe",
        "emit",
        "get_transport",
        "with_retry",
        "DeadLetteredEvent",
    ):
        assert hasattr(events, name), name


def test_child_event_inherits_correlation_source_idempotency_but_not_aggregate():
    parent = create_event(
        "orders.created",
        {"id": 1},
        correlation_id="req-1",
        source="shop",
        idempotency_key="k:orders.created:1",
        aggregate={"type": "order", "id": "1"},
        resource="orders",
        resource_id=1,
    )
    child = create_child_event(parent, "stock.reserved", {"sku": "A"})
    assert child.meta.correlation_id == "req-1"
    assert child.meta.causation_id == parent.id
    assert child.meta.source == "shop"
    assert child.meta.idempotency_key == "k:orders.created:1"
    assert child.meta.aggregate is None
    assert child.meta.resource is None
    assert child.id != parent.id


def test_child_of_uncorrelated_event_correlates_to_parent_id():
    parent = create_event("a.b", {})
    child = create_child_event(parent, "a.c", {})
    assert child.meta.correlation_id == parent.id
    assert child.meta.causation_id == parent.id


def test_event_round_trips_through_dict_and_json():
    event = create_event("products.created", {"name": "x"}, resource="products", resource_id=7)
    back = Event.from_dict(json.loads(json.dumps(event.to_dict())))
    assert back == event
    assert back.meta.resource_id == "7"


# -- publish / emit -----------------------------------------------------------------------------
def test_publish_sends_resource_event_with_json_safe_payload(captured):
    event = create_event("products.updated", {"price": Decimal("9.50"), "ref": uuid.UUID(int=1)})
    returned = publish(event)
    assert captured == [returned]
    assert returned.id == event.id
    assert returned.payload == {"price": "9.50", "ref": "00000000-0000-0000-0000-000000000001"}


@pytest.mark.parametrize(
    "payload",
    [
        {"rating": float("nan")},
        {"n": [float("inf")]},
        {"s": "a\x00b"},
        {"k\x00": 1},
        {"s": ["\ud800"]},
        {"\udfff": 1},
    ],
    ids=["nan", "infinity", "nul-value", "nul-key", "surrogate-value", "surrogate-key"],
)
def test_publish_refuses_payloads_json_cannot_store_on_every_backend(captured, payload):
    # PostgreSQL's jsonb refuses these; SQLite would store NUL. Refused before any SQL, so the
    # caller's transaction stays usable on PostgreSQL too.
    from django_arc.outbox import OutboxEvent

    with transaction.atomic():
        with pytest.raises(ValueError, match="products.updated.*not storable JSON"):
            publish(create_event("products.updated", payload))
        assert OutboxEvent.objects.count() == 0
    assert captured == []


def test_publish_keeps_look_alikes_an_escaped_backslash_u0000_and_an_emoji(captured):
    payload = {"s": "\\u0000", "e": "\U0001f600", "\\ud800": "k"}
    returned = publish(create_event("products.updated", payload))
    assert returned.payload == payload
    assert len(captured) == 1


def test_publish_rejects_non_events():
    with pytest.raises(TypeError):
        publish({"type": "x"})


def test_receiver_failure_propagates_so_the_write_rolls_back():
    def boom(sender, event, **kwargs):
        raise RuntimeError("outbox down")

    resource_event.connect(boom, weak=False, dispatch_uid="test-boom")
    try:
        with pytest.raises(RuntimeError, match="outbox down"), transaction.atomic():
            publish(create_event("products.created", {}))
    finally:
        resource_event.disconnect(dispatch_uid="test-boom")


def test_emit_builds_meta_from_request_scope_and_idempotency_key(captured):
    request = RequestFactory().post("/api/products/", HTTP_X_REQUEST_ID="req-abc-123")
    request.arc_scope = FakeScope(user_id=42, organization_id=7)
    request.arc_idempotency_key = "ns:user42:POST:/api/products/:key1"
    with override_settings(ARC={"EVENTS": {"SOURCE": "shop-api"}}):
        event = emit(
            "products.created",
            {"name": "Lamp"},
            request=request,
            resource="products",
            resource_id=5,
            aggregate={"type": "product"},
        )
    assert captured == [event]
    meta = event.meta
    assert meta.correlation_id == "req-abc-123"
    assert meta.user_id == "42"
    assert meta.organization_id == "7"
    assert meta.source == "shop-api"
    assert meta.resource == "products"
    assert meta.resource_id == "5"
    assert meta.partition_key == "products:5"
    assert meta.aggregate == {"type": "product"}
    assert meta.idempotency_key == "ns:user42:POST:/api/products/:key1:products.created:5"


def test_emit_idempotency_keys_differ_per_event_of_one_request(captured):
    request = RequestFactory().post("/api/products/bulk/")
    request.arc_idempotency_key = "scoped-key"
    emit("products.created", {}, request=request, resource="products", resource_id=1)
    emit("products.created", {}, request=request, resource="products", resource_id=2)
    keys = [e.meta.idempotency_key for e in captured]
    assert keys == ["scoped-key:products.created:1", "scoped-key:products.created:2"]
    # one request -> one correlation id for all its events
    assert captured[0].meta.correlation_id == captured[1].meta.correlation_id


def test_emit_falls_back_to_django_user_and_fresh_request_id(captured, django_user_model):
    user = django_user_model.objects.create_user("ann", password="x")
    request = RequestFactory().delete("/api/products/3/", HTTP_X_REQUEST_ID="bad id with spaces")
    request.user = user
    event = emit(
        "products.deleted",
        None,
        request=request,
        resource="products",
        resource_id=3,
        partition_key="custom",
    )
    assert event.meta.user_id == str(user.pk)
    assert event.meta.organization_id is None
    assert event.meta.idempotency_key is None
    assert event.meta.partition_key == "custom"
    # malformed X-Request-Id is replaced by a UUID, and reused for the whole request
    uuid.UUID(event.meta.correlation_id)
    assert event.meta.correlation_id == request.arc_request_id


def test_emit_anonymous_request_has_no_user(captured):
    request = RequestFactory().post("/x/")
    request.user = AnonymousUser()
    event = emit("x.created", {}, request=request)
    assert event.meta.user_id is None
    assert event.meta.partition_key is None


def test_emit_accepts_a_resource_class_with_a_name(captured):
    class ProductResource:
        name = "products"

    event = emit("products.approve", {}, resource=ProductResource, resource_id=9)
    assert event.meta.resource == "products"
    assert event.meta.correlation_id is None


def test_scope_elevation_publishes_event_even_with_events_otherwise_configured_off(captured):
    request = RequestFactory().get("/api/products/", HTTP_X_REQUEST_ID="elev-1")
    with override_settings(ARC={"EVENTS": {"OUTBOX": False}}):
        scope_elevated.send(
            sender=None, request=request, scope=FakeScope(user_id=1, organization_id=None)
        )
    assert len(captured) == 1
    event = captured[0]
    assert event.type == "arc.scope.elevated"
    assert event.payload == {
        "user_id": "1",
        "organization_id": None,
        "method": "GET",
        "path": "/api/products/",
    }
    assert event.meta.correlation_id == "elev-1"
    assert event.meta.user_id == "1"


# -- transport singleton and subscribe ---------------------------------------------------------
def test_get_transport_is_a_singleton_rebuilt_on_settings_change():
    class Configurable(MemoryTransport):
        def __init__(self, label="default", **kw):
            super().__init__()
            self.label = label

    with override_settings(ARC={"EVENTS": {"TRANSPORT": Configurable, "OPTIONS": {"label": "a"}}}):
        first = get_transport()
        assert get_transport() is first
        assert first.label == "a"
        with override_settings(
            ARC={"EVENTS": {"TRANSPORT": Configurable, "OPTIONS": {"label": "b"}}}
        ):
            assert get_transport().label == "b"
        assert get_transport() is not first
        assert get_transport().label == "a"


def test_bad_transport_setting_is_reported_clearly():
    with (
        override_settings(ARC={"EVENTS": {"TRANSPORT": object, "OPTIONS": {}}}),
        pytest.raises(TypeError, match="lacks"),
    ):
        get_transport()


def test_glob_subscribe_delivers_to_matching_handlers_and_event_received(memory):
    got: dict[str, list[str]] = {"products": [], "all": [], "deleted": []}
    received: list[str] = []

    def on_received(sender, event, **kwargs):
        received.append(event.type)

    event_received.connect(on_received, weak=False, dispatch_uid="test-received")
    unsubs = [
        subscribe("products.*", lambda e: got["products"].append(e.type)),
        subscribe("*", lambda e: got["all"].append(e.type)),
        subscribe("*.deleted", lambda e: got["deleted"].append(e.type)),
    ]
    try:
        for t in ("products.created", "orders.created", "products.deleted"):
            memory.publish(create_event(t, {}))
    finally:
        event_received.disconnect(dispatch_uid="test-received")
        for unsub in unsubs:
            unsub()
    assert got["products"] == ["products.created", "products.deleted"]
    assert got["all"] == ["products.created", "orders.created", "products.deleted"]
    assert got["deleted"] == ["products.deleted"]
    assert received == ["products.created", "orders.created", "products.deleted"]
    assert [e.type for e in memory.published] == received
    # unsubscribed: nothing more arrives
    memory.publish(create_event("products.created", {}))
    assert len(got["all"]) == 3


def test_subscriptions_survive_a_transport_rebuild(memory):
    got: list[str] = []
    unsub = subscribe("orders.*", lambda e: got.append(e.id))
    try:
        with override_settings(ARC={"EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}}}):
            rebuilt = get_transport()
            assert rebuilt is not memory
            event = create_event("orders.created", {})
            rebuilt.publish(event)
        assert got == [event.id]
    finally:
        unsub()


def test_a_failing_subscriber_does_not_starve_the_others(memory):
    got: list[str] = []

    def broken(event):
        raise ValueError("nope")

    unsubs = [subscribe("*", broken), subscribe("*", lambda e: got.append(e.type))]
    try:
        memory.publish(create_event("products.created", {}))  # does not raise
    finally:
        for u in unsubs:
            u()
    assert got == ["products.created"]


# -- with_retry ---------------------------------------------------------------------------------
def test_with_retry_dead_letters_after_max_retries(memory):
    calls: list[str] = []
    dead_seen: list[DeadLetteredEvent] = []
    sleeps: list[float] = []

    def always_fails(event):
        calls.append(event.id)
        raise ConnectionError("smtp down")

    handler = with_retry(
        always_fails,
        max_retries=3,
        backoff=lambda n: n * 0.5,
        on_dead=dead_seen.append,
        sleep=sleeps.append,
    )
    unsub = subscribe("orders.*", handler)
    try:
        event = create_event("orders.created", {"id": 1})
        memory.publish(event)
    finally:
        unsub()
    assert len(calls) == 4  # first call + 3 retries
    assert sleeps == [0.5, 1.0, 1.5]
    assert len(memory.dead_letters) == 1
    dead = memory.dead_letters[0]
    assert dead_seen == [dead]
    assert dead.event == event
    assert dead.attempts == 4
    assert dead.error == "ConnectionError: smtp down"
    assert dead.handler_name.endswith("always_fails")
    assert "ConnectionError" in dead.traceback
    assert DeadLetteredEvent.from_dict(json.loads(json.dumps(dead.to_dict()))).event == event


def test_with_retry_succeeds_without_dead_letter_when_a_retry_works():
    transport = MemoryTransport()
    attempts = {"n": 0}

    def flaky(event):
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise TimeoutError("slow")
        return "ok"

    handler = with_retry(flaky, max_retries=5, backoff=0, transport=transport)
    assert handler(create_event("a.b", {})) == "ok"
    assert attempts["n"] == 3
    assert transport.dead_letters == []


def test_with_retry_zero_retries_and_on_dead_failure_is_contained():
    transport = MemoryTransport()

    def fails(event):
        raise KeyError("x")

    def bad_alert(dead):
        raise RuntimeError("pager down")

    handler = with_retry(fails, max_retries=0, transport=transport, on_dead=bad_alert)
    assert handler(create_event("a.b", {})) is None
    assert [d.attempts for d in transport.dead_letters] == [1]
    with pytest.raises(ValueError):
        with_retry(fails, max_retries=-1)


def test_the_default_memory_transport_keeps_a_bounded_number_of_events():
    """A relay (or, with the outbox off, a web worker) running on the default transport for
    weeks publishes every event into ``published``: it keeps the newest ``max_kept`` (10,000
    by default), not all of them, and still delivers every one."""
    assert MemoryTransport.MAX_KEPT == 10_000
    transport = MemoryTransport(max_kept=3)
    seen = []
    transport.subscribe("*", seen.append)
    sent = [create_event("a.b", {"i": i}) for i in range(5)]
    for event in sent:
        transport.publish(event)
    assert seen == sent
    assert transport.published == sent[2:]
    for i in range(5):
        transport.dead_letter(
            DeadLetteredEvent(event=sent[i], error="x", attempts=1, handler_name="h")
        )
    assert [d.event for d in transport.dead_letters] == sent[2:]


def test_the_configured_memory_transport_stays_bounded_over_twenty_thousand_events():
    with override_settings(ARC={"EVENTS": {"TRANSPORT": MemoryTransport}}):
        transport = get_transport()
        for i in range(20_000):
            transport.publish(create_event("a.b", {"i": i}))
        assert len(transport.published) == MemoryTransport.MAX_KEPT
        assert transport.published[-1].payload == {"i": 19_999}
        assert transport.published[0].payload == {"i": 20_000 - MemoryTransport.MAX_KEPT}
        transport.clear()
