"""``Bulk``: many rows in one request, all or nothing, with the single-row routes' rules.

Built on the preset contract only: rows come from ``view.get_queryset()`` (tenancy, presets'
filters, permission filters) and ``view.check_object_permissions()`` (object permission,
presets' ``check_object``); bodies go through ``view.guard_body()`` (field permissions, both
policies) and the resource's hooks and serializer; writes end in ``view.after_write_many()``
(presets' batched ``after_write_many`` — one audit INSERT — then one event per row).

SQL does not grow with the number of items: related ids are loaded with one query per
field; the rows are written with one ``bulk_create``/``bulk_update``/``DELETE`` (or one
soft-delete ``UPDATE``). Uniqueness is left to the database: a batch violating a unique
constraint is a 409 ``CONFLICT`` for the whole batch (per-item unique checks would cost a
query per item). A project ``serializer_class`` that saves rows its own way (its own
``create()``, ``update()`` or ``save()``, or writable fields that are not model columns) is
not bypassed: each item is validated and saved by a serializer of its own, as on the
single-row routes, at the SQL those cost per item. Nor is a model whose saves run more than
Django's (a ``save()`` override, a project's ``pre_save``/``post_save`` receiver): its rows are
saved one by one through ``save()``, and a ``delete()`` override deletes each row.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, models, router
from django.http import Http404
from django.utils.http import parse_http_date_safe
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings
from rest_framework.validators import UniqueTogetherValidator, UniqueValidator

from ..actions import RouteSpec
from ..exceptions import (
    ArcError,
    NotFound,
    RowsGone,
    ServerFault,
    as_arc_error,
    conflict_error,
    flatten_validation,
)
from ..filters import QueryFilterField
from ..parsers import JSONNumber
from ..query import beyond_int64, load_relations, reserved_param, shown
from ..serializers import preload_related
from ..signals import saves_its_own_way
from ..transactions import fault_if_aborted, lockable, refuse_deleted_unjudged
from .base import Preset

if TYPE_CHECKING:
    from ..resources import Resource

OPERATIONS = ("create", "update", "delete")
#: how many of the unknown filters of a bulk update's ``filter`` its refusal names
MAX_NAMED_FILTERS = 10


class DistinctListField(serializers.ListField):
    """A list whose entries must differ (a bulk delete's ``ids``: an id given twice is an
    indexed error); OpenAPI says ``uniqueItems``."""

    unique_items = True


def bulk_inputs(resource: Resource, max_items: int) -> dict[str, type[serializers.Serializer]]:
    """The request bodies of the bulk routes, for OpenAPI (the handlers read the body
    themselves, item by item, to index each item's errors): ``create``'s ``items`` are
    the resource's rows; ``update``'s are its writable fields, all optional, plus the ``id``
    (the lookup value), or a ``filter`` with ``data``; ``delete``'s ``ids``. Named after the
    resource, so two bulk resources get their own components."""
    row = resource.serializer
    writable = {
        name: field for name, field in row().fields.items() if not field.read_only and name != "id"
    }

    def optional(field: serializers.Field) -> serializers.Field:
        field = copy.deepcopy(field)
        # a serializer deep-copies its declared fields from their constructor arguments
        field._kwargs["required"] = False
        field.required = False
        return field

    manager = resource.model._default_manager
    if resource.lookup_field == "pk":
        ident: serializers.Field = serializers.PrimaryKeyRelatedField(queryset=manager.all())
    else:
        ident = serializers.SlugRelatedField(
            slug_field=resource.lookup_field, queryset=manager.all()
        )
    prefix = "".join(part.title() for part in str(resource.name).replace("-", "_").split("_"))
    limits = {"min_length": 1, "max_length": max_items}
    item = type(
        f"{prefix}BulkUpdateItem",
        (serializers.Serializer,),
        {"id": ident, **{name: optional(f) for name, f in writable.items()}},
    )
    data = type(
        f"{prefix}BulkUpdateData",
        (serializers.Serializer,),
        {"arc_min_properties": 1, **{name: optional(f) for name, f in writable.items()}},
    )
    return {
        "create": type(
            f"{prefix}BulkCreateInput",
            (serializers.Serializer,),
            {
                "__doc__": "The rows to create, all or none.",
                "items": row(many=True, **limits),
            },
        ),
        "update": type(
            f"{prefix}BulkUpdateInput",
            (serializers.Serializer,),
            {
                "__doc__": "`items` (each with its `id`), or `filter` with `data` (ignored when "
                "`items` is sent).",
                "arc_required_any_of": (("items",), ("filter", "data")),
                "items": item(many=True, required=False, **limits),
                "filter": QueryFilterField(resource, required=False),
                "data": data(required=False),
            },
        ),
        "delete": type(
            f"{prefix}BulkDeleteInput",
            (serializers.Serializer,),
            {
                "__doc__": "The ids (lookup values) of the rows to delete, all or none.",
                "ids": DistinctListField(child=copy.deepcopy(ident), **limits),
            },
        ),
    }


class BulkResult(serializers.Serializer):
    """How many rows were written, and their ids (the resource's lookup values)."""

    ids = serializers.ListField(child=serializers.JSONField())


def _invalid(details: dict[str, Any], message: str = "Validation failed") -> ArcError:
    return ArcError("VALIDATION_ERROR", message, 400, details)


class Bulk(Preset):
    """``Bulk(operations=("create", "update", "delete"), max_items=100)`` (SPEC §6).

    - ``POST /<name>/bulk/`` ``{"items": [...]}`` → 201 ``{"created": n, "ids": [...]}``
      (``create`` permission);
    - ``PATCH /<name>/bulk/`` ``{"items": [{"id": …, …}]}`` or ``{"filter": {...}, "data":
      {...}}`` (the query language's filters, ``filter_fields`` only) → ``{"updated": n,
      "ids": [...]}`` (``update`` permission);
    - ``DELETE /<name>/bulk/`` ``{"ids": [...]}`` → ``{"deleted": n, "ids": [...]}``
      (``delete``; soft when a preset deletes softly).

    All or nothing in one transaction; per-item errors come back indexed
    (``{"items": {"3": {"price": ["…"]}}}``); more than ``max_items`` rows (given, or
    matched by a filter) is a 400 naming the limit, with nothing written.
    """

    name = "bulk"

    def __init__(self, operations: tuple[str, ...] = OPERATIONS, max_items: int = 100) -> None:
        self.operations = tuple(operations)
        self.max_items = max_items

    def check(self, resource: Resource) -> list[str]:
        errors = []
        unknown = sorted(set(self.operations) - set(OPERATIONS))
        if unknown:
            errors.append(f"Bulk operations {unknown} unknown; choose from {list(OPERATIONS)}")
        if (
            not isinstance(self.max_items, int)
            or isinstance(self.max_items, bool)
            or self.max_items < 1
        ):
            errors.append("Bulk max_items must be a positive integer")
        try:
            fields = resource.serializer().fields
        except Exception:  # noqa: BLE001 - a serializer that cannot build its fields
            # (an unknown name in ``fields``) is arc.E001's to report, once; raised here,
            # it was a traceback out of ``manage.py check`` instead
            return errors
        nested = [
            name
            for name, field in fields.items()
            if not field.read_only
            and isinstance(field, (serializers.BaseSerializer, serializers.ManyRelatedField))
        ]
        if nested:
            errors.append(
                f"Bulk cannot write many-to-many or nested fields ({', '.join(nested)}): "
                "make them read-only or leave Bulk out"
            )
        return errors

    # -- routes ----------------------------------------------------------------------------------

    def routes(self, resource: Resource) -> list[RouteSpec]:
        bodies = bulk_inputs(resource, self.max_items)
        # operation: (method, handler, status, body, summary)
        table = {
            "create": ("POST", self.bulk_create, 201, bodies["create"], "Create many rows"),
            "update": ("PATCH", self.bulk_update, 200, bodies["update"], "Update many rows"),
            "delete": ("DELETE", self.bulk_delete, 200, bodies["delete"], "Delete many rows"),
        }
        return [
            RouteSpec(
                methods=[method],
                path="bulk",
                handler=handler,
                name=f"bulk_{operation}",
                permission_key=operation,
                status=status,
                request=body,
                response=BulkResult,
                summary=summary,
            )
            for operation, (method, handler, status, body, summary) in table.items()
            if operation in self.operations
        ]

    # -- handlers (each runs inside the route's transaction) -------------------------------------
    #
    # Each begins as a write of one row does (``view._not_aborted_before``): with the
    # transaction already aborted by code before it (a project's subclass catching a failed
    # statement without a savepoint, then calling ``super()``), the first item's hook was
    # blamed for it (a 500 naming item 0) or arc's first statement failed, a 500 naming
    # nothing.

    def bulk_create(self, view: Any, request: Any) -> dict[str, Any]:
        view._not_aborted_before("before_create")
        items = self.items(view, "items")
        resource = view.resource
        bodies = self.guarded(view, items)
        bodies = _each(
            view,
            bodies,
            lambda body: _hooked(resource.before_create(request, body), body),
            rows=False,
        )
        context = self.context(view, bodies)
        validated = self.validate(view, bodies, context)
        # the values presets force, asked item by item as a create of one row asks them: a
        # preset's refusal (a ValidationError of its ``write_values``: a quota spent) is its
        # item's, as every other per-item error; asked once for the batch, it was the
        # request's, at the top level of ``details``
        forced = _each(view, validated, lambda _item: view.write_values(None), rows=False)
        model = resource.model
        if isinstance(validated[0], dict):
            instances = [
                model(**data, **values) for data, values in zip(validated, forced, strict=True)
            ]
            if model._meta.concrete_model._meta.parents:
                # Django cannot bulk_create a multi-table child (its rows span the parents'
                # tables): one save each, all or none in the route's transaction, through
                # _each, so a unique clash (its parent's row already written) is its
                # item's 409 as on the other row-by-row path. A proxy's own ``parents``
                # names the model it proxies: its rows are one table's
                _each(view, instances, lambda instance: instance.save(), rows=False)
            else:
                model._default_manager.bulk_create(instances)
        else:  # serializers that save rows their own way, or models whose save() runs code
            # their save() runs the project's code (its create(), the model's save(), a
            # pre_save receiver): what that refuses (a Django ValidationError) is its item's
            instances = _each(
                view,
                list(zip(validated, forced, strict=True)),
                lambda pair: pair[0].save(**pair[1]),
                rows=False,
            )
        _each(
            view, instances, lambda instance: resource.after_create(request, instance), rows=False
        )
        _kept_forced(view, instances, forced, "items", None)
        # a pair completed after validation (the model's default, the serializer's
        # create()) names only rows the caller may name: judged on what was stored
        view.keep_generic_pairs(instances, key="items")
        # the relations the serializer renders (a new row's reverse and many-to-many ones
        # hold what hooks and signals added), loaded once for every row as a list loads
        # them: through the view's get_queryset() (a ViewSet subclass's own ``Prefetch``
        # too), its prefetches and the forward relations a list joins, those its validation
        # read read again (its hooks ran since)
        load_relations(instances, view.get_queryset(), reload=True)
        reps = view.get_serializer(instances, many=True).data
        records = [
            (instance, {"id": view.id_value(instance), "data": view.event_data(rep)}, None, rep)
            for instance, rep in zip(instances, reps, strict=True)
        ]
        view.after_write_many("created", records)
        # again after the presets' after_write, which may have moved a row (see bulk_update)
        _kept_forced(view, instances, forced, "items", None, stored=True)
        return {"created": len(instances), "ids": [view.id_value(i) for i in instances]}

    def bulk_update(self, view: Any, request: Any) -> dict[str, Any]:
        view._not_aborted_before("before_update")
        body = self.body(view)
        if "items" in body:
            items = self.items(view, "items")
            ids = [item.get("id") if isinstance(item, dict) else None for item in items]
            rows = self.rows_by_id(view, ids)
            bodies = [
                {k: v for k, v in item.items() if k != "id"} if isinstance(item, dict) else item
                for item in items
            ]
        elif "filter" in body:
            rows, bodies = self.rows_by_filter(view, body)
            # one body for every row: its errors are ``data``'s, not an item's per row
            data = self.guarded_data(view, body["data"])
            if not rows:
                self.check_data(view, data)
            bodies = [dict(data) for _ in rows]
        else:
            raise _invalid({"items": ["Send `items`, or `filter` with `data`."]})
        resource = view.resource
        if "items" in body:
            bodies = self.guarded(view, bodies)
        key, names = _row_naming(view, body, rows)
        # the pairs the rows hold as read, before a before_update hook may set one on its
        # row: that one is the write's, judged after the save (keep_generic_pairs)
        pairs_held = view.generic_pairs_held(rows)
        bodies = _each(
            view,
            list(zip(rows, bodies, strict=True)),
            lambda pair: _hooked(resource.before_update(request, *pair), pair[1]),
            key,
            names=names,
        )
        context = self.context(view, bodies)
        befores = [view.snapshot(row) for row in rows]
        try:
            validated = self.validate(view, bodies, context, rows)
        except ArcError as exc:
            errors = (exc.details or {}).get("items")
            if "items" in body or not isinstance(errors, dict) or not errors:
                raise
            # the first matched row's errors, as ``check_data`` names them with no row
            raise _invalid({"data": errors[min(errors, key=int)]}) from None
        # the write-only fields each body sets, as the rows hold them before the write
        held: dict[Any, Any] = {}
        if resource.field_rules.write_only:
            declared = view.get_serializer().fields
            held = {
                row.pk: view._write_only_values(declared, row, data)
                for row, data in zip(rows, bodies, strict=True)
            }
        if validated and not isinstance(validated[0], dict):
            # serializers that save rows their own way, or models whose save() runs code
            rows, befores, forced = self.save_each(view, body, rows, befores, validated)
        else:
            rows, befores, forced = self.update_batch(view, body, rows, befores, validated)
        key, names = _row_naming(view, body, rows)
        _each(view, rows, lambda row: resource.after_update(request, row), key, names=names)
        # the values each row was written with, checked as the update of one row checks
        # them: asked again here, a preset forcing a value of its moment (a stamp, a
        # counter) was judged moved (a 500 on every bulk update) and asked twice per row
        _kept_forced(view, rows, forced, key, names)
        # a pair the serializer's update() set names only rows the caller may name; one a
        # row kept as it held it is not judged again. A filter's errors are its ``data``'s
        view.keep_generic_pairs(rows, pairs_held, key="items" if "items" in body else "data")
        # the relations they render read again (once for all the rows): the write and its
        # hooks may have changed those read with them
        load_relations(rows, view.get_queryset(), reload=True)
        afters = view.get_serializer(rows, many=True).data
        records = [
            (row, view._updated_payload(row, before, after, held.get(row.pk)), before, after)
            for row, before, after in zip(rows, befores, afters, strict=True)
        ]
        view.after_write_many("updated", records)
        # again after the presets' after_write: one moving a row (its tenant, its owner)
        # after the check above wrote it into another tenant, answered as the caller's
        _kept_forced(view, rows, forced, key, names, stored=True)
        return {"updated": len(rows), "ids": [view.id_value(row) for row in rows]}

    def bulk_delete(self, view: Any, request: Any) -> dict[str, Any]:
        view._not_aborted_before("before_delete")
        ids = self.items(view, "ids")
        rows = self.rows_by_id(view, ids, key="ids")
        resource = view.resource
        _each(view, rows, lambda row: resource.before_delete(request, row), key="ids")
        observed = bool(resource.write_observers)
        befores = [view.snapshot(row) for row in rows] if observed else [None] * len(rows)
        soft = any(p.perform_delete_many(view, rows) for p in resource.preset_list)
        if not soft:
            model = resource.model
            # the rows locked first: one another request deleted since this one read it is
            # refused as it would be now (a DELETE's count could not say which it was)
            present = _present(model, rows, lock=True)
            if len(present) < len(rows):
                raise RowsGone("ids", [row.pk for row in rows], present)
            # the rows found above, through the same (base) manager ``instance.delete()``
            # uses: a default manager hiding some of them deleted none of those, answered
            # as deleted, with their events
            pks = [row.pk for row in rows]
            found = model._base_manager.filter(pk__in=pks)
            collector = view.refuse_cascade_beyond_reach(rows, origin=found)
            if model.delete is not models.Model.delete:
                # the model's own delete() (files removed, a row archived) runs for the
                # single-row route: each row is deleted through it, still all or none; what
                # it refuses (a Django ValidationError) is its item's
                def delete_each() -> Any:
                    return _summed(_each(view, rows, _deleted, key="ids"))

                if collector is not None:
                    # no more rows than the check judged: one filed meanwhile under a
                    # row it reached is refused (409), as the collection's delete does
                    refuse_deleted_unjudged(collector, delete_each)
                else:
                    delete_each()
            elif collector is not None:
                # what the check judged is what goes: a second collection found rows filed
                # meanwhile under those it reached, deleted unjudged (the named rows are
                # locked above, their descendants were not)
                collector.delete()
                for row, pk in zip(rows, pks, strict=True):
                    _restore_pk(row, pk)  # Django clears it; the hooks and events name the row
            else:
                found.delete()
        _each(view, rows, lambda row: resource.after_delete(request, row), key="ids")
        afters = view.get_serializer(rows, many=True).data if soft and observed else None
        records = [
            (row, {"id": view.id_value(row), "soft": soft}, before, afters[i] if afters else None)
            for i, (row, before) in enumerate(zip(rows, befores, strict=True))
        ]
        view.after_write_many("deleted", records)
        return {"deleted": len(rows), "ids": [view.id_value(row) for row in rows]}

    # -- pieces ----------------------------------------------------------------------------------

    def update_batch(
        self,
        view: Any,
        body: dict[str, Any],
        rows: list[Any],
        befores: list[Any],
        validated: list[Any],
    ) -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
        """Write the validated values of each row (and the values presets force) with
        ``bulk_update``; the rows written, their snapshots before and the values presets
        forced on each, without a row another request deleted meanwhile that a ``filter``
        matched (one an item names is refused).

        The rows are locked first, in primary-key order (:func:`_present`), as the row-by-row
        path and the bulk delete lock theirs: the ``UPDATE`` alone locks them in the order its
        plan reads them (an index's for a few ids, the table's physical order for many), so
        two bulk updates over overlapping rows could each hold a row the other waits for,
        PostgreSQL's deadlock, one of them a 500. A row gone by then is known before the
        write, as :meth:`save_each` knows it."""
        resource = view.resource
        fields: set[str] = set()
        # the values presets force on each row, asked through _each as the row-by-row path
        # asks them (:func:`_saved`): a preset's refusal is its row's, named
        key, names = _row_naming(view, body, rows)
        forced = _each(view, rows, view.write_values, key, names=names)
        for row, data, values in zip(rows, validated, forced, strict=True):
            data = {**data, **values}
            for attr, value in data.items():
                setattr(row, attr, value)
            fields |= {resource.model._meta.get_field(attr).name for attr in data}
        if not fields:
            return rows, befores, forced
        present = _present(resource.model, rows, lock=True)
        if len(present) < len(rows):
            # rows another request deleted since this one read them: an item naming one is
            # refused as it would be now; a filter's match no longer includes it
            rows, befores, forced = _without_gone(body, present, rows, befores, forced)
        # what save() would stamp: bulk_update writes attributes as they are
        for field in resource.model._meta.concrete_fields:
            if getattr(field, "auto_now", False):
                for row in rows:
                    field.pre_save(row, False)
                fields.add(field.name)
        # through the base manager, as ``save()`` writes one row: a default manager that
        # hides rows the resource's queryset serves (archived ones) must neither skip their
        # UPDATE nor make them read as deleted meanwhile
        if rows:
            resource.model._base_manager.bulk_update(rows, sorted(fields))
        return rows, befores, forced

    def save_each(
        self,
        view: Any,
        body: dict[str, Any],
        rows: list[Any],
        befores: list[Any],
        validated: list[Any],
    ) -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
        """Save each row through its validated serializer (one that saves rows its own way,
        or of a model whose ``save()`` runs the project's code), as :meth:`update_batch`
        answers (the rows, their snapshots, the values presets forced on each): the rows locked first, so that one another request deleted since this one
        read it is refused when an item names it and left out of a ``filter``'s match, not
        the 404 of its save; what a save refuses (a ``pre_save`` receiver's
        ``ValidationError``) is its item's, indexed."""
        present = _present(view.resource.model, rows, lock=True)
        if len(present) < len(rows):
            rows, befores, validated = _without_gone(body, present, rows, befores, validated)
        key, names = _row_naming(view, body, rows)
        saved = _each(
            view,
            list(zip(rows, validated, strict=True)),
            lambda pair: _saved(view, *pair),
            key,
            names=names,
        )
        return [row for row, _ in saved], befores, [forced for _, forced in saved]

    def body(self, view: Any) -> dict[str, Any]:
        data = view.request.data
        if not isinstance(data, dict):
            raise _invalid({api_settings.NON_FIELD_ERRORS_KEY: ["Expected a JSON object."]})
        return data

    def items(self, view: Any, key: str) -> list[Any]:
        """The body's list under ``key``: 1 to ``max_items`` entries, else 400 naming it."""
        value = self.body(view).get(key)
        if not isinstance(value, list):
            raise _invalid({key: ["Expected a list."]})
        if not value:
            raise _invalid({key: ["At least one item is required."]})
        if len(value) > self.max_items:
            raise _invalid(
                {key: [f"At most {self.max_items} items per request (got {len(value)})."]},
                f"Too many items: at most {self.max_items}",
            )
        return value

    def guarded(self, view: Any, bodies: list[Any]) -> list[dict[str, Any]]:
        """Every body through the field-write guard (reject or strip, as for one row); the
        first refusal kind wins, with every refused item indexed."""
        out: list[dict[str, Any]] = []
        shape: dict[str, Any] = {}
        denied: dict[str, Any] = {}
        for index, body in enumerate(bodies):
            if not isinstance(body, dict):
                shape[str(index)] = {api_settings.NON_FIELD_ERRORS_KEY: ["Expected a JSON object."]}
                continue
            try:
                out.append(view.guard_body(dict(body)))
            except ArcError as exc:
                denied[str(index)] = exc.details["fields"]
        if shape:
            raise _invalid({"items": shape})
        if denied:
            fields = sorted({f for item in denied.values() for f in item})
            raise ArcError(
                "FIELD_WRITE_DENIED",
                f"Not permitted to write fields: {', '.join(fields)}",
                403,
                {"fields": fields, "items": denied},
            )
        return out

    def context(self, view: Any, bodies: list[dict[str, Any]]) -> dict[str, Any]:
        """The serializer context of the batch: related rows preloaded in one query a field."""
        context = view.get_serializer_context()
        context["arc_related"] = preload_related(view.get_serializer(data={}), bodies)
        return context

    def validate(
        self,
        view: Any,
        bodies: list[dict[str, Any]],
        context: dict[str, Any],
        rows: list[Any] | None = None,
    ) -> list[Any]:
        """Each body through the resource's serializer (partial for updates); errors
        collected and indexed. Returns the validated data of each item, ready for
        ``bulk_create``/``bulk_update``, or, when the serializer saves rows its own way
        (:func:`_batchable`), each item's validated serializer, to ``save()``.

        For a batchable serializer, one validates the whole batch, as DRF's
        ``ListSerializer`` does with its child: its fields are built and narrowed
        (``get_serializer``) once, not once per item. Before each item it is pointed at that
        item (``initial_data``, and ``instance`` for updates), which is what ``is_valid()``
        would see on a serializer of its own; its per-item uniqueness queries are left out
        (the database's constraints hold for the batch)."""
        validated: list[Any] = []
        errors: dict[str, Any] = {}
        if not bodies:  # a filter that matched no row
            return validated
        if rows is None:
            serializer = view.get_serializer(data={}, context=context)
        else:
            serializer = view.get_serializer(rows[0], data={}, partial=True, context=context)
        if not _batchable(serializer, view.resource.model):
            for index, body in enumerate(bodies):
                if rows is None:
                    item = view.get_serializer(data=body, context=context)
                else:
                    item = view.get_serializer(
                        rows[index], data=body, partial=True, context=context
                    )
                if item.is_valid():
                    validated.append(item)
                else:
                    errors[str(index)] = flatten_validation(item.errors)
            if errors:
                raise _invalid({"items": errors})
            return validated
        _without_uniqueness_queries(serializer)
        for index, body in enumerate(bodies):
            serializer.initial_data = body
            if rows is not None:
                serializer.instance = rows[index]
            try:
                validated.append(serializer.run_validation(body))
            except serializers.ValidationError as exc:
                errors[str(index)] = flatten_validation(exc.detail)
        if errors:
            raise _invalid({"items": errors})
        return validated

    def rows_by_id(self, view: Any, ids: list[Any], key: str = "items") -> list[Any]:
        """The rows ``ids`` name (the resource's lookup values), in order, each through the
        view's queryset and object checks; any id the caller cannot see is an indexed
        error (the same "Not found." whether absent or filtered)."""
        lookup = view.lookup_field
        model_field = view.lookup_model_field
        parsed: list[Any] = []
        for value in ids:
            try:
                parsed.append(view.read_lookup_value(value))
            except (DjangoValidationError, ValueError, TypeError, OverflowError):
                parsed.append(None)
        wanted = {p for p in parsed if p is not None and not beyond_int64(p)}
        found = {
            str(getattr(row, model_field.attname)): row
            for row in view.get_queryset().filter(**{f"{lookup}__in": wanted})
        }
        rows, missing, refused = [], {}, {}
        seen: set[str] = set()
        view.judged_rows = list(found.values())  # asked together whether readable
        try:
            for index, value in enumerate(parsed):
                row = None if value is None else found.get(str(value))
                if row is None or str(value) in seen:
                    missing[str(index)] = {"id": ["Not found." if row is None else "Given twice."]}
                    continue
                refusal = _refusal(view, row)
                if refusal is _ABSENT:  # a row the caller may not know of: as if absent, twice too
                    missing[str(index)] = {"id": ["Not found."]}
                    continue
                if refusal is None:
                    rows.append(row)
                elif isinstance(refusal, ArcError):
                    refused[str(index)] = refusal
                else:  # a validation error's fields, listed as a serializer's are
                    missing[str(index)] = refusal
                seen.add(str(value))
        finally:
            view.judged_rows = None
        _answer(key, missing, refused)
        return rows

    def guarded_data(self, view: Any, data: dict[str, Any]) -> dict[str, Any]:
        """A filter update's ``data`` through the field-write guard, once: a refusal names
        the fields under ``data`` (``{"fields": [...], "data": [...]}``), as ``items``'
        name them per item."""
        try:
            return view.guard_body(dict(data))
        except ArcError as exc:
            if exc.code != "FIELD_WRITE_DENIED":
                raise
            fields = list(exc.details["fields"])
            raise ArcError(exc.code, exc.message, exc.status, {"fields": fields, "data": fields})

    def check_data(self, view: Any, data: dict[str, Any]) -> None:
        """``data`` through the guard and the serializer when the filter matched no row:
        the answer to a bad body must not depend on whether some row matched."""
        serializer = view.get_serializer(data=view.guard_body(dict(data)), partial=True)
        _without_uniqueness_queries(serializer)
        if not serializer.is_valid():
            raise _invalid({"data": flatten_validation(serializer.errors)})

    def rows_by_filter(self, view: Any, body: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        """``{"filter": {...}, "data": {...}}``: the rows the filter matches (the query
        language's allowlist, within the view's queryset), each given ``data``."""
        filters, data = body.get("filter"), body.get("data")
        if not isinstance(filters, dict) or not filters:
            raise _invalid({"filter": ["Expected a non-empty object of filters."]})
        if not isinstance(data, dict) or not data:
            raise _invalid({"data": ["Expected a non-empty object."]})
        spec = view.resource.query_spec
        # A list ignores a parameter it does not know (tracking tags); a bulk write must not:
        # a misspelt filter would widen the update to every row the others match.
        unknown = [k for k in filters if not spec.names_filter(str(k))]
        if unknown:
            # the first few, in the order sent: a body of a hundred thousand such names
            # would be answered (and stored under an Idempotency-Key) several times over
            # each by its first 50 characters, as the query language quotes a value
            named = unknown[:MAX_NAMED_FILTERS]
            raise _invalid(
                {"filter": {shown(str(k)): ["Not a filter of this resource."] for k in named}}
            )
        # a filter named as a parameter the query string keeps for itself (``limit``,
        # ``sort``, DRF's format parameter, which a project may name after a field) is
        # skipped by the query language: dropped, it widened the update to every row the
        # other filters match, as a misspelt one would. Its operator spelling filters
        reserved = [k for k in filters if reserved_param(str(k))]
        if reserved:
            raise _invalid(
                {
                    "filter": {
                        shown(str(k)): [
                            f"A reserved query parameter: filter on it as `{shown(str(k))}[eq]`."
                        ]
                        for k in reserved[:MAX_NAMED_FILTERS]
                    }
                }
            )
        params = _query_params(filters)
        access = view.field_access
        try:
            query = spec.parse(
                params,
                set(view.resource.output_fields) - access.unreadable,
                restricted=access.restricted,
            )
        except ArcError as exc:
            # the query language names a parameter with one message (INVALID_QUERY's shape);
            # a VALIDATION_ERROR lists messages per field, as for the filter's other errors
            details = {
                shown(str(k)): v if isinstance(v, list) else [str(v)]
                for k, v in (exc.details or {}).items()
            }
            raise _invalid({"filter": details or {"filter": [exc.message]}}) from None
        if query.q is None:
            raise _invalid({"filter": ["No filter applies: use the resource's filter fields."]})
        # in key order ("pk": a primary key that is a relation, named, is ordered by the
        # related model's ``Meta.ordering``, django_arc.query.QuerySpec.order_by_args)
        queryset = view.get_queryset().filter(query.q).order_by("pk")
        if query.distinct:  # a to-many filter joins a row once per matching related row
            queryset = queryset.distinct()
        rows = list(queryset[: self.max_items + 1])
        if len(rows) > self.max_items:
            raise _invalid(
                {
                    "filter": [
                        f"Matches more than {self.max_items} rows, the most one request may update."
                    ]
                },
                f"Too many items: at most {self.max_items}",
            )
        matched = []
        view.judged_rows = rows  # asked together whether readable
        try:
            for row in rows:
                refusal = _refusal(view, row)
                if refusal is _ABSENT:  # a row the caller may not know of: not matched
                    continue
                if isinstance(refusal, ArcError):  # the request's answer, as the handler's
                    raise refusal
                if refusal is not None:  # a validation error: one ``data`` for every row
                    raise _invalid({"data": refusal})
                matched.append(row)
        finally:
            view.judged_rows = None
        return matched, [dict(data) for _ in matched]


#: :func:`_refusal`'s answer for a row its object checks answer 404 for
_ABSENT = object()


def _refusal(view: Any, row: Any) -> Any:
    """``row`` through the view's object checks (``check_object_permissions``: the
    permission's, every preset's ``check_object``): ``None`` when they pass, else what
    :func:`_judged` makes of the error they raise."""
    try:
        view.check_object_permissions(view.request, row)
    except Exception as exc:  # noqa: BLE001 - judged, else raised as it is
        return _judged(exc)
    return None


def _judged(exc: Exception) -> Any:
    """What a bulk item refused by ``exc`` (an object check's or a hook's, for one row)
    answers, by the error handler's one mapping (:func:`~django_arc.exceptions.as_arc_error`),
    whatever spelling the error has (arc's, DRF's, Django's):

    - :data:`_ABSENT` for a 404 the handler answers ``NOT_FOUND`` (arc's ``NotFound`` of a
      row the caller may not read, DRF's ``NotFound``, Django's ``Http404``): the item is a
      missing id's "Not found.", so no answer tells an unreadable row from an absent one;
    - a validation error's fields (DRF's or Django's ``ValidationError``), listed under the
      item as a serializer's are;
    - else, for any other status below 500, the ``ArcError`` the handler answers with (its
      code, message, status and headers: a 404 of the project's own code keeps it, as on a
      write of one row);
    - anything else (a 5xx, an ``ArcError`` of status 503 too; an error that is no refusal)
      is raised as it is: the request's answer, and the route's transaction rolls back.

    An ``ArcError`` of status 409 was listed while DRF's ``APIException`` of status 409, or a
    ``ValidationError``, ended the whole request; a project's 404 of its own code was the
    item's "Not found." where the write of one row answered that code."""
    if isinstance(exc, (serializers.ValidationError, DjangoValidationError)):
        return flatten_validation(as_serializer_error(exc))
    if isinstance(exc, Http404):
        return _ABSENT
    if not isinstance(exc, (APIException, DjangoPermissionDenied)):
        raise exc
    answer = as_arc_error(exc)
    if answer.status >= 500 or answer.status < 400:
        raise exc
    if answer.status == 404 and answer.code == "NOT_FOUND":
        return _ABSENT
    return answer


def _answer(key: str, invalid: dict[str, Any], refused: dict[str, ArcError]) -> None:
    """Raise the answer of a batch whose items ``invalid`` (missing ids, field errors) and
    ``refused`` (each item's ``ArcError``) name, if any: the 400 listing every invalid item
    first; else the first refusal's code, message and status, every refused item listed
    (``{"code", "error"}``) and its headers, with a ``Retry-After`` the largest of the items
    refused with the request's status (each item may be retried only once the last wait
    is over)."""
    if invalid:
        raise _invalid({key: invalid})
    if not refused:
        return
    first = next(iter(refused.values()))
    headers = dict(first.headers or {})
    waits = [
        exc.headers["Retry-After"]
        for exc in refused.values()
        if exc.status == first.status and "Retry-After" in (exc.headers or {})
    ]
    if waits:
        headers["Retry-After"] = max(waits, key=_seconds)
    raise ArcError(
        first.code,
        first.message,
        first.status,
        {key: {index: {"code": exc.code, "error": exc.message} for index, exc in refused.items()}},
        headers or None,
    )


def _seconds(value: str) -> float:
    """A ``Retry-After`` in seconds: delay-seconds as they are, an HTTP-date from now."""
    try:
        return float(value)
    except ValueError:
        parsed = parse_http_date_safe(value)
        return float("-inf") if parsed is None else parsed - time.time()


def _present(model: Any, rows: list[Any], lock: bool = False) -> set[Any]:
    """The primary keys of ``rows`` still in the table (``lock``: locked until the write's
    transaction ends, where the database can). Locked in primary-key order, whatever order
    the items named them in or the plan reads them in (a table's physical order): two bulk
    writes over overlapping rows then wait for each other instead of each holding a row the
    other waits for, PostgreSQL's deadlock, one of them a 500. Read on the database the
    write writes to (``bulk_update``'s), never ``db_for_read``'s: a replica behind it still
    holds a row just deleted, which then read as present and was written as updated."""
    found = model._base_manager.db_manager(router.db_for_write(model)).filter(
        pk__in=[row.pk for row in rows]
    )
    if lock:  # ``lockable``: a base manager reading ``distinct()`` cannot be locked as it is
        found = lockable(found).select_for_update().order_by("pk")
    return set(found.values_list("pk", flat=True))


def _query_params(filters: dict[Any, Any]) -> dict[str, str]:
    """A body's filters as the query string's parameters. A JSON null, an object, or a list
    outside ``[in]``/``[nin]`` has no query-string spelling and is refused (400 naming the
    filter): a null became ``""``, so ``{"title": null}`` updated the rows whose title is
    empty, and ``{"title": ["a", "b"]}`` filtered on the title ``"a,b"``. Nor has an
    ``[in]`` item with a comma (``["Hello, world"]`` matched the titles ``Hello`` and
    `` world``) or an empty one (skipped, so its rows were silently left out)."""
    params, errors = {}, {}
    for key, value in filters.items():
        name = str(key)
        try:
            params[name] = _query_value(value, listed=name.endswith(("[in]", "[nin]")))
        except ValueError as exc:
            errors[name] = [str(exc)]
    if errors:
        raise _invalid({"filter": errors})
    return params


def _query_value(value: Any, *, listed: bool = False) -> str:
    if value is None:
        raise ValueError(
            "Null is not a filter value: `[exists]`, where allowed, finds the rows without one."
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if not listed:
            raise ValueError("A list is a value of `[in]` and `[nin]` only.")
        items = [_query_value(v) for v in value]
        if any("," in item or item == "" for item in items):
            # the query string splits `[in]` at commas and skips empty items: an item
            # "a,b" would match the rows "a" and "b", an item "" no row
            raise ValueError(
                "An `[in]`/`[nin]` item cannot contain a comma or be empty: the query "
                "string has no spelling for it."
            )
        return ",".join(items)
    if isinstance(value, dict):
        raise ValueError("An object is not a filter value.")
    if isinstance(value, JSONNumber) and not value.exact():
        # the number as written, as the query string and a body's decimal read it: the text
        # of its float made ``1e-400`` the filter ``0.0`` (and ``…567.891`` another decimal),
        # so an update by filter wrote rows the value does not name
        return value.text
    return str(value)


def _row_naming(view: Any, body: dict[str, Any], rows: list[Any]) -> tuple[str, list[Any] | None]:
    """How a bulk update's per-row answers (a hook's refusal, a save's conflict, a 500's
    ``details``) name a row: by its index under ``items`` when the body listed them; a
    ``filter``'s rows, which the client never listed (their order among the matched rows is
    arc's), by their ids under ``ids``, the lookup values the answer's ``ids`` lists."""
    if "items" in body:
        return "items", None
    return "ids", [view.id_value(row) for row in rows]


def _kept_forced(
    view: Any,
    rows: list[Any],
    forced: list[dict[str, Any]],
    key: str,
    names: list[Any] | None,
    stored: bool = False,
) -> None:
    """:meth:`~django_arc.generics.ResourceGenericViewSet.keep_forced_values` for every row
    written, each named as :func:`_row_naming` names it; after the presets' ``after_write``
    (``stored``), their stored columns too when one ran an ``UPDATE``
    (:meth:`~django_arc.generics.ResourceGenericViewSet.keep_forced_stored`)."""
    items = [(key, index if names is None else names[index]) for index in range(len(rows))]
    for row, values, item in zip(rows, forced, items, strict=True):
        view.keep_forced_values(row, values, item=item)
    if stored:
        view.keep_forced_stored(rows, forced, items)


def _hooked(result: Any, data: dict[str, Any]) -> dict[str, Any]:
    return data if result is None else result


def _without_gone(
    body: dict[str, Any], present: set[Any], rows: list[Any], *matching: list[Any]
) -> tuple[list[Any], ...]:
    """``rows``, and the lists ``matching`` them item for item (their snapshots before,
    their serializers), without the rows another request deleted since this one read them
    (``present``: the primary keys still there): a ``filter``'s match no longer includes
    them; an item naming one is refused as it would be now (:class:`RowsGone`)."""
    if "items" in body:
        raise RowsGone("items", [row.pk for row in rows], present)
    kept = [row.pk in present for row in rows]
    return tuple(
        [item for item, keep in zip(items, kept, strict=True) if keep]
        for items in (rows, *matching)
    )


def _deleted(row: Any) -> Any:
    """``row.delete()``, the model's own, and what it returned; the hooks and events after
    it name the row by the primary key Django clears."""
    pk = row.pk
    result = row.delete()
    _restore_pk(row, pk)
    return result


def _summed(results: list[Any]) -> Any:
    """The ``(count, {label: count})`` of Django's deletes ``results`` added up; ``None``
    when one of them is something else (a project's ``delete()`` returning its own)."""
    total: dict[str, int] = {}
    for result in results:
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
            return None
        for label, count in result[1].items():
            total[label] = total.get(label, 0) + count
    return sum(total.values()), total


def _restore_pk(row: Any, pk: Any) -> None:
    """Put back the primary key a delete cleared, as Django's collector clears it: its
    column's attribute alone. ``row.pk = pk`` also writes the parents' keys of a
    multi-table child whose own key is no parent link, naming its parent row wrongly."""
    setattr(row, row._meta.pk.attname, pk)


def _saved(view: Any, row: Any, serializer: Any) -> tuple[Any, dict[str, Any]]:
    """``row`` updated by its validated ``serializer`` (one that saves rows its own way, or
    of a model whose ``save()`` runs the project's code), with the values presets force,
    and those values (checked kept after the hooks); a row gone by then is its item's "Not
    found.", never inserted again."""
    with view.existing_rows(row):
        forced = view.write_values(row)
        return serializer.save(**forced), forced


def _each(
    view: Any,
    items: list[Any],
    hook: Any,
    key: str = "items",
    rows: bool = True,
    names: list[Any] | None = None,
) -> list[Any]:
    """``hook(item)`` for every item, in order; the results (each hook checked not to leave
    one of ``view``'s write databases aborted, :func:`_transaction_usable`). An error a hook
    raises for an item is judged as an object check's (:func:`_judged`): a validation error
    (DRF's or Django's) refuses its item as the serializer's do, every item's errors
    collected under its index (``{"items": {"3": {"title": [...]}}}``); any other refusal
    below 500 (an ``ArcError``, DRF's ``APIException``, Django's ``PermissionDenied``) is
    listed under its index as the handler answers it, so the client knows which one was
    refused; a 5xx, or an error that is no refusal, passes through. A 404 ``NOT_FOUND`` is a
    named row's "Not found." (``rows``: the items are rows, or bodies naming them by id); a
    create's item names no id, and is refused as the create of that item alone answers
    (``NOT_FOUND``, its message, 404): it listed an ``id`` the item never had.

    The first item a hook refuses (any of the above) is the last whose hook is called: the
    batch is refused whatever the others' hooks say, and a hook's effects outside the
    route's transaction (a mail sent, a cache written, a call out) are not rolled back with
    it, so a refused batch ran them for items never written. The answer lists that item; the
    errors found before any hook runs (missing ids, object checks, field guards) list every
    item, as they did.

    Items are named by their index under ``key``, or by ``names`` (a ``filter`` update's
    rows, which the client never listed: by their ids, :func:`_row_naming`). A database
    refusal of an item's save (an ``IntegrityError``: a unique value taken meanwhile) is
    that item's 409 ``CONFLICT``, listed as a refusal is."""
    results: list[Any] = []
    errors: dict[str, Any] = {}
    refused: dict[str, ArcError] = {}
    databases = view.write_databases()
    for index, item in enumerate(items):
        name = str(index if names is None else names[index])
        try:
            results.append(hook(item))
            _transaction_usable(databases, key, name)
        except ServerFault:
            raise
        except IntegrityError as exc:
            # a save of the row-by-row path (or a hook's statement) the database refused: a
            # unique value another request committed since this one validated it, or one
            # an earlier item of the batch took; a delete() refused for the rows still
            # referring to its row. The error handler's 409, naming the item; the route's
            # transaction rolls back (nothing of the batch is written)
            refused[name] = conflict_error(exc, f"bulk item {key}[{name}]")
            break
        except Exception as exc:  # noqa: BLE001 - judged, else raised as it is
            judged = _judged(exc)
            if judged is _ABSENT and rows:
                errors[name] = {"id": ["Not found."]}
            elif judged is _ABSENT:  # Django's Http404 is the handler's NotFound
                refused[name] = NotFound() if isinstance(exc, Http404) else as_arc_error(exc)
            elif isinstance(judged, ArcError):
                refused[name] = judged
            else:
                errors[name] = judged
            break  # the batch is refused: no other item's hook runs
    _answer(key, errors, refused)
    return results


def _transaction_usable(databases: tuple[str, ...], key: str, index: Any) -> None:
    """Raise a :class:`~django_arc.exceptions.ServerFault` naming item ``index`` when its
    hook returned with the transaction on one of the write's ``databases`` aborted
    (PostgreSQL: a statement of the hook's failed, an ``IntegrityError`` it caught without a
    savepoint of its own). The next item's first statement failed
    (``InFailedSqlTransaction``), a 500 naming nothing, or, when none came, the ``COMMIT``
    rolled back a batch answered as written. Each item in a savepoint of its own would not
    help (its ``RELEASE`` fails the same way; rolling it back would drop the hook's other
    writes and go on, half-written) and costs two statements an item. The request is a 500
    naming the item; the route's transaction rolls back, nothing is written. No query: the
    driver's state is read."""
    fault_if_aborted(
        databases,
        lambda databases: (
            f"The hook of bulk item {key}[{index}] returned with the transaction on "
            f"{databases} aborted: a statement it ran failed and it caught the error without "
            "a savepoint of its own (wrap that statement in transaction.atomic())"
        ),
        ServerFault.item_details(key, index),
    )


def _batchable(serializer: Any, model: Any) -> bool:
    """Whether ``bulk_create``/``bulk_update`` write what ``serializer`` would: DRF's own
    ``ModelSerializer`` saving (no ``create()``, ``update()`` or ``save()`` of the project's),
    every writable field a model column (not a many-to-many, not a value only the project's
    code reads), and a model that saves its rows Django's way (no ``save()`` override, no
    ``pre_save``/``post_save`` receiver of the project's: see
    :func:`~django_arc.signals.saves_its_own_way`).

    Nor a writable file field (``FileField``, ``ImageField``): a file a hook gives an item
    (one the project generates) is stored by ``save()`` (``FileField.pre_save``), and
    ``bulk_update`` writes its bare name, storing nothing: the rows named files no storage
    held. ``bulk_create`` stores it but sends no ``pre_save``, so the files of a batch
    refused after its write were noted by no one (:mod:`django_arc.uploads`) and stayed."""
    base = serializers.ModelSerializer
    cls = type(serializer)
    if not isinstance(serializer, base) or saves_its_own_way(model):
        return False
    if any(getattr(cls, name) is not getattr(base, name) for name in ("create", "update", "save")):
        return False
    columns = {f.name: f for f in model._meta.concrete_fields}
    columns |= {f.attname: f for f in model._meta.concrete_fields}
    return all(
        field.source in columns and not isinstance(columns[field.source], models.FileField)
        for field in serializer._writable_fields
    )


def _without_uniqueness_queries(serializer: Any) -> None:
    """Drop the validators that query per item (unique fields, unique together): the
    database's constraint still holds, for the whole batch at once. The serializer's other
    validators (``Meta.validators`` of the project's) stay."""
    serializer.validators = [
        v for v in serializer.validators if not isinstance(v, UniqueTogetherValidator)
    ]
    for field in serializer.fields.values():
        field.validators = [v for v in field.validators if not isinstance(v, UniqueValidator)]
