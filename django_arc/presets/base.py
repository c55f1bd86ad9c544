"""The contract presets plug into.

A preset is an object in ``Resource.presets``. The generated ViewSet calls each hook at a fixed
point of every request, in list order, so a preset can refuse requests, narrow querysets, check
objects, own fields that the body may not set, inject values on write, replace deletion, watch
every write, take over search and add routes — without the resource core knowing about any
particular preset. Every hook has a no-op default: override only what the preset needs.

**Per-request hooks receive the view first.** The view is the request's one context: its
``resource``, ``request``, ``scope`` (the caller), ``action`` (the DRF action: ``list``,
``retrieve``, ``create``, ``partial_update``, ``destroy``, ``run_action`` or a route's name),
``permission_key`` (``list``/``get``/``create``/``update``/``delete``, a route's key or an
action's name), ``kwargs`` (URL kwargs), and the only ways to reach rows: ``get_queryset()``
(tenancy, every preset's ``filter_queryset`` and the permission's filters already applied) and
``get_object()`` (that queryset, then object permissions and every preset's ``check_object``).
A preset route reading rows through them cannot see more than the list can.

Compile-time hooks (``bind``, ``check``, ``managed_fields``, ``routes``) receive the resource:
they run once, before any request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Model, Q, QuerySet

if TYPE_CHECKING:
    from ..actions import RouteSpec
    from ..resources import Resource


class Preset:
    #: short name used in system-check messages and docs
    name = "preset"
    #: whether this preset's write hooks may run statements of their own (an audit row, a
    #: soft-delete update): then every write of the resource runs in a transaction even with
    #: events off. A preset that only adds values to the one INSERT/UPDATE sets it False.
    needs_transaction = True

    # -- once per resource --------------------------------------------------------------------

    def bind(self, resource: Resource) -> None:
        """Called once when the resource is compiled (models are ready). Validate options
        lazily here rather than in ``__init__`` (which runs at import time)."""

    def check(self, resource: Resource) -> list[str]:
        """Configuration problems, reported by ``manage.py check`` as ``arc.E``-errors."""
        return []

    def event_verbs(self, resource: Resource) -> set[str]:
        """Verbs of the events this preset's routes emit (``<name>.<verb>``) besides the
        core's ``created``, ``updated``, ``deleted`` and the actions': ``manage.py check``
        (arc.E015) makes sure each type fits the outbox's column."""
        return set()

    def managed_fields(self, resource: Resource) -> set[str]:
        """Fields this preset sets itself: read-only in the serializer, refused (or stripped)
        when a body carries them, unless :meth:`accepts_body_value` says the value is
        harmless."""
        return set()

    def organization_models(self, resource: Resource) -> set[type[Model]]:
        """The models the organization ids of this preset's rows point at (a tenant
        relation's target): what ``arc_create_client --org`` checks an id against."""
        return set()

    def organization_id_fields(self, resource: Resource) -> list[Any]:
        """The model fields this preset reads the scope's organization id with (a tenant
        relation's target field, ``Organization.id``): the spellings they all read as one
        value are one organization for every key (query cache, idempotency), event and
        audit row (:func:`django_arc.organizations.canonical_organization_id`)."""
        return []

    def routes(self, resource: Resource) -> list[RouteSpec]:
        """Extra routes (:class:`django_arc.actions.RouteSpec`) this preset adds; their
        handlers are called ``handler(view, request, **url_kwargs)``."""
        return []

    # -- every request ------------------------------------------------------------------------

    def check_request(self, view: Any) -> None:
        """Refuse a request before any query (raise ``ArcError``), e.g. a missing tenant.
        Runs after the permission was evaluated (an anonymous refusal is already a 401)."""

    def row_filter(self, view: Any) -> Q | None:
        """The condition rows must meet for this caller (``None``: no condition): lists,
        object lookups and preset routes alike. Rows filtered out are 404, never 403 (no
        existence leak). The view ANDs every preset's condition in one
        :func:`~django_arc.narrowing.narrow` call (one ``filter()`` for those that are not a
        plain column condition), so a request pays for one queryset clone however many
        presets narrow it; conditions on the same multi-valued relation must then hold for
        the same related row, and are asked in one subquery (``pk__in``), so a row matching
        through several related rows is still one row. Prefer it to
        :meth:`filter_queryset` for anything a ``Q`` can say."""
        return None

    def filter_queryset(self, view: Any, queryset: QuerySet) -> QuerySet:
        """Narrow what the caller can see beyond a condition (annotations, ``distinct()``,
        a separate ``filter()`` per multi-valued relation): runs after every preset's
        :meth:`row_filter` was applied."""
        return queryset

    def reading_route(self, action: str | None) -> str | None:
        """The route (its ``view.action``) that reads the rows this preset's write route
        ``action`` writes, when a GET of the row does not (``None``: a GET's, ``retrieve``).
        A write refused 403 on a row is 404 unless the caller may read the row; that is
        asked as this route asks it: its permission, its action, its rows. ``SoftDelete``:
        a restore's deleted rows are read by its ``deleted`` list."""
        return None

    def check_object(self, view: Any, obj: Any) -> None:
        """Refuse one visible object (raise ``ArcError``, e.g. 403 ``OWNERSHIP_DENIED``):
        runs in ``get_object()`` after the permission's object check."""

    def search(self, view: Any, queryset: QuerySet, term: str) -> QuerySet | None:
        """Take over ``?search=``: return the searched queryset (full text), or ``None`` to
        leave it to the next preset and finally to ``search_fields``. Which rows match is
        yours; their order is the list's (``?sort=`` or ``default_sort``, then the primary
        key: both paginations page by it), so an ``order_by`` here (a ranking) is replaced."""
        return None

    # -- writes ----------------------------------------------------------------------------------

    def related_queryset(self, view: Any, queryset: QuerySet) -> QuerySet:
        """Narrow the rows a relation in a *write* body may point at (e.g. an order's
        ``product``): an id outside it is refused like an id that does not exist."""
        return queryset

    def accepts_body_value(self, view: Any, field: str, value: Any) -> bool:
        """Whether a body value for a managed ``field`` is harmless (e.g. the caller's own
        tenant) and may be silently dropped instead of refused."""
        return False

    def write_values(self, view: Any, instance: Any = None) -> dict[str, Any]:
        """Model attribute values forced on create (``instance`` None) and update."""
        return {}

    def perform_delete(self, view: Any, instance: Any) -> bool:
        """Return True after deleting ``instance`` yourself (soft delete); False to let the
        default hard delete run."""
        return False

    def perform_delete_many(self, view: Any, instances: list[Any]) -> bool:
        """The batch form of :meth:`perform_delete` (bulk deletes): delete every instance
        yourself and return True, or False. Override it with one statement for all rows;
        the default asks :meth:`perform_delete` row by row."""
        if type(self).perform_delete is Preset.perform_delete:
            return False
        return all([self.perform_delete(view, instance) for instance in instances])

    def after_write(
        self,
        view: Any,
        verb: str,
        instance: Any,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """Every write, inside its transaction, just before its event: ``verb`` is the
        event's (``created``, ``updated``, ``deleted``, ``restored``, an action's name);
        ``before``/``after`` are the row as the serializer renders it (hidden fields never
        included), ``None`` where there is no such row (before a create, after a hard
        delete). Raising rolls the write back."""

    def after_write_many(
        self,
        view: Any,
        verb: str,
        records: list[tuple[Any, dict[str, Any] | None, dict[str, Any] | None]],
    ) -> None:
        """The batch form of :meth:`after_write` (bulk writes): ``records`` holds
        ``(instance, before, after)`` per written row. Override it to record all rows in one
        statement; the default calls :meth:`after_write` row by row."""
        for instance, before, after in records:
            self.after_write(view, verb, instance, before, after)
