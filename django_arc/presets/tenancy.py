"""``MultiTenant``: every row belongs to a tenant; callers only ever touch their tenant's rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import models
from django.db.models import Q, QuerySet

from ..exceptions import ArcError
from ..query import UNREADABLE, column_value
from .base import Preset

if TYPE_CHECKING:
    from ..resources import Resource

_READS = ("list", "get")


@dataclass
class _Dimension:
    field: str
    type: str = "org"  # "org" (from the scope's organization) or "context"
    context_key: str | None = None
    attname: str = ""
    model_field: Any = None

    @property
    def label(self) -> str:
        return "organization" if self.type == "org" else self.context_key or self.field

    def parse(self, raw: Any) -> Any:
        """The context value as the tenant column holds it. One the column cannot hold (not
        of its type, longer than ``max_length``, out of the integer range, a NUL in text) is
        a context the caller cannot have: 403 ``ORG_REQUIRED`` naming the dimension, before
        any query, on every database (SQLite would store a too-long value or a NUL;
        PostgreSQL answers DataError)."""
        try:
            return column_value(self.target, raw)
        except UNREADABLE:
            raise ArcError(
                "ORG_REQUIRED", f"Invalid {self.label} id", 403, {"missing": self.label}
            ) from None

    @property
    def target(self) -> Any:
        """The field the tenant column's values are read with: a relation's target field."""
        return getattr(self.model_field, "target_field", None) or self.model_field


def _concrete(model: Any) -> Any:
    """The model whose table holds ``model``'s rows (itself, unless a proxy)."""
    meta = getattr(model, "_meta", None)
    return meta.concrete_model if meta is not None else model


def _shared_parent(mine: Any, theirs: Any) -> Any:
    """The nearest model both multi-table children ``mine`` and ``theirs`` extend, or
    ``None``."""
    theirs_parents = theirs._meta.get_parent_list()
    return next((m for m in mine._meta.get_parent_list() if m in theirs_parents), None)


class MultiTenant(Preset):
    """Scope a resource to the caller's tenant.

    ``MultiTenant(tenant_field="organization")`` or, with several dimensions,
    ``MultiTenant(tenant_fields=[{"field": "organization", "type": "org"},
    {"field": "branch", "context_key": "branch_id"}])``.

    - list/get/update/delete/actions are filtered by the caller's org (and context keys);
      another tenant's row is 404.
    - a caller without the needed context gets 403 ``ORG_REQUIRED`` naming the dimension.
    - create *and* update set the tenant fields from the scope; a body naming another
      tenant is refused (``reject``) or dropped (``strip``); naming the caller's own is fine.
    - elevated callers without an org header read all tenants (and must name an org to
      create); with one, they are confined to it.
    - ``allow_public_reads=True``: callers with no org context list/get every tenant's rows
      (shared catalogues only).
    """

    name = "multi_tenant"
    needs_transaction = False  # tenant values ride on the write's own INSERT/UPDATE

    def __init__(
        self,
        tenant_field: str = "organization",
        tenant_fields: list[dict[str, Any]] | None = None,
        allow_public_reads: bool = False,
    ) -> None:
        if tenant_fields:
            self.dimensions = [
                _Dimension(
                    field=d["field"],
                    type=d.get("type") or ("context" if d.get("context_key") else "org"),
                    context_key=d.get("context_key"),
                )
                for d in tenant_fields
            ]
        else:
            self.dimensions = [_Dimension(field=tenant_field)]
        self.allow_public_reads = allow_public_reads

    def bind(self, resource: Resource) -> None:
        for dim in self.dimensions:
            try:
                dim.model_field = resource.model._meta.get_field(dim.field)
                dim.attname = dim.model_field.attname
            except FieldDoesNotExist:
                dim.model_field = None

    def check(self, resource: Resource) -> list[str]:
        errors = []
        for dim in self.dimensions:
            try:
                resource.model._meta.get_field(dim.field)
            except FieldDoesNotExist:
                errors.append(
                    f"MultiTenant tenant field '{dim.field}' is not a field of "
                    f"{resource.model.__name__}"
                )
            if dim.type not in ("org", "context"):
                errors.append(
                    f"MultiTenant dimension '{dim.field}': type must be 'org' or 'context'"
                )
            if dim.type == "context" and not dim.context_key:
                errors.append(f"MultiTenant dimension '{dim.field}' needs a context_key")
        return errors

    # -- scope → tenant values ---------------------------------------------------------

    def tenant_values(self, view: Any, key: str | None = None) -> dict[str, Any] | None:
        """``{attname: value}`` the caller is confined to, or ``None`` for all tenants.
        ``key`` is the permission key judged (default: the view's)."""
        key = view.permission_key if key is None else key
        cache = view.__dict__.setdefault("_arc_tenant_values", {})
        cache_key = (id(self), key in _READS, key == "create")
        if cache_key not in cache:
            cache[cache_key] = self._resolve(view.scope, key)
        return cache[cache_key]

    def _resolve(self, scope: Any, action: str) -> dict[str, Any] | None:
        org_id = scope.organization_id
        context = scope.context or {}
        if scope.kind == "elevated" and not org_id:
            if action == "create":
                raise ArcError(
                    "ORG_REQUIRED",
                    "Organization context required to create",
                    403,
                    {"missing": "organization"},
                )
            return None
        if (
            self.allow_public_reads
            and action in _READS
            and not org_id
            and scope.kind in ("public", "authenticated")
        ):
            return None
        values: dict[str, Any] = {}
        for dim in self.dimensions:
            raw = org_id if dim.type == "org" else context.get(dim.context_key)
            if raw in (None, ""):
                if scope.kind == "elevated":
                    continue
                raise ArcError(
                    "ORG_REQUIRED", f"{dim.label} context required", 403, {"missing": dim.label}
                )
            values[dim.attname] = dim.parse(raw)
        return values

    def row_organization_id(self, instance: Any) -> Any:
        """The organization ``instance`` belongs to, as its first ``org`` dimension's column
        holds it (the value a member's ``X-Organization-Id`` names), or ``None``: what an
        audit entry names when the caller named no organization (an elevated write across
        tenants). No query: the column is an attribute of the row."""
        for dim in self.dimensions:
            if dim.type == "org" and dim.attname:
                return getattr(instance, dim.attname, None)
        return None

    # -- preset hooks --------------------------------------------------------------------

    def check_request(self, view: Any) -> None:
        self.tenant_values(view)

    def row_filter(self, view: Any) -> Q | None:
        values = self.tenant_values(view)
        return Q(**values) if values else None

    def related_queryset(self, view: Any, queryset: QuerySet) -> QuerySet:
        """A body may only reference rows of the caller's tenant: when the related model
        carries the same tenant dimension (a same-named FK to the same tenant model, a
        proxy of it, a multi-table child or parent of it or another child of its parent,
        or a same-named context field),
        only that tenant's rows are valid targets; a comparison that cannot be built
        matches no row.

        The two tenant columns may read the tenant by different fields (``to_field="slug"``
        on one side, the id on the other): the related rows are then matched through their
        relation by the field this resource's value is read with, never by comparing the
        two columns' raw values, which named another tenant (its slug spelling this one's
        id) or could not be compared at all (a slug against an integer column: a 500)."""
        values = self.tenant_values(view)
        if not values:
            return queryset
        filters = {}
        for dim in self.dimensions:
            if dim.attname not in values or dim.model_field is None:
                continue
            try:
                other = queryset.model._meta.get_field(dim.field)
            except FieldDoesNotExist:
                continue
            value = values[dim.attname]
            if dim.model_field.is_relation:
                # the same tenant model, or a proxy of it (one table, the same rows): one
                # side's relation to a proxy of the organization left the other's unnarrowed
                if not other.is_relation:
                    continue
                mine = _concrete(dim.model_field.related_model)
                theirs = _concrete(other.related_model)
                target = dim.target
                if theirs is mine:
                    if getattr(other, "target_field", None) == target:
                        filters[other.attname] = value
                    else:  # joined, and compared as this resource's column reads it
                        filters[f"{other.name}__{target.name}"] = value
                elif mine in theirs._meta.get_parent_list():
                    # a multi-table child of this tenant model (``Company(Organization)``):
                    # it inherits the field this resource's value is read with
                    filters[f"{other.name}__{target.name}"] = value
                elif theirs in mine._meta.get_parent_list():
                    # this resource's tenant is a multi-table child of theirs: their rows
                    # are the parent rows of the child row this value names
                    filters[f"{other.name}__pk__in"] = (
                        mine._base_manager.using(queryset.db)
                        .filter(**{target.name: value})
                        .values(theirs._meta.pk.name)
                    )
                else:
                    shared = _shared_parent(mine, theirs)
                    if shared is None:
                        continue  # another model: not this tenant dimension
                    # two multi-table children of one model (``Company(Organization)`` and
                    # ``Agency(Organization)``): compared through the row they both extend,
                    # whose pk each inherits by name (their own pk may be another key)
                    name = shared._meta.pk.name
                    filters[f"{other.name}__{name}__in"] = (
                        mine._base_manager.using(queryset.db)
                        .filter(**{target.name: value})
                        .values(name)
                    )
                continue
            if other.is_relation:
                continue
            try:  # the same context value as the related column reads it
                filters[other.attname] = column_value(other, value)
            except UNREADABLE:
                return queryset.none()  # a value that column cannot hold: no row has it
        if not filters:
            return queryset
        try:
            return queryset.filter(**filters)
        except FieldError:  # a lookup the two tenant models' fields do not allow
            return queryset.none()

    def organization_models(self, resource: Resource) -> set[type[models.Model]]:
        """The targets of the ``org`` dimensions that are relations; a missing field is
        ``manage.py check``'s to report (arc.E011)."""
        return {
            field.related_model
            for field in self._org_fields(resource)
            if field.is_relation and field.related_model is not None
        }

    def organization_id_fields(self, resource: Resource) -> list[Any]:
        """The target fields of the ``org`` dimensions (``Organization.id``, or ``slug``
        for a ``to_field="slug"`` relation): what the scope's organization id is read with."""
        return [
            getattr(field, "target_field", None) or field for field in self._org_fields(resource)
        ]

    def _org_fields(self, resource: Resource) -> list[Any]:
        """The model fields of the ``org`` dimensions (a missing one is arc.E011's)."""
        found = []
        for dim in self.dimensions:
            if dim.type != "org":
                continue
            try:
                found.append(resource.model._meta.get_field(dim.field))
            except FieldDoesNotExist:
                continue
        return found

    def managed_fields(self, resource: Resource) -> set[str]:
        return {d.field for d in self.dimensions} | {
            d.attname for d in self.dimensions if d.attname
        }

    def accepts_body_value(self, view: Any, field: str, value: Any) -> bool:
        values = self.tenant_values(view, "update") or {}
        for dim in self.dimensions:
            if field in (dim.field, dim.attname) and dim.attname in values:
                return value is not None and str(value) == str(values[dim.attname])
        return False

    def write_values(self, view: Any, instance: Any = None) -> dict[str, Any]:
        return dict(self.tenant_values(view, "create" if instance is None else "update") or {})
