"""The benchmarks' django-arc resources.

- ``bench`` site: side (b) of ``crud.py``, the same API as ``drf_views`` declared as a resource;
- ``access`` site: ``access.py``'s bare and guarded declarations of one multi-tenant model.

Each on its own ``ResourceSite`` so the benchmark's URLs contain exactly these resources.
"""

from rest_framework.authentication import BasicAuthentication

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P

from .drf_views import FIELDS
from .models import Item, TenantItem

bench = ResourceSite(name="bench")


@bench.register
class ItemResource(Resource):
    model = Item
    name = "items"
    fields = FIELDS
    read_only_fields = ["id", "created_at"]
    filter_fields = {
        "status": ["eq", "in"],
        "price": ["gte", "lte"],
        "name": ["contains"],
        "category": ["eq"],
    }
    sort_fields = ["price", "created_at", "name"]
    search_fields = ["name", "sku"]
    default_sort = "-created_at"
    permissions = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}
    cache = False  # cache.py's uncached list, next to the cached one on the same server


@bench.register
class CachedItemResource(ItemResource):
    """``cache.py``: the same resource, cached where ``ARC["CACHE"]["ENABLED"]`` (the
    ``ARC_BENCH_CACHE=on`` server). Left unset rather than ``cache = {...}`` so that on every
    other server no Item write pays for invalidation."""

    name = "cached-items"
    cache = None


# --------------------------------------------------------------------------- access benchmark
# ``benchmarks/access.py``: one model, two declarations that differ only in access control.
# Both authenticate the same way (HTTP Basic), so the difference between them is what
# tenancy, field rules and role checks cost.

access = ResourceSite(name="access")

TENANT_FIELDS = [
    "id",
    "organization",
    "category",
    "name",
    "sku",
    "price",
    "cost",
    "status",
    "quantity",
    "internal_note",
    "created_at",
]


class _TenantItemBase(Resource):
    # the access sides authenticate with HTTP Basic (the CRUD resources keep the project
    # default, no authentication, as the hand-written DRF side does)
    authentication_classes = [BasicAuthentication]
    model = TenantItem
    fields = TENANT_FIELDS
    read_only_fields = ["id", "created_at"]
    filter_fields = ItemResource.filter_fields
    sort_fields = ItemResource.sort_fields
    search_fields = ItemResource.search_fields
    default_sort = "-created_at"


@access.register
class BareItemResource(_TenantItemBase):
    """(a) no presets, no field rules, everyone allowed."""

    name = "bare"
    permissions = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}


@access.register
class GuardedItemResource(_TenantItemBase):
    """(b) the same resource, multi-tenant, with field rules and org-role checks."""

    name = "guarded"
    presets = [presets.MultiTenant(tenant_field="organization")]
    field_permissions = {
        "cost": F.visible_to("admin", "editor"),
        "price": F.writable_by("admin", "editor"),
        "internal_note": F.hidden(),
    }
    permissions = {
        "list": P.require_org_role("admin", "editor", "viewer"),
        "get": P.require_org_role("admin", "editor", "viewer"),
        "create": P.require_org_role("admin", "editor"),
        "update": P.require_org_role("admin", "editor"),
        "delete": P.require_org_role("admin"),
    }
