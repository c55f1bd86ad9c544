"""The whole event path from an HTTP write: resource -> emit -> outbox row -> relay ->
transport -> glob subscriber, with the request's meta; and nothing for a rolled-back write."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_arc.events import get_transport, subscribe
from django_arc.events.transports import MemoryTransport
from django_arc.outbox import OutboxEvent, get_outbox
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db

MEMORY = {"EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}, "SOURCE": "books-api"}}


@pytest.fixture
def author():
    return Author.objects.create(name="Le Guin")


@override_settings(ARC=MEMORY)
def test_http_create_flows_to_a_subscriber_with_request_meta(client, django_user_model, author):
    user = django_user_model.objects.create_user("writer", password="pw")
    client.force_login(user)
    received = []
    unsubscribe = subscribe("books.*", received.append)
    try:
        response = client.post(
            "/api/books/",
            {
                "title": "The Dispossessed",
                "isbn": "978-0061054884",
                "author": author.pk,
                "price": "12.50",
            },
            content_type="application/json",
            HTTP_X_REQUEST_ID="trace-books-1",
        )
        assert response.status_code == 201, response.content
        book = Book.objects.get(isbn="978-0061054884")

        row = OutboxEvent.objects.get()
        assert row.type == "books.created"
        assert row.status == "pending"
        assert row.meta["correlation_id"] == "trace-books-1"
        assert row.meta["user_id"] == str(user.pk)
        assert row.meta["resource"] == "books"
        assert row.meta["resource_id"] == str(book.pk)
        assert row.meta["partition_key"] == f"books:{book.pk}"
        assert row.meta["source"] == "books-api"
        assert received == []  # stored, not yet published

        result = get_outbox().relay_batch(limit=10, worker_id="test")
        assert result.relayed == 1
    finally:
        unsubscribe()
    assert [e.id for e in received] == [row.event_id]
    assert received[0].meta.correlation_id == "trace-books-1"
    assert [e.type for e in get_transport().published] == ["books.created"]
    row.refresh_from_db()
    assert row.status == "delivered"


@override_settings(ARC=MEMORY)
def test_rolled_back_http_write_leaves_no_event(client, author):
    response = client.post(
        "/api/books/",
        {"title": "boom-after", "isbn": "1", "author": author.pk},
        content_type="application/json",
    )
    assert response.status_code == 409  # after_create hook raised inside the transaction
    assert not Book.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert get_outbox().relay_batch(limit=10, worker_id="test").attempted == 0
    assert get_transport().published == []


@override_settings(ARC=MEMORY)
def test_update_and_delete_emit_their_events_in_order(client, author):
    book = Book.objects.create(title="A", isbn="2", author=author)
    assert (
        client.patch(
            f"/api/books/{book.pk}/", {"title": "B"}, content_type="application/json"
        ).status_code
        == 200
    )
    assert client.delete(f"/api/books/{book.pk}/").status_code in (200, 204)
    rows = list(OutboxEvent.objects.order_by("id"))
    assert [r.type for r in rows] == ["books.updated", "books.deleted"]
    assert {r.partition_key for r in rows} == {f"books:{book.pk}"}
    get_outbox().relay_batch(limit=10, worker_id="test")
    assert [e.type for e in get_transport().published] == ["books.updated", "books.deleted"]
