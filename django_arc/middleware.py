"""``ScopeMiddleware``: gives every request an ``arc_scope`` and rejects impossible headers early.

Place it after ``AuthenticationMiddleware`` (it needs ``request.user``). Session-authenticated
users are resolved here, so a non-member naming an org, or a non-admin asking for elevation,
gets the arc error envelope before any view runs: in ``process_view``, once the view is
known, when the request names an organization, asks for elevation or fails the CSRF check
(a view that does not take the session never has its user judged), else in ``__call__``.
Anonymous requests get a provisional ``public`` scope: DRF authentication (a service key, a
token) may still identify them, and the viewset resolves the scope again with that identity
(``django_arc.scope.get_scope``).

A path under a resource site's prefix that no route matches (``/api/books.json``: the router
serves no format suffixes) is answered with the error envelope's 404 rather than the
project's HTML page; a path outside every site is left to the project.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, ResolverMatch, URLResolver, get_resolver
from django.utils.log import log_response
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .exceptions import REQUEST_ID_HEADER, ArcError, NotFound, error_body, get_request_id
from .scope import PROVISIONAL, provisional_scope, view_scope

logger = logging.getLogger("django_arc")


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
            request.arc_scope = PROVISIONAL  # type: ignore[attr-defined]
        response = self.get_response(request)
        if response.status_code == 404 and getattr(request, "resolver_match", None) is None:
            # no route matched (a view's own 404 has a resolver_match)
            if slashed_site_route(request) is not None:
                return self.answer_slashed(request)
            if under_a_site(request):
                # under a site's prefix, the envelope's 404, the bytes an unknown row gets,
                # with what the middlewares after this one added to the 404 it replaces
                return _with_middleware_headers(self.error_response(request, NotFound()), response)
        return response

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        """The session request ``__call__`` left for the view (an organization or elevation
        header, a write its CSRF check refuses) is judged here, now that the view is known,
        before it runs: only for a view that takes the session (``view_scope``).

        What else judging raises (an outage: the elevation's audit receiver failing, a
        resolver's database gone) is answered for a resource site's view as that view
        answers it, the envelope's 500 ``INTERNAL_ERROR`` reported as Django reports an
        unhandled exception; a project's own view's is left to Django (its 500 page)."""
        try:
            view_scope(request, view_func)
        except ArcError as exc:
            return self.error_response(request, exc)
        except Exception as exc:
            if not getattr(view_func, "arc_site_route", False):
                raise
            return self.fault_response(request, exc)
        return None

    def answer_slashed(self, request: HttpRequest) -> HttpResponse:
        """``request``, whose path no pattern matched but names a site's route with the
        slash it lacks (:func:`slashed_site_route`), answered by that route through the rest
        of the project's middleware, as any request is: the path is resolved with its slash
        (``path_info``; ``path``, which the client sent, is unchanged) and the middlewares
        after this one run again, their ``process_view`` before the view and their
        ``process_response`` on its answer. Calling the view here skipped the latter: the
        405 had none of the headers they add (``X-Frame-Options``, which Django's order
        places last). The middlewares before this one see the answer once, as for any
        request."""
        path_info = request.path_info
        request.path_info = f"{path_info}/"
        try:
            return self.get_response(request)
        finally:
            request.path_info = path_info

    @classmethod
    def fault_response(cls, request: HttpRequest, exc: Exception) -> HttpResponse:
        """The envelope's 500 for ``exc``, which no view handled: ``got_request_exception``
        sent (error reporters) and one ERROR with the traceback on ``django.request``, as
        Django's ``response_for_exception`` does; the client is told only that it failed."""
        response = cls.error_response(
            request, ArcError("INTERNAL_ERROR", "Internal server error", 500)
        )
        got_request_exception.send_robust(sender=None, request=request)
        log_response(
            "%s: %s",
            response.reason_phrase,
            request.path,
            response=response,
            request=request,
            exception=exc,
        )
        return response

    @staticmethod
    def error_response(request: Any, exc: ArcError) -> HttpResponse:
        """The envelope of ``exc``, rendered as a view renders its envelopes for a JSON
        caller: by the project's JSON renderer (the first of ``DEFAULT_RENDERER_CLASSES``
        whose format is ``json``, else DRF's ``JSONRenderer``), so ``COMPACT_JSON``,
        ``UNICODE_JSON`` and a project's own renderer shape these bytes too."""
        body = error_body(request, exc.code, exc.message, exc.details)
        response = HttpResponse(status=exc.status)
        response.exception = True  # as DRF marks the answer of a view's exception
        renderer = _json_renderer()
        try:
            content = _render(renderer, body, request, response)
        except Exception:  # noqa: BLE001 - a renderer made for routed views: never a 500
            logger.warning(
                "%s could not render ScopeMiddleware's %s answer; DRF's JSONRenderer did",
                type(renderer).__qualname__,
                exc.status,
                exc_info=True,
            )
            renderer = JSONRenderer()
            content = _render(renderer, body, request, response)
        content_type = renderer.media_type
        if renderer.charset:
            content_type = f"{content_type}; charset={renderer.charset}"
        response["Content-Type"] = content_type
        response.content = content
        response[REQUEST_ID_HEADER] = get_request_id(request)
        return response


#: the headers of the replaced 404 that describe its own body, not the envelope's: its type
#: and length (the envelope sets its own), its coding (``GZipMiddleware`` placed inside
#: arc's compressed the project's 404 page: the envelope went out as plain JSON marked
#: ``Content-Encoding: gzip``), its validators (``ConditionalGetMiddleware``'s ``ETag`` is
#: the page's digest), its range, digest and file name
_BODY_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "content-range",
        "content-disposition",
        "content-location",
        "content-md5",
        "content-digest",
        "repr-digest",
        "digest",
        "etag",
        "last-modified",
    }
)


def _with_middleware_headers(answer: HttpResponse, replaced: HttpResponse) -> HttpResponse:
    """``answer``, which replaces the 404 ``replaced`` the rest of the chain returned, with
    the headers and cookies the middlewares after ``ScopeMiddleware`` set on that 404
    (``XFrameOptionsMiddleware``'s, last in Django's order; ``SecurityMiddleware``'s when
    placed there), as the view's own 404 carries them: what describes the replaced body
    (its type, length, coding, validators: :data:`_BODY_HEADERS`) and what ``answer`` sets
    itself are left out."""
    for name, value in replaced.items():
        if name.lower() not in _BODY_HEADERS and name not in answer:
            answer[name] = value
    for key, morsel in replaced.cookies.items():
        if key not in answer.cookies:
            answer.cookies[key] = morsel
    return answer


class UnroutedView(APIView):
    """The view ``ScopeMiddleware`` hands a renderer as ``renderer_context["view"]`` where
    none ran (a path no route matches, a scope refused before routing): a DRF ``APIView``,
    as every view's call hands one, with the caller's ``request``, no ``args``/``kwargs``
    and no ``action``, so a renderer reading the view (``get_view_name()``,
    ``getattr(view, "action", None)``) renders these answers too."""


def _render(renderer: Any, body: Any, request: Any, response: HttpResponse) -> bytes:
    """``body`` rendered by ``renderer`` with the ``renderer_context`` a view's call holds:
    DRF's ``Request`` of the caller (the one given, when :func:`scope_error_response` is
    handed DRF's), an :class:`UnroutedView`, the ``response``."""
    if isinstance(request, Request):
        drf_request = request  # DRF's already, its user the one DRF authenticated
    else:
        drf_request = Request(request, parsers=[], authenticators=[])
        user = getattr(request, "user", None)
        if user is not None and getattr(request, "_force_auth_user", None) is None:
            drf_request.user, drf_request.auth = user, None  # the session's (no DRF auth ran)
    view = UnroutedView(request=drf_request, args=(), kwargs={}, format_kwarg=None)
    view.headers = {}
    context = {"view": view, "args": (), "kwargs": {}, "request": drf_request}
    return renderer.render(
        body, _accepted_media_type(request, renderer), {**context, "response": response}
    )


def _accepted_media_type(request: Any, renderer: Any) -> str:
    """The media type of the ``Accept`` entry ``renderer`` answers, as DRF's negotiation
    hands it to the view's renderer (``application/json; indent=4`` indents), else the
    renderer's own."""
    try:
        drf_request = request if isinstance(request, Request) else Request(request)
        return DefaultContentNegotiation().select_renderer(drf_request, [renderer])[1]
    except Exception:  # no entry it answers (NotAcceptable), a ?format= of another one
        return renderer.media_type


def _json_renderer() -> Any:
    for renderer in api_settings.DEFAULT_RENDERER_CLASSES:
        if renderer.format == "json" and not issubclass(renderer, BrowsableAPIRenderer):
            return renderer()
    return JSONRenderer()


def scope_error_response(request: Any, exc: ArcError) -> HttpResponse:
    """The middleware's error response, for code that resolves scopes itself: ``request``
    is Django's ``HttpRequest`` or DRF's ``Request`` (an authentication class, a view)."""
    return ScopeMiddleware.error_response(request, exc)


#: the methods whose body Django's ``APPEND_SLASH`` redirect cannot carry (under ``DEBUG``
#: it raises ``RuntimeError`` for them: ``CommonMiddleware.get_full_path_with_slash``)
_BODY_METHODS = frozenset({"DELETE", "POST", "PUT", "PATCH"})


def slashed_site_route(request: HttpRequest) -> ResolverMatch | None:
    """The site's route ``request``'s path names with the slash it lacks, for a write that
    no pattern matched and ``APPEND_SLASH`` would redirect; ``None`` otherwise.

    The router gives every route a slashless twin but the root, whose pattern is empty
    (the slash is the project's ``path("api/", include(...))``): ``POST /api`` was a 301
    a client follows as a GET, and under ``DEBUG`` Django's ``RuntimeError``, a 500. A GET
    or HEAD loses nothing in the redirect and keeps it."""
    path = request.path_info
    if request.method not in _BODY_METHODS or path.endswith("/") or not settings.APPEND_SLASH:
        return None
    urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
    try:
        match = get_resolver(urlconf).resolve(f"{path}/")
    except Resolver404:
        return None
    return match if getattr(match.func, "arc_site_route", False) else None


def under_a_site(request: Any) -> bool:
    """Whether ``request``'s path, which no URL pattern matched, is under a resource site
    mounted in its URLconf: the path is resolved again, and some mount of a site (an
    ``include()`` of its routes: ``path("api/", include(arc.urls))``, a second
    mount under another namespace, one inside ``i18n_patterns`` or another include) matched
    its start and had its routes tried. Asked of the path the URLconf resolves
    (``path_info``, without the ``SCRIPT_NAME``), in the language the request is served in,
    as Django's own resolution was; nothing is remembered between requests."""
    urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
    try:
        get_resolver(urlconf).resolve(request.path_info)
    except Resolver404 as exc:
        found = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    else:
        return False  # it matches a route: the 404 is the view's own
    # each entry is the chain of patterns tried, outermost first: a site's include (one
    # holding its routes: a project's include whose app is named as a site is not one)
    # followed by one of its routes is a mount whose prefix matched
    known: dict[int, bool] = {}
    for tried in found.get("tried") or ():
        for pattern in tried[:-1]:
            if not isinstance(pattern, URLResolver):
                continue
            mount = known.get(id(pattern))
            if mount is None:
                mount = known[id(pattern)] = _is_site_mount(pattern)
            if mount:
                return True
    return False


def _is_site_mount(resolver: URLResolver) -> bool:
    """Whether ``resolver`` (an ``include()``) holds a resource site's routes."""
    return any(
        getattr(getattr(route, "callback", None), "arc_site_route", False)
        for route in resolver.url_patterns
    )


def mounts_a_site(urlconf: Any = None) -> bool:
    """Whether a resource site is mounted anywhere in ``urlconf`` (``ROOT_URLCONF``)."""
    pending = list(get_resolver(urlconf).url_patterns)
    while pending:
        pattern = pending.pop()
        if isinstance(pattern, URLResolver):
            if _is_site_mount(pattern):
                return True
            pending.extend(pattern.url_patterns)
    return False
