"""The query language as a DRF filter backend.

``QueryLanguageFilter`` reads ``?field[op]=value``, ``?search=``, ``?sort=`` and ``?select=``
against the resource's compiled :class:`~django_arc.query.QuerySpec` and the caller's field
access (a field the caller cannot read cannot be filtered, sorted or searched on). It keeps the
parsed request on the view as ``view.list_query``: ``select`` narrows what is rendered, and the
keyset pagination pages by the same ordering.

Search goes to the presets first (:meth:`Preset.search`: full text, ranking) and falls back to
``icontains`` over ``search_fields``.

The backend holds no per-request state, so each generated ViewSet builds its backends once
(``ResourceGenericViewSet.filter_queryset``).
"""

from __future__ import annotations

from typing import Any

from rest_framework.filters import BaseFilterBackend


class QueryLanguageFilter(BaseFilterBackend):
    """Filters, search, sort and select of SPEC §3 (see ``docs/query-language.md``)."""

    def parse(self, request: Any, view: Any) -> Any:
        access = view.field_access
        return view.resource.query_spec.parse(
            request.query_params,
            set(view.resource.output_fields) - access.unreadable,
            restricted=access.restricted,
        )

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        query = self.parse(request, view)
        view.list_query = query
        searched = False
        if query.search:
            for preset in view.resource.preset_list:
                result = preset.search(view, queryset, query.search)
                if result is not None:
                    queryset, searched = result, True
                    break
        return view.resource.query_spec.apply(queryset, query, searched=searched)
