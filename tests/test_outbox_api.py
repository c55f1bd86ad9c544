"""The outbox seen through the resource API: a write and its event commit together or not at
all, and the committed event reaches the transport through the relay."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from django_arc.exceptions import ArcError
from django_arc.outbox import EventOutbox, OutboxEvent
from django_arc.signals import resource_event
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory
from tests.outbox_support import RecordingTransport

pytestmark = pytest.mark.django_db

BODY = {"name": "Mug", "sku": "MUG-1", "price": "9.50"}


@pytest.fixture
def admin_client():
    org = OrganizationFactory()
    user = MembershipFactory(organization=org, role="admin").user
    client = APIClient()
    client.force_authenticate(user)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    return client, user, org


@pytest.fixture
def after_store():
    """Connect a receiver that runs *after* the outbox stored the event (same transaction)."""
    connected = []

    def connect(fn):
        resource_event.connect(fn, weak=False, dispatch_uid=f"test-after-store-{id(fn)}")
        connected.append(fn)

    yield connect
    for fn in connected:
        resource_event.disconnect(dispatch_uid=f"test-after-store-{id(fn)}")


def test_committed_create_leaves_one_row_with_request_meta_and_relays_it(admin_client):
    client, user, org = admin_client
    response = client.post("/api/products/", BODY, format="json", HTTP_X_REQUEST_ID="req-abc-123")
    assert response.status_code == 201, response.content
    product = Product.objects.get()

    row = OutboxEvent.objects.get()
    assert row.type == "products.created"
    assert row.status == "pending"
    assert row.meta["correlation_id"] == "req-abc-123"
    assert row.meta["user_id"] == str(user.pk)
    assert row.meta["organization_id"] == str(org.pk)
    assert row.meta["resource"] == "products"
    assert row.meta["resource_id"] == str(product.pk)
    assert row.payload["id"] == product.pk

    transport = RecordingTransport()
    assert EventOutbox(transport).relay_batch().relayed == 1
    [event] = transport.published
    assert event.id == row.event_id and event.meta.correlation_id == "req-abc-123"


def test_write_rolled_back_after_the_event_was_stored_leaves_nothing(admin_client, after_store):
    client, _, _ = admin_client

    def refuse(sender, event, **kwargs):
        assert OutboxEvent.objects.filter(event_id=event.id).exists()  # stored already...
        raise ArcError("REFUSED", "downstream check failed", 409)

    after_store(refuse)
    response = client.post("/api/products/", BODY, format="json")
    assert response.status_code == 409
    # ...and gone with the rolled-back write.
    assert Product.objects.count() == 0
    assert OutboxEvent.objects.count() == 0
    transport = RecordingTransport()
    assert EventOutbox(transport).relay_batch().attempted == 0
    assert transport.published == []


def test_database_error_in_the_write_transaction_leaves_no_row(admin_client, after_store):
    client, _, org = admin_client
    Product.objects.create(organization=org, name="Taken", sku="TAKEN", price="1")

    def violate_constraint(sender, event, **kwargs):
        Product.objects.create(organization=org, name="dup", sku="TAKEN", price="1")

    after_store(violate_constraint)
    response = client.post("/api/products/", BODY, format="json")
    assert response.status_code == 409  # the error envelope maps IntegrityError to a conflict
    assert list(Product.objects.values_list("sku", flat=True)) == ["TAKEN"]
    assert OutboxEvent.objects.count() == 0


def test_update_and_delete_each_store_one_event(admin_client):
    client, _, _ = admin_client
    assert client.post("/api/products/", BODY, format="json").status_code == 201
    product = Product.objects.get()
    assert (
        client.patch(f"/api/products/{product.pk}/", {"name": "Cup"}, format="json").status_code
        == 200
    )
    assert client.delete(f"/api/products/{product.pk}/").status_code in (200, 204)
    assert list(OutboxEvent.objects.values_list("type", flat=True)) == [
        "products.created",
        "products.updated",
        "products.deleted",
    ]
