"""``Resource``: the declarative description of an API over one model.

A resource is declared as a class (like a ``ModelAdmin``) and instantiated once by the
``ResourceSite`` it is registered on. Everything derived from the declaration — serializer
class, query spec, field rules, the ViewSet — is computed once, lazily (models must be
loaded), and reused by every request.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models

from .actions import ActionSpec, RouteSpec, as_declared
from .fields import FieldPermission, FieldRules
from .permissions import Permission, as_permission, require_auth
from .query import (
    QuerySpec,
    generic_foreign_keys,
    generic_relation_kind,
    model_attribute,
    primary_key_names,
    relation_named,
)
from .settings import arc_settings

if TYPE_CHECKING:
    from .sites import ResourceSite

#: permission keys that default to ``require_auth()`` when absent; all others fail closed
DEFAULT_ALLOWED_KEYS = ("list", "get")

#: Every option a ``Resource`` subclass may set. ``manage.py check`` refuses any other public
#: name on a subclass (arc.E012: a misspelt ``preset`` must not silently drop tenancy), and
#: the attribute table of ``docs/resources.md`` lists exactly these (a test keeps them equal).
OPTIONS = (
    "model",
    "name",
    "fields",
    "read_only_fields",
    "filter_fields",
    "sort_fields",
    "search_fields",
    "default_sort",
    "lookup_field",
    "presets",
    "permissions",
    "field_permissions",
    "on_field_write_denied",
    "serializer_class",
    "queryset",
    "update_method",
    "action_permissions",
    "authentication_classes",
    "throttle_classes",
    "renderer_classes",
    "parser_classes",
    "filter_backends",
    "pagination_class",
    "idempotent",
    "cache",
)
#: The write hooks, run inside every write's transaction.
WRITE_HOOKS = (
    "before_create",
    "after_create",
    "before_update",
    "after_update",
    "before_delete",
    "after_delete",
)
#: The methods a subclass may override (``docs/resources.md``, "Hooks" and "Your own
#: queryset"); everything else ``Resource`` defines is internal.
HOOKS = ("get_queryset", *WRITE_HOOKS)


class _hybrid:
    """A method that, called on the class, runs on a default instance of it."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            instance = owner.__dict__.get("_default_instance")
            if instance is None:
                instance = owner()
                owner._default_instance = instance
        return self.func.__get__(instance, owner)


def sort_text(declared: Any) -> str | None:
    """``default_sort`` as the one text every reader splits on commas: a list or tuple of
    names is accepted as Django's ``Meta.ordering`` is (a project writes it that way by
    habit), joined; ``None`` is no order. Anything else (a number, an expression, a dict) is
    ``None``: the resource reads it as no order, so that registering it does not stop
    start-up with a traceback, and ``manage.py check`` reports it as ``arc.E004`` naming the
    option."""
    if isinstance(declared, str):
        return declared
    if declared is None:
        return ""
    if isinstance(declared, (list, tuple)) and all(isinstance(part, str) for part in declared):
        return ",".join(declared)
    return None


def _held_static(klass: type, attr: str) -> bool:
    """Whether ``klass`` holds a ``@staticmethod`` under ``attr`` (through its MRO): read
    from the class it is the plain function, which ``actions.as_declared`` must call
    without the resource."""
    return isinstance(inspect.getattr_static(klass, attr, None), staticmethod)


def _forward_path(
    model: type[models.Model], parts: list[str], serializer_field: Any
) -> tuple[str, str]:
    """The ``select_related`` path of the forward relations (foreign keys, one-to-ones) a
    dotted ``source`` follows from ``model`` (``"book__author"`` for ``book.author.name``),
    up to the first part that is not one (a column, a reverse relation, a property); ``""``
    when it follows none. A last part that is a relation is joined unless the field renders
    it as an id. Second: the ``prefetch_related`` path of a ``GenericForeignKey`` the source
    goes through after them (``"target"`` for ``target.name``, ``"book__target"``), which
    no join follows; ``""`` when it goes through none."""
    from rest_framework.relations import PrimaryKeyRelatedField

    joined: list[str] = []
    current = model
    for i, part in enumerate(parts):
        try:
            field = current._meta.get_field(part)
        except Exception:
            break
        if generic_relation_kind(field) == "GenericForeignKey":
            # its rows are any model's: what the source reads of them is not known
            return "__".join(joined), "__".join([*joined, part])
        forward = field.is_relation and field.concrete and (field.many_to_one or field.one_to_one)
        # ``author_id`` (the attname) finds the foreign key too, but reads its column
        if not forward or field.related_model is None or part != field.name:
            break
        if i == len(parts) - 1 and isinstance(serializer_field, PrimaryKeyRelatedField):
            break
        joined.append(part)
        current = field.related_model
    return "__".join(joined), ""


#: How deep nested serializers are followed for their relations (a serializer nesting
#: itself, through ``many=True`` of its own model, stops here).
_NESTING_LIMIT = 8


def _related_paths(
    model: type[models.Model],
    fields: Any,
    prefix: str,
    prefetched: bool,
    select: list[str],
    prefetch: list[str],
    depth: int,
) -> None:
    """Add to ``select``/``prefetch`` the relations the serializer ``fields`` render from
    rows of ``model`` reached through ``prefix`` (``""`` for the resource's own rows): a
    forward relation rendered as more than an id is joined (prefetched once a to-many
    relation was crossed: ``books__author``), a reverse or many-to-many one prefetched; a
    nested serializer's own fields are followed the same way."""
    from rest_framework.relations import PrimaryKeyRelatedField
    from rest_framework.serializers import BaseSerializer, ListSerializer

    if depth > _NESTING_LIMIT:
        return
    for name, serializer_field in fields.items():
        source = serializer_field.source or name
        if source == "*":
            # the same row, rendered by a nested serializer (``source="*"``)
            if isinstance(serializer_field, BaseSerializer) and not isinstance(
                serializer_field, ListSerializer
            ):
                _related_paths(
                    model, serializer_field.fields, prefix, prefetched, select, prefetch, depth + 1
                )
            continue
        if "." in source:
            # a field of a related row (``source="book.author.name"``): join the
            # forward relations the path follows; prefetch a GenericForeignKey it goes
            # through (``source="target.name"``), which no join can follow
            path, generic = _forward_path(model, source.split("."), serializer_field)
            if path:
                (prefetch if prefetched else select).append(prefix + path)
            if generic:
                prefetch.append(prefix + generic)
            continue
        # a reverse relation may be rendered under its accessor (``rackitem_set``)
        model_field = relation_named(model, source)
        if model_field is None:
            continue
        path = prefix + source
        child = serializer_field.child if isinstance(serializer_field, ListSerializer) else None
        nested = child if child is not None else serializer_field
        if generic_relation_kind(model_field) == "GenericForeignKey":
            # no join can follow it (its rows are any model's): Django prefetches it, one
            # query per content type; what a nested serializer renders of its rows is not
            # known before them
            prefetch.append(path)
            continue
        if model_field.many_to_many or model_field.one_to_many:
            prefetch.append(path)
            to_many = True
        elif (
            model_field.is_relation
            and model_field.name == source  # not ``author_id``, the column
            and not isinstance(serializer_field, PrimaryKeyRelatedField)
        ):
            (prefetch if prefetched else select).append(path)
            to_many = prefetched
        else:
            continue
        if isinstance(nested, BaseSerializer) and model_field.related_model is not None:
            _related_paths(
                model_field.related_model,
                nested.fields,
                path + "__",
                to_many,
                select,
                prefetch,
                depth + 1,
            )


#: methods that write nothing: judged by the field rules compiled once
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class KeysAreColumns(dict):
    """:attr:`Resource.written_on_row`'s value for a ``DictField(source="*")``: DRF merges
    its whole dict into the row's values, so each key writes the column it names (by name
    or attname: ``{column: field name}``), and a key no column has (a many-to-many
    relation, a model attribute) is judged by its own name, as a top-level key is, where a
    nested serializer's unknown key is read by nothing."""

    def __init__(self, columns: dict[str, str], json: bool = False, binary: bool = False) -> None:
        super().__init__(columns)
        #: a ``JSONField``'s: its object may come as text (``binary=True``, or a form's),
        #: which DRF parses, so the guard parses it to judge it
        self.json = json
        #: a ``binary`` one reads only text: what the guard keeps of it is passed as text
        self.binary = binary

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(key, key)


class Resource:
    """Declare an API over a model; see SPEC §2 and ``docs/resources.md``."""

    #: required: a resource without one is refused when it is built, so an instance (what
    #: hooks and presets receive) always has one; typed so that a checker knows it
    model: type[models.Model] = None  # type: ignore[assignment]
    #: ``"<model_name>s"`` when left unset (set when the resource is built)
    name: str = None  # type: ignore[assignment]
    fields: list[str] | None = None
    read_only_fields: list[str] = []
    filter_fields: dict[str, list[str]] | list[str] = {}
    sort_fields: list[str] = []
    search_fields: list[str] = []
    #: ``"-created_at,title"``, or a list of names as Django's ``Meta.ordering`` (read as
    #: the comma-separated text when the resource is built)
    default_sort: str | list[str] | tuple[str, ...] = ""
    lookup_field: str = "pk"
    presets: list[Any] = []
    permissions: dict[str, Any] = {}
    action_permissions: Any = None
    field_permissions: dict[str, FieldPermission] = {}
    on_field_write_denied: str | None = None
    serializer_class: type | None = None
    queryset: models.QuerySet | None = None
    update_method: str = "PATCH_OR_PUT"
    #: DRF policies for this resource's ViewSet; ``None`` keeps the project's
    #: ``REST_FRAMEWORK`` defaults (permissions are the resource's own, see ``permissions``)
    #: and django-arc's query language and pagination
    authentication_classes: list[type] | None = None
    throttle_classes: list[type] | None = None
    renderer_classes: list[type] | None = None
    parser_classes: list[type] | None = None
    filter_backends: list[type] | None = None
    pagination_class: type | None = None
    #: ``Idempotency-Key`` on unsafe routes (SPEC §10); ``None`` follows
    #: ``ARC["IDEMPOTENCY"]["ENABLED"]``
    idempotent: bool | None = None
    #: the query cache (SPEC §11): ``{"stale_seconds": 30, "gc_seconds": 300, "tags": [...]}``
    #: (or ``True`` for the ``ARC["CACHE"]`` defaults), ``False`` never; ``None`` follows
    #: ``ARC["CACHE"]["ENABLED"]``
    cache: dict[str, Any] | bool | None = None

    def __init__(self, site: ResourceSite | None = None) -> None:
        self.site = site
        if self.model is None:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(f"{type(self).__qualname__} must set `model`.")
        if self.name is None:
            self.name = f"{self.model._meta.model_name}s"
        self.default_sort = sort_text(self.default_sort) or ""

    # -- declaration-derived data, computed once ---------------------------------------

    @property
    def url_prefix(self) -> str:
        return self.name

    @property
    def basename(self) -> str:
        return self.name

    @cached_property
    def pk_name(self) -> str:
        return self.model._meta.pk.name

    @cached_property
    def all_fields(self) -> list[str]:
        """``fields``; by default a project serializer's own fields (it decides what is
        rendered), else the model's concrete fields."""
        if self.fields is not None:
            return list(self.fields)
        if self.serializer_class is not None:
            return list(self.serializer_class().fields)
        return [f.name for f in self.model._meta.concrete_fields]

    @cached_property
    def field_rules(self) -> FieldRules:
        """The field rules compiled once; every per-caller field decision asks them."""
        return self._rules_over(
            self.written_columns, self.columns_named_elsewhere, self.written_on_row
        )[0]

    def _rules_over(
        self, written: dict[str, str], elsewhere: frozenset[str], on_row: dict[str, Any]
    ) -> tuple[FieldRules, dict[str, Any]]:
        """The field rules with a serializer's writing fields (``written``: its aliases of
        columns, ``elsewhere``: those named like a column writing none, ``on_row``: its
        nested ``source="*"`` keys), and ``on_row`` again for the guard of nested keys."""
        managed: set[str] = set()
        for preset in self.preset_list:
            managed |= preset.managed_fields(self)
        # a multi-table child's parents' primary keys are its own under other names (the
        # parent link holds the same value): writing one moved the row, as Django saved a
        # copy under the new key and left the old one
        never = set(self.read_only_fields) | primary_key_names(self.model)
        # a serializer_class's field writing one of those columns under another name
        # (``made = DateTimeField(source="created_at")``) writes what no one may write
        never |= {name for name, column in written.items() if column in never}
        rules = FieldRules(
            self.field_permissions,
            never | self.drf_read_only,
            frozenset(managed),
            self.write_only_fields,
            self.renamed_fields,
            written,
            elsewhere,
        )
        return rules, on_row

    @cached_property
    def fields_per_request(self) -> bool:
        """Whether the serializer chooses its fields per request (a project's
        ``get_fields()``, a method it calls, or ``__init__`` overridden: DRF calls them for
        every serializer, with the request in its context), or a writable nested
        ``source="*"`` one does (its keys write the row's columns: :attr:`written_on_row`).
        ``__init__`` adding ``self.fields["cost_eur"]`` for writes, or a nested serializer's
        ``get_fields()`` adding ``cost``, let an editor write a column a rule kept from it
        (200)."""
        from rest_framework import serializers as drf

        from .serializers import chooses_fields_per_request

        if self.serializer_class is None:
            return False
        if chooses_fields_per_request(self.serializer):
            return True

        def nested(fields: Any) -> bool:
            return any(
                isinstance(field, drf.Serializer)
                and field.source == "*"
                and not field.read_only
                and (chooses_fields_per_request(type(field)) or nested(field.fields.values()))
                for field in fields
            )

        try:
            return nested(self.project_serializer_fields.values())
        except Exception:  # noqa: BLE001 - a nested serializer that cannot build: ask again
            return True

    def writes_judged(self, view: Any) -> tuple[FieldRules, dict[str, Any]]:
        """The field rules a write through ``view`` is judged by, and the nested keys that
        write the row's columns (:attr:`written_on_row`): those of the fields the request's
        serializer has. Read from the serializer built without a request
        (:attr:`project_serializer_fields`), a field a project's ``get_fields()`` adds for
        writes (``cost_eur = DecimalField(source="cost")``, a nested ``source="*"``) was not
        seen, and an editor wrote a column a rule kept from it (200). Only a serializer
        choosing its fields per request (:attr:`fields_per_request`) is built again, once per
        unsafe request; the rest are answered by the rules compiled once."""
        request = getattr(view, "request", None)
        if not self.fields_per_request or getattr(request, "method", "GET") in _SAFE:
            return self.field_rules, self.written_on_row
        try:
            fields = dict(self.serializer_class(context=view.get_serializer_context()).fields)
        except Exception:  # noqa: BLE001 - a broken serializer fails on its own, as it is used
            return self.field_rules, self.written_on_row
        return self._rules_over(
            self._written_columns_of(fields),
            self._named_elsewhere_of(fields),
            self._written_on_row_of(fields),
        )

    @cached_property
    def project_serializer_fields(self) -> dict[str, Any]:
        """A ``serializer_class``'s fields as built without a request, read once for the
        rules that judge them (:attr:`drf_read_only`, :attr:`renamed_fields`,
        :attr:`write_only_fields`): ``{}`` without one, or when building them fails (a
        broken serializer fails on its own, at its first request)."""
        if self.serializer_class is None:
            return {}
        try:
            return dict(self.serializer_class().fields)
        except Exception:  # noqa: BLE001 - a broken serializer fails on its own
            return {}

    @cached_property
    def _column_field_names(self) -> dict[str, str]:
        """Each concrete column's field name by its name and by its attname: the query
        string's ``owner`` and ``owner_id`` both judge the field ``owner``
        (``query._root_field``), so a serializer's ``source="owner_id"`` is ``owner``'s. And
        ``pk``, Django's name for the primary key, which an attribute set on the row writes
        as its own name does: judged by its own name (no column has it), the key ``pk`` of a
        ``DictField(source="*")`` or a field with ``source="pk"`` was written
        (``instance.pk = …``), and the save overwrote the row of another tenant with that id,
        moving it into the caller's (200)."""
        meta = self.model._meta
        concrete = meta.concrete_fields
        return {
            **{f.name: f.name for f in concrete},
            **{f.attname: f.name for f in concrete},
            "pk": meta.pk.name,
        }

    @cached_property
    def renamed_fields(self) -> dict[str, str]:
        """A ``serializer_class``'s fields rendering a model column under another name
        (``unit_cost = DecimalField(source="cost")``): ``{name: column}``. A field rule on
        ``unit_cost`` rules the query string's ``cost`` too, or ``?cost[gte]=5`` told a
        caller what ``visible_to`` hid from it."""
        from rest_framework import serializers as drf

        # a field that renders nothing (a ``HiddenField``, a write-only one) renders no
        # column to anyone: counted, its column was "known" to every caller
        # (:meth:`FieldRules.restricted_columns`) and opened to the query string of a caller
        # from whom the field rendering it is hidden
        declared = {
            name: field
            for name, field in self.project_serializer_fields.items()
            if not (field.write_only or isinstance(field, drf.HiddenField))
        }
        columns = self._column_field_names  # ``source="owner_id"`` is ``owner``'s column
        renamed = {
            name: columns[field.source]
            for name, field in declared.items()
            if field.source in columns and columns[field.source] != name
        }
        # a column also rendered under its own name maps to itself: whoever reads that field
        # reads the column; only a field that renders that column: one named like it may
        # render another (``cost = ...(source="price")`` beside ``unit_cost =
        # ...(source="cost")``, whose entry it overwrote, and ``price`` was then not ruled
        # with ``cost``) or none (a ``SerializerMethodField``, a dotted source), and its
        # readers do not know the column
        renamed.update(
            {
                name: name
                for name in set(renamed.values()) & declared.keys()
                if columns.get(declared[name].source) == name
            }
        )
        return renamed

    @cached_property
    def written_columns(self) -> dict[str, str]:
        """A ``serializer_class``'s writable fields writing a model column under another
        name (``notes = CharField(source="secret_notes")``, write-only ones too):
        ``{name: column}``. A write rule on the column's field (or on another such field)
        rules them all: each writes the same column
        (:attr:`django_arc.fields.FieldRules.write_peers`)."""
        return self._written_columns_of(self.project_serializer_fields)

    def _written_columns_of(self, fields: dict[str, Any]) -> dict[str, str]:
        from rest_framework import serializers as drf

        columns = self._column_field_names  # ``source="owner_id"`` is ``owner``'s column
        return {
            name: columns[field.source]
            for name, field in fields.items()
            if not (field.read_only or isinstance(field, drf.HiddenField))
            and field.source in columns
            and columns[field.source] != name
        }

    @cached_property
    def columns_named_elsewhere(self) -> frozenset[str]:
        """A ``serializer_class``'s fields named like a model column that neither render nor
        write it (``cost = SerializerMethodField()``, a dotted ``source``, another column's):
        a rule on one is on its own value, so it is no write peer of the fields writing the
        column (:attr:`django_arc.fields.FieldRules.write_peers`). Counted as the column's
        own field, its rule refused a write through ``unit_cost = ...(source="cost")`` to a
        caller that field serves."""
        return self._named_elsewhere_of(self.project_serializer_fields)

    def _named_elsewhere_of(self, fields: dict[str, Any]) -> frozenset[str]:
        columns = self._column_field_names
        return frozenset(
            name
            for name, field in fields.items()
            if columns.get(name) == name and columns.get(field.source) != name
        )

    @cached_property
    def written_on_row(self) -> dict[str, Any]:
        """A ``serializer_class``'s writable nested serializers whose values are the row's own
        (``meta = MetaSerializer(source="*")``: DRF merges what they validate into the row's
        values): ``{name: {inner name: column, or the same mapping for one nested
        again}}``. Their keys write the row's columns under names the guard of the body's
        top-level keys never saw: ``{"meta": {"owner": …}}`` handed an owner-scoped row to a
        user of another tenant (200). :meth:`~django_arc.generics.ResourceGenericViewSet.guard_body`
        judges each as the column it writes. A field whose ``source`` is no column is
        judged by that ``source``. A ``DictField(source="*")`` (``HStoreField`` too) or a
        ``JSONField(source="*")`` is merged into the row's values the same way, its keys
        naming the columns: :class:`KeysAreColumns`."""
        return self._written_on_row_of(self.project_serializer_fields)

    def _written_on_row_of(self, fields: dict[str, Any]) -> dict[str, Any]:
        from rest_framework import serializers as drf

        columns = self._column_field_names

        def on_row(field: Any) -> Any:
            if field.read_only or field.source != "*":
                return None
            if isinstance(field, drf.Serializer):
                return inner(field)
            if isinstance(field, (drf.DictField, drf.JSONField)):
                text = isinstance(field, drf.JSONField)
                return KeysAreColumns(columns, json=text, binary=text and field.binary)
            return None

        def inner(serializer: Any) -> dict[str, Any]:
            written: dict[str, Any] = {}
            for name, field in serializer.fields.items():
                if field.read_only or isinstance(field, drf.HiddenField):
                    continue
                if field.source == "*":
                    nested = on_row(field)
                    if nested is not None:
                        written[name] = nested
                else:
                    root = field.source.split(".")[0]
                    written[name] = columns.get(root, root)
            return written

        try:
            written = {name: on_row(field) for name, field in fields.items()}
        except Exception:  # noqa: BLE001 - a broken serializer fails on its own
            return {}
        return {name: nested for name, nested in written.items() if nested is not None}

    @cached_property
    def write_only_fields(self) -> frozenset[str]:
        """A ``serializer_class``'s ``write_only`` fields (a password, a card token, a
        secret answer; ``extra_kwargs`` ones too), and the model columns only they read
        (``source="password_hash"``): DRF never renders them, so no caller reads them, and
        the query string may not probe them (``?secret[startswith]=a``, ``?sort=secret``,
        ``?search=``, ``?select=``), as for a ``hidden()`` field. A ``HiddenField`` is not
        one: it sets a column from the request (an owner), which stays queryable."""
        from rest_framework import serializers as drf

        columns = self._column_field_names  # ``source="owner_id"`` is ``owner``'s column
        names, roots, read = set(), set(), set()
        for name, field in self.project_serializer_fields.items():
            source = getattr(field, "source", None) or name
            root = None if source == "*" else source.split(".")[0]
            root = columns.get(root, root)
            if isinstance(field, drf.HiddenField):
                # DRF's way to set a column from the request (``CurrentUserDefault()``), not
                # a secret: an owner stays as queryable as the project lists it
                continue
            if field.write_only:
                names.add(name)
                if root is not None:
                    roots.add(root)
            elif root is not None:
                read.add(root)
        return frozenset(names | (roots - read))

    @cached_property
    def drf_read_only(self) -> set[str]:
        """Fields DRF makes read-only by itself, which a body can no more write than
        ``read_only_fields`` (and is refused alike): with the generated serializer, the
        model fields ``ModelSerializer`` reads only (an ``AutoField``, ``editable=False``,
        ``auto_now``/``auto_now_add``, a many-to-many with a ``through`` model, the reverse
        side of a foreign key or one-to-one) and the model's properties and methods it
        renders;
        with a ``serializer_class``, the fields it declares
        read-only. DRF drops them from a body without a word.

        A ``serializer_class`` that may choose its fields per serializer (its own
        ``__init__``, ``get_fields()`` or a method DRF's ``get_fields()`` calls) may make a
        field read-only for one caller only (``cost`` for all but staff): built here with
        no request, it would have been read-only for everyone, staff refused. Of such a
        serializer only the fields no caller can write are counted (a
        ``SerializerMethodField``, a ``ReadOnlyField``)."""
        if self.serializer_class is not None:
            from rest_framework import serializers as drf

            from .serializers import chooses_fields_per_request

            declared = self.project_serializer_fields
            varies = chooses_fields_per_request(self.serializer_class)
            return {
                name
                for name, field in declared.items()
                if field.read_only
                and (
                    not varies or isinstance(field, (drf.SerializerMethodField, drf.ReadOnlyField))
                )
            }
        from rest_framework.utils.model_meta import get_field_info

        relations = get_field_info(self.model).relations
        found = set()
        for name in self.all_fields:
            if name in relations and relations[name].has_through_model:
                # a many-to-many through a model of its own, from either side: DRF renders
                # it read-only (its rows need the through model's other columns)
                found.add(name)
                continue
            try:
                field = self.model._meta.get_field(name)
            except FieldDoesNotExist:
                # a model property or method named in ``fields`` (``get_status_display``):
                # ``ModelSerializer`` renders it read-only (``ReadOnlyField``); anything else
                # is arc.E001's
                if model_attribute(self.model, name):
                    found.add(name)
                continue
            if getattr(field, "concrete", False) and (
                isinstance(field, models.AutoField) or not field.editable
            ):
                found.add(name)
            elif field.auto_created and not field.concrete and not field.many_to_many:
                # the reverse side of a foreign key or a one-to-one (``books`` of an author):
                # rendered, never written. DRF writes it by re-pointing the rows named
                # (``author.books.set()``, one UPDATE of Book): rows of another resource,
                # moved without its tenancy, permissions, events or cache bumps
                # (another tenant's order lines into this tenant's order), and a row left
                # out of the list stays where it was (nothing to set a non-null key to)
                found.add(name)
        return found

    @property
    def hidden_fields(self) -> frozenset[str]:
        return self.field_rules.hidden

    @cached_property
    def serializer_fields(self) -> list[str]:
        """Fields the serializer reads and writes: ``fields`` minus hidden ones."""
        return [f for f in self.all_fields if f not in self.hidden_fields]

    @property
    def read_only_set(self) -> frozenset[str]:
        """Never writable from a body, by anyone."""
        return self.field_rules.never_writable

    @cached_property
    def always_selected(self) -> set[str]:
        """Fields ``?select=`` always keeps: the primary key, ``id`` and the lookup field."""
        keep = {self.pk_name, "id"}
        if self.lookup_field != "pk":
            keep.add(self.lookup_field)
        return keep

    @cached_property
    def preset_list(self) -> list[Any]:
        for preset in self.presets:
            preset.bind(self)
        return list(self.presets)

    @cached_property
    def permission_map(self) -> dict[str, Permission | None]:
        compiled: dict[str, Permission | None] = {}
        for key, value in self.permissions.items():
            compiled[key] = as_permission(value) if value is not None else None
        for key in DEFAULT_ALLOWED_KEYS:
            compiled.setdefault(key, require_auth())
        return compiled

    def get_permission(self, key: str) -> Permission | None:
        """The permission guarding ``key``; ``None`` means deny (fail closed)."""
        return self.permission_map.get(key)

    @cached_property
    def action_permission_map(self) -> dict[str, Permission | None]:
        """Each action's permission: its own, else ``action_permissions``, else deny."""
        default = self.raw_option("action_permissions")
        return {
            name: as_permission(permission) if permission is not None else None
            for name, spec in self.actions.items()
            for permission in [spec.permissions if spec.permissions is not None else default]
        }

    def action_permission(self, spec: ActionSpec) -> Permission | None:
        return self.action_permission_map.get(spec.name)

    @cached_property
    def write_observers(self) -> list[Any]:
        """Presets that watch every write (override ``after_write``), in list order."""
        from .presets.base import Preset

        return [p for p in self.preset_list if type(p).after_write is not Preset.after_write]

    @cached_property
    def queryset_narrowers(self) -> list[Any]:
        """Presets that override ``filter_queryset``, in list order: asked once per resource,
        not on every cached read (:func:`~django_arc.querycache.invalidation.conditions_invalidate`
        asks which tables they join, and costs nothing when there are none)."""
        from .presets.base import Preset

        return [
            p for p in self.preset_list if type(p).filter_queryset is not Preset.filter_queryset
        ]

    @cached_property
    def query_searchers(self) -> list[Any]:
        """Presets that override ``search`` (answer ``?search=`` themselves), in list order:
        asked once per resource, as :attr:`queryset_narrowers` is."""
        from .presets.base import Preset

        return [p for p in self.preset_list if type(p).search is not Preset.search]

    @cached_property
    def serializer(self) -> type:
        from .serializers import build_serializer_class

        return build_serializer_class(self)

    @cached_property
    def output_fields(self) -> list[str]:
        """Names the serializer renders (before per-caller field permissions)."""
        return list(self.serializer().fields)

    @cached_property
    def takes_files(self) -> bool:
        """Whether a body of this resource's rows or actions may hold a file: a writable
        file field in its serializer or in an action's ``input``, at any depth, or a
        serializer choosing its fields itself (a project's ``get_fields()``, ``__init__`` or
        a hook DRF's ``get_fields()`` calls), which may add one per request. A multipart
        body of a resource that takes none is read under ``DATA_UPLOAD_MAX_MEMORY_SIZE``
        (:class:`~django_arc.parsers.ArcMultiPartParser`)."""
        from rest_framework import serializers

        from .serializers import chooses_fields_per_request

        def holds_file(field: Any) -> bool:
            if getattr(field, "read_only", False):
                return False
            if isinstance(field, serializers.FileField):
                return True
            if isinstance(field, serializers.Serializer):
                # built here without a request: fields it adds per request are not seen
                if chooses_fields_per_request(type(field)):
                    return True
                return any(holds_file(f) for f in field.fields.values())
            inner = getattr(field, "child", None) or getattr(field, "child_relation", None)
            return inner is not None and holds_file(inner)

        bodies: list[Any] = [self.serializer]
        bodies += [spec.input for spec in self.actions.values() if spec.input is not None]
        for body in bodies:
            try:
                serializer = body() if isinstance(body, type) else body
                if holds_file(serializer):
                    return True
            except Exception:  # noqa: BLE001 - an input it cannot build: assume it may
                return True
        return False

    @cached_property
    def query_spec(self) -> QuerySpec:
        return QuerySpec(self)

    @cached_property
    def related_loading(self) -> tuple[list[str], list[str]]:
        """(select_related, prefetch_related) paths so lists run a constant number of
        queries: forward FKs the serializer renders as more than an id are joined, m2m and
        reverse relations are prefetched — and so on inside nested serializers (a nested
        author's ``books``, each book's ``reviews``: ``author__books``, ``books__reviews``)."""
        select: list[str] = []
        prefetch: list[str] = []
        _related_paths(self.model, self.serializer().fields, "", False, select, prefetch, 0)
        return list(dict.fromkeys(select)), list(dict.fromkeys(prefetch))

    @cached_property
    def loads_own_relations_only(self) -> bool:
        """Whether the relations the base queryset joins and prefetches are
        :attr:`related_loading`'s only: no ``get_queryset()`` of the project's, and a
        ``queryset`` (or, without one, the model's default manager) loading none of its own.
        ``queryset`` may be a manager (the default is one): read through its ``all()``, as
        :meth:`get_queryset` reads it (a manager has no ``query``: every list was a 500)."""
        if type(self).get_queryset is not Resource.get_queryset:
            return False
        base = self.queryset if self.queryset is not None else self.model._default_manager
        queryset = base.all()
        return not (queryset.query.select_related or queryset._prefetch_related_lookups)

    @cached_property
    def related_loading_by_field(self) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        """:attr:`related_loading` field by field: each rendered field's (select_related,
        prefetch_related) paths, so that a list rendering some fields only (``?select=``, a
        field the caller may not read) loads the relations those render and no other."""
        found: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        for name, field in self.serializer().fields.items():
            select: list[str] = []
            prefetch: list[str] = []
            _related_paths(self.model, {name: field}, "", False, select, prefetch, 0)
            found[name] = (frozenset(select), frozenset(prefetch))
        return found

    @cached_property
    def routes(self) -> list[RouteSpec]:
        specs: list[RouteSpec] = []
        for preset in self.preset_list:
            specs.extend(preset.routes(self))
        for attr in dir(type(self)):
            value = getattr(type(self), attr, None)
            spec = getattr(value, "_arc_route", None)
            if isinstance(spec, RouteSpec):
                specs.append(as_declared(spec, value, _held_static(type(self), attr)))
        return specs

    @cached_property
    def actions(self) -> dict[str, ActionSpec]:
        found = {}
        for attr in dir(type(self)):
            value = getattr(type(self), attr, None)
            spec = getattr(value, "_arc_action", None)
            if isinstance(spec, ActionSpec):
                found[spec.name] = as_declared(spec, value, _held_static(type(self), attr))
        return found

    @cached_property
    def write_needs_transaction(self) -> bool:
        """Whether a write may run more than one statement besides its event: any hook
        overridden, a preset that writes on its own, a user serializer (its
        ``create``/``update`` are opaque), writable nested/many-to-many fields, or a model
        with a generic pair, whose stored pair may be refused after its save
        (:meth:`~django_arc.generics.ResourceGenericViewSet.keep_generic_pairs`: the model
        field's ``default`` may supply half of it)."""
        from rest_framework.relations import ManyRelatedField
        from rest_framework.serializers import BaseSerializer

        if any(getattr(type(self), h) is not getattr(Resource, h) for h in WRITE_HOOKS):
            return True
        if self.serializer_class is not None:
            return True
        if any(preset.needs_transaction for preset in self.preset_list):
            return True
        if generic_foreign_keys(self.model):
            return True
        return any(
            isinstance(f, (ManyRelatedField, BaseSerializer)) and not f.read_only
            for f in self.serializer().fields.values()
        )

    def raw_option(self, name: str) -> Any:
        """An option as declared: a plain function given as ``action_permissions`` must not
        become a method bound to the resource when read through the instance."""
        value = inspect.getattr_static(type(self), name)
        return value.__func__ if isinstance(value, staticmethod) else value

    @property
    def write_denied_policy(self) -> str:
        return self.on_field_write_denied or arc_settings.ON_FIELD_WRITE_DENIED

    # -- overridable behaviour ----------------------------------------------------------

    def get_queryset(self, request: Any) -> models.QuerySet:
        """The base queryset before tenancy, permission filters and the query string."""
        qs = self.queryset.all() if self.queryset is not None else self.model._default_manager.all()
        select, prefetch = self.related_loading
        if select:
            qs = qs.select_related(*select)
        if prefetch:
            qs = qs.prefetch_related(*prefetch)
        return qs

    def before_create(self, request: Any, data: dict[str, Any]) -> dict[str, Any] | None:
        """Runs inside the write's transaction; return new data or mutate it; raise to abort."""

    def after_create(self, request: Any, instance: Any) -> None:
        """Runs inside the write's transaction; raising rolls back the row and its event."""

    def before_update(
        self, request: Any, instance: Any, data: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Runs inside the write's transaction; return new data or mutate it; raise to abort."""

    def after_update(self, request: Any, instance: Any) -> None:
        """Runs inside the write's transaction; raising rolls back the row and its event."""

    def before_delete(self, request: Any, instance: Any) -> None:
        """Runs inside the write's transaction; raise to abort."""

    def after_delete(self, request: Any, instance: Any) -> None:
        """Runs inside the write's transaction; raising rolls back the delete and its event.
        After a hard delete ``instance`` still carries its primary key (to name the row)."""

    # -- ViewSet -------------------------------------------------------------------------

    @_hybrid
    def as_viewset(self) -> type:
        """A DRF ``ModelViewSet`` subclass serving this resource (built once). Callable on
        the class too (``ProductResource.as_viewset()``) for routing it by hand."""
        if "_viewset" not in self.__dict__:
            from .viewsets import build_viewset

            self._viewset = build_viewset(self)
            if self.site is None:  # routed by hand: invalidated like a registered resource
                from .querycache.invalidation import adopt

                adopt(self)
        return self._viewset

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}'>"

    def __str__(self) -> str:
        # How system checks name the resource (their ``obj``), once per message.
        return f"{type(self).__qualname__.rsplit('<locals>.', 1)[-1]} ('{self.name}')"
