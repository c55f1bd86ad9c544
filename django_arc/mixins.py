"""One mixin per route of a resource, like DRF's ``mixins.py``.

Each verb is a few lines over the pipeline of :class:`~django_arc.generics.ResourceGenericViewSet`
(rows through ``get_queryset``/``get_object``, writes through ``perform_*``, output through
``render`` and the envelope); none of them decides anything the pipeline does not.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpResponseBase, QueryDict
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from . import envelope
from .events.event import dumps, unstorable_char
from .query import load_relations
from .serializers import (
    ArcJSONField,
    form_values,
    read_decimals_as_written,
    read_many_in_batches,
    refuse_non_finite_floats,
)


class ListMixin:
    """``GET /<name>/``: filter backends, then the pagination class and the list envelope
    (``list_response``)."""

    def list(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        return self.list_response(self.filter_queryset(self.get_queryset()))


class RetrieveMixin:
    """``GET /<name>/{id}/``."""

    def retrieve(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        # kept for the query cache, whose hits re-run the object checks on this row
        self.arc_object = self.get_object()
        return self.success_response(self.render(self.arc_object))


class CreateMixin:
    """``POST /<name>/`` → 201."""

    def create(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        serializer = self.perform_create(self.get_body())
        return self.success_response(self.render_saved(serializer), envelope.CREATED, 201)

    def render_saved(self, serializer: Any) -> Any:
        """A written row for this caller: the serializer's output through the read plan."""
        return self.get_read_plan().shape(serializer.data)


class UpdateMixin:
    """``PATCH /<name>/{id}/`` (partial); ``PUT`` is an alias unless the resource says
    ``update_method = "PATCH"``."""

    def partial_update(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        # the row: the browsable API's page fills its forms from it, as a get's does (the
        # saved row, or the row a refused write's form is shown again over)
        self.arc_object = self.get_object()
        serializer = self.perform_update(self.arc_object, self.get_body())
        self.arc_object = serializer.instance
        return self.success_response(self.render_saved(serializer), envelope.UPDATED)

    def update(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        if self.resource.update_method == "PATCH":
            return self.http_method_not_allowed(request, *args, **kwargs)
        return self.partial_update(request, *args, **kwargs)


class DestroyMixin:
    """``DELETE /<name>/{id}/`` → 200 with ``{"id", "soft"}`` (never 204)."""

    def destroy(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        # the row: the browsable API's page of a refused delete fills its forms from it
        instance = self.arc_object = self.get_object()
        id_value = self.id_value(instance)
        soft = self.perform_destroy(instance)
        return Response(envelope.deleted(id_value, soft))


class ActionMixin:
    """``POST /<name>/{id}/action/`` with ``{"action": "<name>", ...input}`` (SPEC §7).

    The action was resolved from the body and its permission checked in
    ``check_permissions``; the row comes from ``get_object`` (404 when invisible, object
    permission and presets' ``check_object`` applied); ``input`` validates the rest of the
    body (400); the handler runs in a transaction that ends with ``<name>.<action>``."""

    def run_action(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        spec = self.arc_action
        instance = self.get_object()
        # the row, for action_input to judge a generic pair its input half-writes: noted on
        # the view, not passed, so that a ViewSet subclass's override of its one-argument
        # shape still runs (passing it made every action a 500, TypeError) and its call of
        # the base with ``spec`` alone still judges against the row
        self._arc_action_row = instance
        data, event_input = self.action_input(spec)
        observers = self.resource.write_observers
        pk = instance.pk
        with self.write_transaction(always=True), self.existing_rows(instance):
            before = self.snapshot(instance) if observers else None
            result = spec.handler(self, request, instance, data)
            refused = isinstance(result, HttpResponseBase) and result.status_code >= 400
            # a pair the handler set on its row (an input writing half of one, a plain
            # input's own number, the row set before perform_update) names only rows the
            # caller may name, as a write's stored pair does; judged before a refusal of
            # its own too, which keeps its writes (one saved before it stayed unjudged):
            # then as stored, a pair only set in memory being no write
            self.keep_generic_pairs_read(stored=refused)
            if refused:
                # the handler refused with its own answer (a 409 for a row in the wrong
                # state): the action did not happen, so no event or audit entry says it did
                self.keyed_failure(result)
                return result
            # the rows it answers (and audits) render their relations as a get after it does:
            # get_object() read them before the handler, which may have changed them (a review
            # added, the author renamed through a queryset), as an update's hooks may
            answered = _rows_of(result, self.resource.model)
            if observers:
                answered.append(instance)
            answered = [row for row in {id(r): r for r in answered}.values() if row.pk is not None]
            if answered:  # an action answering no row (a dict, a count) builds no queryset
                queryset = self.get_queryset()
                if self.answers_rendered_row():  # as get_object() read it: no snapshot
                    queryset = self.load_rendered_only(queryset)
                load_relations(answered, queryset, reload=True)
            after = self.snapshot(instance) if observers and instance.pk is not None else None
            if instance.pk is None:
                # the handler deleted the row, and Django cleared its pk: the event and the
                # presets still name it, as a DELETE's do
                instance.pk = pk
            payload = {"id": self.id_value(instance), "action": spec.name, "input": event_input}
            self.after_write(spec.name, instance, payload, before, after)
            self.keyed_failure(result)
        if isinstance(result, HttpResponseBase):
            return result
        return self.success_response(self.render_result(result))

    def action_input(self, spec: Any, instance: Any = None) -> tuple[Any, Any]:
        """``(data for the handler, data for the event)``: the validated ``input`` (both),
        or, for an action without one, the rest of the body for the handler only (events
        carry only validated values). ``instance`` is the action's row (by default the one
        :meth:`run_action` read): the generic pair an input writes is judged with the row's
        half it leaves out."""
        if instance is None:
            instance = getattr(self, "_arc_action_row", None)
        body = self.request.data
        rest = {k: v for k, v in body.items() if k != "action"}
        if spec.input is None:
            return rest, None
        context = self.get_serializer_context()
        if isinstance(body, QueryDict):
            # a form body: a list is its name sent once per value, read as DRF reads it
            rest = form_values(body, spec.input(context=context).fields)
            rest.pop("action", None)
        serializer = spec.input(data=rest, context=context)
        read_many_in_batches(serializer.fields)  # DRF's own many=True: 500 ids to a query
        refuse_non_finite_floats(serializer.fields)  # DRF's from 3.18 on, on every DRF
        read_decimals_as_written(serializer.fields)  # a JSON number's digits, not its float
        # its relations may name only rows a create's body could (tenancy, this resource's
        # rows the caller reads), as the resource serializer's do: they "do not exist"
        self._narrow_relations(serializer, row=instance)
        serializer.is_valid(raise_exception=True)
        event_input = serializer.data
        refuse_unstorable(event_input)
        return serializer.validated_data, event_input


def _rows_of(result: Any, model: Any) -> list[Any]:
    """The rows of ``model`` an action's ``result`` answers with (one, a queryset, or a list
    or tuple of them), as :meth:`render_result` renders them. A queryset is read here, into
    its cache, which :meth:`render_result` renders (a ``values()`` one holds no rows)."""
    if isinstance(result, model):
        return [result]
    if isinstance(result, models.QuerySet) and issubclass(result.model, model):
        rows = list(result)
        return rows if all(isinstance(row, model) for row in rows) else []
    if isinstance(result, (list, tuple)) and all(isinstance(row, model) for row in result):
        return list(result)
    return []


def refuse_unstorable(data: Any) -> None:
    """400 ``VALIDATION_ERROR`` naming each field of a validated ``input`` that holds what
    the action's event cannot store (NUL, a lone surrogate, a number beyond JSON such as the
    infinity ``1e400`` parses to): DRF's ``JSONField``, ``DictField`` and ``ListField`` of a
    project's input serializer take some of them, and the event's encoder refusing them
    inside the write was a 500."""
    if not isinstance(data, dict):
        return
    messages = ArcJSONField.default_error_messages  # a body's JSON field words them so
    errors = {}
    for name, value in data.items():
        char = unstorable_char(value)
        if char == "\x00":
            errors[name] = [messages["null_characters"]]
        elif char is not None:
            errors[name] = [messages["surrogate_characters"].format(code_point=ord(char))]
        else:
            try:
                dumps(value)
            except ValueError:  # NaN or an infinity: not JSON
                errors[name] = ["Infinity and NaN are not valid JSON numbers."]
    if errors:
        raise ValidationError(errors)


class RouteMixin:
    """Runs ``@route``s and preset routes: the handler gets the view; non-raw routes are
    enveloped, and routes of unsafe methods run in a transaction."""

    def run_route(self, spec: Any, request: Any, **url_kwargs: Any) -> Any:
        if request.method in SAFE_METHODS:
            result = spec.handler(self, request, **url_kwargs)
        else:
            with self.write_transaction(always=True):
                result = spec.handler(self, request, **url_kwargs)
                # a pair a detail route's handler set on its row, as for an action (its
                # own 4xx answer included, as stored: what it saved before it stands)
                self.keep_generic_pairs_read(
                    stored=isinstance(result, HttpResponseBase) and result.status_code >= 400
                )
                self.keyed_failure(result)
        if isinstance(result, HttpResponseBase):
            return result
        if spec.status in envelope.NO_CONTENT:
            # a 204 (or 304) has no content: an envelope sent after its headers would be
            # read by a keep-alive client as the start of the next response
            return Response(status=spec.status)
        if spec.raw:
            return Response(result, status=spec.status)
        return self.success_response(self.render_result(result), status=spec.status)
