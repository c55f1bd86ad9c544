"""Side (b): the same API as ``drf_views`` declared as a django-arc resource.

Registered on its own ``ResourceSite`` so the benchmark's URLs contain exactly this resource.
"""

from django_arc import Resource, ResourceSite
from django_arc import permissions as P

from .drf_views import FIELDS
from .models import Item

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
