"""The demo shop's API, declared as django-arc resources.

``django_arc`` autodiscovers this module (like ``admin.py``), so the ``@arc.register``
decorators below are all it takes to serve ``/api/products/`` and ``/api/orders/``.
"""

from django.db.models import Count
from rest_framework import serializers

from django_arc import Resource, action, arc, presets, route
from django_arc import fields as F
from django_arc import permissions as P

from .models import Order, Page, Product

MEMBERS = P.require_org_membership()
WRITERS = P.require_org_role("admin", "editor")
ADMINS = P.require_org_role("admin")


# --8<-- [start:reprice-input]
class RepriceInput(serializers.Serializer):
    """The body of ``{"action": "reprice", ...}`` beside ``action``."""

    price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0)
    reason = serializers.CharField(max_length=200)


# --8<-- [end:reprice-input]


@arc.register
class ProductResource(Resource):
    """The catalogue of one organization.

    Tenancy comes from ``X-Organization-Id`` (``MultiTenant``); a product of another
    organization is a 404, never a 403. ``cost`` is margin data only admins see, ``status``
    drives what is on sale so only admins may change it, and ``secret_notes`` never leaves
    the server (it is for the admin site only).
    """

    model = Product
    name = "products"
    fields = [
        "id",
        "name",
        "sku",
        "price",
        "status",
        "cost",
        "secret_notes",
        "in_stock",
        "organization",
        "created_at",
    ]
    read_only_fields = ["id", "created_at"]
    filter_fields = {"status": ["eq", "in"], "price": ["gte", "lte"], "name": ["contains"]}
    sort_fields = ["price", "created_at", "name"]
    search_fields = ["name", "sku"]
    default_sort = "-created_at"
    presets = [
        presets.MultiTenant(tenant_field="organization"),
        presets.Audited(),
        presets.Bulk(max_items=100),  # catalogue imports: POST/PATCH/DELETE /api/products/bulk/
    ]
    permissions = {
        "list": MEMBERS,
        "get": MEMBERS,
        "create": WRITERS,
        "update": WRITERS,
        "delete": ADMINS,
    }
    field_permissions = {
        "cost": F.visible_to("admin"),
        "status": F.writable_by("admin"),
        "secret_notes": F.hidden(),
    }
    # --8<-- [start:idempotent-and-cache]
    # A retried POST (a client timed out, a proxy resent it) with the same Idempotency-Key
    # creates one product and one event; the retry gets the first answer back.
    idempotent = True
    # Lists and rows come from Redis for 30 s, then are refreshed in the background; any
    # write to products (API, admin, bulk, seed_demo) invalidates them at once.
    cache = {"stale_seconds": 30, "gc_seconds": 300, "tags": ["catalog"]}
    # --8<-- [end:idempotent-and-cache]

    # --8<-- [start:action-and-route]
    @action(permissions=ADMINS, input=RepriceInput)
    def reprice(self, request, instance, data):
        """Set a new price; the reason travels in the ``products.reprice`` event."""
        instance.price = data["price"]
        instance.save(update_fields=["price"])
        return instance

    @route("GET", "stats", permissions=MEMBERS)
    def stats(self, request, view):
        """How many of the caller's products are in each status."""
        rows = view.get_queryset().order_by().values_list("status").annotate(n=Count("pk"))
        return dict(sorted(rows))

    # --8<-- [end:action-and-route]


@arc.register
class OrderResource(Resource):
    """Orders, addressed by their public UUID ``reference`` rather than the integer pk
    (so order numbers cannot be enumerated)."""

    model = Order
    name = "orders"
    # ``product`` may only name a product of the caller's organization: MultiTenant narrows
    # writable relations to the tenant, and another tenant's id reads as "does not exist".
    fields = [
        "id",
        "reference",
        "product",
        "quantity",
        "customer_email",
        "organization",
        "placed_at",
    ]
    read_only_fields = ["id", "reference", "placed_at"]
    lookup_field = "reference"
    filter_fields = {
        "product": ["eq", "in"],
        "quantity": ["eq", "gte", "lte"],
        "placed_at": ["gte", "lte"],
    }
    sort_fields = ["placed_at", "quantity"]
    search_fields = ["customer_email"]
    default_sort = "-placed_at"
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {
        "list": MEMBERS,
        "get": MEMBERS,
        "create": WRITERS,
        "update": WRITERS,
        "delete": ADMINS,
    }


# --8<-- [start:pages]
@arc.register
class PageResource(Resource):
    """An organization's content pages, by slug (``GET /api/pages/slug/about/``).

    Editors write pages and own what they write: another editor may read a page but not
    change it, admins may change any (``OwnedBy``). ``DELETE`` moves a page to the trash
    (``GET /api/pages/deleted/``, ``POST /api/pages/{id}/restore/``), and every change is in
    the audit log (admin → django-arc → Audit log).
    """

    model = Page
    name = "pages"
    fields = ["id", "slug", "title", "body", "published", "author", "organization", "deleted_at"]
    read_only_fields = ["id"]
    filter_fields = {"published": ["eq"], "title": ["icontains"]}
    sort_fields = ["slug", "title"]
    search_fields = ["title", "body"]
    default_sort = "slug"
    presets = [
        presets.MultiTenant(),
        presets.SlugLookup(field="slug"),
        presets.OwnedBy(field="author", bypass_roles=("admin",)),
        presets.SoftDelete(field="deleted_at"),
        presets.Audited(),
    ]
    permissions = {
        "list": MEMBERS,
        "get": MEMBERS,
        "create": WRITERS,
        "update": WRITERS,
        "delete": WRITERS,
    }


# --8<-- [end:pages]
