"""The one extension point presets plug into.

A preset is an object in ``Resource.presets``. The resource calls each hook at a fixed point
of every request, in list order, so a preset can narrow querysets, refuse requests, own fields
that the body may not set, inject values on write, replace deletion, and add routes — without
the resource core knowing about any particular preset. Every hook has a no-op default:
override only what the preset needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

if TYPE_CHECKING:
    from ..resources import Resource


class Preset:
    #: short name used in system-check messages and docs
    name = "preset"
    #: whether this preset's write hooks may run statements of their own (an audit row, a
    #: soft-delete update): then every write of the resource runs in a transaction even with
    #: events off. A preset that only adds values to the one INSERT/UPDATE sets it False.
    needs_transaction = True

    def bind(self, resource: Resource) -> None:
        """Called once when the resource is compiled (models are ready). Validate options
        lazily here rather than in ``__init__`` (which runs at import time)."""

    def check(self, resource: Resource) -> list[str]:
        """Configuration problems, reported by ``manage.py check`` as ``arc.E``-errors."""
        return []

    def check_request(self, resource: Resource, request: Any, action: str) -> None:
        """Refuse a request before any query (raise ``ArcError``), e.g. missing tenant."""

    def filter_queryset(
        self, resource: Resource, request: Any, queryset: QuerySet, action: str
    ) -> QuerySet:
        """Narrow what the caller can see; applies to lists and single-object lookups."""
        return queryset

    def related_queryset(
        self, resource: Resource, request: Any, queryset: QuerySet, action: str
    ) -> QuerySet:
        """Narrow the rows a relation in a *write* body may point at (e.g. an order's
        ``product``): an id outside it is refused like an id that does not exist."""
        return queryset

    def managed_fields(self, resource: Resource) -> set[str]:
        """Fields this preset sets itself: read-only in the serializer and refused (or
        stripped) when a body carries them."""
        return set()

    def accepts_body_value(self, resource: Resource, request: Any, field: str, value: Any) -> bool:
        """Whether a body value for a managed ``field`` is harmless (e.g. the caller's own
        tenant) and may be silently dropped instead of refused."""
        return False

    def write_values(
        self, resource: Resource, request: Any, instance: Any = None
    ) -> dict[str, Any]:
        """Model attribute values forced on create (``instance`` None) and update."""
        return {}

    def perform_delete(self, resource: Resource, request: Any, instance: Any) -> bool:
        """Return True after deleting ``instance`` yourself (soft delete); False to let the
        default hard delete run."""
        return False

    def routes(self, resource: Resource) -> list[Any]:
        """Extra routes (``django_arc.actions.RouteSpec``) this preset adds to the resource."""
        return []
