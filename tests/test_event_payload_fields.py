"""What a resource's events name and carry (found by hand mutants of ``generics.py`` that
the suite let through): the ``id`` of a row looked up by another field is that field's
value, as the URL names it, in text for a UUID; a field the resource hides never reaches
an event, even when a project serializer renders it."""

import uuid

import pytest
from rest_framework import serializers

from django_arc import Resource, ResourceSite
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.outbox.models import OutboxEvent
from django_arc.signals import resource_event
from tests.factories import BookFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db

site = ResourceSite(name="event-payload-fields")
PUBLIC = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}


@site.register
class BooksByUidResource(Resource):
    model = Book
    name = "books-by-uid"
    fields = ["id", "uid", "title"]
    lookup_field = "uid"
    permissions = PUBLIC


class PricedBookSerializer(serializers.ModelSerializer):
    """A project serializer that renders the price whatever the resource's field rules."""

    class Meta:
        model = Book
        fields = ["id", "title"]

    def to_representation(self, instance):
        return {**super().to_representation(instance), "price": str(instance.price)}


@site.register
class PriceHiddenBookResource(Resource):
    model = Book
    name = "price-hidden-books"
    fields = ["id", "title", "price"]
    serializer_class = PricedBookSerializer
    field_permissions = {"price": F.hidden()}
    permissions = PUBLIC


@pytest.fixture
def captured():
    seen = []

    def grab(sender, event, **kwargs):
        seen.append(event)

    resource_event.connect(grab, weak=False, dispatch_uid="test-event-payload-fields")
    yield seen
    resource_event.disconnect(dispatch_uid="test-event-payload-fields")


def test_a_row_looked_up_by_a_uuid_is_named_by_its_text(settings, captured):
    book = BookFactory(title="Old")
    with site_mounted(settings, "epf", site):
        r = client_for(None).patch(
            f"/epf/books-by-uid/{book.uid}/", {"title": "New"}, format="json"
        )
    assert r.status_code == 200, r.content
    (event,) = [e for e in captured if e.type == "books-by-uid.updated"]
    assert event.payload["id"] == str(book.uid) and isinstance(event.payload["id"], str)
    assert OutboxEvent.objects.get(type="books-by-uid.updated").payload["id"] == str(book.uid)
    assert uuid.UUID(event.payload["id"]) == book.uid


def test_a_hidden_field_a_project_serializer_renders_never_reaches_an_event(settings):
    book = BookFactory(title="Old", price="12.50")
    with site_mounted(settings, "epf", site):
        r = client_for(None).patch(
            f"/epf/price-hidden-books/{book.pk}/", {"title": "New"}, format="json"
        )
    assert r.status_code == 200, r.content
    payload = OutboxEvent.objects.get(type="price-hidden-books.updated").payload
    assert payload["changed"] == ["title"]
    assert "price" not in payload["data"] and "price" not in payload["previous"]
