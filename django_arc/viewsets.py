"""The DRF ViewSet a resource turns into: the pipeline plus one mixin per route.

``ResourceViewSet`` is the base class of every generated ViewSet, the way DRF's
``ModelViewSet`` is ``GenericViewSet`` plus its mixins (and it is one). :func:`build_viewset` subclasses it once
per resource (at URL loading): DRF policies the resource names, its routes and actions as DRF
``@action``s, and its filter backends instantiated once.
"""

from __future__ import annotations

from typing import Any

from rest_framework import viewsets
from rest_framework.decorators import action as drf_action
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .actions import RouteSpec
from .generics import ResourceGenericViewSet
from .mixins import (
    ActionMixin,
    CreateMixin,
    DestroyMixin,
    ListMixin,
    RetrieveMixin,
    RouteMixin,
    UpdateMixin,
)
from .openapi import schema_for_viewsets
from .permissions import as_permission

__all__ = ["ResourceViewSet", "build_viewset"]


class ResourceViewSet(
    ListMixin,
    RetrieveMixin,
    CreateMixin,
    UpdateMixin,
    DestroyMixin,
    ActionMixin,
    RouteMixin,
    ResourceGenericViewSet,
    viewsets.ModelViewSet,
):
    """Base class of generated ViewSets; ``resource`` is set on each generated subclass.

    Still a ``ModelViewSet`` (SPEC §2: DRF tooling and ``isinstance`` checks keep working),
    but every verb and ``perform_*`` is django-arc's, ahead of DRF's in the MRO. Note the
    write hooks take the body, not a validated serializer: the field guard and the
    ``before_*`` hooks run before validation (``docs/decisions.md``)."""

    def get_throttles(self) -> list[Any]:
        """The throttles of this request. DRF's ``APIView.throttle_classes`` is
        ``DEFAULT_THROTTLE_CLASSES`` read once, when DRF was imported: a view given no
        classes of its own (by its resource, a subclass or ``as_view()``) reads them again
        here, so a changed setting (``override_settings``, a ``setting_changed`` reload)
        applies to the generated ViewSets as rates already did."""
        if self.throttle_classes is APIView.throttle_classes:
            return [throttle() for throttle in api_settings.DEFAULT_THROTTLE_CLASSES]
        return super().get_throttles()

    @classmethod
    def wraps_writes(cls) -> bool:
        """Whether project code runs around this class's writes: a subclass (or a patched
        class) overriding a write verb or ``perform_*``, which may write through the ORM
        before the framework's write and catch that write's error. A keyed request's first
        write then takes a savepoint (:meth:`IdempotentExecution.write`): undone alone, it
        leaves what the project wrote before it standing, as without a key."""
        return any(getattr(cls, name) is not getattr(ResourceViewSet, name) for name in _WRITES)


#: the seams whose overriding puts project code around a write (``wraps_writes``)
_WRITES = (
    "create",
    "update",
    "partial_update",
    "destroy",
    "perform_create",
    "perform_update",
    "perform_destroy",
)


#: DRF policies a Resource may set for its ViewSet (``None`` keeps the defaults)
POLICIES = (
    "authentication_classes",
    "throttle_classes",
    "renderer_classes",
    "parser_classes",
    "filter_backends",
)


def _route_handler(spec: RouteSpec) -> Any:
    """The ViewSet method body serving ``spec``: it hands the request to ``run_route``."""
    kwarg_names = spec.url_kwargs

    def handler(self: ResourceViewSet, request: Any, *args: Any, **kwargs: Any) -> Any:
        return self.run_route(spec, request, **{name: kwargs[name] for name in kwarg_names})

    handler.__name__ = spec.name
    handler.__doc__ = spec.description or None
    return handler


def _route_view_method(spec: RouteSpec) -> Any:
    """``spec`` as a DRF ``@action`` (its URL, methods and per-route view attributes)."""
    handler = _route_handler(spec)
    initkwargs: dict[str, Any] = {}
    if spec.parser_classes is not None:
        initkwargs["parser_classes"] = list(spec.parser_classes)
    if spec.lookup_field:
        initkwargs["lookup_field"] = spec.lookup_field
        initkwargs["lookup_url_kwarg"] = spec.lookup_field
    return drf_action(
        detail=spec.detail,
        methods=[m.lower() for m in spec.methods],
        url_path=spec.url_path,
        url_name=spec.url_name,
        **initkwargs,
    )(handler)


def _action_view_method() -> Any:
    """The routed ``run_action`` of one ViewSet (a fresh function: DRF's ``@action`` marks
    the function it decorates, and the mixin's must stay unrouted for resources without
    actions)."""

    def run_action(self: ResourceViewSet, request: Any, *args: Any, **kwargs: Any) -> Any:
        return ActionMixin.run_action(self, request, *args, **kwargs)

    run_action.__doc__ = ActionMixin.run_action.__doc__
    return drf_action(detail=True, methods=["post"], url_path="action", url_name="action")(
        run_action
    )


def build_viewset(resource: Any) -> type[ResourceViewSet]:
    """Generate the ViewSet class of ``resource``: once per resource, at URL loading."""
    attrs: dict[str, Any] = {
        "resource": resource,
        "queryset": resource.model._default_manager.none(),
        "lookup_field": resource.lookup_field,
        "__module__": type(resource).__module__,
        "__doc__": type(resource).__doc__,
        # drf-spectacular's view of the routes: envelopes, errors, headers (openapi.py)
        "schema": schema_for_viewsets(),
    }
    for policy in POLICIES:
        value = getattr(resource, policy)
        if value is not None:
            attrs[policy] = list(value)
    if resource.update_method == "PATCH":
        # No PUT route at all: 405 before authentication, an ``Allow`` header without PUT,
        # and no PUT operation in the schema.
        attrs["http_method_names"] = [m for m in ResourceViewSet.http_method_names if m != "put"]
    if resource.pagination_class is not None:
        attrs["pagination_class"] = resource.pagination_class
    backends = attrs.get("filter_backends", ResourceGenericViewSet.filter_backends)
    attrs["_backends"] = [backend() for backend in backends]

    route_specs: dict[str, RouteSpec] = {}
    route_permissions: dict[str, Any] = {}
    routed: dict[tuple[bool, str], Any] = {}
    for spec in resource.routes:
        first = routed.get((spec.detail, spec.url_path))
        if first is None:
            attrs[spec.name] = routed[(spec.detail, spec.url_path)] = _route_view_method(spec)
        else:
            # Another method on a path already routed (POST and PATCH /bulk/): DRF maps it
            # onto the first route's URL, as ``@action``'s ``.mapping`` does.
            attrs[spec.name] = _route_handler(spec)
            for method in spec.methods:
                first.mapping._map(method.lower(), attrs[spec.name])
        route_specs[spec.name] = spec
        if spec.permissions is not None:
            route_permissions[spec.name] = as_permission(spec.permissions)
    attrs["route_specs"] = route_specs
    attrs["route_permissions"] = route_permissions
    if resource.actions:
        attrs["run_action"] = _action_view_method()
    name = f"{type(resource).__name__}ViewSet"
    return type(name, (ResourceViewSet,), attrs)
