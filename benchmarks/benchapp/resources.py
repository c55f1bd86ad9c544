"""The benchmarks' django-arc resources.

- ``bench`` site: side (b) of ``crud.py``, the same API as ``drf_views`` declared as a resource;
- ``access`` site: ``access.py``'s bare and guarded declarations of one multi-tenant model;
- ``presets`` site: ``presets.py``'s bare declaration of one model and the same declaration
  with every preset and field rules.

Each on its own ``ResourceSite`` so the benchmark's URLs contain exactly these resources.
"""

from rest_framework.authentication import BasicAuthentication

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P

from .drf_views import FIELDS
from .models import Item, PresetItem, TenantItem

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


# --------------------------------------------------------------------------- presets benchmark
# ``benchmarks/presets.py``: one model, two declarations that differ only in presets and field
# rules. Same authentication (HTTP Basic), same permissions and the same caller (an editor
# member sending ``X-Organization-Id``) on both, so scope resolution and role checks cost the
# same on both sides and the difference is what the presets and field rules cost.

presets_site = ResourceSite(name="presets")

PRESET_FIELDS = [*TENANT_FIELDS[:-1], "slug", "owner", "created_at", "deleted_at"]

#: the same role checks on both sides (what ``access.py`` measures is not measured again)
PRESET_PERMISSIONS = {
    "list": P.require_org_role("admin", "editor", "viewer"),
    "get": P.require_org_role("admin", "editor", "viewer"),
    "create": P.require_org_role("admin", "editor"),
    "update": P.require_org_role("admin", "editor"),
    "delete": P.require_org_role("admin"),
}


class _PresetItemBase(Resource):
    authentication_classes = [BasicAuthentication]
    model = PresetItem
    fields = PRESET_FIELDS
    # owner and deleted_at are never written from a body on either side (on the full side
    # the presets own them as well)
    read_only_fields = ["id", "created_at", "owner", "deleted_at"]
    filter_fields = ItemResource.filter_fields
    sort_fields = ItemResource.sort_fields
    search_fields = ItemResource.search_fields
    default_sort = "-created_at"
    permissions = PRESET_PERMISSIONS


@presets_site.register
class BarePresetItemResource(_PresetItemBase):
    """The bare side: no presets, no field rules."""

    name = "bare"


def full_presets(without: str = "") -> list[presets.Preset]:
    """The full side's presets (fresh instances: a preset binds to its resource), less the
    one named ``without`` (a key of :data:`PRESET_KINDS`)."""
    made = {
        "tenant": presets.MultiTenant(tenant_field="organization"),
        "soft-delete": presets.SoftDelete(field="deleted_at"),
        "slug": presets.SlugLookup(field="slug"),
        "owner": presets.OwnedBy(field="owner", bypass_roles=("admin",)),
        "bulk": presets.Bulk(max_items=100),
        "audit": presets.Audited(),
    }
    return [preset for kind, preset in made.items() if kind != without]


#: what ``presets.py --ablation`` takes away from the full side, one at a time
PRESET_KINDS = ["tenant", "soft-delete", "slug", "owner", "bulk", "audit", "field-rules"]


@presets_site.register
class FullPresetItemResource(_PresetItemBase):
    """The full side: all five presets on top of ``MultiTenant``, and field rules."""

    name = "full"
    presets = full_presets()
    # the access benchmark's field rules: cost readable by admins and editors only, price
    # writable by them only, internal_note never rendered
    field_permissions = {
        "cost": F.visible_to("admin", "editor"),
        "price": F.writable_by("admin", "editor"),
        "internal_note": F.hidden(),
    }


# ``presets.py --ablation`` (in-process only): the full side less one preset, or less its
# field rules, each on its own route, registered after ``bare`` and ``full`` so those two
# resolve their URLs exactly as without them.
for _kind in PRESET_KINDS:
    presets_site.register(
        type(
            f"FullWithout{_kind.title().replace('-', '')}Resource",
            (FullPresetItemResource,),
            {
                "__module__": __name__,
                "__doc__": f"The full side without {_kind} (``presets.py --ablation``).",
                "name": f"full-without-{_kind}",
                "presets": full_presets(without=_kind),
                **({"field_permissions": {}} if _kind == "field-rules" else {}),
            },
        )
    )
