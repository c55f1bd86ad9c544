"""``ScopeMiddleware``: gives every request an ``arc_scope`` and rejects impossible headers early.

Place it after ``AuthenticationMiddleware`` (it needs ``request.user``). Session-authenticated
users are resolved here, so a non-member naming an org, or a non-admin asking for elevation,
gets the arc error envelope before any view runs. Anonymous requests get a provisional
``public`` scope: DRF authentication (a service key, a token) may still identify them, and the
viewset resolves the scope again with that identity (``django_arc.scope.get_scope``).

A path under a resource site's prefix that no route matches (``/api/books.json``: the router
serves no format suffixes) is answered with the error envelope's 404 rather than the
project's HTML page; a path outside every site is left to the project.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import NoReverseMatch, reverse

from . import sites
from .exceptions import REQUEST_ID_HEADER, ArcError, NotFound, error_body, get_request_id
from .scope import RequestScope, provisional_scope

#: (urlconf, registry state) → the paths every mounted resource site's routes start with
_prefixes: dict[tuple[Any, Any], tuple[str, ...]] = {}


class ScopeMiddleware:
    """Sets ``request.arc_scope``; answers resolution errors with the arc error envelope."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            scope = provisional_scope(request)
        except ArcError as exc:
            return self.error_response(request, exc)
        if scope is None:
            request.arc_scope = RequestScope.public()  # type: ignore[attr-defined]
        response = self.get_response(request)
        if (
            response.status_code == 404
            and getattr(request, "resolver_match", None) is None
            and request.path.startswith(site_prefixes(request))
        ):
            # no route matched (a view's own 404 has a resolver_match): under a site's
            # prefix, the envelope's 404, the bytes an unknown row gets
            return self.error_response(request, NotFound(), compact=True)
        return response

    @staticmethod
    def error_response(request: HttpRequest, exc: ArcError, compact: bool = False) -> HttpResponse:
        response = JsonResponse(
            error_body(request, exc.code, exc.message, exc.details),
            status=exc.status,
            json_dumps_params={"separators": (",", ":")} if compact else None,
        )
        response[REQUEST_ID_HEADER] = get_request_id(request)
        return response


def scope_error_response(request: Any, exc: ArcError) -> HttpResponse:
    """The middleware's error response, for code outside DRF that resolves scopes itself."""
    return ScopeMiddleware.error_response(request, exc)


def site_prefixes(request: Any) -> tuple[str, ...]:
    """The paths the routes of every resource site mounted in ``request``'s URLconf start
    with (``/api/``: where its root view is reversed), remembered per URLconf and registry."""
    urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
    memo = (urlconf, sites.registry_state())
    known = _prefixes.get(memo)
    if known is None:
        found = []
        for site in sites._all_sites:
            try:
                found.append(reverse(f"{site.name}:api-root", urlconf=urlconf))
            except NoReverseMatch:
                continue  # not mounted in this URLconf
        known = _prefixes[memo] = tuple(found)
        if len(_prefixes) > 64:
            _prefixes.clear()
            _prefixes[memo] = known
    return known
