"""Declaring extra endpoints on a resource: ``@route`` (custom routes) and ``@action``
(domain actions behind ``POST /<name>/{id}/action/``).

Both decorators only record a :class:`RouteSpec`/:class:`ActionSpec` on the method; the
resource turns the specs (its own and those its presets contribute) into DRF ViewSet actions
when it builds its ViewSet, so presets and user code share one routing mechanism and one
pipeline (scope, permission, presets' checks, throttles, envelope).

A route handler is always called ``handler(view, request, **url_kwargs)``. The view is the
request's context: ``view.get_queryset()`` and ``view.get_object()`` are the only row access a
handler needs, and they apply tenancy, presets' filters and permission filters, so a route
cannot list what the caller's list would not show.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rest_framework.permissions import SAFE_METHODS

__all__ = ["action", "route", "RouteSpec", "ActionSpec", "INSTANCE", "PAGE"]

#: ``RouteSpec.response``: the route answers one row of the resource in the success envelope
INSTANCE = "instance"
#: ``RouteSpec.response``: the route answers a page of rows in the list envelope
PAGE = "page"

_KWARG_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class RouteSpec:
    """An extra route of a resource.

    ``path`` is the URL part after ``/<name>/`` (after ``/<name>/{id}/`` when ``detail``);
    ``{kwarg}`` placeholders become URL kwargs passed to the handler (``"slug/{slug}"``).

    - ``handler(view, request, **url_kwargs)`` returns a JSON-able value or rows of the
      resource (one, a queryset, a list or tuple of them: rendered through the caller's
      field permissions) wrapped in the success envelope, or a
      DRF ``Response`` sent as is.
    - ``permissions`` is the route's own permission; when ``None``, ``permission_key``
      (default: ``name``) is looked up in ``Resource.permissions``, and a missing key denies.
    - ``lookup_field``: the route addresses one row by this model field, read from the URL
      kwarg of the same name (``view.get_object()`` then looks it up through every filter).
    - ``parser_classes``: the route's own body parsers (multipart for an upload).
    - ``raw``: no body parsing before the handler (``request.body`` is the bytes received) and
      no envelope: the handler returns its own response. Scope, permission and throttles
      still apply.
    - ``request``/``response``: what OpenAPI documents. ``request`` is a DRF serializer class
      (or ``None`` for no body); ``response`` is :data:`INSTANCE`, :data:`PAGE`, a serializer
      class (or an instance with ``many=True``: a list of them), or ``None`` (free-form
      ``data``).
    """

    methods: list[str]
    path: str
    handler: Callable[..., Any]
    name: str = ""
    detail: bool = False
    permissions: Any = None
    permission_key: str | None = None
    raw: bool = False
    status: int = 200
    lookup_field: str | None = None
    parser_classes: list[type] | None = None
    request: Any = None
    response: Any = None
    summary: str = ""
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url_kwargs(self) -> list[str]:
        return _KWARG_RE.findall(self.path)

    @property
    def url_path(self) -> str:
        """``path`` as the regex DRF's router expects (placeholders as named groups)."""
        return _KWARG_RE.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", self.path)

    @property
    def url_name(self) -> str:
        return _KWARG_RE.sub(lambda m: m.group(1), self.path).replace("/", "-")

    @property
    def key(self) -> str:
        """The permission key this route is checked (and presets are told) under."""
        return self.permission_key or self.name


@dataclass
class ActionSpec:
    """A domain action: ``POST /<name>/{id}/action/`` with ``{"action": name, ...input}``.

    ``handler(view, request, instance, data)``; ``input`` is a DRF serializer class that
    validates the rest of the body; ``output`` documents a non-instance return value."""

    name: str
    handler: Callable[..., Any]
    permissions: Any = None
    input: Any = None
    output: Any = None
    summary: str = ""
    description: str = ""


def _resource_method(
    func: Callable[..., Any], with_instance: bool, bound: bool = True
) -> Callable[..., Any]:
    """Adapt a Resource method to the ``handler(view, request, ...)`` contract.

    The method keeps its documented signature, ``(self, request[, instance][, data])``; one
    that also declares a ``view`` parameter receives the view (its filtered ``get_queryset()``
    and the rest of the request's context). Decided once, when the decorator runs. A
    ``@staticmethod``'s function (``bound=False``) takes no ``self``: it is called without
    the resource.
    """
    params = inspect.signature(func).parameters
    wants_view = "view" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )

    def handler(view: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if wants_view:
            kwargs["view"] = view
        own = (view.resource,) if bound else ()
        if with_instance and not args:
            instance = view.get_object()
            if request.method not in SAFE_METHODS:
                # its save() only updates: a row deleted meanwhile is 404, not re-inserted
                with view.existing_rows(instance):
                    return func(*own, request, instance, **kwargs)
            args = (instance,)
        return func(*own, request, *args, **kwargs)

    handler.__name__ = func.__name__
    handler.__doc__ = func.__doc__
    handler.__wrapped__ = func  # type: ignore[attr-defined]
    return handler


def as_declared(
    spec: RouteSpec | ActionSpec, value: Any, static: bool = False
) -> RouteSpec | ActionSpec:
    """``spec`` calling ``value``, the attribute the resource class holds under its name.

    A project's decorator stacked over ``@action``/``@route`` with ``functools.wraps``
    carries the inner function's spec, whose handler calls the undecorated function: the
    decorator (a log, a lock, a check of its own) would be skipped without a word.

    A ``@classmethod`` over the decorator is read from the class as a method bound to it;
    its function is what the spec was declared on, called with the resource as before (the
    bound method, handed the resource too, was a ``TypeError``: a 500 on every call).

    A ``@staticmethod`` over it (``static``: the class holds one under that name) reads as
    the plain function, which takes no resource: it is called without one, as Python calls
    it (handed the resource, it was a ``TypeError`` on every call too)."""
    value = getattr(value, "__func__", value) if inspect.ismethod(value) else value
    if not callable(value) or (not static and value is getattr(spec.handler, "__wrapped__", value)):
        return spec
    detail = spec.detail if isinstance(spec, RouteSpec) else False
    return replace(spec, handler=_resource_method(value, with_instance=detail, bound=not static))


def _first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc).split("\n\n", 1)[0].replace("\n", " ") if doc else ""


def route(
    method: str | list[str],
    path: str,
    *,
    permissions: Any = None,
    permission_key: str | None = None,
    detail: bool = False,
    raw: bool = False,
    status: int = 200,
    parser_classes: list[type] | None = None,
    request: Any = None,
    response: Any = None,
) -> Callable[[Callable], Callable]:
    """Add a custom route: ``@route("GET", "stats", permissions=P.require_auth())``.

    The method is called ``(self, request)``, or ``(self, request, instance)`` with
    ``detail=True`` (the instance looked up through every filter), plus any ``{kwarg}`` of
    ``path``; declare a ``view`` parameter to receive the view too."""
    methods = [method] if isinstance(method, str) else list(method)

    def decorator(func: Callable) -> Callable:
        func._arc_route = RouteSpec(
            methods=[m.upper() for m in methods],
            path=path.strip("/"),
            handler=_resource_method(func, with_instance=detail),
            name=func.__name__,
            detail=detail,
            permissions=permissions,
            permission_key=permission_key,
            raw=raw,
            status=status,
            parser_classes=parser_classes,
            request=request,
            response=response,
            summary=_first_line(func.__doc__),
            description=inspect.cleandoc(func.__doc__ or ""),
        )
        return func

    return decorator


def action(
    func: Callable | None = None,
    *,
    name: str | None = None,
    permissions: Any = None,
    input: Any = None,
    output: Any = None,
) -> Any:
    """Declare a domain action: ``@action(permissions=P.require_org_role("admin"),
    input=ApproveInput)``; the method receives ``(request, instance, data)`` (and ``view``
    if it declares it) and returns the instance, another JSON-able value or ``None``."""

    def decorator(f: Callable) -> Callable:
        f._arc_action = ActionSpec(
            name=name or f.__name__,
            handler=_resource_method(f, with_instance=False),
            permissions=permissions,
            input=input,
            output=output,
            summary=_first_line(f.__doc__),
            description=inspect.cleandoc(f.__doc__ or ""),
        )
        return f

    return decorator(func) if func is not None else decorator
