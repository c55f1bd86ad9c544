"""The router behind ``ResourceSite.urls``."""

from typing import Any

from django.urls import re_path
from rest_framework import routers as drf_routers
from rest_framework.routers import DefaultRouter

from .exceptions import REQUEST_ID_HEADER, exception_handler, get_request_id
from .negotiation import FormatQueryMixin


class APIRootView(FormatQueryMixin, drf_routers.APIRootView):
    # DRF's API root (``GET /api/``: each resource's list URL), answering its errors as
    # every resource view does: in the error envelope, with an ``X-Request-Id``. DRF's own
    # handler answered a ``POST`` (405), an ``Accept`` it cannot serve (406) or a refusal of
    # the project's default permission classes with ``{"detail": ...}`` when the project's
    # ``EXCEPTION_HANDLER`` is DRF's. An unknown ``?format=`` is a 400 naming the parameter,
    # as on a resource's views (:class:`~django_arc.negotiation.FormatQueryMixin`).
    #
    # Its name (from the class's) and description (its docstring) are DRF's root's, which
    # the browsable page and ``OPTIONS`` show.
    __doc__ = drf_routers.APIRootView.__doc__

    def get_exception_handler(self) -> Any:
        return exception_handler

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        response[REQUEST_ID_HEADER] = get_request_id(request)
        return response


class ResourceRouter(DefaultRouter):
    """DRF's ``DefaultRouter`` (canonical URLs end with a slash, ``reverse()`` gives them)
    plus an unnamed twin of every route without the slash, so ``/products`` answers like
    ``/products/`` instead of redirecting (a redirected POST loses its body, and Django's
    ``APPEND_SLASH`` turns it into an error under ``DEBUG``). No ``.json`` suffix routes.

    The twins are left out of the OpenAPI schema: they are the same operations, and
    documenting both spellings gives every operation two operationIds. A twin's callback is
    marked ``arc_slashless``: an ``Idempotency-Key`` is scoped by the canonical path, so a
    key sent to both spellings runs once (see :func:`canonical_path`)."""

    include_format_suffixes = False
    APIRootView = APIRootView

    def get_urls(self) -> list[Any]:
        urls = super().get_urls()
        twins = []
        for url in urls:
            regex = url.pattern.regex.pattern
            if regex.endswith("/$"):
                twins.append(re_path(regex[:-2] + "$", _unlisted(url.callback), url.default_args))
        for url in (*urls, *twins):
            # what tells an include() of a site's routes from a project's (the middleware's
            # 404 under a site, :func:`django_arc.middleware.under_a_site`)
            url.callback.arc_site_route = True
        return urls + twins


def _unlisted(callback: Any) -> Any:
    """The same view, built with ``schema=None``: DRF's and drf-spectacular's endpoint
    enumerators skip a callback whose ``initkwargs["schema"]`` is ``None``."""
    actions = getattr(callback, "actions", None)
    if actions is None:
        return callback
    twin = callback.cls.as_view(actions, **{**callback.initkwargs, "schema": None})
    twin.arc_slashless = True
    return twin


def canonical_path(request: Any, full: bool = False) -> str:
    """The path ``request`` names, spelled as ``reverse()`` spells it: a no-slash twin's
    request (``/products/5``) with the slash its canonical route has (``/products/5/``), the
    same operation; any other request's path as it came. ``full`` adds the query string
    (``get_full_path()``)."""
    match = getattr(request, "resolver_match", None)
    slashless = match is not None and getattr(match.func, "arc_slashless", False)
    if full:
        return request.get_full_path(force_append_slash=slashless)
    return request.path + "/" if slashless and not request.path.endswith("/") else request.path
