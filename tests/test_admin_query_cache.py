"""SPEC §11 / docs/query-cache.md: "admin saves" of a cached resource's model invalidate its
cached answers. The project's admin writes through ``save()`` (change form, list_editable)
and ``delete_selected`` (a collector that sends ``post_delete``); both reach the model
signals. They are not writes through a resource, so they emit no event and write no audit
row (docs/events.md, docs/presets/audited.md). Mounted on an admin site of its own, so the
project's ``admin.site`` is untouched."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import include, path

from django_arc import arc
from django_arc.audit.models import AuditLog
from django_arc.outbox import OutboxEvent
from shop.models import Product
from tests import test_query_cache
from tests.redis_support import REDIS_URL
from tests.test_query_cache import CACHED, get

redis_cache = test_query_cache.redis_cache
shop = test_query_cache.shop

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    pytest.mark.django_db(transaction=True),  # bumps happen on commit
    pytest.mark.urls(__name__),
]

shop_admin = admin.AdminSite(name="shop_admin")


@admin.register(Product, site=shop_admin)
class ProductAdmin(admin.ModelAdmin):
    fields = ["name"]
    list_display = ["id", "name", "price"]
    list_editable = ["price"]


urlpatterns = [path("shop-admin/", shop_admin.urls), path("api/", include(arc.urls))]


def hit(client):
    get(client, CACHED)
    response = get(client, CACHED)
    assert response["X-Cache"] == "HIT"
    return response


def names(response):
    return sorted(row["name"] for row in response.json()["docs"])


def test_admin_change_form_list_editable_and_delete_selected_invalidate(
    shop, client, django_user_model
):
    editor = shop["editor"]
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    product = shop["a"].products.get(name="A0")

    hit(editor)
    response = client.post(f"/shop-admin/shop/product/{product.pk}/change/", {"name": "A0-new"})
    assert response.status_code == 302
    after = get(editor, CACHED)
    assert after["X-Cache"] == "MISS" and "A0-new" in names(after)

    hit(editor)
    rows = list(Product.objects.order_by("pk"))
    form = {
        "form-TOTAL_FORMS": str(len(rows)),
        "form-INITIAL_FORMS": str(len(rows)),
        "_save": "Save",
    }
    for i, row in enumerate(rows):
        form[f"form-{i}-id"] = str(row.pk)
        form[f"form-{i}-price"] = str(row.price + 1 if row.pk == product.pk else row.price)
    assert client.post("/shop-admin/shop/product/", form).status_code == 302
    after = get(editor, CACHED)
    assert after["X-Cache"] == "MISS"
    prices = {row["id"]: row["price"] for row in after.json()["docs"]}
    assert float(prices[product.pk]) == float(product.price) + 1

    hit(editor)
    response = client.post(
        "/shop-admin/shop/product/",
        {"action": "delete_selected", "_selected_action": [product.pk], "post": "yes"},
    )
    assert response.status_code == 302
    after = get(editor, CACHED)
    assert after["X-Cache"] == "MISS" and "A0-new" not in names(after)
    assert not OutboxEvent.objects.exists() and not AuditLog.objects.exists()
