"""The request pipeline every resource route runs, on DRF's own seams.

``ResourceGenericViewSet`` is to django-arc what ``GenericAPIView`` is to DRF: the one place
that knows how a request is judged and how rows are reached. The verbs live in
:mod:`django_arc.mixins`; :mod:`django_arc.viewsets` puts them together. In request order:

1. ``initial()`` — DRF authentication, then the caller's scope (:attr:`scope`, resolved once);
   ``check_permissions()`` evaluates the resource permission for :attr:`permission_key`
   (anonymous refusal → 401), runs every preset's ``check_request`` (e.g. 403
   ``ORG_REQUIRED``), refuses (403) or keeps the permission's row filters; then throttles;
   then the request features that may answer without running the route (a
   :class:`~django_arc.exceptions.ShortCircuit`): the query cache for a list/get, the
   ``Idempotency-Key`` of an unsafe request. ``finalize_response()`` is their other end.
2. Rows: :meth:`get_queryset` = ``Resource.get_queryset`` → every preset's ``row_filter``
   and ``filter_queryset`` → the permission's filters (conditions added by
   :func:`~django_arc.narrowing.narrow`). Lists add the filter backends (the query
   language) and a pagination class; single rows come from :meth:`get_object`, which adds
   the object permission and every preset's ``check_object``. Nothing reads rows another
   way.
3. Output: :meth:`render` serialises through the caller's :class:`~django_arc.fields.ReadPlan`
   (field permissions, ``?select=``); :meth:`success_response` wraps it (:mod:`envelope`).
4. Writes: :meth:`perform_create` / :meth:`perform_update` / :meth:`perform_destroy` run the
   field-write guard, then inside :meth:`write_transaction` the resource's hooks, the save,
   every preset's ``after_write`` and the event (:meth:`after_write`), in that order. Actions,
   preset routes and bulk writes reuse these instead of saving rows themselves.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    connections,
    models,
    router,
    transaction,
)
from django.db.models import Q
from django.db.models.deletion import Collector
from django.db.models.functions import Random
from django.db.models.sql.where import AND
from django.http import Http404, HttpResponseBase, QueryDict
from django.http.request import RawPostDataException
from django.utils.functional import cached_property
from rest_framework import viewsets
from rest_framework.exceptions import APIException, UnsupportedMediaType, ValidationError
from rest_framework.fields import BooleanField, HiddenField, MultipleChoiceField, empty
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.relations import ManyRelatedField, PrimaryKeyRelatedField, RelatedField
from rest_framework.renderers import AdminRenderer, BrowsableAPIRenderer
from rest_framework.request import clone_request
from rest_framework.response import Response
from rest_framework.serializers import ListSerializer, ModelSerializer, Serializer
from rest_framework.settings import api_settings
from rest_framework.utils.field_mapping import ClassLookupDict
from rest_framework.utils.model_meta import get_field_info
from rest_framework.utils.serializer_helpers import BindingDict, BoundField
from rest_framework.views import APIView

from . import envelope
from .events.event import same_json_value, unstorable_char
from .exceptions import (
    STILL_REFERRED_TO,
    ArcError,
    NotFound,
    ServerFault,
    ShortCircuit,
    as_arc_error,
    exception_handler,
    get_request_id,
)
from .fields import FieldAccess, ReadPlan
from .filters import QueryLanguageFilter
from .idempotency.execution import IdempotentExecution
from .logs import log_text
from .narrowing import narrow
from .negotiation import ArcContentNegotiation, FormatQueryMixin
from .pagination import KeysetPagination, PagePagination
from .parsers import ArcFormParser, ArcJSONParser, ArcMultiPartParser, JSONNumber
from .permissions import Permission, PermissionResult
from .query import (
    UNSENDABLE,
    beyond_int64,
    foreign_numeral,
    generic_foreign_keys,
    joined_paths,
    load_relations,
    project_prefetches_first,
)
from .querycache import invalidation
from .querycache.read import CachedRead
from .resources import Resource
from .scope import RequestScope, get_scope
from .serializers import ArcPrimaryKeyRelatedField, form_values
from .settings import arc_settings
from .signals import saves_its_own_way
from .transactions import atomic_on, fault_if_aborted, lockable, refuse_deleted_unjudged
from .uploads import undo_files_with

logger = logging.getLogger("django_arc")

#: DRF's parsers and the ones resources use in their place
_ARC_PARSERS = {
    JSONParser: ArcJSONParser,
    FormParser: ArcFormParser,
    MultiPartParser: ArcMultiPartParser,
}

#: a parser class → the class read in its place (django-arc's own for DRF's, a project's
#: subclass of DRF's under django-arc's bounds, any other as it is), decided once per class
_BOUNDED: dict[type, type] = {}


def _bounded_parser(parser: Any) -> Any:
    """``parser``, or the parser reading the same way under django-arc's bounds (see
    :meth:`ResourceGenericViewSet.get_parsers`)."""
    cls = type(parser)
    bounded = _bounded_for(cls)
    return parser if bounded is cls else bounded()


def _bounded_for(cls: type) -> type:
    bounded = _BOUNDED.get(cls)
    if bounded is None:
        bounded = _BOUNDED[cls] = _bounded_class(cls)
    return bounded


def _bounded_class(cls: type) -> type:
    if cls in _ARC_PARSERS:
        return _ARC_PARSERS[cls]
    if issubclass(cls, tuple(_ARC_PARSERS.values())):
        return cls
    # the bounds of the DRF parser its parse() is (the first in its MRO), not merely the
    # first it is an instance of: a FormParser-then-JSONParser class reads forms
    arc = next((_ARC_PARSERS[base] for base in cls.__mro__ if base in _ARC_PARSERS), None)
    if arc is None:
        return cls
    # the bounds first, then the project's parse(): ``super().parse()`` in them is its
    bounded = type(cls.__name__, (arc, cls), {"__module__": cls.__module__})
    bounded.__qualname__ = cls.__qualname__
    return bounded


class _AdminErrorPage:
    """DRF's ``AdminRenderer`` answers a 400 by running the request again as a GET, to show
    the list or row behind the error. A GET the query language refused raises again there,
    and a route without GET (``/bulk/``, an action) has no ``get`` to run: either escaped the
    renderer as a 500. Those 400s render the error alone, as DRF does for a caller the GET
    is not permitted to; a write's 400 on a route with a GET still shows the page."""

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> Any:
        context = renderer_context or {}
        response, view = context.get("response"), context.get("view")
        if getattr(response, "status_code", None) == 400 and view is not None:
            try:
                if hasattr(view, "get") and context["request"].method not in ("GET", "HEAD"):
                    return super().render(data, accepted_media_type, renderer_context)
            except (APIException, DjangoPermissionDenied, Http404, DjangoValidationError):
                # the GET behind the error is refused too (a project's check may raise
                # Django's own exceptions, which only a view's handling answers: its
                # PermissionDenied, Http404 and ValidationError, 403/404/400)
                pass
            return BrowsableAPIRenderer.render(self, data, accepted_media_type, renderer_context)
        return super().render(data, accepted_media_type, renderer_context)


#: the actions whose forms DRF builds from the resource's serializer: one row's body
_ROW_ACTIONS = frozenset({"list", "create", "retrieve", "update", "partial_update", "destroy"})


class _ResourceForms:
    """The forms of DRF's browsable API on a resource's pages, through its two seams
    (``get_rendered_html_form``, ``get_raw_data_form``):

    - a row's page fills its ``PUT``/``PATCH`` forms from that row. DRF finds the row as
      ``data.serializer.instance``, which the envelope hides; it is handed the serializer
      of the form instead, built by the view while :attr:`building_forms` is set, so it
      holds the fields the caller may write and relations narrowed to what a body may name
      (:meth:`ResourceGenericViewSet.get_serializer`);
    - the page of a write refused for what it sent (400, 409, 422) shows the form sent again
      holding what was sent and each field's error, as DRF does from the serializer the
      envelope hides (:meth:`ResourceGenericViewSet.refused_form`);
    - a route's page (bulk, an action, a custom route) offers no HTML form and an empty
      raw-data form: DRF would build both from the resource's serializer, one row's body,
      which the route refuses; nor a ``DELETE`` button when its ``DELETE`` route takes a
      body (bulk's ``ids``/``filter``): the button sends none."""

    def get_rendered_html_form(self, data: Any, view: Any, method: str, request: Any) -> Any:
        if method != "DELETE" and view.action not in _ROW_ACTIONS:
            return None
        if method == "DELETE" and _takes_a_body(view, "delete"):
            return None
        with _building_forms(view):
            data = _form_data(data, view, self)
            if data is _NO_ROW and method in ("PUT", "PATCH"):
                return None
            return super().get_rendered_html_form(data, view, method, request)  # type: ignore[misc]

    def show_form_for_method(self, view: Any, method: str, request: Any, obj: Any) -> Any:
        # DRF catches its own APIException only; a check raising Django's PermissionDenied,
        # Http404 or ValidationError (a request answers them 403/404/400) refuses the form,
        # not the page
        try:
            return super().show_form_for_method(view, method, request, obj)  # type: ignore[misc]
        except (DjangoPermissionDenied, Http404, DjangoValidationError):
            return False

    def get_raw_data_form(self, data: Any, view: Any, method: str, request: Any) -> Any:
        with _building_forms(view):
            data = _form_data(data, view, self)
            if data is _NO_ROW and method in ("PUT", "PATCH"):
                return None
            form = super().get_raw_data_form(data, view, method, request)  # type: ignore[misc]
        if form is not None and view.action not in _ROW_ACTIONS:
            form.fields["_content"].initial = None
        return form


@contextmanager
def _building_forms(view: Any) -> Iterator[None]:
    view.building_forms = True
    try:
        yield
    finally:
        view.building_forms = False


class _FormData:
    """What DRF reads of a response's data to fill a form: ``serializer.instance``."""

    __slots__ = ("serializer",)

    def __init__(self, serializer: Any) -> None:
        self.serializer = serializer


#: the actions whose page is one row's: a get's, and an update's
_ROW_PAGES = frozenset({"retrieve", "update", "partial_update"})
#: the writes whose form a refused answer shows again
_FORM_WRITES = frozenset({"create", "update", "partial_update"})
#: the answers refusing a write for what it sent (invalid, taken, a hook's "unprocessable"):
#: its form is shown again
_REFUSED_INPUT = frozenset({400, 409, 422})


def _takes_a_body(view: Any, method: str) -> bool:
    """Whether the route ``method`` is sent to on this page declares a body (``request``)."""
    name = (getattr(view, "action_map", None) or {}).get(method)
    spec = view.route_specs.get(name) if name else None
    return spec is not None and spec.request is not None


#: the page of a row (a get's, an update's, a delete's) whose row is unknown (answered
#: before it was read, absent, or gone since): its PUT/PATCH forms are not offered, which
#: filled from nothing would post blanks over the row (and offer the fields the caller
#: reads masked)
_NO_ROW = _FormData(None)


def _form_data(data: Any, view: Any, renderer: Any) -> Any:
    """``data``, or on a row's page (a get, an update) the form's serializer of that row,
    or on a refused write's page the form sent, holding what was sent (one per page, not
    one per form); :data:`_NO_ROW` on a refused update's page whose row is unknown."""
    known = view.__dict__.get("_form_data", _ABSENT)
    if known is _ABSENT:
        known = view._form_data = _page_form(data, view, renderer)
    return data if known is None else known


def _page_form(data: Any, view: Any, renderer: Any) -> _FormData | None:
    row = getattr(view, "arc_object", None)
    if view.action == "destroy":
        # a refused delete's page is its row's, filled from the row as stored; a delete
        # that happened (or a soft one) leaves no row to offer a PUT over
        if row is None or not view.raised or not _reread(row):
            return _NO_ROW
        return _FormData(view.get_serializer(instance=row))
    if view.raised and view.action in _FORM_WRITES:
        # the write was refused: its row as stored (a hook may have changed the instance
        # before the refusal rolled the write back)
        if row is not None and not _reread(row):
            return _NO_ROW
        response = (getattr(renderer, "renderer_context", None) or {}).get("response")
        refused_input = getattr(response, "status_code", None) in _REFUSED_INPUT
        if refused_input and (
            view.action == "create" or row is not None and view.action == "update"
        ):
            # DRF shows again the form whose method was sent: POST's, PUT's over its row (a
            # PATCH is the raw-data form's, whose page's PUT form holds the row, as DRF's
            # does)
            return _FormData(view.refused_form(row, data))
    if view.action not in _ROW_PAGES:
        return None
    if row is None:
        # a row's page answered before its row was read (throttled, refused by the
        # idempotency store) or without one (404)
        return _NO_ROW
    return _FormData(view.get_serializer(instance=row))


def _reread(row: Any) -> bool:
    """``row`` read again from its table; ``False`` when it is gone."""
    try:
        row.refresh_from_db()
    except ObjectDoesNotExist:
        return False
    return True


def _offers_current(field: Any, relation: Any, row: Any) -> bool:
    """Whether ``relation``'s choices (its queryset) hold every row ``field`` of ``row``
    points at now: one query. A ``many=True`` relation not read with the row (a refused
    update's row, read again) is asked whether any of its rows is not among the choices,
    one query, rather than listed and then counted among them (two)."""
    try:
        current = field.get_attribute(row)
    except (AttributeError, KeyError, ObjectDoesNotExist):
        return True
    queryset = relation.get_queryset()
    if queryset is None:
        return True
    if (
        field is not relation
        and isinstance(current, models.QuerySet)
        and current._result_cache is None
        and current.db == queryset.db
        and current.model is queryset.model
    ):
        return not current.exclude(pk__in=queryset.values("pk")).exists()
    items = list(current) if field is not relation else [current]
    pks = {getattr(item, "pk", None) for item in items} - {None}
    return not pks or queryset.filter(pk__in=pks).count() == len(pks)


def _dress_selects(serializer: Any) -> None:
    """A form's writable relations, wherever DRF renders one (nested serializers, the
    ``child_relation`` of a ``many=True`` one), labelling each option of their ``<select>``
    by its key (the value a body sends) unless a preset narrowed its rows to the caller's
    (:meth:`ResourceGenericViewSet._narrow_relation`: a tenant's). The select offers every
    row a body may name, and DRF labels each with ``str(row)``: a relation nothing narrowed
    (``auth.User``, ``Organization`` on a resource without tenancy, or on one whose tenancy
    the related model does not share) listed every username and organization name to any
    caller who may write, where a body only learns whether a key exists. A relation class
    defining its own ``display_value`` (DRF's seam for the labels) keeps its labels. Their
    options come in a stable order (:func:`_in_a_stable_order`)."""
    serializer = getattr(serializer, "child", serializer)
    for field in serializer.fields.values():
        if getattr(field, "read_only", False):
            continue
        if isinstance(field, Serializer):
            _dress_selects(field)
            continue
        relation = getattr(field, "child_relation", field)
        if not isinstance(relation, RelatedField):
            continue
        _offer_in_a_stable_order(relation)
        if type(relation).display_value is RelatedField.display_value:
            relation.display_value = functools.partial(_key_label, relation)


def _narrows(given: Any, queryset: Any) -> bool | None:
    """Whether a preset's ``related_queryset`` narrowed ``given`` to ``queryset``: told by
    their ``WHERE``, not by the object returned. ``True``: ``queryset`` keeps every
    condition of ``given`` (ANDed) and adds its own; ``False``: it filters as ``given`` does
    (none, or the given one's: a new but unfiltered queryset, the given one cloned, narrows
    nothing); ``None``: it filters otherwise, which may be wider (another queryset of the
    model, ``given | other``), so the rows are not known to be narrowed any more. Counted
    as narrowed, such a widening after a tenant's narrowing named another tenant's rows in a
    form's select (:func:`_dress_selects`). What is no queryset is told by identity, as
    before; a manager by its ``all()``."""
    if queryset is given:
        return False
    # DRF's model serializer gives a relation the related model's manager
    given, queryset = (
        value.all() if isinstance(value, models.Manager) else value for value in (given, queryset)
    )
    if not (isinstance(given, models.QuerySet) and isinstance(queryset, models.QuerySet)):
        return True
    before, where = given.query.where, queryset.query.where
    if where == before or not where:
        return False if not before or where == before else None
    if not before:
        return True
    kept = before.children if _conjunction(before) else [before]
    return True if _conjunction(where) and all(c in where.children for c in kept) else None


def _conjunction(where: Any) -> bool:
    """Whether a ``WHERE`` node is its children ANDed (not negated)."""
    return where.connector == AND and not where.negated


def _key_label(relation: RelatedField, row: Any) -> str:
    """``row``'s label in ``relation``'s ``<select>``: its name (``str(row)``) when a preset
    narrowed the rows to the caller's, else its key, the option's value."""
    if getattr(relation, "arc_narrowed", False):
        return str(row)
    return str(relation.to_representation(row))


def _in_a_stable_order(queryset: Any) -> Any:
    """``queryset`` in its own order, its ties broken by primary key (by primary key when
    it has none): the first ``html_cutoff`` rows a ``<select>`` offers are read twice, when
    the form is rendered and when it is sent back (:func:`_rows_not_offered`), and a slice
    of an unordered query (``auth.Group`` has no ``Meta.ordering``), or of one ordered by a
    column that ties (a name, a date), may differ between two queries on PostgreSQL: a row
    the form never showed would count as offered, and the form's update would remove it.
    A query that cannot be reordered (sliced, combined, ordered by ``extra()``) is as
    given; one ``distinct()`` on fields is ordered by them first, a random order
    (``"?"``, ``OrderBy(Random())``: :func:`_random_term`) by primary key."""
    if not isinstance(queryset, models.QuerySet):
        return queryset
    query = queryset.query
    if query.is_sliced or query.combinator or query.extra_order_by:
        return queryset
    if not queryset.ordered:
        # PostgreSQL's DISTINCT ON must lead the ORDER BY (else every read is a 500); by
        # pk after them, each group's row is its first by primary key, in every read.
        return queryset.order_by(*query.distinct_fields, "pk")
    given = list(query.order_by or (query.get_meta().ordering if query.default_ordering else ()))
    # a random term ("?", OrderBy(Random()), Random().desc()) differs between the two
    # reads by design: the select drops it.
    ordering = [term for term in given if not _random_term(term)]
    pk = query.get_meta().pk
    keys = {"pk", pk.name, pk.attname}
    if ordering == given and (
        not ordering or any(isinstance(term, str) and term.lstrip("-") in keys for term in ordering)
    ):
        return queryset
    return queryset.order_by(*ordering, "pk")


def _random_term(term: Any) -> bool:
    """Whether an ``order_by`` term orders at random: the string ``"?"`` or an expression
    holding ``Random()`` (``OrderBy(Random())``, ``Random().desc()``, a bare ``Random()``),
    each of which draws another order on every query."""
    if isinstance(term, str):
        return term == "?"
    if isinstance(term, Random):
        return True
    sources = getattr(term, "get_source_expressions", None)
    return bool(sources) and any(_random_term(source) for source in sources() if source is not None)


def _offer_in_a_stable_order(relation: RelatedField) -> None:
    """``relation``'s choices, as DRF slices them for a ``<select>``, in a stable order."""
    base = relation.get_queryset
    relation.get_queryset = lambda: _in_a_stable_order(base())


def _rows_not_offered(field: ManyRelatedField, row: Any) -> list[Any]:
    """The rows ``field`` of ``row`` holds that its form's ``<select multiple>`` does not
    offer: outside its relation's queryset (as narrowed for this caller), or past its
    ``html_cutoff`` (DRF lists the queryset's first rows, in its order)."""
    try:
        current = field.get_attribute(row)
    except (AttributeError, KeyError, ObjectDoesNotExist):
        return []
    queryset = field.child_relation.get_queryset()
    if queryset is None or current is None:
        return []
    if field.html_cutoff is not None:
        queryset = _in_a_stable_order(queryset)[: field.html_cutoff]
    offered = set(queryset.values_list("pk", flat=True))
    return [item for item in current if getattr(item, "pk", None) not in offered]


_ARC_RENDERERS: dict[type, type] = {}

#: the template of a form's box and multiple select: theirs, after a hidden input saying
#: "nothing" (a box's ``false``, a list's blank)
_UNSET_TEMPLATE = "django_arc/forms/unset.html"
#: the fields whose form input a browser leaves out when nothing is chosen, and what the
#: hidden input sends then
_UNSET_VALUES = {BooleanField: "false", ManyRelatedField: "", MultipleChoiceField: ""}


def _boxed(form_renderer: type) -> type:
    """``form_renderer`` (DRF's ``HTMLFormRenderer`` or a project's) whose boxes also send
    ``false`` when unticked, and whose multiple selects send a blank (dropped) when nothing
    is selected. A browser sends nothing for either, and an update is partial, so a row's
    ``PUT`` form with a box unticked, or a many-to-many with every row deselected, left the
    row's value alone (200, nothing changed). A field whose ``style`` names a template of
    its own keeps it (DRF lets the field's style win), as does a form renderer naming one;
    one naming another ``base_template`` (``checkbox_multiple.html``) is included after the
    hidden input as DRF's is."""
    style = getattr(form_renderer, "default_style", None)
    if not isinstance(style, ClassLookupDict):
        return form_renderer
    mapping = dict(style.mapping)
    for field_class, unset in _UNSET_VALUES.items():
        own = mapping.get(field_class)
        if own is None or own.get("template") not in (None, _UNSET_TEMPLATE):
            continue
        mapping[field_class] = {**own, "template": _UNSET_TEMPLATE, "arc_unset": unset}
    attrs = {
        "__module__": form_renderer.__module__,
        "default_style": ClassLookupDict(mapping),
        "render_field": functools.partialmethod(_render_field_unset_unless_null, form_renderer),
    }
    boxed = type(form_renderer.__name__, (form_renderer,), attrs)
    boxed.__qualname__ = form_renderer.__qualname__
    return boxed


def _render_field_unset_unless_null(
    self: Any, form_renderer: type, field: Any, parent_style: Any
) -> Any:
    """The boxed form renderer's ``render_field``: a box of a nullable field showing a null
    gets no hidden ``false``. A box cannot show null (DRF renders it unticked, as
    ``false``), so sent back as shown it wrote ``false`` over a null the user never touched
    (a form changing the name alone), and a create's unticked nullable box saved ``false``
    where DRF's form saves null. Left out, such a box sends nothing unless ticked, as DRF's
    own form does; one showing ``true`` or ``false`` still sends ``false`` when unticked."""
    if (
        isinstance(field._field, BooleanField)
        and field._field.allow_null
        and field.value is None
        and "template" not in field.style
    ):
        shown = BoundField(field._field, field.value, field.errors, prefix=field._prefix)
        shown.style = {**field._field.style, "arc_unset": None}
        field = shown
    return form_renderer.render_field(self, field, parent_style)


def _arc_renderer(renderer: Any) -> Any:
    """``renderer``, or for DRF's ``BrowsableAPIRenderer`` (a project's subclass, the
    ``AdminRenderer`` too) the same class with the resource's forms
    (:class:`_ResourceForms`), and for an ``AdminRenderer`` its 400s rendered without a 500
    (:class:`_AdminErrorPage`)."""
    cls = type(renderer)
    if not isinstance(renderer, BrowsableAPIRenderer) or isinstance(renderer, _ResourceForms):
        return renderer
    guarded = _ARC_RENDERERS.get(cls)
    if guarded is None:
        bases = (_AdminErrorPage,) if issubclass(cls, AdminRenderer) else ()
        attrs = {
            "__module__": cls.__module__,
            "form_renderer_class": _boxed(cls.form_renderer_class),
        }
        guarded = type(cls.__name__, (*bases, _ResourceForms, cls), attrs)
        guarded.__qualname__ = cls.__qualname__
        _ARC_RENDERERS[cls] = guarded
    return guarded()


#: :meth:`ResourceGenericViewSet._allowed_methods`' answers, by class, ``metadata_class``
#: and the names of the instance's attributes (the handlers it holds among them)
_ALLOWED: dict[tuple[Any, ...], tuple[str, ...]] = {}
_ALLOWED_SIZE = 1024


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


class ResourceGenericViewSet(FormatQueryMixin, viewsets.GenericViewSet):
    """The pipeline of a generated ViewSet; ``resource`` is set on each generated subclass."""

    resource: Any = None
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"
    filter_backends = [QueryLanguageFilter]
    pagination_class = PagePagination
    keyset_pagination_class = KeysetPagination
    metadata_class = None  # OPTIONS → 405: the schema lives at /api/schema/
    #: route name → RouteSpec, and route name → its compiled permission (set per resource)
    route_specs: dict[str, Any] = {}
    route_permissions: dict[str, Permission | None] = {}
    #: the filter backends, instantiated once per generated class (they are stateless)
    _backends: list[Any] = []

    #: the parsed list query (set by the query-language backend on list routes)
    list_query: Any = None
    #: the domain action a ``POST …/action/`` names (resolved before its permission)
    arc_action: Any = None
    #: the row filters the granted permission asked for (``require_owner`` …)
    permission_filters: dict[str, Any] | Q | None = None
    #: what each preset's ``row_filter`` answered the last :meth:`get_queryset`, in
    #: ``preset_list`` order: the query cache asks which models they read right after
    #: building the queryset (``conditions_invalidate``), without asking the presets again
    row_filters: list[Any] | None = None
    #: while :meth:`may_read` asks whether the caller may read the row a write is refused
    #: on (``action`` is then ``retrieve``), the write's own action; ``None`` otherwise
    reading_for: str | None = None
    #: the rows a write of many rows judges one by one (a bulk route): :meth:`may_read`
    #: asks which of them the caller may read in one query, when the first is refused
    judged_rows: list[Any] | None = None
    #: this request's ``Idempotency-Key`` claim (unsafe methods; :mod:`.idempotency`)
    idempotent_execution: IdempotentExecution | None = None
    #: this request's query-cache lookup (cached list/get; :mod:`.querycache`)
    cached_read: CachedRead | None = None
    #: answered from ``initial()`` (a replay, a cache hit): the route did not run
    short_circuited: bool = False
    #: answered by ``handle_exception()``: the route raised, and its write transaction (if
    #: any) rolled back
    raised: bool = False
    #: the row a get answered (the query cache keeps it for its hits' object checks; the
    #: browsable API's forms are filled from it, and from the row an update saved)
    arc_object: Any = None
    #: DRF's browsable API is building this page's forms (:class:`_ResourceForms`)
    building_forms: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's own ``get_queryset()`` (a project's ViewSet subclass, DRF's seam)
        answers with its ``Prefetch`` objects first (:func:`project_prefetches_first`):
        ``super().get_queryset().prefetch_related(Prefetch("reviews", queryset=…))`` put
        it after the plain ``"reviews"`` django-arc prefetches, which Django refuses with
        a ``ValueError`` on every read (a get answered 404, a list 500). The one Python
        calls, wherever the MRO finds it: a project's mixin listed before the generated
        ViewSet (``class V(NarrowMixin, BookResource.as_viewset())``) defines it too."""
        super().__init_subclass__(**kwargs)
        # as the MRO holds it: a staticmethod or classmethod is wrapped as one (called with
        # ``self`` it was a TypeError on every request), anything else (a property) is left
        raw = inspect.getattr_static(cls, "get_queryset")
        kind = type(raw) if isinstance(raw, (staticmethod, classmethod)) else None
        own = raw.__func__ if kind is not None else raw
        if (
            own is ResourceGenericViewSet.get_queryset
            or not inspect.isfunction(own)
            or getattr(own, "_arc_prefetches_first", False)
        ):
            return

        @functools.wraps(own)
        def get_queryset(*args: Any, **kw: Any) -> Any:
            queryset = own(*args, **kw)
            if isinstance(queryset, models.QuerySet):
                return project_prefetches_first(queryset)
            return queryset

        get_queryset._arc_prefetches_first = True  # type: ignore[attr-defined]
        wrapped = kind(get_queryset) if kind is not None else get_queryset
        cls.get_queryset = wrapped  # type: ignore[method-assign]

    # -- DRF policy hooks --------------------------------------------------------------------

    def get_exception_handler(self) -> Any:
        return exception_handler

    def _allowed_methods(self) -> list[str]:
        """DRF's ``Allow`` header (every response's, a 405's and a cache HIT's included),
        without OPTIONS where the view has no metadata: it lists OPTIONS because the view
        has an ``options()``, which then answers 405 all the same.

        DRF asks ``hasattr(self, method)`` of each of ``http_method_names`` on every
        request (about 10 k instructions of a HIT). The answer depends on the class and on
        the handlers the instance holds (``as_view()`` sets one per method its route maps,
        ``setup()`` adds ``head``), so it is kept per class, ``metadata_class``, names
        of the instance's attributes and, when a route gave the instance its own,
        ``http_method_names`` (:data:`_ALLOWED`)."""
        cls = type(self)
        names = frozenset(self.__dict__)
        memo_key: tuple[Any, ...] = (cls, self.metadata_class, names)
        if "http_method_names" in names:
            # a route's own (``as_view(http_method_names=...)``): its value, not only its name
            memo_key += (tuple(self.http_method_names),)
        known = _ALLOWED.get(memo_key)
        if known is None:
            methods = super()._allowed_methods()
            if self.metadata_class is None and cls.options is viewsets.GenericViewSet.options:
                methods = [m for m in methods if m != "OPTIONS"]
            known = tuple(methods)
            if len(_ALLOWED) >= _ALLOWED_SIZE:
                _ALLOWED.clear()  # attribute names made per request would grow it unbounded
            _ALLOWED[memo_key] = known
        return list(known)

    def get_permissions(self) -> list[Any]:
        # Resource permissions replace DEFAULT_PERMISSION_CLASSES: they are checked in
        # check_permissions() below, where the scope is known.
        return []

    def get_serializer_class(self) -> type:
        return self.resource.serializer

    def get_parsers(self) -> list[Any]:
        # DRF's own JSONParser (the default, or named in settings) becomes ArcJSONParser,
        # which bounds nesting, and its form parsers refuse a body their charset cannot
        # decode with a 400; so do the project's subclasses of them (a camelCase parser),
        # whose parse() is still DRF's json or form reading underneath. Any other parser is
        # the project's (or the route's) choice.
        parent = super().get_parsers
        if getattr(parent, "__func__", None) is APIView.get_parsers:
            # DRF's own (one instance per class): the bounded class built at once, rather
            # than DRF's instance built and then replaced, on every request, a GET's too
            return [_bounded_for(cls)() for cls in self.parser_classes]
        return [_bounded_parser(p) for p in parent()]

    def get_renderers(self) -> list[Any]:
        # DRF's browsable renderers build the resource's forms (filled from a row's, none on
        # a route's page); its AdminRenderer, named by the project, renders its 400s
        # without a 500
        return [_arc_renderer(r) for r in super().get_renderers()]

    def get_content_negotiator(self) -> Any:
        # DRF's default negotiation (the default, or named in settings) becomes
        # ArcContentNegotiation, which remembers its answers; a project's own is kept.
        if not hasattr(self, "_negotiator"):
            negotiator = self.content_negotiation_class
            if negotiator is DefaultContentNegotiation:
                negotiator = ArcContentNegotiation
            self._negotiator = negotiator()
        return self._negotiator

    def handle_exception(self, exc: Exception) -> Any:
        if isinstance(exc, ShortCircuit):
            self.short_circuited = True
            return exc.response
        self.raised = True
        if (
            isinstance(exc, RawPostDataException)
            and self.route_spec is not None
            and _body_too_big(self.request)
        ):
            # a route's request.body after _parse_body() streamed a body past the limit
            exc = RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        elif isinstance(exc, RawPostDataException) and self.route_spec is not None:
            exc = _body_read_before(self.request)
        if self.idempotent_execution is not None:
            self.idempotent_execution.abort(exc)
        return super().handle_exception(exc)

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        """DRF's, then the request features' ends: the idempotent claim stores (or releases)
        the answer, the query cache stores a miss, and an unsafe request that succeeded
        invalidates the resource's cached answers when its writes commit."""
        try:
            response = super().finalize_response(request, response, *args, **kwargs)
        except BaseException as exc:
            # DRF refuses what the view returned (a project's create() returning None):
            # the keyed request's transaction must not stay open on the thread's connection,
            # which every later request of the thread would then find broken, nor its key
            # held with nothing running
            execution, self.idempotent_execution = self.idempotent_execution, None
            if execution is not None:
                execution.give_up(exc)
            raise
        execution, self.idempotent_execution = self.idempotent_execution, None
        if execution is not None:
            try:
                error = execution.finish(response)
            except BaseException as exc:  # the store failed releasing: never leave it open
                execution.abort(exc)
                raise
            if error is not None:
                raised = self.raised
                response = super().finalize_response(
                    request, self.handle_exception(error), *args, **kwargs
                )
                # on the cache store the writes may have committed before the answer
                # failed to be kept: counted as written, so the query cache retires them
                self.raised = raised or execution.store.transactional
        read, self.cached_read = self.cached_read, None
        if read is not None:
            read.finish(response)
        if request.method not in SAFE_METHODS and self.action not in (None, "metadata"):
            # A route that returns an error of its own (a 409 as a Response) has had its
            # writes committed all the same; one that raised has had them rolled back.
            wrote = response.status_code < 400 or not self.raised
            invalidation.request_wrote(self.resource, wrote and not self.short_circuited)
        response["X-Request-Id"] = get_request_id(request)
        return response

    # -- who is asking, and may they --------------------------------------------------------

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        """DRF's ``initial()`` (negotiation, authentication and the scope, permissions,
        throttles); then the request features that may answer without running the route: a cached list/get
        (:class:`~django_arc.querycache.read.CachedRead`) or an ``Idempotency-Key`` seen
        before (:class:`~django_arc.idempotency.execution.IdempotentExecution`). Both come
        after every check, so a repeat or a cached answer is judged like any request."""
        super().initial(request, *args, **kwargs)
        if self.action in (None, "metadata"):
            return
        if request.method in SAFE_METHODS:
            self.cached_read = CachedRead.lookup(self)
        else:
            invalidation.request_writes()
            self._parse_body()
            self.idempotent_execution = IdempotentExecution.begin(self)

    def _parse_body(self) -> None:
        """Parse the body of an unsafe request before anything runs, as a keyed request's
        is for its fingerprint: malformed JSON is a 400 whether or not an
        ``Idempotency-Key`` came with it, and whether or not the route or ``DELETE`` reads
        ``request.data``. A body no parser takes is left to the route (a CSV it reads from
        ``request.body``; the 415 of a create is its serializer's), and a raw route's body
        is never parsed.

        A route's body is kept as it arrived first, within ``DATA_UPLOAD_MAX_MEMORY_SIZE``
        (as reading ``request.body`` would): a parser reading the request's stream (a
        multipart one) left the route's ``request.body`` raising ``RawPostDataException``.
        Past the limit it is not kept — an upload route streams its files — and the route's
        ``request.body`` is the 413 it would be anyway (:meth:`handle_exception`).

        Private, not a seam: a step of the contract (no route runs on a body that does not
        parse) whose only way out is a route's ``raw=True``, and a name a project's ViewSet
        subclass may already give a helper of its own, which would have replaced it
        (``docs/decisions.md``, fix-seen8a)."""
        spec = self.route_spec
        if spec is not None and spec.raw:
            return
        if spec is not None and _stated_length(self.request) and not _body_too_big(self.request):
            # a body of no stated length (chunked, under ASGI) is one DRF parses nothing
            # of: its stream stays unread for the route, and is not read into memory here
            try:
                self.request._request.body  # noqa: B018
            except RawPostDataException:  # read before the view (a middleware's request.POST)
                pass
        try:
            self.request.data  # noqa: B018
        except UnsupportedMediaType:
            pass

    def perform_authentication(self, request: Any) -> None:
        """DRF's ``initial()`` calls this between negotiation and permissions: the caller's
        scope is resolved here, once for the request, right after DRF authentication."""
        super().perform_authentication(request)
        if self.action not in (None, "metadata"):
            # A method the route does not map answers 405 before anyone is asked who they are.
            self.scope  # noqa: B018  (resolve now: an impossible header fails here)

    @cached_property
    def scope(self) -> RequestScope:
        """The caller (SPEC §4), from DRF's authenticated identity."""
        return get_scope(self.request)

    @cached_property
    def field_access(self) -> FieldAccess:
        """What this caller may read, see masked and write, field by field: a write's by the
        fields the request's serializer has (:meth:`~django_arc.resources.Resource.writes_judged`)."""
        return self._writes_judged[0].for_scope(self.scope)

    @cached_property
    def _writes_judged(self) -> tuple[Any, dict[str, Any]]:
        return self.resource.writes_judged(self)

    @property
    def judged_action(self) -> str | None:
        """The action this request is judged as: its own, but for a project's
        ``metadata_class`` (DRF's ``OPTIONS``), which describes a route to the callers who
        may read it (judged as the route's GET, else as the resource's read of a list or a
        row) and each write it describes (DRF asks again with the request cloned as
        ``POST``/``PUT``) to the callers who may send it. Without metadata ``OPTIONS`` is a
        405, before any permission (:meth:`check_permissions`)."""
        action = self.action
        if action != "metadata" or self.metadata_class is None:
            return action
        method = self.request.method.lower()
        method = "get" if method in ("options", "head") else method
        judged = (getattr(self, "action_map", None) or {}).get(method)
        if judged is None and method == "get":
            detail = (self.lookup_url_kwarg or self.lookup_field) in self.kwargs
            judged = "retrieve" if detail else "list"
        return judged

    @property
    def route_spec(self) -> Any:
        """The :class:`~django_arc.actions.RouteSpec` of this request's route, if custom."""
        specs = self.route_specs
        if not specs:  # no route of its own: asked several times per request, answered here
            return None
        action = self.action
        if action == "metadata":  # the property's call only where it can differ from action
            action = self.judged_action
        return specs.get(action or "")

    @property
    def permission_key(self) -> str:
        """The key this request is judged under (and presets are told)."""
        spec = self.route_spec
        if spec is not None:
            return spec.key
        if self.arc_action is not None:
            return self.arc_action.name
        action = self.action or ""
        if action == "metadata":  # the property's call only where it can differ from action
            action = self.judged_action or ""
        return PERMISSION_KEYS.get(action, action)

    def get_resource_permission(self) -> Permission | None:
        """The permission guarding this request; ``None`` denies (fail closed)."""
        spec = self.route_spec
        if spec is not None and spec.permissions is not None:
            return self.route_permissions[spec.name]
        if self.arc_action is not None:
            return self.resource.action_permission(self.arc_action)
        return self.resource.get_permission(self.permission_key)

    def check_permissions(self, request: Any) -> None:
        action = self.action
        if action is None or (action == "metadata" and self.metadata_class is None):
            return  # no OPTIONS metadata: its 405 comes before any permission
        if (self.judged_action if action == "metadata" else action) == "run_action":
            self.arc_action = self.resolve_action(request)
        permission = self.get_resource_permission()
        result = (
            permission(request, self.resource, self.permission_key)
            if permission is not None
            else DENIED
        )
        if not result.granted and self.scope.kind == "public":
            raise ArcError("UNAUTHORIZED", "Authentication required", 401)
        for preset in self.resource.preset_list:
            preset.check_request(self)
        if not result.granted:
            raise ArcError("FORBIDDEN", result.reason or "Permission denied", 403)
        self.permission_filters = result.filters

    def check_object_permissions(self, request: Any, obj: Any) -> None:
        """The permission's object check, then every preset's ``check_object``. A write
        refused 403 (an ``ArcError``, DRF's or Django's ``PermissionDenied``), 401 (DRF's
        ``NotAuthenticated`` of an anonymous caller) or with any other refusal below 500 (a
        409, a 429, DRF's or Django's ``ValidationError``, a 404 of the project's own code)
        on a row the caller
        may not read (:meth:`may_read`) is the 404 of a missing row instead: the row was
        found through the *write's* filters, and a refusal would confirm what the caller's
        reads never show (SPEC: a record outside the caller's permission filters is 404,
        never 403)."""
        try:
            self._object_checks(request, obj)
        except (APIException, DjangoPermissionDenied, DjangoValidationError) as exc:
            # an ArcError, or DRF's or Django's PermissionDenied a project's preset raises
            # (DRF answers 403 for either): any 403, as may_read takes any refusal; a 401
            # (DRF's NotAuthenticated refusing an anonymous write), a 409, a 429 or a
            # validation error or a 404 of the project's own code confirm the row as surely.
            # A NOT_FOUND is a missing row's answer already; a 5xx is no refusal (an outage)
            if isinstance(exc, APIException):
                status = exc.status_code
            else:
                status = 400 if isinstance(exc, DjangoValidationError) else 403
            if (
                not 400 <= status < 500
                or (status == 404 and as_arc_error(exc).code == "NOT_FOUND")
                or request.method in SAFE_METHODS
                or self.may_read(obj)
            ):
                raise
            raise NotFound(f"{self.resource.name} row refused and not readable") from None

    def _object_checks(self, request: Any, obj: Any) -> None:
        """The permission's object check, then every preset's ``check_object``, in order;
        raises the first refusal. Asked as a GET within :meth:`may_read` (``reading_for``
        set), a throttle's refusal (status 429) is held while the checks after it are asked,
        and raised only when none of them refuses: a throttle says "not now", not "not
        this row", so a 429 raised by the GET of a row means every other check passed
        (:meth:`_reads` then counts the row readable), while a check after the throttle
        that would refuse the row (an embargo, an owner's rule) still makes it unreadable,
        whatever the presets' order."""
        held: Exception | None = None

        def permission_check() -> None:
            permission = self.get_resource_permission()
            if permission is None:
                raise ArcError("FORBIDDEN", "Not permitted", 403)
            result = permission(request, self.resource, self.permission_key, obj)
            if not result.granted:
                raise ArcError("FORBIDDEN", result.reason or "Permission denied", 403)

        checks = [permission_check]
        checks += [functools.partial(p.check_object, self, obj) for p in self.resource.preset_list]
        for check in checks:
            try:
                check()
            except APIException as exc:
                if self.reading_for is None or not _throttle(exc):
                    raise
                held = held or exc
        if held is not None:
            # every other check of this row passed: :meth:`_reads` need not ask them again
            self.__dict__["_throttled_row"] = obj.pk
            raise held

    def may_read(self, obj: Any) -> bool:
        """Whether the caller may read ``obj`` as a GET of it reads it: the resource's
        ``get`` permission granted, ``obj`` among the rows a GET of it is looked up in
        (:meth:`get_queryset`, the permission's row filters applied), its object check
        and every preset's ``check_object`` passed. Asked only of a write about to be
        refused (one query; one for all the rows of a bulk write, :attr:`judged_rows`,
        which ask the GET's permission and presets' ``check_request`` once too,
        :meth:`_get_granted`), as a GET of the row asks it: the view's
        ``request`` is the caller's request as a GET, its ``action`` ``retrieve`` and its
        permission filters the ``get`` permission's meanwhile, so a check judging by the
        method (DRF's ``IsOwnerOrReadOnly``: any safe method) or by ``view.action`` reads
        as it does on the GET, and so does the narrowing of a preset or of a ViewSet
        subclass's ``get_queryset()`` that keeps some rows from readers. A preset's route
        writing rows a GET does not read names the route that reads them
        (:meth:`~django_arc.presets.base.Preset.reading_route`: a restore of deleted rows,
        which a list of its own reads), asked instead with its action, its permission and
        filters (a list: no object check). ``reading_for`` names the refused write's action
        meanwhile. The whole GET is asked: every preset's ``check_request``, the object
        check of :meth:`check_object_permissions` (presets' ``check_object`` included), and
        a ViewSet subclass's own :meth:`get_object` when the URL names the row (a second
        row a detail route judges, which it does not return, is asked as above); any refusal
        it would answer (a 4xx ``APIException``/``ArcError``, ``Http404``, Django's
        ``PermissionDenied``, Django's ``ValidationError``) is "may not read", never an
        answer replacing the write's; but a throttle's (a 429 of an object check or of a
        preset's ``check_request``) is "not now", not "not this row": the row is readable
        when every other check passes (:meth:`_object_checks`)."""
        resource = self.resource
        write = self.action
        # the route that reads the rows ``write`` writes: a GET of the row, unless a preset
        # says otherwise (a restore of deleted rows, which a list of its own reads)
        reading = next(
            (r for p in resource.preset_list if (r := p.reading_route(write)) is not None),
            "retrieve",
        )
        try:
            with self._reading_as(reading) as request:
                return self._reads(request, obj, reading)
        except _REFUSALS as exc:
            if _server_error(exc):  # no refusal: it propagates
                raise
            return False  # the GET is refused (its 4xx): a row the caller may not read

    @contextmanager
    def _reading_as(self, action: str) -> Iterator[Any]:
        """The view as a GET reading a row sees it, within :meth:`may_read`: ``request`` the
        caller's as a GET (DRF's ``clone_request``; yielded), ``action`` the reading route,
        no ``arc_action``, ``reading_for`` the write's action; ``permission_filters`` may be
        set meanwhile. The five are restored on every exit, an exception's too."""
        context = self.request.parser_context
        request = clone_request(self.request, "GET")
        if context is not None:  # Request() pointed the shared parser context at the clone
            context["request"] = self.request
        names = ("request", "action", "arc_action", "permission_filters", "reading_for")
        saved = [getattr(self, name) for name in names]
        self.request, self.action, self.arc_action = request, action, None
        self.reading_for = saved[1]
        try:
            yield request
        finally:
            for name, value in zip(names, saved, strict=True):
                setattr(self, name, value)

    def _reads(self, request: Any, obj: Any, reading: str) -> bool:
        """:meth:`may_read`'s question, asked within :meth:`_reading_as`: raises the GET's
        refusal, if any."""
        result = self._get_granted(request)
        if result is None:
            return False
        self.permission_filters = result.filters
        spec = self.route_spec
        if reading == "retrieve" and self._own_lookup_names(obj):
            # a ViewSet's own get_object() reads the URL's row as a GET of it would; a
            # second row a detail route judges (the body's) is asked as any row below
            self.__dict__.pop("_throttled_row", None)
            try:
                if self.get_object().pk == obj.pk:
                    return True
            except APIException as exc:
                if not _throttle(exc):
                    raise
                if self.__dict__.pop("_throttled_row", None) == obj.pk:
                    # the GET's object checks of this row ran in full and only a throttle
                    # refused (:meth:`_object_checks`): asked again below, a project's
                    # check counting tokens counted twice for one request
                    return self._among_readable(obj)
                # a 429 of the project's lookup itself: the row is asked below
        if not self._among_readable(obj):
            return False
        # a list shows the rows within its filters: no object check, as the list asks none
        if spec is None or spec.detail:
            try:
                self.check_object_permissions(request, obj)  # a GET's: raises on a refusal
            except APIException as exc:
                # a throttle is raised last, once every other check passed
                # (:meth:`_object_checks`): the row is readable, only not now
                if not _throttle(exc):
                    raise
        return True

    def _get_granted(self, request: Any) -> PermissionResult | None:
        """The part of :meth:`may_read`'s question no row changes: the reading route's
        permission (granted: its result, whose filters narrow the rows) and every preset's
        ``check_request``; ``None`` when either refuses the GET. A bulk write's refused rows
        (:attr:`judged_rows`) ask it once for the request, as they ask once which of them
        are readable: per refused row, a permission querying memberships and every preset's
        ``check_request`` ran twenty times for a write of twenty rows. A 5xx raised while
        asking is not kept (it propagates)."""
        batch = self.judged_rows
        held = self.__dict__.get("_get_granted_held")
        if batch is not None and held is not None and held[0] is batch:
            return held[1]
        permission = self.get_resource_permission()
        result: PermissionResult | None = None
        if permission is not None:
            try:
                result = permission(request, self.resource, self.permission_key)
                if result.granted:
                    for preset in self.resource.preset_list:
                        try:
                            preset.check_request(self)
                        except APIException as exc:
                            # a throttle of the GET is no refusal of its rows: the checks
                            # after it, and the rows' own, still decide
                            if not _throttle(exc):
                                raise
                else:
                    result = None
            except _REFUSALS as exc:
                if _server_error(exc):
                    raise
                result = None
        if batch is not None:
            self.__dict__["_get_granted_held"] = (batch, result)
        return result

    def _own_lookup_names(self, obj: Any) -> bool:
        """Whether a ViewSet subclass overrides :meth:`get_object` and the URL names the row
        ``obj`` a write was refused on (a detail route, not a bulk write's rows): a GET of
        it is then asked of that ``get_object()``, DRF's seam for a project's lookup."""
        if type(self).get_object is ResourceGenericViewSet.get_object:
            return False
        batch = self.judged_rows
        if batch is not None and len(batch) > 1 and any(row is obj for row in batch):
            return False
        return (self.lookup_url_kwarg or self.lookup_field) in (self.kwargs or {})

    def _among_readable(self, obj: Any) -> bool:
        """Whether ``obj`` is among the rows a GET reads (within :meth:`may_read`). A bulk
        write's rows (:attr:`judged_rows`) are asked together, once for the request: one
        query per refused row was a hundred for a filter matching a hundred rows."""
        batch = self.judged_rows
        if batch is None or len(batch) < 2 or not any(row is obj for row in batch):
            return self.get_queryset().filter(pk=obj.pk).exists()
        held = self.__dict__.get("_readable_rows")
        if held is None or held[0] is not batch:
            rows = self.get_queryset().filter(pk__in={row.pk for row in batch})
            held = self.__dict__["_readable_rows"] = (batch, set(rows.values_list("pk", flat=True)))
        return obj.pk in held[1]

    def resolve_action(self, request: Any) -> Any:
        """The :class:`~django_arc.actions.ActionSpec` the body's ``action`` names; 400
        naming the allowed actions when it is missing or unknown."""
        actions = self.resource.actions
        data = request.data
        name = data.get("action") if isinstance(data, dict) else None
        spec = actions.get(name) if isinstance(name, str) else None
        if spec is None:
            allowed = ", ".join(sorted(actions))
            # quoted by its first 50 characters, as the query language quotes a value: the
            # body's ``action`` may be megabytes of text, or a list
            shown = repr(name)
            shown = shown if len(shown) <= 50 else f"{shown[:50]}…"
            problem = "This field is required." if name is None else f"Unknown action {shown}."
            raise ArcError(
                "VALIDATION_ERROR",
                f"Unknown or missing action; allowed: {allowed}",
                400,
                {"action": [f"{problem} Allowed actions: {allowed}."]},
            )
        return spec

    # -- rows ------------------------------------------------------------------------------------

    def get_queryset(self) -> models.QuerySet:
        """The rows this request may see: ``Resource.get_queryset()``, the presets'
        conditions (one :func:`~django_arc.narrowing.narrow` for all of them), each preset's
        ``filter_queryset``, and the permission's filters."""
        queryset = project_prefetches_first(self.resource.get_queryset(self.request))
        presets = self.resource.preset_list
        self.row_filters = [preset.row_filter(self) for preset in presets]
        conditions = [q for q in self.row_filters if q]
        if conditions:
            queryset = narrow(queryset, *conditions, remember=True)
        for preset in presets:
            queryset = preset.filter_queryset(self, queryset)
        filters = self.permission_filters
        if filters:
            queryset = narrow(queryset, filters, remember=True)
        return queryset

    def filter_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        for backend in self._backends:
            if type(backend) is not QueryLanguageFilter:
                # a project's backend is made for each use, as DRF makes it: it may keep the
                # request on ``self``, and one instance shared by concurrent requests filtered
                # one by the other's. Only the query language's, which keeps nothing, is shared.
                backend = type(backend)()
            queryset = backend.filter_queryset(self.request, queryset, self)
        return queryset

    @cached_property
    def paginator(self) -> Any:
        """Keyset pagination when the list names a cursor (``?after=``), else pages."""
        if "after" in self.request.query_params:
            return self.keyset_pagination_class()
        return self.pagination_class()

    @cached_property
    def lookup_model_field(self) -> models.Field:
        """The model field :attr:`lookup_field` names."""
        meta = self.resource.model._meta
        return meta.pk if self.lookup_field == "pk" else meta.get_field(self.lookup_field)

    def read_lookup_value(self, value: Any) -> Any:
        """``value`` — the URL's text, or an id in a bulk body — as the lookup field reads it
        (``"07"``, ``"7"`` and ``7`` are one integer id). ``ValueError`` (or the field's own
        error) for a value that can name no row: not a scalar, a fraction for an integer
        field (which ``int()`` would truncate to another row's id), a NUL character (no
        database stores one, and DRF refuses them in writes), a lone surrogate (no URL
        carries one, but a bulk body's JSON can, and the driver cannot encode it) or, for a
        number or UUID, digits JSON does not spell (:func:`~django_arc.query.foreign_numeral`)."""
        field = self.lookup_model_field
        if value is None or isinstance(value, (bool, dict, list)):
            raise ValueError("not a lookup value")
        if isinstance(value, JSONNumber) and not value.exact():
            # a bulk body's ``1.0000000000000000001`` is the float 1.0, and named row 1
            # (the URL's ``/1.0000000000000000001/`` names none): read as written
            value = value.text
        if isinstance(value, float) and not value.is_integer():
            if isinstance(field, models.IntegerField):
                raise ValueError("not a whole number")
        if isinstance(value, str) and UNSENDABLE.search(value):
            raise ValueError("contains a NUL character or a lone surrogate")
        if foreign_numeral(field, value):
            # "/1_0/" and "/\u0661/" (an Arabic-Indic one) named rows 10 and 1, which the
            # query language refuses as filter values
            raise ValueError("not a number as JSON spells it")
        return field.to_python(value)

    def get_lookup_value(self) -> Any:
        """The URL's lookup value (:meth:`read_lookup_value`): what :meth:`get_object` looks
        up, and what the query cache keys a get by, so the two cannot disagree. 404 when the
        field cannot read it."""
        raw = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        try:
            return self.read_lookup_value(raw)
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise NotFound(f"malformed lookup value {raw[:64]!r}") from None

    def get_object(self) -> Any:
        """The one row the URL names, looked up in :meth:`get_queryset` (404 when absent,
        malformed or filtered: the same body), then judged by the object permission and
        every preset's ``check_object``."""
        resource = self.resource
        raw = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        lookup = self.lookup_field
        value = self.get_lookup_value()
        queryset = self.get_queryset()
        if self.answers_rendered_row():
            # a get renders the row and nothing else: it loads what it renders, as a list
            # does (the rows found are the same: only joins and prefetches are dropped)
            queryset = self.load_rendered_only(queryset)
        try:
            obj = narrow(queryset, {lookup: value}).get()
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise NotFound(f"malformed lookup value {raw[:64]!r}") from None
        except resource.model.DoesNotExist:
            raise NotFound(f"{resource.name} {raw[:64]!r} absent or filtered") from None
        except resource.model.MultipleObjectsReturned:
            raise NotFound(f"{resource.name} lookup {lookup}={raw[:64]!r} not unique") from None
        self.check_object_permissions(self.request, obj)
        if self.request.method not in SAFE_METHODS:
            # the generic pairs it holds as read, for a route's or an action's handler
            # that may set one on it (keep_generic_pairs_read); nothing for most models
            held = self.generic_pairs_held([obj])
            if held is not None:
                self.__dict__.setdefault("_generic_rows_read", []).append((obj, held))
        return obj

    def answers_rendered_row(self) -> bool:
        """Whether the row :meth:`get_object` finds is read for this caller's answer: a
        get, a route (the slug preset's, a detail ``@route``) or an action, which load the
        relations of the fields the caller's answer renders only (:meth:`load_rendered_only`),
        as a list does. Not an update or a delete, whose serializer saves (and renders, for
        the event) every field, nor a write whose observers (audit) snapshot the whole row."""
        if self.action in ("update", "partial_update", "destroy"):
            return False
        return self.request.method in SAFE_METHODS or not self.resource.write_observers

    # -- output ----------------------------------------------------------------------------------

    def get_read_plan(self) -> ReadPlan:
        """What this caller sees of each row: field permissions, narrowed by ``?select=``
        on lists (the primary key and lookup field always come along)."""
        query = self.list_query
        if query is None or query.select is None:
            return self.field_access.read_plan()
        return self.field_access.read_plan(query.select, self.resource.always_selected)

    def list_response(self, queryset: Any) -> Response:
        """The list answer of ``queryset`` for this caller: the page the pagination class
        cuts, in its envelope, or every row in the success envelope when it declines to
        paginate (``paginate_queryset`` returning ``None``, as DRF's do without a page
        size; DRF's own list then answers every row). The list route and every route
        listing rows (a preset's archive) answer through it, so none hands the ``None`` on
        to ``get_paginated_response`` (a 500)."""
        queryset = self.load_rendered_only(queryset)
        rows = self.paginate_queryset(queryset)
        if rows is None:
            return self.success_response(self.render(list(queryset), many=True))
        return self.get_paginated_response(self.render(rows, many=True))

    def load_rendered_only(self, queryset: Any) -> Any:
        """``queryset`` without the joins and prefetches django-arc adds for fields this
        caller's rows do not render (left out by ``?select=``, or unreadable): each was a
        join or a query of rows thrown away. A path a rendered field needs stays, and so do
        a project's own ``Prefetch`` objects and joins no field of the resource asks for.
        Only when the resource's own serializer renders (a ViewSet subclass's may read
        anything), and the relations loaded are django-arc's only: a project's
        ``get_queryset()`` (the resource's or a ViewSet's) or ``queryset`` loading a path a
        field renders too (``prefetch_related("reviews")`` for a method field counting
        them, as docs/resources.md asks) cannot be told from django-arc's, and dropping it
        read the relation once per row."""
        resource = self.resource
        if not isinstance(queryset, models.QuerySet) or (
            self.get_serializer_class() is not resource.serializer
            or type(self).get_serializer is not ResourceGenericViewSet.get_serializer
            or not resource.loads_own_relations_only
            or type(self).get_queryset is not ResourceGenericViewSet.get_queryset
        ):
            return queryset
        omitted = self.get_read_plan().omitted(resource.output_fields)
        if not omitted:
            return queryset
        select: set[str] = set()
        prefetch: set[str] = set()
        for name, (joins, prefetches) in resource.related_loading_by_field.items():
            if name not in omitted:
                select |= joins
                prefetch |= prefetches
        all_select, all_prefetch = resource.related_loading
        unjoined = set(all_select) - select
        unfetched = set(all_prefetch) - prefetch
        tree = queryset.query.select_related
        if unjoined and isinstance(tree, dict):
            joined = joined_paths(tree)
            # a path a rendered field needs, which the tree held below a dropped one
            below = {p for p in select if any(j.startswith(p + "__") for j in joined)}
            kept = [p for p in joined if p not in unjoined] + sorted(below - set(joined))
            if kept != joined:
                queryset = queryset.select_related(None)
                if kept:
                    queryset = queryset.select_related(*kept)
        lookups = list(queryset._prefetch_related_lookups)
        if unfetched and any(isinstance(lookup, str) and lookup in unfetched for lookup in lookups):
            queryset = queryset.prefetch_related(None).prefetch_related(
                *(
                    lookup
                    for lookup in lookups
                    if not (isinstance(lookup, str) and lookup in unfetched)
                )
            )
        return queryset

    def render(self, rows: Any, many: bool = False) -> Any:
        """Serialise rows for this caller. Fields the plan drops are skipped by the
        serializer itself (never rendered, then thrown away); masks are applied after."""
        if many and not rows:
            return []
        plan = self.get_read_plan()
        context = self.get_serializer_context()
        context["arc_omit"] = plan.omitted(self.resource.output_fields)
        serializer = self.get_serializer(rows, many=many, context=context)
        data = serializer.data
        # A project serializer — the resource's ``serializer_class``, or one a ViewSet
        # subclass returns from ``get_serializer_class()`` or builds in ``get_serializer()``
        # — may render anything: filter its output too. Judged by the serializer that
        # rendered (a list's child), not by the seam that named it. The generated one
        # skipped those fields already; only mask.
        rendered_by = type(getattr(serializer, "child", serializer))
        if (
            self.resource.serializer_class is not None
            or rendered_by is not self.resource.serializer
        ):
            post = plan.shape
        elif plan.redact:
            post = plan.mask
        else:
            return data
        return [post(doc) for doc in data] if many else post(data)

    def render_result(self, value: Any) -> Any:
        """A route's or action's return value as the response's ``data``: rows of the
        resource — one, a queryset, or a list or tuple of them — go through :meth:`render`
        (so field permissions apply), anything else is returned as is (it must be
        JSON-able)."""
        model = self.resource.model
        if isinstance(value, model):
            return self.render(value)
        if isinstance(value, models.QuerySet) and issubclass(value.model, model):
            return self.render(list(value), many=True)
        if (
            isinstance(value, (list, tuple))
            and value
            and all(isinstance(row, model) for row in value)
        ):
            return self.render(list(value), many=True)
        return value

    def success_response(
        self, data: Any, message: str | None = None, status: int = 200
    ) -> Response:
        return Response(envelope.success(data, message), status=status)

    # -- writes ----------------------------------------------------------------------------------

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        serializer = super().get_serializer(*args, **kwargs)
        form = (
            not args
            and "data" not in kwargs
            and (kwargs.get("instance") is None or self.building_forms)
            and self._renders_browsable_form()
        )
        if form:
            self._keep_writable(serializer, filled=kwargs.get("instance") is not None)
        elif self.action == "metadata" and not args and not kwargs:
            self._keep_described(serializer)
        if "data" in kwargs or form:
            # a form's relations offer their rows as choices: the ones a body may name
            # (the presets' narrowing, and this resource's own rows the caller reads)
            self._narrow_relations(serializer)
        if form and kwargs.get("instance") is not None:
            self._leave_out_unoffered(serializer, kwargs["instance"])
        if form:
            _dress_selects(serializer)
        return serializer

    def refused_form(self, instance: Any, answer: Any) -> Any:
        """The form of a write refused for what it sent (the browsable API's page of its
        400, 409 or 422), as DRF shows it from the serializer the envelope hides: what the body
        sent for each field of the form, over ``instance`` (the row an update was sent to)
        or the form's initial values for what it did not send, and the answer's errors of
        those fields. It is the form the caller is offered (:meth:`get_serializer`): only
        the fields it may write, none it reads masked, relations offering the rows a body
        may name, so a value sent that names another tenant's row is no option of it."""
        try:
            body = self.request.data
        except APIException:  # a body that could not be parsed sent nothing readable
            body = None
        if instance is None:
            form = self.get_serializer()
        else:
            # the update is partial: a field the body left out keeps the row's value; a
            # write-only field it sent is shown again (the row cannot fill it)
            self._form_sent = frozenset(body) if isinstance(body, Mapping) else frozenset()
            try:
                form = self.get_serializer(instance=instance, partial=True)
            finally:
                del self._form_sent
        values = dict(form.data)
        if isinstance(body, Mapping):
            for name, field in form.fields.items():
                value = empty if field.read_only else field.get_value(body)
                if value is not empty:
                    values[name] = value
        details = answer.get("details") if isinstance(answer, dict) else None
        errors = {}
        if isinstance(details, dict):
            # a hook's ArcError may name a field with one message rather than a list
            errors = {
                name: details[name] if isinstance(details[name], (list, dict)) else [details[name]]
                for name in form.fields
                if name in details
            }
        # what DRF's form renderer reads of a refused serializer: its data and errors
        form._data, form._errors = values, errors
        return form

    def _leave_out_unoffered(self, serializer: Any, row: Any) -> None:
        """A form filled from ``row`` without the writable relations whose current row(s)
        its ``<select>`` does not offer (another tenant's, one its queryset hides): no
        option would be selected, the browser would send the first, and the form sent back
        untouched would re-point the relation; left out, it is left alone. One count per
        relation and page."""
        serializer = getattr(serializer, "child", serializer)
        verdicts = self.__dict__.setdefault("_unoffered", {})
        for name, field in list(serializer.fields.items()):
            relation = getattr(field, "child_relation", field)
            if field.read_only or not isinstance(relation, RelatedField):
                continue
            key = (row.pk, name)
            if key not in verdicts:
                verdicts[key] = not _offers_current(field, relation, row)
            if verdicts[key]:
                serializer.fields.pop(name)

    def _renders_browsable_form(self) -> bool:
        """DRF's browsable API is asking for the serializer its HTML and raw-data forms
        describe (``get_serializer()`` with neither rows nor a body, or with the row a
        form is filled from while the forms are built)."""
        return isinstance(getattr(self.request, "accepted_renderer", None), BrowsableAPIRenderer)

    def _keep_writable(self, serializer: Any, filled: bool = False) -> None:
        """A form's serializer without the fields this caller may not write: the browsable
        API would show them (names the caller may not even read, ``visible_to``), and its
        HTML form, which posts every input it shows, would be refused with
        ``FIELD_WRITE_DENIED`` whatever the caller typed. A form ``filled`` from a row also
        leaves out the fields the caller reads masked (``redact_for``), whose value it would
        show, and which its post would overwrite with whatever the input held, and the
        ``write_only`` ones, which no row fills (DRF never renders them): their blank input,
        sent back as shown, blanked or nulled the value or was refused as blank. A refused
        update's form shown again keeps those its body sent (:meth:`refused_form`)."""
        serializer = getattr(serializer, "child", serializer)
        access = self.field_access
        sent = self.__dict__.get("_form_sent", frozenset())
        for name, field in list(serializer.fields.items()):
            if access.write_verdict(name) != "allow" or (
                filled and (name in access.redacted or (field.write_only and name not in sent))
            ):
                serializer.fields.pop(name)

    def _keep_described(self, serializer: Any) -> None:
        """The serializer a project's ``metadata_class`` describes, without the fields this
        caller may neither read nor write: DRF's metadata lists every field's name and type
        (a ``visible_to("admin")`` cost to a viewer), which field rules hide everywhere else."""
        serializer = getattr(serializer, "child", serializer)
        access = self.field_access
        for name in list(serializer.fields):
            if name in access.unreadable and access.write_verdict(name) != "allow":
                serializer.fields.pop(name)

    def _narrow_relations(self, serializer: Any, row: Any = None, plain: Any = None) -> None:
        """Let presets narrow what writable relations may point at (tenancy of FK targets),
        wherever DRF lets one sit: nested serializers (one, or a list of them), ``many=True``
        relations, and the ``child`` of a ``ListField``/``DictField`` at any depth (an
        action's ``input`` may name rows anywhere in its body). ``row`` is the row an
        action's ``input`` (``serializer``) is sent to: its generic pair's fields are
        judged against it (:meth:`_narrow_generic_pairs`), as are those of a nested
        serializer with ``source="*"``, whose values are the input's own. ``plain`` is the
        model whose pairs a plain ``Serializer`` in that input is read for (the row's, the
        one model such an input is known to write), at any depth: a nested plain serializer
        (one, or a list of them) carrying ``content_type``/``object_id`` was not judged, and
        an action re-pointed its row at another tenant's row (200)."""
        if plain is None and isinstance(row, models.Model):
            plain = type(row)
        self._narrow_generic_pairs(serializer, row, plain)
        self._narrow_key_columns(serializer)
        fields = serializer.fields
        if type(fields) is BindingDict:
            fields = fields.fields  # its dict: no Python ``__getitem__`` call per field
        for field in fields.values():
            # what the walk would leave alone, told without a Python call per field (cost9):
            # neither a serializer nor a relation, and no ``queryset``, ``child`` or
            # ``child_relation`` as the field has them now (its own, its class's, a
            # ``__getattr__``'s). Not decided once per class and kept for good: a class
            # given a ``queryset`` after its first write was skipped, its rows never narrowed
            if (
                not _kind_names_rows(type(field))
                and getattr(field, "queryset", None) is None
                and getattr(field, "child", None) is None
                and getattr(field, "child_relation", None) is None
            ):
                continue
            self._narrow_field(field, row if field.source == "*" else None, plain)

    def _narrow_generic_pairs(self, serializer: Any, row: Any = None, plain: Any = None) -> None:
        """A model serializer writing a ``GenericForeignKey``'s pair (``content_type`` and
        ``object_id``, plain columns to DRF) checks the row they name as a relation's rows
        are narrowed (:meth:`_narrow_relation`): a member of another tenant replied to this
        tenant's comment by its id (201), planting its text in this tenant's filters
        through the ``GenericRelation``. See :class:`_GenericPairCheck`.

        An action's ``input`` (``row`` the action's row) may be a plain ``Serializer``: its
        fields writing the row's pair (by ``source``, as a model serializer's are matched)
        are that pair, and the half it does not send is the row's. A plain input naming
        ``object_id`` was handed to the action unjudged, another tenant's row included.
        A plain serializer nested in such an input is read for the same model's pairs
        (``plain``), with the row's half only when its values are the input's own
        (``source="*"``): the entries of a list name rows of their own."""
        model = getattr(getattr(serializer, "Meta", None), "model", None)
        if model is None:
            model = plain
        if (
            not isinstance(model, type)
            or not issubclass(model, models.Model)
            or getattr(serializer, "_arc_generic_pairs", False)
        ):
            return
        pairs = generic_foreign_keys(model)
        if not pairs:  # most models: no walk of the serializer's fields on every write
            return
        written = {
            field.source: name
            for name, field in serializer.fields.items()
            if not getattr(field, "read_only", False)
        }
        if not (
            isinstance(row, models.Model) and _concrete_model(type(row)) is _concrete_model(model)
        ):
            row = None  # an input of another model's rows holds no half of this row's pair
        checks = [
            _GenericPairCheck(self, pair, written, row)
            for pair in pairs
            if pair.ct_field in written or pair.fk_field in written
        ]
        if checks:
            serializer._arc_generic_pairs = True
            serializer._arc_pair_checks = checks
            serializer.validate = _checked_after(serializer.validate, checks, serializer)

    def _narrow_key_columns(self, serializer: Any) -> None:
        """A model serializer whose validated values set a foreign key's column without its
        declared relation field (a ``DictField``/``JSONField(source="*")`` key
        ``product_id`` or ``product``, a nested ``source="*"`` serializer's plain field, an
        ``IntegerField(source="product_id")``) names the row as that relation would: the
        field DRF builds for it, narrowed by :meth:`_narrow_relation`, reads the value
        (:class:`_KeyColumnCheck`). The guard judged only whether the column may be
        written, and an order took another tenant's product by its id (200)."""
        model = getattr(getattr(serializer, "Meta", None), "model", None)
        if (
            not isinstance(serializer, ModelSerializer)
            or not isinstance(model, type)
            or not issubclass(model, models.Model)
            or getattr(serializer, "_arc_key_columns", False)
        ):
            return
        keys = _key_columns(model)
        if keys:
            serializer._arc_key_columns = True
            serializer.run_validation = _KeyColumnCheck(self, serializer, keys)

    def key_column_target(self, serializer: Any, model_field: Any, value: Any) -> Any:
        """The row ``value`` names for ``model_field`` (a foreign key or one-to-one of
        ``serializer``'s model), read by the relation field DRF's ``ModelSerializer`` builds
        for it, narrowed as a declared one is (:meth:`_narrow_relation`): its row, ``None``
        for a null the column allows, or DRF's ``ValidationError`` for that field (a row
        the caller may not name "does not exist"). One query per distinct value and field
        in a request (a bulk write naming one product in each item asks once)."""
        judged = self.__dict__.setdefault("_key_columns_judged", {})
        memo = (model_field, type(value), str(value))
        if memo not in judged:
            info = get_field_info(model_field.model).relations[model_field.name]
            # the relation a ``ModelSerializer`` builds by default (the key, or ``to_field``'s
            # slug; arc's key field, whose refusals are a 400 on every backend): the column
            # holds the raw key whatever relation class the project's serializer builds. A
            # many-to-many with a ``through`` model is built read-only (reading nothing),
            # but ``set()`` takes ids for it all the same
            builder = ModelSerializer()
            builder.serializer_related_field = ArcPrimaryKeyRelatedField
            field_class, kwargs = builder.build_relational_field(
                model_field.name, info._replace(has_through_model=False)
            )
            relation = field_class(**kwargs)
            # bound as a declared field is: a one-to-one's ``UniqueValidator`` reads the
            # field's ``source_attrs`` and the serializer's ``instance`` (a 500 unbound)
            relation.bind(model_field.name, serializer)
            # a many-to-many's rows are read by its child relation
            reader = getattr(relation, "child_relation", relation)
            if hasattr(reader, "preloaded"):
                # a batch's rows loaded for the declared field hold only the ids it sent
                reader.preloaded = lambda: None
            self._narrow_relation(reader)
            try:
                judged[memo] = (True, relation.run_validation(value))
            except ValidationError as exc:
                judged[memo] = (False, exc.detail)
        found, answer = judged[memo]
        if not found:
            raise ValidationError(answer)
        return answer

    def generic_target_rows(self, model: type[models.Model]) -> models.QuerySet | None:
        """The rows of ``model`` a generic pair this caller writes may name, or ``None``
        when nothing narrows them (the pair is then left as it is sent). Narrowed as a
        foreign key to ``model`` is (the presets' ``related_queryset``: its tenant's rows
        when it carries the tenant field), and kept to the rows a GET of this resource
        reads when they are its own model's. Under a resource whose own rows the presets
        narrow (a tenant's), a model they do not narrow has no rows to name: a tenant's
        row pointing at a model outside every tenant (a user, a session) is refused, as
        if the row did not exist, rather than letting the pair probe any table."""
        queryset = model._default_manager.all()
        narrowed = False
        for preset in self.resource.preset_list:
            given, queryset = queryset, preset.related_queryset(self, queryset)
            narrowed = narrowed or _narrows(given, queryset)
        if _concrete_model(model) is _concrete_model(self.resource.model):
            return self._readable_targets(queryset)
        if narrowed:
            return queryset
        return model._default_manager.none() if self._scoped_by_presets() else None

    def names_generic_target(self, pair: Any, content_type: Any, object_id: Any) -> bool:
        """Whether the row ``pair`` (a ``GenericForeignKey``) names with ``content_type`` (a
        content type or its id) and ``object_id`` is one this caller may name
        (:meth:`generic_target_rows`): one query when its model's rows are narrowed, none
        when not. A content type that does not exist, or that a removed model left, names
        no row. A pair it allows is noted for the request, so that the check of what a
        write stored (:meth:`keep_generic_pairs`) does not ask again."""
        # ``ContentType`` read from the pair's own foreign key: a project without
        # ``django.contrib.contenttypes`` imports nothing of it
        content_types = pair.model._meta.get_field(pair.ct_field).related_model
        try:
            if not isinstance(content_type, content_types):
                content_type = content_types.objects.get_for_id(content_type)
            model = content_type.model_class()
        except (ObjectDoesNotExist, ValueError, TypeError, OverflowError):
            return False
        if model is None:  # a content type left by a removed model
            return False
        rows = self.generic_target_rows(model)
        if rows is not None:
            try:
                key = model._meta.pk.to_python(object_id)
            except (DjangoValidationError, ValueError, TypeError, OverflowError):
                return False
            if key is None or beyond_int64(key):
                return False
            judged = self.__dict__.get("_generic_judged", {}).get((content_type.pk, str(key)))
            if judged is None:
                judged = narrow(rows, {"pk": key}).exists()
            if not judged:
                return False
        self.__dict__.setdefault("_generic_named", set()).add((content_type.pk, str(object_id)))
        return True

    def judge_generic_pairs(self, checks: list[Any], entries: Any) -> None:
        """Ask at once which rows the pairs of ``entries`` (a list's raw items, before each
        is validated) name, for :meth:`names_generic_target` to answer each entry's check
        without a query of its own: a list of N pairs in an action's input ran N queries.
        One query per content type (per :data:`_JUDGED_AT_ONCE` ids); a value that is no
        content type or key is left to the entry's own check, whose field validation
        refuses it first."""
        wanted: dict[Any, tuple[Any, set[Any]]] = {}
        for check in checks:
            pair = check.pair
            content_types = pair.model._meta.get_field(pair.ct_field).related_model
            ct_name = check.written.get(pair.ct_field)
            fk_name = check.written.get(pair.fk_field)
            ct_held = _held(check.row, pair.model._meta.get_field(pair.ct_field).attname)
            fk_held = _held(check.row, pair.fk_field)
            for entry in entries if isinstance(entries, list) else ():
                if not isinstance(entry, Mapping):
                    continue
                content_type = entry.get(ct_name, ct_held) if ct_name else ct_held
                object_id = entry.get(fk_name, fk_held) if fk_name else fk_held
                if content_type is None or object_id is None:
                    continue
                try:
                    # read as its key first: the content types' cache is by the integer,
                    # so ``"15"`` (text, as many clients send an id) was a query per entry
                    content_type = content_types._meta.pk.to_python(content_type)
                    content_type = content_types.objects.get_for_id(content_type)
                    model = content_type.model_class()
                    key = model._meta.pk.to_python(object_id)
                except (ObjectDoesNotExist, DjangoValidationError, AttributeError) + _BAD_KEY:
                    continue
                if key is None or beyond_int64(key) or unstorable_char(key):
                    # read raw, before the entry's field refuses it: a text key holding NUL
                    # (PostgreSQL compares no text with it) or a lone surrogate (no driver
                    # encodes it) made the query a 500
                    continue
                if content_type.pk not in wanted:
                    rows = self.generic_target_rows(model)
                    if rows is None:  # nothing narrows them: no query to save
                        continue
                    wanted[content_type.pk] = (rows, set())
                wanted[content_type.pk][1].add(key)
        judged = self.__dict__.setdefault("_generic_judged", {})
        for ct_pk, (rows, keys) in wanted.items():
            keys = sorted(keys, key=str)
            for start in range(0, len(keys), _JUDGED_AT_ONCE):
                chunk = keys[start : start + _JUDGED_AT_ONCE]
                found = set(narrow(rows, {"pk__in": chunk}).values_list("pk", flat=True))
                # a row the database matched to no key as Python compares them (a collation,
                # a decimal's digits): an absence is then not told, and is left to the entry
                told = found <= set(chunk)
                for key in chunk:
                    if key in found or told:
                        judged[(ct_pk, str(key))] = key in found

    def generic_pairs_held(self, rows: list[Any]) -> dict[Any, list[Any]] | None:
        """The generic pairs ``rows`` hold before an update writes them, by primary key:
        :meth:`keep_generic_pairs` leaves alone a pair the write did not change (a row
        written outside the API may point anywhere; an update of its text is no new
        pointer). Read as the write begins, before its ``before_update`` hook (and by
        :meth:`get_object`, before an action's or a route's handler): a pair those set on
        the row is the write's, not the row's. ``None``, with nothing read, for a model
        without a pair. No query: the rows' attributes are read."""
        pairs = generic_foreign_keys(self.resource.model)
        if not pairs:
            return None
        return {row.pk: [_stored_pair(row, pair) for pair in pairs] for row in rows}

    def keep_generic_pairs(
        self,
        rows: list[Any],
        held: dict[Any, list[Any]] | None = None,
        key: str | None = None,
    ) -> None:
        """Refuse a write whose saved ``rows`` hold a generic pair naming a row the caller
        may not name (:meth:`names_generic_target`), as a missing row is refused: 400
        ``VALIDATION_ERROR`` naming the object id field. The pair a body sends is judged on
        the validated data (:class:`_GenericPairCheck`); one completed after it was not: a
        serializer's ``create()``/``update()`` setting the content type or the id, the
        model field's ``default`` supplying the content type a serializer leaves out, a
        hook or the model's ``save()``. A member of another tenant put a note on this
        tenant's place by its id (201). Called after the save and the resource's hook,
        inside the write's transaction and before the presets' ``after_write`` and the
        event, so a refusal leaves nothing: no row, no audit entry, no event.

        A pair judged already in this request (the same content type and id), one cleared
        (either half null), or one an update left as the row held it (``held``,
        :meth:`generic_pairs_held`) costs no query; any other, one query per row. ``key``
        names a bulk write's rows: ``"items"`` (each refused item under its index),
        ``"data"`` (a ``filter`` update: the body's one ``data``, as its validation errors
        are named); ``None`` for a write of one row. No query for a model without a pair."""
        pairs = generic_foreign_keys(self.resource.model)
        if not pairs:
            return
        refused: dict[str, Any] = {}
        for index, row in enumerate(rows):
            kept = held.get(row.pk) if held is not None else None
            for position, pair in enumerate(pairs):
                stored = _stored_pair(row, pair)
                if (
                    stored is None
                    or (kept is not None and kept[position] == stored)
                    or stored in self.__dict__.get("_generic_named", ())
                    or self.names_generic_target(pair, *stored)
                ):
                    continue
                message = str(PrimaryKeyRelatedField.default_error_messages["does_not_exist"])
                refused[str(index)] = {
                    self._generic_pair_field(pair): [message.format(pk_value=stored[1])]
                }
                break
            if refused and key != "items":
                break
        if not refused:
            return
        if key == "items":
            details: dict[str, Any] = {key: refused}
        else:
            first = refused[min(refused, key=int)]
            details = first if key is None else {key: first}
        raise ArcError("VALIDATION_ERROR", "Validation failed", 400, details)

    def keep_generic_pairs_read(self, stored: bool = False) -> None:
        """Judge, as :meth:`keep_generic_pairs` judges a write's stored pair, the pair each
        row :meth:`get_object` read for this unsafe request holds now: called after an
        action's or a detail route's handler, which may set the pair on its row (from an
        ``input`` writing half of one, a plain input's number, the body) and save it or
        hand it to :meth:`perform_update`, which takes what the row holds then as its own.
        B moved its note onto A's place (200). A pair left as the row held it costs no
        query; a row the handler deleted is not judged.

        ``stored``: the handler refused with a 4xx answer of its own, which renders no row
        and saves nothing more, so what it may have written is the row as stored: a pair it
        changed on the row is judged as the database holds it (one query per such row). A
        pair only set on the row in memory, never saved, turned its own 409 into the pair's
        400."""
        for row, held in self.__dict__.get("_generic_rows_read", ()):
            if row.pk is None:
                continue
            if stored:
                kept = held.get(row.pk)
                pairs = generic_foreign_keys(type(row))
                if kept is None or all(
                    kept[i] == _stored_pair(row, pair) for i, pair in enumerate(pairs)
                ):
                    continue
                row = type(row)._base_manager.using(row._state.db).filter(pk=row.pk).first()
                if row is None:
                    continue
            self.keep_generic_pairs([row], held)

    def _generic_pair_field(self, pair: Any) -> str:
        """The name of the serializer field writing ``pair``'s object id (its content type
        when it writes only that), as the check on validated data names it; the model's
        field name when the serializer writes neither half (its ``create()`` did)."""
        serializer = self.get_serializer_class()(context=self.get_serializer_context())
        written = {
            field.source: name
            for name, field in serializer.fields.items()
            if not getattr(field, "read_only", False)
        }
        return written.get(pair.fk_field) or written.get(pair.ct_field) or pair.fk_field

    def _scoped_by_presets(self) -> bool:
        """Whether the presets narrow this resource's own rows as a relation's (tenancy):
        asked once per request."""
        held = self.__dict__.get("_scoped_by_presets_held")
        if held is None:
            queryset = self.resource.model._default_manager.all()
            held = False
            for preset in self.resource.preset_list:
                given, queryset = queryset, preset.related_queryset(self, queryset)
                held = held or _narrows(given, queryset)
            self.__dict__["_scoped_by_presets_held"] = held
        return held

    def _narrow_field(self, field: Any, row: Any = None, plain: Any = None) -> None:
        """:meth:`_narrow_relations` for one field; ``row`` and ``plain`` as there (``row``
        only for a field whose values are its serializer's own, ``source="*"``)."""
        if getattr(field, "read_only", False):
            return
        if isinstance(field, Serializer):
            self._narrow_relations(field, row, plain)
            return
        if isinstance(field, RelatedField) or getattr(field, "queryset", None) is not None:
            self._narrow_relation(field)
            return
        # ListSerializer / ListField / DictField hold theirs as ``child``; many=True
        # relations (ManyRelatedField) as ``child_relation``
        inner = getattr(field, "child_relation", None) or getattr(field, "child", None)
        if inner is not None:
            self._narrow_field(inner, None, plain)
            checks = getattr(inner, "_arc_pair_checks", None)
            if checks and isinstance(field, ListSerializer):
                field.to_internal_value = _judged_at_once(self, field, checks)

    def _narrow_relation(self, relation: Any) -> None:
        presets = self.resource.preset_list

        def narrowed(queryset: Any) -> Any:
            for preset in presets:
                given, queryset = queryset, preset.related_queryset(self, queryset)
                narrows = _narrows(given, queryset)
                if narrows:
                    # the rows a body may name are the caller's (its tenant's): a form
                    # may show their names (:func:`_dress_selects`)
                    relation.arc_narrowed = True
                elif narrows is None:
                    # filtered otherwise, maybe wider than a narrowing before (another
                    # tenant's rows): named by key again, unless a later preset narrows
                    relation.arc_narrowed = False
            return queryset

        if getattr(relation, "queryset", None) is not None:
            if not isinstance(relation.queryset, (models.QuerySet, models.Manager)):
                return  # a project's field holding some other ``queryset`` names no rows
            relation.queryset = narrowed(relation.queryset)
            own = getattr(relation, "get_queryset", None)
            if own is None:
                # a project's own field reading its ``queryset`` itself (no DRF relation,
                # so no ``get_queryset()`` to wrap: asking for one was a 500 on every
                # write): the rows it may name are kept to those a GET reads now
                relation.queryset = self._readable_targets(relation.queryset)
                return
        else:
            # DRF lets a relation leave ``queryset`` out and override ``get_queryset()``
            # instead: narrow what that returns, or its rows would not be narrowed at all
            base = relation.get_queryset
            own = lambda: narrowed(base())  # noqa: E731
        # a relation to this resource's own rows (a parent in a tree) names only those a
        # GET reads; asked when the relation is resolved, not when the serializer is built
        relation.get_queryset = lambda: self._readable_targets(own())

    def _readable_targets(self, queryset: Any) -> Any:
        """``queryset`` (a relation's rows, narrowed by the presets) kept to the rows a GET of
        this resource reads, when they are this resource's own model's (its table, a proxy
        of it too): a body naming a row of the resource the caller may not read (another
        owner's under ``require_owner`` read filters, a soft-deleted one, one the resource's
        ``queryset`` leaves out) answers as a row that does not exist, as its GET answers
        404. It linked the row (201) and told it apart from a missing one (an existence
        oracle). The GET's permission and its row filters are asked once per request, as
        :meth:`may_read` asks them, not its object checks (a query per row); a refused GET
        leaves no row to name. Rows of other models are left to the presets (tenancy): this
        view knows no other resource's rules."""
        model = getattr(queryset, "model", None)  # a project's get_queryset() may not
        if model is None:
            return queryset
        # _concrete_model's reading, without two calls each time a relation is resolved
        meta = getattr(model, "_meta", None)
        if (meta.concrete_model if meta is not None else model) is not (
            self.resource.model._meta.concrete_model
        ):
            return queryset
        held = self.__dict__.get("_readable_targets_held")
        if held is None:
            rows = None
            try:
                with self._reading_as("retrieve") as request:
                    result = self._get_granted(request)
                    if result is not None:
                        self.permission_filters = result.filters
                        rows = self.get_queryset().order_by().values("pk")
            except _REFUSALS as exc:
                if _server_error(exc):
                    raise
            held = self.__dict__["_readable_targets_held"] = (rows,)
        rows = held[0]
        return queryset.none() if rows is None else queryset.filter(pk__in=rows)

    def get_body(self) -> dict[str, Any]:
        """The request body as a dict (a copy: hooks and the guard may change it)."""
        data = self.request.data
        if isinstance(data, QueryDict):
            serializer = self.get_serializer_class()(context=self.get_serializer_context())
            # an update is partial: a field its form did not send is left alone
            body = form_values(
                data,
                serializer.fields,
                partial=self.action != "create",
                may_write=lambda name: self.field_access.write_verdict(name) == "allow",
            )
            # a form's list of rows is what was chosen among the rows its select offers
            # (:meth:`keep_unoffered_rows`): each one read from this form, by identity
            self._form_choices = {
                name: body[name]
                for name, field in serializer.fields.items()
                if isinstance(field, ManyRelatedField) and isinstance(body.get(name), list)
            }
            return body
        if not isinstance(data, dict):
            raise ArcError(
                "VALIDATION_ERROR",
                "Validation failed",
                400,
                {api_settings.NON_FIELD_ERRORS_KEY: ["Expected a JSON object."]},
            )
        return dict(data)

    def guard_body(self, data: dict[str, Any]) -> dict[str, Any]:
        """Refuse (or strip) every body field this caller may not write, before validation."""
        presets = self.resource.preset_list

        def harmless(field: str, value: Any) -> bool:
            return any(p.accepts_body_value(self, field, value) for p in presets)

        access = self.field_access
        # a nested serializer's keys write the row's own columns (``source="*"``): judged
        # first, so that one 403 names them with the top-level keys; only where the nested
        # serializer itself is the caller's to write (a hidden one is dropped whole, and
        # naming its keys would confirm it exists)
        nested: list[str] = []
        for name, columns in self._writes_judged[1].items():
            value = data.get(name)
            if value is None or access.write_verdict(name) != "allow":
                continue
            data[name] = _guard_written(access, value, columns, harmless, f"{name}.", nested)
        return access.guard(data, self.resource.write_denied_policy, harmless, nested)

    def write_transaction(self, always: bool = False) -> Any:
        """The transaction a write runs in: always when its event goes to the outbox (row
        and event commit together), when hooks, presets or the serializer may issue more
        than one statement, or when the caller says so (``always``: actions and routes);
        otherwise the write is a single statement, atomic by itself, and a BEGIN/COMMIT pair
        would only add two round trips. Inside the request's own transaction (a keyed
        request's, :meth:`IdempotentExecution.begin`) the write joins it, when that
        transaction is on the databases the write needs (:meth:`write_databases`): without a
        savepoint when it is the framework's own single write, with one when it is nested in
        another write, follows one, or the view's own code runs around it
        (:meth:`IdempotentExecution.write`);
        else it runs in a transaction of its own on them, as without a key. The files it
        stores are removed again when it raises and its rows are not kept
        (:mod:`django_arc.uploads`)."""
        databases = self.write_databases()
        if self._joins_request_transaction(databases):
            write = self.idempotent_execution.write()  # type: ignore[union-attr]
        elif (
            always
            or arc_settings.EVENTS.get("OUTBOX", True)
            or self.resource.write_needs_transaction
            or self._model_runs_project_code()
        ):
            write = atomic_on(databases)
        else:
            write = nullcontext()
        # a file the write stored leaves storage with its row when the write raises
        return undo_files_with(write)

    def _model_runs_project_code(self) -> bool:
        """Whether the model's own code runs in a write (a ``save()``/``delete()``
        override, a project's ``pre_save``/``post_save`` receiver), which may write more
        than the row: in autocommit, a receiver failing after its own write left the row
        and that write committed behind a 500. Read at each write, not cached with
        :attr:`~django_arc.resources.Resource.write_needs_transaction`: a receiver may be
        connected after the resource first wrote."""
        model = self.resource.model
        return model.delete is not models.Model.delete or saves_its_own_way(model)

    def write_databases(self) -> tuple[str, ...]:
        """The databases a write's transaction is opened on, the outermost first: where its
        event goes — the outbox's (``OutboxEvent``'s router's ``db_for_write``), or, with
        the outbox off, ``default`` (the receiver then publishes once every transaction open
        when the event was sent has committed, the rows' one included) — then where the
        resource's rows are written (the model's ``db_for_write``). One database without a
        router. The transaction used to be ``default``'s whatever the router said: rows
        routed to another database were written in autocommit, and a hook raising after
        the save (a 4xx) left the row there. With two databases the rows commit first,
        then the event: not one commit, but nothing of a write that raises commits."""
        if not router.routers:
            return _DEFAULT_ONLY
        rows = router.db_for_write(self.resource.model)
        if arc_settings.EVENTS.get("OUTBOX", True):
            from .outbox.models import OutboxEvent  # a model: importable once apps are ready

            events = router.db_for_write(OutboxEvent)
        else:
            events = DEFAULT_DB_ALIAS
        return (rows,) if events == rows else (events, rows)

    def _joins_request_transaction(self, databases: tuple[str, ...]) -> bool:
        """Whether writes on ``databases`` join the request's own transaction: it is open
        on the databases they need."""
        execution = self.idempotent_execution
        return (
            execution is not None and execution.in_transaction and databases == execution.databases
        )

    def keyed_failure(self, result: Any) -> None:
        """Called last inside a route's or action's write transaction with what its handler
        returned: under an ``Idempotency-Key``, an answer of 5xx gives the key up (SPEC
        §10) and the retry runs anew, so the writes made before it must not stand either,
        or the retry makes them a second time. They are rolled back with the request's
        transaction; when the route's transaction is its own (rows on another database
        than the ``database`` store's records, or the ``cache`` store inside
        ``ATOMIC_REQUESTS``), it is marked for rollback here."""
        if (
            self.idempotent_execution is not None
            and isinstance(result, HttpResponseBase)
            and result.status_code >= 500
        ):
            databases = self.write_databases()
            if not self._joins_request_transaction(databases):
                for alias in databases:
                    transaction.set_rollback(True, using=alias)

    def write_values(self, instance: Any = None) -> dict[str, Any]:
        """Model values presets force on a create (``instance`` None) or an update."""
        values: dict[str, Any] = {}
        for preset in self.resource.preset_list:
            values.update(preset.write_values(self, instance))
        return values

    def perform_create(self, data: dict[str, Any]) -> Any:
        """Create a row from a body: guard → ``before_create`` → validation → save →
        ``after_create`` → presets' ``after_write`` → ``<name>.created``. Returns the saved
        serializer (``.instance``, ``.data``)."""
        resource, request = self.resource, self.request
        data = self.guard_body(data)
        try:
            self._not_aborted_before("before_create")
            with self.write_transaction():
                data = _hooked(resource.before_create(request, data), data)
                self._hook_returned("before_create", first=True)
                serializer = self.get_serializer(data=data)
                serializer.is_valid(raise_exception=True)
                forced = self.write_values(None)
                instance = serializer.save(**forced)
                resource.after_create(request, instance)
                self._hook_returned("after_create")
                self.keep_forced_values(instance, forced)
                self.keep_generic_pairs([instance])
                # the relations it renders as a read of it renders them: through this
                # view's get_queryset() (a project's Prefetch narrowing one, in the
                # resource's or a ViewSet subclass's), as a bulk create's rows do; the rows
                # it joins read again (its validation read them, before the hooks ran)
                load_relations([instance], self.get_queryset(), reload=True)
                after = serializer.data
                payload = {"id": self.id_value(instance), "data": self.event_data(after)}
                self.after_write("created", instance, payload, None, after)
                # again: a preset's after_write may have moved the row after the check
                self.keep_forced_values(instance, forced)
                self.keep_forced_stored([instance], [forced])
        except IntegrityError:
            self.refuse_if_taken(None, data)
            raise
        return serializer

    def perform_update(self, instance: Any, data: dict[str, Any]) -> Any:
        """Partially update ``instance``: guard → ``before_update`` → validation → save →
        ``after_update`` → presets' ``after_write`` → ``<name>.updated`` (with the changed
        fields and their previous values). Returns the saved serializer."""
        resource, request = self.resource, self.request
        data = self.guard_body(data)
        try:
            self._not_aborted_before("before_update")
            # the pair the row holds as the write begins: a before_update hook setting one
            # on the row is the write's, judged after the save (keep_generic_pairs)
            pairs_held = self.generic_pairs_held([instance])
            with self.write_transaction():
                data = _hooked(resource.before_update(request, instance, data), data)
                self._hook_returned("before_update", first=True)
                if self.answers_rendered_row():
                    # a route's or an action's row, read for its caller's answer only: the
                    # event's ``previous`` renders every field, whose relations are loaded
                    # as an update's row has them, once, not one row at a time by the
                    # serializer (those the row holds are not read again)
                    load_relations([instance], self.get_queryset())
                serializer = self.get_serializer(instance, data=data, partial=True)
                before = serializer.to_representation(instance)
                written = self._write_only_values(serializer.fields, instance, data)
                serializer.is_valid(raise_exception=True)
                self.keep_unoffered_rows(serializer, instance, data)
                forced = self.write_values(instance)
                with self.existing_rows(instance):
                    saved = serializer.save(**forced)
                resource.after_update(request, saved)
                self._hook_returned("after_update")
                self.keep_forced_values(saved, forced)
                self.keep_generic_pairs([saved], pairs_held)
                # the relations it renders read again, through the queryset it was read
                # from: the write and its hooks may have changed those read with it (a
                # nested book's reviews)
                load_relations([saved], self.get_queryset(), reload=True)
                after = serializer.data
                payload = self._updated_payload(saved, before, after, written)
                self.after_write("updated", saved, payload, before, after)
                # again: a preset's after_write may have moved the row after the check
                self.keep_forced_values(saved, forced)
                self.keep_forced_stored([saved], [forced])
        except IntegrityError:
            self.refuse_if_taken(instance, data)
            raise
        return serializer

    def keep_unoffered_rows(self, serializer: Any, instance: Any, data: dict[str, Any]) -> None:
        """An update's many-to-many read from a form body (the browsable API's, or any
        urlencoded or multipart one) keeps the rows ``instance`` holds that the form's
        ``<select multiple>`` does not offer this caller: those its relation's queryset
        leaves out (another tenant's, rows a project's queryset hides) and those past DRF's
        ``html_cutoff``. A form can only choose among the options it shows, and shows no
        other row selected: sent back as shown (its hidden blank for "nothing selected"),
        or as a client's ``groups=``, it removed rows the caller was never shown and could
        not name back. A JSON body's list is the whole relation, as DRF reads it; so is a
        list a hook put in place of the form's. Two queries per such relation sent: the
        offered keys, the rows held."""
        chosen = self.__dict__.get("_form_choices")
        if not chosen:
            return
        validated = serializer.validated_data
        for name, sent in chosen.items():
            field = serializer.fields.get(name)
            if (
                not isinstance(field, ManyRelatedField)
                or data.get(name) is not sent
                or field.source not in validated
            ):
                continue
            kept = _rows_not_offered(field, instance)
            if kept:
                validated[field.source] = [*validated[field.source], *kept]

    def _not_aborted_before(self, hook: str) -> None:
        """Raise a :class:`~django_arc.exceptions.ServerFault` when a write of one row
        begins with a database transaction already aborted: code of the view's that ran
        before it (a route's handler, a ViewSet method calling ``perform_update``) caught a
        failed statement without a savepoint of its own. :meth:`_hook_returned` blamed
        ``hook``, which ran no statement; entering the write's savepoint failed with a 500
        naming nothing. No query: the driver's state is read."""
        fault_if_aborted(
            self.write_databases(),
            lambda databases: (
                f"A write of {self.resource.name} began (before its {hook} hook "
                f"ran) with the transaction on {databases} already aborted: a statement the view "
                "ran before it failed and its error was caught without a savepoint of its own "
                "(wrap that statement in transaction.atomic())"
            ),
        )

    def _hook_returned(self, hook: str, *, first: bool = False) -> None:
        """Raise a :class:`~django_arc.exceptions.ServerFault` naming ``hook`` when the
        resource's hook of a write of one row returned with the database transaction aborted
        (a statement it ran failed and it caught the error without a savepoint of its own),
        as a bulk write's hooks are checked (by the same :func:`aborted_databases`). The next
        statement failed (``TransactionManagementError``, ``InFailedSqlTransaction``), a 500
        naming nothing; with none to come (a delete's ``after_delete``, the outbox off) the
        write's transaction rolled back on leaving and the request answered 200 for a row
        never deleted. No query: the driver's state is read.

        ``first``: the write's first hook, which ran right after :meth:`_not_aborted_before`
        asked the question and the write's transaction was entered (an entry that fails
        raises). When the resource does not override it, the hook is ``Resource``'s no-op,
        nothing ran since that answer, and it is not asked again (a create asked it three
        times; cost9)."""
        resource = self.resource
        if (
            first
            and getattr(type(resource), hook) is getattr(Resource, hook)
            and hook not in resource.__dict__
        ):
            return
        fault_if_aborted(
            self.write_databases(),
            lambda databases: (
                f"The {hook} hook of {self.resource.name} returned with the "
                f"transaction on {databases} aborted: a statement it ran failed and it caught the "
                "error without a savepoint of its own (wrap that statement in transaction.atomic())"
            ),
        )

    def keep_forced_values(
        self, instance: Any, forced: Mapping[str, Any], item: tuple[str, Any] | None = None
    ) -> None:
        """Raise a :class:`~django_arc.exceptions.ServerFault` when the saved row no longer
        holds a value its presets forced (``forced``, :meth:`write_values`): the project's
        ``save()`` override, a ``pre_save``/``post_save`` receiver or a hook changed it after
        the guards ran — a row written into another organization (or for another owner)
        than the caller's, answered as the caller's write with the other tenant's id, its
        event naming the caller's organization. Refused as the server's fault (500, the
        cause logged; an ``item`` of a write of several, ``(key, index)``, named in
        ``details``: its index in the body's list, or, for rows the client never listed, its
        id); the write's transaction rolls back, nothing is stored. No query: the instance's
        attributes are read. Checked after the hook and again after the presets'
        ``after_write``, which may move a row as well."""
        if not forced:  # a resource whose presets force nothing (cost9: no comprehension)
            return
        moved = [name for name, value in forced.items() if getattr(instance, name, value) != value]
        if moved:
            self._refuse_moved(moved, item)

    def _refuse_moved(self, moved: list[str], item: tuple[str, Any] | None) -> None:
        """The :class:`~django_arc.exceptions.ServerFault` of :meth:`keep_forced_values`:
        ``moved`` names the forced values a row no longer holds."""
        what, details = f"A write of {self.resource.name}", None
        if item is not None:
            key, index = item
            what = f"Item {key}[{index}] of a write of {self.resource.name}"
            details = ServerFault.item_details(key, index)
        raise ServerFault(
            f"{what} left {', '.join(moved)} other than the value its presets force (the "
            "caller's tenant or owner): the model's save(), a pre_save/post_save receiver or "
            "a hook changed it after the guards ran; nothing is written",
            details,
        )

    def refuse_if_taken(self, instance: Any, data: dict[str, Any]) -> None:
        """After a write's ``IntegrityError`` (its transaction rolled back): the body
        validated again, now that the row it collided with has committed. Two requests
        racing for one unique value both pass the serializer's uniqueness check, and the
        database refuses the second's INSERT or UPDATE once the first commits; that request
        answers what it would have, had it come second: the 400 naming the field. A
        violation the serializer does not check (a constraint of the database's only), or a
        connection still inside a broken transaction (a keyed request's), keeps the 409."""
        try:
            serializer = self.get_serializer(instance, data=data, partial=instance is not None)
            valid = serializer.is_valid()
        except DatabaseError:  # a transaction the error broke is still open: keep the 409
            return
        if not valid:
            raise ValidationError(serializer.errors)
        self._refuse_if_unchecked(instance, serializer)

    def _refuse_if_unchecked(self, instance: Any, serializer: Any) -> None:
        """After a write's ``IntegrityError``, a body the serializer passes: the model's
        check constraints (``CheckConstraint``) judged on the values written, as Django's
        forms and admin judge them (``Model.validate_constraints``). A violated one is the
        400 with its ``violation_error_message`` under ``non_field_errors`` (where Django
        puts it), not a 409 naming nothing: the client sent a value the table refuses, and
        the message is the project's. Check constraints only: each reads the row's own
        values, no other row, so the answer tells nothing of rows the caller cannot see (a
        unique constraint's would). Asked on the failure's path alone, so no write pays for
        it; a value Django cannot judge in Python, or a transaction still broken, keeps the
        409."""
        model = self.resource.model
        row = instance
        if row is None:
            values = {**serializer.validated_data, **self.write_values(None)}
            names = {f.name for f in model._meta.concrete_fields} | {
                f.attname for f in model._meta.concrete_fields
            }
            try:
                row = model(**{k: v for k, v in values.items() if k in names})
            except (TypeError, ValueError):
                return
        messages: list[str] = []
        database = router.db_for_write(model, instance=row)
        for model_class, constraints in row.get_constraints():
            for constraint in constraints:
                if not isinstance(constraint, models.CheckConstraint):
                    continue
                try:
                    constraint.validate(model_class, row, using=database)
                except DjangoValidationError as exc:
                    messages.extend(exc.messages)
                except (DatabaseError, FieldDoesNotExist, TypeError, ValueError):
                    return
        if messages:
            raise ValidationError({api_settings.NON_FIELD_ERRORS_KEY: messages})

    @contextmanager
    def existing_rows(self, *instances: Any) -> Iterator[None]:
        """Within it, ``save()`` of ``instances`` (rows read before the write began) only
        updates, and finding a row gone is 404 ``NOT_FOUND``, as for a request that comes
        after the DELETE. Django's ``save()`` of a row it cannot update inserts it: an
        update or an action racing a DELETE brought the row back, with its event; and
        ``save(update_fields=…)`` raises a ``DatabaseError`` there (a 500).

        The updating ``save`` is an attribute of each instance for the block's length only,
        kept as short as the save it guards (an action's handler is the block). A copy of
        the instance made within it (``copy.copy()``, ``deepcopy``, pickling: Django's
        ``__reduce__`` copies ``__dict__``) leaves it out, through an instance
        ``__getstate__``: a shared one saved the *original* row, so a handler cloning its row
        (``clone = copy(instance); clone.pk = None; clone.save()``) created nothing."""
        # a block within another (a route calling perform_update) restores the outer one's
        # attributes on leaving, rather than leaving the rest of the outer block unguarded
        previous = [
            {name: instance.__dict__.get(name, _ABSENT) for name in _GUARD_ATTRS}
            for instance in instances
        ]
        for instance in instances:
            instance.save = _updating_save(instance)
            instance.__getstate__ = functools.partial(_unguarded_state, instance)
        try:
            yield
        except DatabaseError as exc:
            if str(exc) not in _ROW_GONE:
                raise
            raise NotFound(f"{self.resource.name} row deleted while the request ran") from None
        finally:
            for instance, attrs in zip(instances, previous, strict=True):
                for name, value in attrs.items():
                    if value is _ABSENT:
                        instance.__dict__.pop(name, None)
                    else:
                        instance.__dict__[name] = value

    def updated_payload(
        self,
        instance: Any,
        before: dict[str, Any],
        after: dict[str, Any],
        written: dict[str, tuple[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The ``<name>.updated`` payload: the row, the fields that changed and their
        previous values (hidden fields never included). A ``write_only`` field the body set
        (``written``, :meth:`_write_only_values`) whose stored value changed is named in
        ``changed`` after the rendered ones, never with a value: not in ``data`` nor in
        ``previous`` (a PATCH of a password alone said ``changed: []``)."""
        data_after, data_before = self.event_data(after), self.event_data(before)
        changed = [k for k, v in data_after.items() if not same_json_value(data_before.get(k), v)]
        previous = {k: data_before.get(k) for k in changed}
        for name, (source, value) in (written or {}).items():
            if name not in data_after and getattr(instance, source, _ABSENT) != value:
                changed.append(name)
        return {
            "id": self.id_value(instance),
            "data": data_after,
            "changed": changed,
            "previous": previous,
        }

    def _updated_payload(
        self,
        instance: Any,
        before: dict[str, Any],
        after: dict[str, Any],
        written: dict[str, tuple[str, Any]] | None,
    ) -> dict[str, Any]:
        """:meth:`updated_payload`, called as a project's override takes it: one written for
        its three-argument shape (before ``written`` came) is called with three, as it was,
        rather than failing every update with a ``TypeError``."""
        updated_payload = self.updated_payload
        if _takes_written(self, updated_payload):
            return updated_payload(instance, before, after, written)
        return updated_payload(instance, before, after)

    def _write_only_values(
        self, fields: Mapping[str, Any], instance: Any, data: Mapping[str, Any]
    ) -> dict[str, tuple[str, Any]]:
        """``{name: (attribute, value now)}`` of the serializer's ``write_only`` fields
        (``fields``) the body ``data`` sets on ``instance``, read before the save, for
        :meth:`updated_payload` to tell which changed. A field the resource hides
        (``hidden()``, DRF's ``HiddenField``), a dotted or ``*`` source and a value the
        model does not hold as an attribute are left out. A foreign key is read by its
        column (``author_id``: its row is not loaded, a query a row); a many-to-many or
        reverse relation is no value of the row's (its manager always equals the last one)
        and is left out too."""
        hidden = self.resource.field_rules.hidden
        held: dict[str, tuple[str, Any]] = {}
        for name in data:
            field = fields.get(name)
            if field is None or not field.write_only or name in hidden:
                continue
            source = getattr(field, "source", None) or name
            if isinstance(field, HiddenField) or source == "*" or "." in source:
                continue
            try:
                column = instance._meta.get_field(source)
            except FieldDoesNotExist:
                column = None  # a property, an attribute of the project's own
            if column is not None and column.is_relation:
                if not column.concrete or column.many_to_many:
                    continue
                source = column.attname
            value = getattr(instance, source, _ABSENT)
            if value is not _ABSENT:
                held[name] = (source, value)
        return held

    def perform_destroy(self, instance: Any) -> bool:
        """Delete ``instance``: ``before_delete`` → the first preset's ``perform_delete``
        (soft delete) or a hard delete → ``after_delete`` → presets' ``after_write`` →
        ``<name>.deleted``. Returns whether the row was kept (soft)."""
        resource, request = self.resource, self.request
        id_value, pk = self.id_value(instance), instance.pk
        self._not_aborted_before("before_delete")
        # a cascade judged (``_hard_delete``) is judged, locked and deleted in one
        # transaction: in autocommit no lock could be taken and the check's collection
        # was stale by the delete
        with self.write_transaction(always=_cascades_into_itself(resource.model)):
            resource.before_delete(request, instance)
            self._hook_returned("before_delete", first=True)
            before = self.snapshot(instance) if resource.write_observers else None
            with self.existing_rows(instance):  # a preset's soft delete saving the row
                soft = any(p.perform_delete(self, instance) for p in resource.preset_list)
            if not soft and _deleted_nothing(self._hard_delete(instance)):
                # another request deleted it since this one read it: answered as if second
                raise NotFound(f"{resource.name} {id_value!r} deleted while the request ran")
            if not soft:
                # Django clears the pk of a deleted instance; hooks, presets and the event
                # still need to name the row.
                instance.pk = pk
            resource.after_delete(request, instance)
            self._hook_returned("after_delete")
            after = self.snapshot(instance) if soft and resource.write_observers else None
            self.after_write("deleted", instance, {"id": id_value, "soft": soft}, before, after)
        return soft

    def _hard_delete(self, instance: Any) -> Any:
        """Delete ``instance`` for good, its cascade judged first; returns what
        ``delete()`` returns. The rows judged are the rows deleted: the check's collection
        is the delete's (Django's collector ran twice, the second time finding what another
        caller had filed under the row meanwhile, deleted unjudged), unless the model has a
        ``delete()`` of its own, which is run as it is. The row is locked first
        (``SELECT … FOR UPDATE``, in the write's transaction): a row another caller files
        under it waits for the delete (PostgreSQL's foreign key check takes ``FOR KEY
        SHARE`` on the parent) and then finds its parent gone."""
        model = type(instance)
        if not _cascades_into_itself(model):
            return instance.delete()
        alias = router.db_for_write(model, instance=instance)
        connection = connections[alias]
        if connection.features.has_select_for_update and connection.in_atomic_block:
            # a row another request deleted since this one read it: collected as before,
            # deleting nothing, answered 404 by the caller. Unordered: a ``Meta.ordering``
            # across a nullable relation (a tree's ``parent__name``) is a LEFT OUTER JOIN,
            # whose nullable side PostgreSQL refuses to lock (every such delete a 500)
            # ``lockable``: a base manager reading ``distinct()`` cannot be locked as it is
            row = model._base_manager.using(alias).filter(pk=instance.pk)
            list(lockable(row).select_for_update().order_by().values_list("pk", flat=True))
        collector = self.refuse_cascade_beyond_reach([instance])
        if collector is None:
            return instance.delete()
        if model.delete is not models.Model.delete:
            return refuse_deleted_unjudged(collector, instance.delete)
        return collector.delete()

    def refuse_cascade_beyond_reach(self, rows: list[Any], origin: Any = None) -> Collector | None:
        """Refuse (409 ``CONFLICT``, the message of a protected row) a hard delete of
        ``rows`` whose ``on_delete=CASCADE`` would remove other rows of this resource's own
        model (a tree's children) that the caller may not delete: rows outside the delete's
        filters (another owner's under ``require_owner``, another tenant's) or refused by
        the object checks (a preset's ``check_object``: an owner's). Deleting a folder
        removed the folders other members kept in it, which a delete of each was refused
        (403); Django's admin likewise refuses a delete whose cascade reaches objects the
        user may not delete. Asked only of models whose cascades lead back to themselves,
        directly or through other models' rows (Django's collector, whose collection a
        single delete then deletes: :meth:`_hard_delete`); rows of other models cascade as
        the schema says. Returns the collector
        holding ``rows`` and all they cascade into (``None`` when nothing was collected),
        whose ``delete()`` deletes exactly the rows judged, its signals naming ``origin``
        (the first row, as ``Model.delete()`` names its row; a bulk delete's queryset, as
        ``QuerySet.delete()`` names it)."""
        model = self.resource.model
        if not rows or not _cascades_into_itself(model):
            return None
        concrete = model._meta.concrete_model
        collector = Collector(
            using=router.db_for_write(model, instance=rows[0]),
            origin=rows[0] if origin is None else origin,
        )
        collector.collect(rows)  # a PROTECT of the rows themselves raises here, a 409 too
        named = {row.pk for row in rows}
        reached = [
            row
            for each, found in collector.data.items()
            if each._meta.concrete_model is concrete
            for row in found
            if row.pk not in named
        ]
        for batch in collector.fast_deletes:
            if batch.model._meta.concrete_model is concrete:
                reached.extend(batch)
        if not reached:
            return collector
        # in batches a statement may name, as Django's collector deletes them: SQLite's
        # bound on variables (999 before 3.32) made a large subtree's check a 500
        ops = connections[collector.using].ops
        size = max(ops.bulk_batch_size(["pk"], reached) or len(reached), 1)
        queryset = self.get_queryset()
        allowed: set[Any] = set()
        for start in range(0, len(reached), size):
            pks = [row.pk for row in reached[start : start + size]]
            allowed.update(queryset.filter(pk__in=pks).values_list("pk", flat=True))
        for row in reached:
            try:
                if row.pk not in allowed:
                    raise ArcError("CONFLICT", STILL_REFERRED_TO, 409)
                self._object_checks(self.request, row)
            except _REFUSALS as exc:
                if _server_error(exc) or (isinstance(exc, APIException) and _throttle(exc)):
                    raise
                raise ArcError("CONFLICT", STILL_REFERRED_TO, 409) from None
        return collector

    def snapshot(self, instance: Any) -> dict[str, Any]:
        """The row as the serializer renders it (what ``after_write`` compares)."""
        return self.get_serializer(instance).data

    def after_write(
        self,
        verb: str,
        instance: Any,
        payload: dict[str, Any],
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> Any:
        """The tail every write shares, inside its transaction: each preset's
        ``after_write`` (audit), then the ``<name>.<verb>`` event. Returns the event."""
        if not self.resource.write_observers:
            # nothing to watch (what :meth:`_watching_updates` notes then), without
            # entering a generator's context manager on every write (cost9)
            self.__dict__["_arc_presets_updated"] = False
            return self.emit(verb, instance.pk, payload)
        with self._watching_updates():
            for preset in self.resource.write_observers:
                preset.after_write(self, verb, instance, before, after)
        return self.emit(verb, instance.pk, payload)

    def after_write_many(
        self,
        verb: str,
        records: list[tuple[Any, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]],
    ) -> list[Any]:
        """:meth:`after_write` for many rows at once (bulk writes): ``records`` holds
        ``(instance, payload, before, after)`` per row. Presets record them in one batch,
        then one ``<name>.<verb>`` event per row. Returns the events."""
        with self._watching_updates():
            for preset in self.resource.write_observers:
                preset.after_write_many(self, verb, [(i, b, a) for i, _, b, a in records])
        return self.emit_many(verb, [(instance.pk, payload) for instance, payload, _, _ in records])

    @contextmanager
    def _watching_updates(self) -> Iterator[None]:
        """Note (``_arc_presets_updated``) whether the presets' ``after_write`` ran an
        ``UPDATE`` on a write database: one writing a row behind its instance's back
        (``QuerySet.update()``, another instance's ``save()``) escapes
        :meth:`keep_forced_values`, which reads the instance, and
        :meth:`keep_forced_stored` then reads the forced columns back. Watching costs no
        query; the audit preset's ``INSERT`` is no ``UPDATE``."""
        updated: list[bool] = []

        def watch(execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
            if not updated and _may_update(sql):
                updated.append(True)
            return execute(sql, params, many, context)

        if not self.resource.write_observers:
            self.__dict__["_arc_presets_updated"] = False
            yield
            return
        with ExitStack() as stack:
            for alias in self.write_databases():
                stack.enter_context(connections[alias].execute_wrapper(watch))
            yield
        self.__dict__["_arc_presets_updated"] = bool(updated)

    def keep_forced_stored(
        self,
        instances: list[Any],
        forced: list[Mapping[str, Any]],
        items: list[tuple[str, Any]] | None = None,
    ) -> None:
        """:meth:`keep_forced_values` against the database, after the presets'
        ``after_write`` ran an ``UPDATE`` (:meth:`_watching_updates`): a preset moving a row
        with ``QuerySet.update()`` leaves its instance as it was, and the row was written
        into another tenant, answered as the caller's. The forced columns of the written
        rows are read back in one query, only then (no write pays for it otherwise); a row
        holding another value is the same 500 (naming its item, ``items[i]`` as ``(key,
        index)``) and the write's transaction rolls back, its event and audit row with it.
        A row the preset deleted is no move, and is not judged."""
        if not self.__dict__.get("_arc_presets_updated") or not instances:
            return
        model = self.resource.model
        fields: dict[str, Any] = {}
        for values in forced:
            for name in values:
                if name not in fields:
                    try:
                        field = model._meta.get_field(name)
                    except FieldDoesNotExist:  # no column: keep_forced_values judged it
                        continue
                    if getattr(field, "concrete", False) and not field.many_to_many:
                        fields[name] = field
        if not fields:
            return
        database = instances[0]._state.db or router.db_for_write(model)
        attnames = [field.attname for field in fields.values()]
        stored = {
            row[0]: dict(zip(fields, row[1:], strict=True))
            for row in model._base_manager.using(database)
            .filter(pk__in=[instance.pk for instance in instances])
            .values_list("pk", *attnames)
        }
        for index, (instance, values) in enumerate(zip(instances, forced, strict=True)):
            row = stored.get(instance.pk)
            if row is None:
                continue
            moved = [
                name
                for name, value in values.items()
                if name in fields and not _same_stored(fields[name], row[name], value)
            ]
            if moved:
                self._refuse_moved(moved, None if items is None else items[index])

    def emit(self, verb: str, pk: Any, payload: dict[str, Any]) -> Any:
        """Send ``<resource>.<verb>`` through the ``resource_event`` signal (→ outbox),
        inside the current transaction."""
        from .events import emit

        return emit(
            f"{self.resource.name}.{verb}",
            payload,
            request=self.request,
            resource=self.resource.name,
            resource_id=pk,
        )

    def emit_many(self, verb: str, rows: list[tuple[Any, dict[str, Any]]]) -> list[Any]:
        """:meth:`emit` for the rows of a bulk write, ``(pk, payload)`` each: one
        ``<resource>.<verb>`` per row, in one event batch (one outbox INSERT)."""
        from .events import emit_many

        return emit_many(
            f"{self.resource.name}.{verb}",
            rows,
            request=self.request,
            resource=self.resource.name,
        )

    def event_data(self, rep: Any) -> dict[str, Any]:
        """A row as events carry it: everything the serializer renders except hidden fields
        (events are internal, but hidden means never leaves the server)."""
        hidden = self.resource.field_rules.hidden
        return {k: v for k, v in rep.items() if k not in hidden}

    def id_value(self, instance: Any) -> Any:
        """The row's id as the URL names it (the lookup field's value)."""
        lookup = self.resource.lookup_field
        value = instance.pk if lookup == "pk" else getattr(instance, lookup)
        return value if isinstance(value, (int, str)) else str(value)


#: what :meth:`ResourceGenericViewSet.write_databases` answers without a router
_DEFAULT_ONLY = (DEFAULT_DB_ALIAS,)


#: what a GET :meth:`~ResourceGenericViewSet.may_read` asks about may be refused with: any
#: 4xx ``APIException`` (DRF's ``ValidationError`` too), ``Http404``, Django's
#: ``PermissionDenied`` and Django's ``ValidationError``, which the handler answers as DRF's
#: 400 (it propagated: the GET's 400 replaced the write's refusal, where a missing id is 404)
_REFUSALS = (APIException, Http404, DjangoPermissionDenied, DjangoValidationError)


class _GenericPairCheck:
    """A check, run after the serializer's own ``validate()`` (:func:`_checked_after`),
    that the row a ``GenericForeignKey``'s pair names (the values sent, over the row's for
    a partial update) is one the caller may name
    (:meth:`ResourceGenericViewSet.generic_target_rows`): one query per pair sent. A row
    outside them answers exactly as a missing one, 400 naming the object id field with
    DRF's message for a missing related row, which names no model (the content type is
    only its id)."""

    requires_context = True

    def __init__(self, view: Any, pair: Any, written: dict[str, str], row: Any = None) -> None:
        # ``row``: the row an action's input is sent to, whose half of the pair the input
        # leaves to it (the serializer has no ``instance``: a plain one takes none)
        self.view, self.pair, self.written, self.row = view, pair, written, row

    def __call__(self, attrs: Any, serializer: Any) -> None:
        pair = self.pair
        ct_source, fk_source = pair.ct_field, pair.fk_field
        if not isinstance(attrs, Mapping) or (ct_source not in attrs and fk_source not in attrs):
            return
        instance = getattr(serializer, "instance", None)
        if not isinstance(instance, models.Model):
            instance = self.row
        # the row's content type by its column (``content_type_id``): read through the
        # foreign key it was a query per call, which the content types' cache by id saves
        meta = pair.model._meta
        content_type = (
            attrs[ct_source]
            if ct_source in attrs
            else _held(instance, meta.get_field(ct_source).attname)
        )
        object_id = attrs[fk_source] if fk_source in attrs else _held(instance, fk_source)
        if content_type is None or object_id is None:
            return  # a nullable pair cleared, or half of one the serializer requires
        if not self.view.names_generic_target(pair, content_type, object_id):
            name = self.written.get(fk_source) or self.written.get(ct_source) or fk_source
            message = str(PrimaryKeyRelatedField.default_error_messages["does_not_exist"])
            raise ValidationError({name: [message.format(pk_value=object_id)]})


class _KeyColumnCheck:
    """A model serializer's ``run_validation`` (``serializer``'s own, then this check on what
    it returns): each foreign key column its values set other than through the declared
    relation field (whose value is already a row) is read as that relation would
    (:meth:`ResourceGenericViewSet.key_column_target`). A row the caller may not name is
    refused as DRF refuses a missing one, 400 under the path the body sent it at
    (``{"extra": {"product_id": [...]}}``). A name key (``product``) is given the row, as
    the relation gives it; an attname key the row's key. An update leaving the row's own
    value as it is asks nothing (a row written outside the API may point anywhere)."""

    def __init__(self, view: Any, serializer: Any, keys: dict[str, Any]) -> None:
        self.view, self.serializer, self.keys = view, serializer, keys
        self.run_validation = serializer.run_validation

    def __call__(self, data: Any = empty) -> Any:
        attrs = self.run_validation(data)
        if not isinstance(attrs, dict):
            return attrs
        instance = getattr(self.serializer, "instance", None)
        for key in [key for key in attrs if key in self.keys]:
            value, model_field = attrs[key], self.keys[key]
            if isinstance(value, models.Model):
                continue  # the declared relation's row: narrowed as it was read
            if model_field.many_to_many:
                if isinstance(value, (list, tuple)) and all(
                    isinstance(row, models.Model) for row in value
                ):
                    continue  # the declared relation's rows (or none)
            elif isinstance(instance, models.Model) and value is not None:
                held = getattr(instance, model_field.attname, None)
                if held is not None and str(held) == str(value):
                    if key == model_field.name:  # the relation's name takes a row, not a key
                        attrs[key] = getattr(instance, model_field.name)
                    continue
            try:
                row = self.view.key_column_target(self.serializer, model_field, value)
            except ValidationError as exc:
                path = _sent_at(self.serializer, data, {model_field.name, model_field.attname})
                detail: Any = exc.detail
                for name in reversed(path or [key]):
                    detail = {name: detail}
                raise ValidationError(detail) from None
            if key == model_field.name:
                attrs[key] = row
            else:
                attrs[key] = None if row is None else getattr(row, model_field.target_field.attname)
        return attrs


def _key_columns(model: type[models.Model]) -> dict[str, Any]:
    """``model``'s foreign keys and one-to-ones by name and by column (``product``,
    ``product_id``), but a multi-table child's link to its parent (its primary key, judged
    as the id is), and its many-to-manys by name (rev-fixes74: a bag's ``{"shelves": [id]}``
    linked another tenant's shelf, 200)."""
    keys: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.is_relation and not field.primary_key:
            keys[field.name] = keys[field.attname] = field
    for field in model._meta.many_to_many:
        # ``ModelSerializer.update()`` hands a bag's ids to ``set()``, which takes them
        keys[field.name] = field
    return keys


def _sent_at(serializer: Any, data: Any, names: set[str]) -> list[str] | None:
    """The path in ``data`` (``serializer``'s body) of the value that set one of ``names`` (a
    foreign key's name and column): a field with that ``source``, or a key of a
    ``source="*"`` bag (a ``JSONField``'s object as text too), inside nested ``source="*"``
    serializers; the last one, as DRF merges them in field order. ``None`` when the body
    holds none (a ``validate()`` set it)."""
    if not isinstance(data, Mapping):
        return None
    found = None
    for name, field in serializer.fields.items():
        if field.read_only or name not in data:
            continue
        value = data[name]
        if field.source in names:
            found = [name]
        elif field.source != "*":
            continue
        elif isinstance(field, Serializer):
            inner = _sent_at(field, value, names)
            found = [name, *inner] if inner else found
        else:
            if isinstance(value, str):
                value = _object_in_text(value)
            if isinstance(value, Mapping):
                for key in names:
                    if key in value:
                        found = [name, key]
    return found


#: the most ids :meth:`ResourceGenericViewSet.judge_generic_pairs` asks for in one query
#: (below SQLite's oldest limit of 999 parameters, with room for the presets' conditions)
_JUDGED_AT_ONCE = 500

#: what a key's ``to_python`` or a content type's lookup refuses a value with
_BAD_KEY = (ValueError, TypeError, OverflowError)


def _judged_at_once(view: Any, field: Any, checks: list[Any]) -> Any:
    """A list serializer's (``field``'s) ``to_internal_value`` judging its entries' pairs at
    once (:meth:`ResourceGenericViewSet.judge_generic_pairs`) before each entry is validated
    and checked: each check then finds its answer, and its refusal is named under its index
    as before. A list longer than its ``max_length`` is refused by DRF before any entry is
    read: judged first, its entries cost queries for a list refused whatever they name."""
    to_internal_value = field.to_internal_value
    longest = getattr(field, "max_length", None)

    def validated(data: Any) -> Any:
        if longest is None or not isinstance(data, list) or len(data) <= longest:
            view.judge_generic_pairs(checks, data)
        return to_internal_value(data)

    return validated


def _checked_after(validate: Any, checks: list[Any], serializer: Any) -> Any:
    """``validate`` (the serializer's own ``validate()``), then the pair's ``checks`` on
    what it returns: as a validator the check ran before it, so a serializer setting the
    content type there (notes on places: the client sends only ``object_id``) saw half a
    pair and let any id through, another tenant's place included."""

    def checked(attrs: Any) -> Any:
        attrs = validate(attrs)
        for check in checks:
            check(attrs, serializer)
        return attrs

    return checked


def _stored_pair(row: Any, pair: Any) -> tuple[Any, str] | None:
    """The content type id and the object id (as text, as :meth:`~ResourceGenericViewSet.
    names_generic_target` notes what it judged) ``row`` holds for ``pair``; ``None`` when
    either is null (a pair cleared names no row). No query: its attributes are read."""
    meta = row._meta
    content_type = getattr(row, meta.get_field(pair.ct_field).attname, None)
    object_id = getattr(row, meta.get_field(pair.fk_field).attname, None)
    if content_type is None or object_id is None:
        return None
    return content_type, str(object_id)


def _held(instance: Any, attname: str) -> Any:
    """The value ``instance`` (the row an update writes) holds for one half of a pair."""
    if instance is None:
        return None
    try:
        return getattr(instance, attname)
    except ObjectDoesNotExist:
        return None


def _guard_written(
    access: Any,
    value: Any,
    columns: dict[str, Any],
    harmless: Any,
    path: str,
    denied: list[str],
) -> Any:
    """``value``, sent to a field whose keys write the row's columns (a nested
    ``source="*"`` serializer, a ``DictField``'s or ``JSONField``'s), as
    :func:`_guard_on_row` leaves it, at whatever depth the field is: a ``JSONField``'s
    object may come as text, which DRF parses (``binary=True``, a form), so it is parsed to
    be judged. Judged at the top level only, such a field inside a nested ``source="*"``
    serializer took ``{"meta": {"bag": "{\"owner_id\": …}"}}`` unjudged (rev-fixes72: the
    owner moved to another tenant's user, 200). Anything else is the field's own to refuse."""
    if isinstance(value, dict):
        return _guard_on_row(access, value, columns, harmless, path, denied)
    if not (isinstance(value, str) and getattr(columns, "json", False)):
        return value
    parsed = _object_in_text(value)
    if parsed is None:
        return value  # the field's own to refuse
    kept = _guard_on_row(access, parsed, columns, harmless, path, denied)
    if kept == parsed:
        return value
    # a dict passes a text-reading ``JSONField`` as it is, unless binary
    return json.dumps(kept) if columns.binary else kept


def _object_in_text(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, as a ``JSONField`` sent text (``binary=True``, a form)
    parses it, or ``None``: not JSON, nested past Python's limit, or not an object."""
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _guard_on_row(
    access: Any,
    value: dict[str, Any],
    columns: dict[str, Any],
    harmless: Any,
    path: str,
    denied: list[str],
) -> dict[str, Any]:
    """``value``, the body of a nested serializer whose values are the row's own
    (``source="*"``), without the keys the caller may not write: each judged as the column
    it writes (``columns``, :attr:`~django_arc.resources.Resource.written_on_row`), as a
    top-level key is by :meth:`~django_arc.fields.FieldAccess.guard`; those refused are
    added to ``denied`` by their path (``meta.owner``), and left out."""
    kept: dict[str, Any] = {}
    for key, item in value.items():
        column = columns.get(key)
        if column is None:  # no field of the nested serializer: DRF reads nothing of it
            kept[key] = item
        elif isinstance(column, dict):
            kept[key] = _guard_written(access, item, column, harmless, f"{path}{key}.", denied)
        else:
            verdict = access.body_verdict(column, column, item, harmless)
            if verdict:
                kept[key] = item
            elif verdict is None:
                denied.append(f"{path}{key}")
    return kept


@functools.lru_cache(maxsize=256)
def _kind_names_rows(field_class: type) -> bool:
    """Whether ``field_class`` names rows by its kind alone (a serializer, a relation): a
    class's bases do not change, so the answer is kept, for as many classes as a project
    has (bounded: each ``isolate_apps`` or test-made class is not kept for the life of the
    process). ``isinstance`` against the three took longer per field than the rest of the
    walk's question (cost9). What a class may be given later (a ``queryset``, a ``child``)
    is read from the field on each write instead
    (:meth:`ResourceGenericViewSet._narrow_relations`)."""
    return issubclass(field_class, (Serializer, RelatedField, ManyRelatedField))


def _concrete_model(model: Any) -> Any:
    """The model whose table holds ``model``'s rows (itself, unless a proxy)."""
    meta = getattr(model, "_meta", None)
    return meta.concrete_model if meta is not None else model


@functools.cache
def _cascades_into_itself(model: type[models.Model]) -> bool:
    """Whether deleting a row of ``model`` may delete other rows of its table: a chain of
    ``on_delete=CASCADE`` relations from the model (or a proxy, a child) back to itself,
    directly (a tree's parent) or through rows of other models (a sheet in a slot of
    another sheet: only a direct relation was asked, so such a cascade went unjudged), or
    into rows of a multi-table parent, which may be the parent rows of other rows of the
    model (a shop's place, the places near it: a child was judged only by its own table).
    A ``GenericRelation`` is such a link too: Django's collector deletes the rows it holds
    with the row (``bulk_related_objects``), whatever their ``on_delete`` (a comment's
    replies, comments on the comment: they were deleted unjudged)."""
    concrete = model._meta.concrete_model
    seen = {concrete}
    todo = [concrete]
    while todo:
        # the relations Django's collector follows, hidden ones (``related_name="+"``) and
        # generic ones (a model's ``private_fields``) too
        for rel in todo.pop()._meta.get_fields(include_hidden=True):
            if hasattr(rel, "bulk_related_objects"):
                pass  # a GenericRelation: the collector deletes what it holds
            elif not (
                rel.auto_created
                and not rel.concrete
                and (rel.one_to_one or rel.one_to_many)
                and rel.on_delete is models.CASCADE
            ):
                continue
            reached = rel.related_model._meta.concrete_model
            # a multi-table child's row deletes its parents' rows with it; the row's own
            # child part (its parent link) is the same row, whose relations lead on. Rows
            # of a parent of the model reached otherwise may be other rows of the model (a
            # shop's place deleting the places near it, and their shops with them)
            if not getattr(rel, "parent_link", False) and (
                reached is concrete
                or concrete in reached._meta.get_parent_list()
                or reached in concrete._meta.get_parent_list()
            ):
                return True
            if reached not in seen:
                seen.add(reached)
                todo.append(reached)
    return False


def _throttle(exc: APIException) -> bool:
    """Whether ``exc`` is a throttle's refusal (DRF's ``Throttled``, an ``ArcError`` or a
    project's ``APIException`` of status 429): "not now", which says nothing of the row."""
    return exc.status_code == 429


def _server_error(exc: Exception) -> bool:
    """Whether ``exc``, raised while :meth:`~ResourceGenericViewSet.may_read` asks, is a 5xx:
    no refusal (any 4xx ``APIException``, ``Http404``, Django's ``PermissionDenied`` is)."""
    return isinstance(exc, APIException) and exc.status_code >= 500


def _hooked(result: Any, data: dict[str, Any]) -> dict[str, Any]:
    return data if result is None else result


#: what Django's ``save()`` raises for a row it was told to update and found gone
_ROW_GONE = frozenset(
    {"Forced update did not affect any rows.", "Save with update_fields did not affect any rows."}
)


#: the instance attributes :meth:`ResourceGenericViewSet.existing_rows` sets
_GUARD_ATTRS = ("save", "__getstate__")
_ABSENT = object()


def _unguarded_state(instance: Any) -> dict[str, Any]:
    """``instance``'s state for a copy or a pickle, without the guard's attributes."""
    state = type(instance).__getstate__(instance)
    for name in _GUARD_ATTRS:
        state.pop(name, None)
    return state


def _updating_save(instance: Any) -> Any:
    """``instance.save`` that updates only (``force_update``) when it names a row, unless
    its caller asks otherwise; the model's own ``save()`` when it takes no
    ``force_update`` (a project's ``def save(self)``), which is left as it is."""
    save = type(instance).save
    if not _takes_force_update(save):
        return functools.partial(save, instance)

    def updating_save(*args: Any, **kwargs: Any) -> Any:
        if not args and instance.pk is not None and not kwargs.get("force_insert"):
            kwargs.setdefault("force_update", True)
        return save(instance, *args, **kwargs)

    return updating_save


@functools.cache
def _takes_force_update(save: Any) -> bool:
    try:
        parameters = inspect.signature(save).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.name == "force_update" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
    )


def _takes_written(view: Any, updated_payload: Any) -> bool:
    """Whether ``updated_payload`` (``view.updated_payload``, as the view is called with
    it: a method bound to the view, a ``staticmethod``'s function, a ``classmethod`` bound
    to the class, a callable object) takes ``written`` after ``instance, before, after``;
    one that cannot be inspected is taken to. Remembered per attribute the view holds (its
    class's function, ``staticmethod`` or ``classmethod``), never per bound method, which is
    new on every access; one that cannot be remembered (an unhashable callable object) is
    inspected on every call rather than failing the update with ``TypeError``, as is one
    the view set on itself (a bound method new on every request, which as a key kept its
    view, request and response for the life of the process)."""
    if "updated_payload" in getattr(view, "__dict__", ()):
        return _binds_written(updated_payload)
    held = inspect.getattr_static(view, "updated_payload", None)
    try:
        known = _written_taken.get(held)
    except TypeError:  # unhashable
        return _binds_written(updated_payload)
    if known is None:
        known = _written_taken[held] = _binds_written(updated_payload)
    return known


#: :func:`_takes_written`'s answers, by the attribute a view class holds (a class's own
#: function, ``staticmethod`` or ``classmethod``: as many as the project defines)
_written_taken: dict[Any, bool] = {}


def _binds_written(updated_payload: Any) -> bool:
    try:
        inspect.signature(updated_payload).bind(None, None, None, None)
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def _deleted_nothing(result: Any) -> bool:
    """Whether ``Model.delete()``'s ``(count, per model)`` says no row went (a project's
    ``delete()`` returning something else is taken at its word)."""
    return isinstance(result, tuple) and len(result) == 2 and result[0] == 0


def _body_too_big(request: Any) -> bool:
    """Whether reading ``request.body`` raises ``RequestDataTooBig``: Django's own test."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return limit is not None and _stated_length(request) > limit


def _body_read_before(request: Any) -> UnsupportedMediaType:
    """The answer to a route reading ``request.body`` whose multipart body was read before
    the view, by a project middleware asking for ``request.POST``: Django parsed it from
    the request's stream and kept no bytes, so no code can give the route what it asks
    for. The client is told the route cannot take this body as multipart (JSON or a form,
    whose bytes Django keeps, it can), a 415 in the envelope rather than a 500; the
    operator is told why, since the fix is the middleware's."""
    logger.warning(
        "%s: a route read request.body, but its multipart body was read before the view "
        "(a middleware reading request.POST); answered 415",
        log_text(request.path),
    )
    return UnsupportedMediaType(
        request.content_type,
        "This route cannot read a multipart body here; send it as JSON or a form",
    )


def _stated_length(request: Any) -> int:
    """The request's ``Content-Length``, 0 when it states none (DRF then parses nothing)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except (TypeError, ValueError):
        return 0


#: the word an ``UPDATE`` holds, wherever in the statement: after a leading comment (a
#: project's own execute wrapper, outside the one watching the presets, tagging every
#: query), in a CTE, in an upsert (``ON CONFLICT … DO UPDATE``, ``bulk_create(
#: update_conflicts=True)``); a ``SELECT … FOR UPDATE`` holds it too (one read back more)
_UPDATE_WORD = re.compile(r"\bUPDATE\b", re.I)


def _may_update(sql: Any) -> bool:
    """Whether a statement may be an ``UPDATE``
    (:meth:`ResourceGenericViewSet._watching_updates`), told by the word anywhere in it:
    read as its first word, a preset's move tagged by a leading ``/* … */`` or written by
    an upsert (an ``INSERT``) was missed and answered as the caller's (201). Values are
    parameters, not the statement's text; a false alarm costs one read back."""
    return _UPDATE_WORD.search(str(sql)) is not None


def _same_stored(field: Any, stored: Any, value: Any) -> bool:
    """Whether a forced ``value`` (a key, or the row it names) is what the database holds in
    ``field``'s column (``stored``): both read as the column's Python type, as a scope's
    organization id may be text while the column is an integer. A row is compared by the
    field its relation stores (a ``to_field`` relation's slug, not the row's primary key:
    every write forcing such a row read back as moved, a 500)."""
    if isinstance(value, models.Model):
        target = getattr(field, "target_field", None) if field.is_relation else None
        value = value.pk if target is None else getattr(value, target.attname)
    try:
        return field.to_python(stored) == field.to_python(value)
    except (DjangoValidationError, TypeError, ValueError):
        return str(stored) == str(value)
