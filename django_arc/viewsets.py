"""The DRF ViewSet a resource turns into.

Every request runs the same pipeline: authenticate (DRF) → scope → permission (401/403) →
presets' request checks (e.g. ``ORG_REQUIRED``) → throttles → queryset narrowed by presets and
permission filters → the route. Writes run their hooks, the save and the event inside one
transaction, after the body has passed the field-write guard.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Q
from django.http import Http404, QueryDict
from rest_framework import viewsets
from rest_framework.decorators import action as drf_action
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from .actions import RouteSpec
from .exceptions import ArcError, InvalidQuery, NotFound, exception_handler, get_request_id
from .parsers import ArcJSONParser
from .permissions import PermissionResult, as_permission
from .settings import arc_settings

#: DRF action name → permission key of ``Resource.permissions``
PERMISSION_KEYS = {
    "list": "list",
    "retrieve": "get",
    "create": "create",
    "update": "update",
    "partial_update": "update",
    "destroy": "delete",
}
DENIED = PermissionResult(False, "Not permitted")


class ReadPlan:
    """How one caller sees rows: fields dropped (no read permission), masked, selected."""

    __slots__ = ("drop", "redact", "keep")

    def __init__(self, drop: set[str], redact: dict[str, Any], keep: set[str] | None) -> None:
        self.drop = drop
        self.redact = redact
        self.keep = keep

    def omitted(self, resource: Any) -> frozenset[str]:
        """Output fields not to render at all for this caller (dropped or not selected)."""
        if self.keep is None:
            return frozenset(self.drop)
        return frozenset(f for f in resource.output_fields if f in self.drop or f not in self.keep)

    def mask(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {key: self.redact.get(key, value) for key, value in doc.items()}

    def shape(self, doc: dict[str, Any]) -> dict[str, Any]:
        if not (self.drop or self.redact or self.keep is not None):
            return doc
        out = {}
        for key, value in doc.items():
            if key in self.drop or (self.keep is not None and key not in self.keep):
                continue
            out[key] = self.redact.get(key, value)
        return out


class ResourceViewSet(viewsets.ModelViewSet):
    """Base class of generated ViewSets; ``resource`` is set on each generated subclass."""

    resource: Any = None
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"
    pagination_class = None
    filter_backends: list[Any] = []
    metadata_class = None  # OPTIONS → 405: the schema lives at /api/schema/
    _route_specs: dict[str, RouteSpec] = {}

    # -- DRF plumbing ------------------------------------------------------------------

    def get_exception_handler(self) -> Any:
        return exception_handler

    def get_permissions(self) -> list[Any]:
        # Resource permissions replace DEFAULT_PERMISSION_CLASSES: they are checked in
        # check_permissions() below, where the scope and presets are known.
        return []

    def get_serializer_class(self) -> type:
        return self.resource.serializer

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        serializer = super().get_serializer(*args, **kwargs)
        if "data" in kwargs and self.resource.preset_list:
            self._narrow_relations(serializer)
        return serializer

    def _narrow_relations(self, serializer: Any) -> None:
        """Let presets narrow what writable relations may point at (tenancy of FK targets)."""
        resource = self.resource
        for field in serializer.fields.values():
            relation = getattr(field, "child_relation", field)  # many=True wraps the field
            queryset = getattr(relation, "queryset", None)
            if field.read_only or queryset is None:
                continue
            for preset in resource.preset_list:
                queryset = preset.related_queryset(
                    resource, self.request, queryset, self.permission_key
                )
            relation.queryset = queryset

    def get_parsers(self) -> list[Any]:
        # DRF's own JSONParser (the default, or named in settings) becomes ArcJSONParser,
        # which bounds nesting; any other parser is the project's choice and stays.
        return [ArcJSONParser() if type(p) is JSONParser else p for p in super().get_parsers()]

    def perform_content_negotiation(self, request: Any, force: bool = False) -> Any:
        # DRF answers an unknown ``?format=`` with Http404, which would read "Resource not
        # found"; it is a bad query parameter like any other.
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            known = ", ".join(r.format for r in self.get_renderers())
            raise InvalidQuery("format", f"unknown format; one of: {known}") from None

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["X-Request-Id"] = get_request_id(request)
        return response

    @property
    def permission_key(self) -> str:
        spec = self._route_specs.get(self.action or "")
        if spec is not None:
            return spec.permission_key or spec.name
        return PERMISSION_KEYS.get(self.action or "", self.action or "")

    def _permission(self) -> Any:
        spec = self._route_specs.get(self.action or "")
        if spec is not None and spec.permissions is not None:
            return as_permission(spec.permissions)
        return self.resource.get_permission(self.permission_key)

    def check_permissions(self, request: Any) -> None:
        from .scope import get_scope

        if self.action is None or self.action == "metadata":
            # a method this route does not map (and OPTIONS: metadata_class is None) — the
            # handler answers 405 before anyone is asked who they are
            return
        resource = self.resource
        key = self.permission_key
        scope = get_scope(request)
        permission = self._permission()
        result = permission(request, resource, key) if permission is not None else DENIED
        if not result.granted and scope.kind == "public":
            raise ArcError("UNAUTHORIZED", "Authentication required", 401)
        for preset in resource.preset_list:
            preset.check_request(resource, request, key)
        if not result.granted:
            raise ArcError("FORBIDDEN", result.reason or "Permission denied", 403)
        request.arc_permission_filters = result.filters

    def check_object_permissions(self, request: Any, obj: Any) -> None:
        permission = self._permission()
        if permission is None:
            raise ArcError("FORBIDDEN", "Not permitted", 403)
        result = permission(request, self.resource, self.permission_key, obj)
        if not result.granted:
            raise ArcError("FORBIDDEN", result.reason or "Permission denied", 403)

    # -- rows ----------------------------------------------------------------------------

    def get_queryset(self) -> Any:
        resource = self.resource
        request = self.request
        key = self.permission_key
        queryset = resource.get_queryset(request)
        for preset in resource.preset_list:
            queryset = preset.filter_queryset(resource, request, queryset, key)
        filters = getattr(request, "arc_permission_filters", None)
        if filters:
            queryset = queryset.filter(filters if isinstance(filters, Q) else Q(**filters))
        return queryset

    def get_object(self) -> Any:
        resource = self.resource
        raw = self.kwargs[self.lookup_url_kwarg]
        lookup = resource.lookup_field
        model_field = (
            resource.model._meta.pk if lookup == "pk" else resource.model._meta.get_field(lookup)
        )
        try:
            value = model_field.to_python(raw)
            obj = self.get_queryset().get(**{lookup: value})
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise NotFound(f"malformed lookup value {raw[:64]!r}") from None
        except resource.model.DoesNotExist:
            raise NotFound(f"{resource.name} {raw[:64]!r} absent or filtered") from None
        except resource.model.MultipleObjectsReturned:
            raise NotFound(f"{resource.name} lookup {lookup}={raw[:64]!r} not unique") from None
        self.check_object_permissions(self.request, obj)
        return obj

    def read_plan(self) -> ReadPlan:
        """What this caller may see of the resource's fields (field permissions)."""
        from .scope import get_scope

        resource = self.resource
        scope = get_scope(self.request)
        drop: set[str] = set(resource.hidden_fields)
        redact: dict[str, Any] = {}
        for name, rule in resource.field_permissions.items():
            if not rule.can_read(scope):
                drop.add(name)
            elif rule.redacts_for(scope):
                redact[name] = rule.mask
        return ReadPlan(drop, redact, None)

    def selected(self, plan: ReadPlan, select: set[str]) -> ReadPlan:
        """``plan`` narrowed to ``?select=``; the id and lookup field always come along."""
        keep = select | {self.resource.pk_name, "id"}
        if self.resource.lookup_field != "pk":
            keep.add(self.resource.lookup_field)
        return ReadPlan(plan.drop, plan.redact, keep)

    def readable_fields(self, plan: ReadPlan) -> set[str]:
        return set(self.resource.output_fields) - plan.drop

    # -- envelopes -----------------------------------------------------------------------

    @staticmethod
    def success(data: Any, message: str | None = None, status: int = 200) -> Response:
        body: dict[str, Any] = {"success": True, "data": data}
        if message:
            body["message"] = message
        return Response(body, status=status)

    # -- read routes ---------------------------------------------------------------------

    def list(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        resource = self.resource
        spec = resource.query_spec
        base_plan = self.read_plan()
        query = spec.parse(
            request.query_params,
            self.readable_fields(base_plan),
            arc_settings.DEFAULT_PAGE_SIZE,
            arc_settings.MAX_PAGE_SIZE,
            restricted=base_plan.drop | base_plan.redact.keys(),
        )
        plan = self.selected(base_plan, query.select) if query.select else base_plan
        queryset = spec.apply(self.get_queryset(), query)
        limit = query.limit
        if query.keyset:
            rows = list(queryset[: limit + 1])
            has_next = len(rows) > limit
            rows = rows[:limit]
            docs = self._render_many(rows, plan)
            return Response(
                {
                    "success": True,
                    "docs": docs,
                    "limit": limit,
                    "hasNext": has_next,
                    "next": spec.encode_cursor(rows[-1], query) if has_next else None,
                }
            )
        total = queryset.count()
        offset = (query.page - 1) * limit
        rows = list(queryset[offset : offset + limit]) if offset < total else []
        pages = (total + limit - 1) // limit
        return Response(
            {
                "success": True,
                "docs": self._render_many(rows, plan),
                "page": query.page,
                "limit": limit,
                "total": total,
                "pages": pages,
                "hasNext": query.page < pages,
                "hasPrev": query.page > 1,
            }
        )

    def _render(self, rows: Any, plan: ReadPlan, many: bool = False) -> Any:
        """Serialise for reading. Fields the plan drops or does not select are skipped by
        the serializer itself (not rendered, then thrown away); masking is applied after."""
        context = {**self.get_serializer_context(), "arc_omit": plan.omitted(self.resource)}
        data = self.get_serializer(rows, many=many, context=context).data
        # A project serializer may override to_representation and render anything: filter
        # its output too. The generated one skipped those fields already; only mask.
        if self.resource.serializer_class is not None:
            post = plan.shape
        elif plan.redact:
            post = plan.mask
        else:
            return data
        return [post(doc) for doc in data] if many else post(data)

    def _render_many(self, rows: list[Any], plan: ReadPlan) -> list[dict[str, Any]]:
        return self._render(rows, plan, many=True) if rows else []

    def retrieve(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        instance = self.get_object()
        return self.success(self._render(instance, self.read_plan()))

    # -- write routes --------------------------------------------------------------------

    def _body(self, request: Any) -> dict[str, Any]:
        data = request.data
        if isinstance(data, QueryDict):
            return data.dict()
        if not isinstance(data, dict):
            raise ArcError(
                "VALIDATION_ERROR",
                "Validation failed",
                400,
                {"non_field_errors": ["Expected a JSON object."]},
            )
        return dict(data)

    def guard_body(self, request: Any, data: dict[str, Any]) -> dict[str, Any]:
        """Refuse (or strip) every body field the caller may not write, before validation."""
        from .scope import get_scope

        resource = self.resource
        scope = get_scope(request)
        denied: list[str] = []
        for key in list(data):
            if key in resource.hidden_fields:
                data.pop(key)  # hidden fields do not exist as far as the API is concerned
                continue
            if key in resource.managed_fields:
                if any(
                    p.accepts_body_value(resource, request, key, data[key])
                    for p in resource.preset_list
                ):
                    data.pop(key)
                else:
                    denied.append(key)
                continue
            if key in resource.read_only_set:
                denied.append(key)
                continue
            rule = resource.field_permissions.get(key)
            if rule is not None and not rule.can_write(scope):
                denied.append(key)
        if denied:
            if resource.write_denied_policy == "strip":
                for key in denied:
                    data.pop(key, None)
            else:
                denied.sort()
                raise ArcError(
                    "FIELD_WRITE_DENIED",
                    f"Not permitted to write fields: {', '.join(denied)}",
                    403,
                    {"fields": denied},
                )
        return data

    def write_transaction(self) -> Any:
        """The transaction a write runs in: always when its event goes to the outbox (row
        and event commit together) or when hooks, presets or the serializer may issue more
        than one statement; otherwise the write is a single statement, atomic by itself, and
        a BEGIN/COMMIT pair would only add two round trips."""
        if arc_settings.EVENTS.get("OUTBOX", True) or self.resource.write_needs_transaction:
            return transaction.atomic()
        return nullcontext()

    def _write_values(self, request: Any, instance: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for preset in self.resource.preset_list:
            values.update(preset.write_values(self.resource, request, instance))
        return values

    def emit(self, verb: str, pk: Any, payload: dict[str, Any]) -> Any:
        """Send ``<resource>.<verb>`` through the ``resource_event`` signal (→ outbox), inside
        the current transaction. Every write path calls this exactly once per row."""
        from .events import emit

        return emit(
            f"{self.resource.name}.{verb}",
            payload,
            request=self.request,
            resource=self.resource.name,
            resource_id=pk,
        )

    def event_data(self, rep: Any) -> dict[str, Any]:
        """A row as events carry it: everything the serializer renders except hidden fields
        (events are internal, but hidden means never leaves the server)."""
        hidden = self.resource.hidden_fields
        return {k: v for k, v in rep.items() if k not in hidden}

    def _id_value(self, instance: Any) -> Any:
        lookup = self.resource.lookup_field
        value = instance.pk if lookup == "pk" else getattr(instance, lookup)
        return value if isinstance(value, (int, str)) else str(value)

    def create(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        resource = self.resource
        data = self.guard_body(request, self._body(request))
        with self.write_transaction():
            data = _hooked(resource.before_create(request, data), data)
            serializer = self.get_serializer(data=data)
            serializer.is_valid(raise_exception=True)
            instance = serializer.save(**self._write_values(request, None))
            resource.after_create(request, instance)
            rep = serializer.data
            self.emit(
                "created",
                instance.pk,
                {"id": self._id_value(instance), "data": self.event_data(rep)},
            )
        return self.success(self.read_plan().shape(rep), "Created successfully", 201)

    def partial_update(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        resource = self.resource
        instance = self.get_object()
        data = self.guard_body(request, self._body(request))
        with self.write_transaction():
            data = _hooked(resource.before_update(request, instance, data), data)
            serializer = self.get_serializer(instance, data=data, partial=True)
            previous = serializer.to_representation(instance)
            serializer.is_valid(raise_exception=True)
            instance = serializer.save(**self._write_values(request, instance))
            resource.after_update(request, instance)
            rep = serializer.data
            data_after, data_before = self.event_data(rep), self.event_data(previous)
            changed = [k for k, v in data_after.items() if data_before.get(k) != v]
            self.emit(
                "updated",
                instance.pk,
                {
                    "id": self._id_value(instance),
                    "data": data_after,
                    "changed": changed,
                    "previous": {k: data_before.get(k) for k in changed},
                },
            )
        return self.success(self.read_plan().shape(rep), "Updated successfully")

    def update(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        if self.resource.update_method == "PATCH":
            return self.http_method_not_allowed(request, *args, **kwargs)
        return self.partial_update(request, *args, **kwargs)

    def destroy(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        resource = self.resource
        instance = self.get_object()
        id_value = self._id_value(instance)
        pk = instance.pk
        with self.write_transaction():
            resource.before_delete(request, instance)
            soft = False
            for preset in resource.preset_list:
                if preset.perform_delete(resource, request, instance):
                    soft = True
                    break
            if not soft:
                instance.delete()
            resource.after_delete(request, instance)
            self.emit("deleted", pk, {"id": id_value, "soft": soft})
        return Response(
            {
                "success": True,
                "data": {"id": id_value, "soft": soft},
                "message": "Deleted successfully",
            }
        )


def _hooked(result: Any, data: dict[str, Any]) -> dict[str, Any]:
    return data if result is None else result


def _route_handler(spec: RouteSpec) -> Any:
    def handler(self: ResourceViewSet, request: Any, *args: Any, **kwargs: Any) -> Any:
        if spec.detail:
            result = spec.handler(self.resource, request, self.get_object())
        else:
            result = spec.handler(self.resource, request)
        if spec.raw or isinstance(result, Response):
            return result
        return Response({"success": True, "data": result}, status=spec.status)

    handler.__name__ = spec.name
    handler.__doc__ = spec.handler.__doc__
    return drf_action(
        detail=spec.detail,
        methods=[m.lower() for m in spec.methods],
        url_path=spec.path,
        url_name=spec.path.replace("/", "-"),
    )(handler)


def build_viewset(resource: Any) -> type[ResourceViewSet]:
    """Generate the ViewSet class of ``resource``: once per resource, at URL loading."""
    attrs: dict[str, Any] = {
        "resource": resource,
        "queryset": resource.model._default_manager.none(),
        "lookup_field": resource.lookup_field,
        "__module__": type(resource).__module__,
        "__doc__": type(resource).__doc__,
    }
    for policy in (
        "authentication_classes",
        "throttle_classes",
        "renderer_classes",
        "parser_classes",
    ):
        value = getattr(resource, policy)
        if value is not None:
            attrs[policy] = list(value)
    route_specs = {}
    for spec in resource.routes:
        attrs[spec.name] = _route_handler(spec)
        route_specs[spec.name] = spec
    attrs["_route_specs"] = route_specs
    name = f"{type(resource).__name__}ViewSet"
    return type(name, (ResourceViewSet,), attrs)
