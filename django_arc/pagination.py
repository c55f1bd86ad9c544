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
    value = int(raw)
    if value < 1:
        raise InvalidQuery(name, "must be a positive integer")
    return value


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
        problem = spec.keyset_error(query)
        if problem:
            raise InvalidQuery(self.cursor_query_param, problem)
        cursor = params.get(self.cursor_query_param)
        if cursor:
            queryset = queryset.filter(spec.after_q(query, spec.decode_cursor(cursor, query)))
        rows = list(queryset[: self.limit + 1])
        rows, more = rows[: self.limit], len(rows) > self.limit
        self.next = spec.encode_cursor(rows[-1], query) if more else None
        return rows

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response(envelope.keyset(data, self.limit, self.next))
