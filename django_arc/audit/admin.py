"""The read-only ``AuditLog`` admin, built to stay fast at millions of rows.

Newest first by primary key; filters whose choices cost no query (a fixed list of verbs,
the registered resources, dates); search by exact id only (indexed: object id within each
logged resource, request id, actor); no full count (``show_full_result_count = False``)
and, on PostgreSQL, the planner's row estimate instead of ``COUNT(*)`` for the unfiltered
list. No JSON is searched.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.utils.functional import cached_property

from ..admin_input import RefuseOddInputMixin, id_spellings
from . import stored_object_id
from .models import AuditLog

VERBS = ("created", "updated", "deleted", "restored")


class EstimatedCountPaginator(Paginator):
    """``COUNT(*)`` over millions of rows takes seconds on PostgreSQL; the unfiltered list
    uses ``pg_class.reltuples`` (the planner's estimate) instead. Filtered lists are counted
    exactly; that count reads an index for the audit log's resource, date and id searches,
    but the table for its verb filter and the outbox's type and date filters (no index on
    ``action``, ``type`` or the outbox's ``created_at``)."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if (
            query is not None
            and not query.where
            and connections[queryset.db].vendor == "postgresql"
        ):
            with connections[queryset.db].cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] is not None and row[0] >= 10_000:
                return int(row[0])
        return super().count


#: Past this many distinct ``resource`` values, an object id search stops naming them all.
MAX_SEARCHED_RESOURCES = 1000


def logged_resources(using: str) -> list[str] | None:
    """The distinct ``resource`` values in the log, read with one probe of the
    ``(resource, object_id, id)`` index per value (a recursive ``MIN(resource) > previous``),
    not a scan; ``None`` past ``MAX_SEARCHED_RESOURCES`` of them, or on a backend other than
    PostgreSQL and SQLite (whose recursive queries this one is written for)."""
    connection = connections[using]
    if connection.vendor not in ("postgresql", "sqlite"):
        return None
    qn = connection.ops.quote_name
    table, column = qn(AuditLog._meta.db_table), qn("resource")
    sql = (
        f"WITH RECURSIVE found(value, n) AS ("
        f" SELECT MIN({column}), 1 FROM {table}"
        f" UNION ALL"
        f" SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > found.value), n + 1"
        f" FROM found WHERE found.value IS NOT NULL AND n <= %s"
        f") SELECT value FROM found WHERE value IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [MAX_SEARCHED_RESOURCES])
        values = [row[0] for row in cursor.fetchall()]
    return None if len(values) > MAX_SEARCHED_RESOURCES else values


class VerbFilter(admin.SimpleListFilter):
    title = "action"
    parameter_name = "action"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [(verb, verb) for verb in VERBS] + [("other", "actions and custom entries")]

    def queryset(self, request: Any, queryset: Any) -> Any:
        value = self.value()
        if value == "other":
            return queryset.exclude(action__in=VERBS)
        return queryset.filter(action=value) if value else queryset


class ResourceFilter(admin.SimpleListFilter):
    title = "resource"
    parameter_name = "resource"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        # a resource routed by hand writes its entries under its name too
        from ..sites import served_resources

        names = sorted({r.name for r in served_resources()})
        return [(name, name) for name in names]

    def queryset(self, request: Any, queryset: Any) -> Any:
        return queryset.filter(resource=self.value()) if self.value() else queryset


@admin.register(AuditLog)
class AuditLogAdmin(RefuseOddInputMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "action",
        "resource",
        "object_id",
        "organization_id",
        "actor",
        "request_id",
    ]
    list_filter = [VerbFilter, ResourceFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=object_id", "=request_id", "=actor_user_id", "=actor_client_id"]
    search_help_text = (
        "An exact object id, request id, user id or service client id (a UUID with or "
        "without dashes)."
    )
    ordering = ["-id"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    readonly_fields = [f.name for f in AuditLog._meta.fields]

    def get_search_results(self, request: Any, queryset: Any, search_term: str) -> Any:
        """Exact matches each index can answer. Django's ``=field`` search compares
        ``UPPER(field) = UPPER(term)``, which no index serves: every search read the whole
        table, twice (count and page). ``object_id`` leads no index of its own (it is second
        in ``(resource, object_id, id)``), so it is matched per logged resource.

        The term is one id (not split on spaces); it matches as typed, lower-cased (a UUID
        pasted in capitals) or as the dashed UUID it spells (pasted without dashes:
        :func:`~django_arc.admin_input.id_spellings`), an object id as it is stored (a long
        one shortened, :func:`~django_arc.audit.stored_object_id`)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        values = id_spellings(term)
        match = Q(request_id__in=values) | Q(actor_user_id__in=values)
        match |= Q(actor_client_id__in=values)
        object_ids = sorted({stored_object_id(value) for value in values})
        resources = logged_resources(queryset.db)
        if resources is None:
            match |= Q(object_id__in=object_ids)
        elif resources:
            match |= Q(resource__in=resources, object_id__in=object_ids)
        return queryset.filter(match), False

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
