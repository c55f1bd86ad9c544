"""The two list paginations, as DRF pagination classes.

``PagePagination`` (the default): ``?page=2&limit=20``, answered with arc's flat list
envelope (``docs``, ``page``, ``limit``, ``total``, ``pages``, ``hasNext``, ``hasPrev``).
``KeysetPagination``: ``?after=<cursor>`` (empty to start), ordered by the list's sort key
plus the primary key, answered with ``docs``, ``limit``, ``hasNext`` and the ``next`` cursor.
A resource's ViewSet picks one per request (:attr:`ResourceGenericViewSet.paginator`); both
read the ordering the query-language filter backend parsed, so a cursor always matches the
rows' sort.

Like DRF's, an instance holds one request's page; their configuration is class-level, so
nothing is compiled per request.
"""

from __future__ import annotations

import sys
from typing import Any

from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from . import envelope
from .exceptions import InvalidQuery
from .settings import arc_settings


def parse_positive_int(params: Any, name: str, default: int) -> int:
    """A positive integer query parameter of any length (ASCII digits only), else 400
    ``INVALID_QUERY`` naming it."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit():
        raise InvalidQuery(name, "must be a positive integer")
    value = _digits_value(raw)
    if value < 1:
        raise InvalidQuery(name, "must be a positive integer")
    return value


def _digits_value(digits: str) -> int:
    """The number ASCII ``digits`` spell. Past the digits Python converts
    (``sys.get_int_max_str_digits()``, 4300 unless configured), where ``int()`` raises
    ``ValueError``: the largest number it converts and writes back — a limit over any cap,
    a page past any last page, and never below what a shorter string answers."""
    digits = digits.lstrip("0") or "0"  # zeros in front do not make a number large
    try:
        return int(digits)
    except ValueError:
        return 10 ** sys.get_int_max_str_digits() - 1


def parse_limit(params: Any) -> int:
    """``?limit=``: ``DEFAULT_PAGE_SIZE`` when absent, capped at ``MAX_PAGE_SIZE`` (never an
    error for being large, however many digits)."""
    return min(
        parse_positive_int(params, "limit", arc_settings.DEFAULT_PAGE_SIZE),
        arc_settings.MAX_PAGE_SIZE,
    )


class PagePagination(BasePagination):
    """``?page=&limit=``; a page beyond the last is empty (no SQL for its rows)."""

    page_query_param = "page"
    limit_query_param = "limit"

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any]:
        params = request.query_params
        self.limit = parse_limit(params)
        self.page = parse_positive_int(params, self.page_query_param, 1)
        self.total = queryset.count()
        offset = (self.page - 1) * self.limit
        return list(queryset[offset : offset + self.limit]) if offset < self.total else []

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response(envelope.page(data, self.page, self.limit, self.total))

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            _parameter(self.page_query_param, "Page number, from 1; past the last page: empty."),
            _limit_parameter(self.limit_query_param),
        ]

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """:func:`django_arc.envelope.page`, around ``schema`` (the array of rows)."""
        from .openapi import constant

        count = {"type": "integer", "minimum": 0}
        return {
            "type": "object",
            "description": "A page of rows (offset pagination).",
            "required": [
                "success",
                "docs",
                "page",
                "limit",
                "total",
                "pages",
                "hasNext",
                "hasPrev",
            ],
            "properties": {
                "success": constant(True),
                "docs": schema,
                "page": {"type": "integer", "minimum": 1},
                "limit": {"type": "integer", "minimum": 1},
                "total": count,
                "pages": count,
                "hasNext": {"type": "boolean"},
                "hasPrev": {"type": "boolean"},
            },
        }


class KeysetPagination(BasePagination):
    """``?after=<cursor>``: rows after the cursor in the list's ordering (sort + pk); one
    query per page, stable under concurrent inserts. ``page`` cannot be combined with it."""

    cursor_query_param = "after"

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any]:
        params = request.query_params
        self.limit = parse_limit(params)
        if "page" in params:
            raise InvalidQuery(self.cursor_query_param, "cannot be combined with page")
        spec = view.resource.query_spec
        query = view.list_query
        if query is None:
            # the list was not sorted by the query language (the resource's own
            # filter_backends): no ordering a cursor could follow
            raise InvalidQuery(
                self.cursor_query_param, "cursor pagination needs the query language's sort"
            )
        problem = spec.keyset_error(query, view.field_access.restricted)
        if problem:
            raise InvalidQuery(self.cursor_query_param, problem)
        cursor = params.get(self.cursor_query_param)
        if cursor:
            after = spec.decode_cursor(cursor, query, using=queryset.db)
            queryset = queryset.filter(spec.after_q(query, after))
        rows = list(queryset[: self.limit + 1])
        rows, more = rows[: self.limit], len(rows) > self.limit
        self.next = spec.encode_cursor(rows[-1], query) if more else None
        return rows

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response(envelope.keyset(data, self.limit, self.next))

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        description = (
            "Keyset pagination: empty for the first page, then the `next` cursor of the "
            "previous page (made for the same `sort`). Not with `page`."
        )
        # the sorts :meth:`QuerySpec.keyset_error` refuses a cursor (a related model's
        # column, a reverse one-to-one): the `sort` parameter lists them, so a client
        # reading the schema would otherwise meet the 400 first
        spec = getattr(getattr(view, "resource", None), "query_spec", None)
        offset_only = sorted(
            name for name, sort in getattr(spec, "sorts", {}).items() if not sort.own
        )
        if offset_only:
            named = ", ".join(f"`{name}`" for name in offset_only)
            description += f" A `sort` by {named} has offset pages only (400 naming `after`)."
        # the default sort is read by the same rule when no `sort` is sent, and the trusted
        # `default_sort` may name a related column `sort_fields` does not list, or one hidden
        # from every caller (refused naming no field: nor does this)
        default = list(getattr(spec, "default_ordering", ()))
        if any(sf.root in spec.hidden for sf, _desc in default):
            description += (
                " Without a `sort`, the default sort has offset pages only (400 naming `after`)."
            )
        elif default_only := [sf.name for sf, _desc in default if not sf.own]:
            named = ", ".join(f"`{name}`" for name in default_only)
            description += (
                f" Without a `sort`, the default sort by {named} has offset pages only "
                "(400 naming `after`)."
            )
        return [
            {
                "name": self.cursor_query_param,
                "in": "query",
                "required": False,
                "description": description,
                "schema": {"type": "string"},
            },
            _limit_parameter("limit"),
        ]

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """:func:`django_arc.envelope.keyset`, around ``schema`` (the array of rows)."""
        from .openapi import constant

        return {
            "type": "object",
            "description": "A page of rows (keyset pagination, `?after=`).",
            "required": ["success", "docs", "limit", "hasNext", "next"],
            "properties": {
                "success": constant(True),
                "docs": schema,
                "limit": {"type": "integer", "minimum": 1},
                "hasNext": {"type": "boolean"},
                "next": {
                    "type": "string",
                    "nullable": True,
                    "description": "The cursor of the next page (`?after=`); null on the last.",
                },
            },
        }


def _parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description + " Empty: the default.",
        # Any number of ASCII digits, at least 1, or nothing (parse_positive_int).
        "schema": {"type": "integer", "minimum": 1},
        "allowEmptyValue": True,
    }


def _limit_parameter(name: str) -> dict[str, Any]:
    return _parameter(
        name,
        f"Rows per page (default {arc_settings.DEFAULT_PAGE_SIZE}); above "
        f"{arc_settings.MAX_PAGE_SIZE} it is capped, not refused.",
    )
