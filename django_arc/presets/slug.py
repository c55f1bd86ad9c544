"""``SlugLookup``: ``GET /<name>/slug/{slug}/``, the detail route by another unique field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import FieldDoesNotExist

from ..actions import INSTANCE, RouteSpec
from .base import Preset

if TYPE_CHECKING:
    from ..resources import Resource

SLUG_ROUTE = "slug"


class SlugLookup(Preset):
    """``SlugLookup(field="slug")``: one row by ``field``, through the same filters,
    permission (``get``) and field permissions as ``GET /<name>/{id}/`` — a row another
    tenant owns, or one soft-deleted, is 404 here too.

    The slug need not be unique in the whole table, only among the rows a caller can see
    (per organization, typically); a lookup that matches several rows is 404, like a
    missing one."""

    name = "slug_lookup"
    needs_transaction = False  # a read-only route

    def __init__(self, field: str = "slug") -> None:
        self.field = field

    def check(self, resource: Resource) -> list[str]:
        try:
            model_field = resource.model._meta.get_field(self.field)
        except FieldDoesNotExist:
            return [f"SlugLookup field '{self.field}' is not a field of {resource.model.__name__}"]
        if model_field.is_relation or not model_field.concrete:
            return [f"SlugLookup field '{self.field}' must be a plain column, not a relation"]
        return []

    def routes(self, resource: Resource) -> list[RouteSpec]:
        return [
            RouteSpec(
                methods=["GET"],
                path=f"slug/{{{self.field}}}",
                handler=self.by_slug,
                name=SLUG_ROUTE,
                permission_key="get",
                lookup_field=self.field,
                response=INSTANCE,
                summary=f"Get one row by {self.field}",
            )
        ]

    def by_slug(self, view: Any, request: Any, **url_kwargs: Any) -> Any:
        return view.get_object()
