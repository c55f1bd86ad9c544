"""Resources for the idempotency and query-cache tests (issue #17).

One product declaration (tenancy, field rules that differ per role, bulk, an action, a route
writing through ``QuerySet.update`` and a raw route) served four ways: with idempotency,
cached, the same cached resource's uncached twin (what every cached answer must equal), and
a cached order list sharing the products' tag.
"""

from django.db.models import F as Col

from django_arc import Resource, action, arc, presets, route
from django_arc import permissions as P
from django_arc.permissions import has_any_role
from django_arc.scope import get_scope
from shop.models import Order, Product

from .resources import TenantProductResource

MEMBERS = P.require_org_membership()
WRITERS = P.require_org_role("admin", "editor")
TAG = "test-catalog"


def dear_ones_for_staff(request, resource, action, obj=None):
    """An object-level rule: a product of 100 or more only for admins and editors. A cached
    get must run it on every hit (the rows' SQL cannot see it)."""
    if obj is None or obj.price < 100:
        return True
    return has_any_role(get_scope(request), frozenset({"admin", "editor"}))


class _Products(Resource):
    model = Product
    # the fields and field rules of the SPEC §2 product (cost for admins, sku masked for
    # viewers, secret_notes hidden): roles that see different payloads
    fields = TenantProductResource.fields
    field_permissions = TenantProductResource.field_permissions
    read_only_fields = ["id", "created_at"]
    filter_fields = {"status": ["eq", "in"], "price": ["gte", "lte"], "name": ["contains"]}
    sort_fields = ["price", "name", "created_at"]
    search_fields = ["name"]
    default_sort = "name"
    presets = [presets.MultiTenant(tenant_field="organization"), presets.Bulk(max_items=50)]
    permissions = {
        "list": MEMBERS,
        "get": P.all_of(MEMBERS, dear_ones_for_staff),
        "create": WRITERS,
        "update": WRITERS,
        "delete": P.require_org_role("admin"),
    }

    @action(permissions=WRITERS)
    def double(self, request, instance, data):
        """Double the price (an action writing with ``save()``)."""
        instance.price = instance.price * 2
        instance.save(update_fields=["price"])
        return instance

    @route("POST", "raise-prices", permissions=WRITERS)
    def raise_prices(self, request, view):
        """Add 1 to every visible price with ``QuerySet.update`` (no model signal)."""
        return {"updated": view.get_queryset().update(price=Col("price") + 1)}

    @route("POST", "hook", raw=True, permissions=WRITERS)
    def hook(self, request):
        """A raw route: its body is left alone, idempotency keys included."""
        return {"length": len(request.body)}


@arc.register
class IdempotentProductResource(_Products):
    name = "idem-products"
    idempotent = True


@arc.register
class CachedProductResource(_Products):
    name = "cached-products"
    cache = {"stale_seconds": 30, "gc_seconds": 300, "tags": [TAG]}


@arc.register
class UncachedProductResource(_Products):
    """The cached resource's twin with the cache off: the answer a cached one must equal."""

    name = "uncached-products"
    cache = False


@arc.register
class CachedOrderResource(Resource):
    """Orders render their product's id; they share the products' tag."""

    model = Order
    name = "cached-orders"
    fields = ["id", "reference", "product", "quantity", "organization", "placed_at"]
    read_only_fields = ["id", "reference", "placed_at"]
    lookup_field = "reference"
    default_sort = "placed_at"
    presets = [presets.MultiTenant()]
    permissions = {"list": MEMBERS, "get": MEMBERS, "create": WRITERS}
    cache = {"tags": [TAG]}
