"""``ScopeMiddleware``: gives every request an ``arc_scope`` and rejects impossible headers early.

Place it after ``AuthenticationMiddleware`` (it needs ``request.user``). Session-authenticated
users are resolved here, so a non-member naming an org, or a non-admin asking for elevation,
gets the arc error envelope before any view runs. Anonymous requests get a provisional
``public`` scope: DRF authentication (a service key, a token) may still identify them, and the
viewset resolves the scope again with that identity (``django_arc.scope.get_scope``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from .exceptions import REQUEST_ID_HEADER, ArcError, error_body, get_request_id
from .scope import RequestScope, provisional_scope


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
        return self.get_response(request)

    @staticmethod
    def error_response(request: HttpRequest, exc: ArcError) -> HttpResponse:
        response = JsonResponse(
            error_body(request, exc.code, exc.message, exc.details), status=exc.status
        )
        response[REQUEST_ID_HEADER] = get_request_id(request)
        return response


def scope_error_response(request: Any, exc: ArcError) -> HttpResponse:
    """The middleware's error response, for code outside DRF that resolves scopes itself."""
    return ScopeMiddleware.error_response(request, exc)
