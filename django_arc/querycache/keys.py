"""Cache keys: which requests may share one cached answer.

Two requests share an entry only when the uncached path would give both the same bytes. The
key is therefore built from the same objects the uncached path uses, not from a list of
things we remembered to include:

- the **SQL and parameters of the filtered queryset** — ``view.get_queryset()`` (tenancy and
  every preset's filters, the permission's row filters, a project's ``get_queryset``) plus the
  query language's filters, search and sort. Whatever narrows the rows a caller may see is in
  that SQL, so another tenant, owner, context value or filter is another key;
- **what the caller may see of each row** — ``view.field_access``, the one place field
  permissions are decided: the unreadable and the masked fields (roles that see the same
  fields share entries, roles that see fewer never get more), and ``?select=``;
- the page: ``page``, ``limit``, ``after``;
- with a project ``serializer_class`` or ``pagination_class``, whose output django-arc cannot
  see into, the caller itself and the whole query string.

The resource and the organization are spelled out in the key too, for people reading Redis.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch, QuerySet


def queryset_fingerprint(queryset: QuerySet) -> str:
    """The SQL a queryset runs, with its parameters, and that of its prefetches (a
    ``Prefetch`` may carry a filtered queryset of its own)."""
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:
        sql, params = "<empty>", ()
    parts = [sql, repr(params)]
    for lookup in queryset._prefetch_related_lookups:
        if isinstance(lookup, Prefetch):
            parts.append(lookup.prefetch_to)
            if lookup.queryset is not None:
                parts.append(queryset_fingerprint(lookup.queryset))
        else:
            parts.append(str(lookup))
    return "\n".join(parts)


def _field_access(view: Any) -> list[Any]:
    access = view.field_access
    return [
        sorted(access.unreadable),
        sorted((name, repr(mask)) for name, mask in access.redacted.items()),
    ]


def _caller(view: Any) -> list[Any]:
    """The caller and the full query string: for output django-arc cannot see into."""
    scope = view.scope
    params = view.request.query_params
    return [
        scope.kind,
        scope.user_id,
        scope.client_id,
        sorted((key, params.getlist(key)) for key in params),
    ]


def list_parts(view: Any) -> list[Any]:
    """What a list answer depends on (see the module docstring)."""
    queryset = view.filter_queryset(view.get_queryset())
    params = view.request.query_params
    query = view.list_query
    select = None if query is None or query.select is None else sorted(query.select)
    return [
        "list",
        queryset_fingerprint(queryset),
        "after" in params,
        params.get("after"),
        params.get("page"),
        params.get("limit"),
        select,
    ]


def retrieve_parts(view: Any) -> list[Any] | None:
    """What a get answer depends on; ``None`` for a malformed id (the route answers 404)."""
    resource = view.resource
    lookup = view.lookup_field
    raw = view.kwargs[view.lookup_url_kwarg or lookup]
    meta = resource.model._meta
    model_field = meta.pk if lookup == "pk" else meta.get_field(lookup)
    try:
        value = model_field.to_python(raw)
        queryset = view.get_queryset().filter(**{lookup: value})
        sql = queryset_fingerprint(queryset)
    except (DjangoValidationError, ValueError, TypeError, OverflowError):
        return None
    return ["get", sql]


def entry_key(view: Any, parts: list[Any]) -> str:
    """The Redis key (before the alias's prefix) of the answer ``parts`` describe."""
    resource = view.resource
    shared = resource.serializer_class is None and resource.pagination_class is None
    material = [*parts, _field_access(view), None if shared else _caller(view)]
    digest = hashlib.sha256(json.dumps(material, default=str).encode()).hexdigest()[:40]
    org = view.scope.organization_id
    return f"arc:qc:e:{site_name(resource)}:{resource.name}:{'-' if org is None else org}:{digest}"


def site_name(resource: Any) -> str:
    site = getattr(resource, "site", None)
    return getattr(site, "name", None) or "-"


def resource_version_key(resource: Any) -> str:
    return f"arc:qc:v:r:{site_name(resource)}:{resource.name}"


def tag_version_key(tag: str) -> str:
    return f"arc:qc:v:t:{tag}"


def version_keys(resource: Any, tags: tuple[str, ...]) -> list[str]:
    """The version keys an entry of ``resource`` is checked against: its own and its
    tags'. A write bumps them; an entry recorded under other versions is a miss."""
    return [resource_version_key(resource), *(tag_version_key(tag) for tag in tags)]
