"""Invalidation: a write to a cached resource's rows bumps the version tokens of the resource
and of its tags when the write's transaction commits.

Three paths lead here, so no write is missed:

- **every unsafe request** through a resource (CRUD, bulk, actions, preset and custom
  routes) that answers below 400, or returns an error response of its own (its writes
  committed all the same) — the view's ``finalize_response`` (one seam for all routes,
  whatever they write with: ``save()``, ``bulk_create``, ``QuerySet.update``, raw SQL) —
  bumps every cached resource over the same model, or reading its rows;
- **model signals** (``post_save``, ``post_delete``, ``m2m_changed``) of the models of
  cached resources, of their proxies and of their multi-table descendants (whose saves write
  the parents' rows with no signal of the parents') — admin saves, ``Model.save()``/
  ``delete()`` in shell scripts, tasks, other apps' code — the ``post_delete`` of the
  models they point at with ``on_delete=SET_NULL`` (or ``SET_DEFAULT``, ``SET(...)``), which
  Django answers with an ``UPDATE`` of the cached rows and no signal of theirs, and the
  signals of the other models whose rows the answers read (rendered reverse and
  many-to-many relations, query-language paths through relations);
- :func:`invalidate`, for what sends no signal: ``QuerySet.update()``, ``bulk_create``,
  ``bulk_update``, raw SQL, models no resource serves but a cached answer renders (give them
  a tag).

Bumping *on commit* (``transaction.on_commit``, at once outside a transaction) is what keeps
answers correct: a read between the write and its commit still sees the old rows, and stores
them under the old token, which the bump then retires. A rolled-back write bumps nothing.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import DEFAULT_DB_ALIAS, models, router, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.db.models.lookups import Lookup
from django.db.models.signals import class_prepared, m2m_changed, post_delete, post_save
from django.db.models.sql.query import Query
from django.db.models.sql.where import ExtraWhere, WhereNode

from .. import redis_alias
from ..query import generic_relation_kind, relation_named
from ..settings import arc_settings, on_reload
from ..signals import arc_receiver
from .keys import resource_version_key, tag_version_key, version_keys
from .policy import policy_for
from .store import QueryCacheStore

__all__ = ["adopt", "invalidate", "watch", "watch_all"]

_local = threading.local()


def _alias() -> str | None:
    cache = arc_settings.CACHE
    alias = cache.get("ALIAS", "default") if isinstance(cache, dict) else None
    return alias if isinstance(alias, str) and redis_alias.is_django_redis(alias) else None


def bump_on_commit(keys: set[str], using: str | None = None) -> None:
    """Bump ``keys`` when the current transaction on ``using`` commits (now, outside one, and
    under manual transaction management, whose commit Django offers no hook for)."""
    alias = _alias()
    if not keys or alias is None:
        return

    def bump() -> None:
        QueryCacheStore(alias).bump(keys)
        done = getattr(_local, "bumped", None)
        if done is not None:
            done.update(keys)

    connection = transaction.get_connection(using)
    if not connection.in_atomic_block and not connection.get_autocommit():
        # manual transaction management (set_autocommit(False)): Django has no on_commit
        # there and raises; the commit cannot be awaited, so the bump is sent now
        bump()
        return
    if connection.in_atomic_block:
        # one write sends several signals with the same keys (a multi-table child's delete:
        # a post_delete for its row and each parent's; bulk rows saved or deleted one by
        # one): a bump of them already waiting for this commit is enough when each
        # savepoint it was registered in is still open here, so that rolling one back
        # (which makes Django drop the callbacks registered in it) drops this write too
        open_now = set(connection.savepoint_ids)
        for sids, waiting, *_ in connection.run_on_commit:
            if (
                getattr(waiting, "arc_alias", None) == alias
                and keys <= waiting.arc_keys
                and sids <= open_now
            ):
                return
    bump.arc_alias, bump.arc_keys = alias, frozenset(keys)  # type: ignore[attr-defined]
    transaction.on_commit(bump, using=using)


def resource_keys(resource: Any) -> set[str]:
    """The version keys a write to ``resource`` bumps; none when it is not cached."""
    policy = policy_for(resource)
    return set(version_keys(resource, policy.tags)) if policy is not None else set()


# -- the request seam ---------------------------------------------------------------------------


def request_writes() -> None:
    """An unsafe request begins: bumps its signals cause are recorded, so the seam's own
    bump at the end does not repeat them."""
    _local.bumped = set()


def request_wrote(resource: Any, succeeded: bool) -> None:
    """An unsafe request ends: bump (on commit) every cached resource serving its model —
    the one it went through, and others over the same table or a multi-table parent's, which
    a route writing with ``QuerySet.update`` would otherwise leave stale — unless it failed
    or a signal already bumped them during the request. On the commit of the database the
    model's rows are written to (its router's ``db_for_write``), as a signal's bump is on its
    write's: that database's ``ATOMIC_REQUESTS`` transaction commits after the view has
    answered, and a bump sent before its commit let a read in between store the rows as they
    were under the new tokens."""
    done = getattr(_local, "bumped", None) or set()
    _local.bumped = None
    if not succeeded:
        return
    keys = resource_keys(resource)
    for other in _resources_over(resource.model):
        keys |= resource_keys(other)
    bump_on_commit(keys - done, using=router.db_for_write(resource.model))


# -- model signals ------------------------------------------------------------------------------

_watched: set[type[models.Model]] = set()
#: the tables of the watched models and of the models cached answers read: another model
#: over one of them (an unmanaged model mirroring one) writes the same rows
_watched_tables: set[str] = set()
# A model -> the watched models, and the models cached answers read, with a foreign key to
# it that deleting its rows changes without a signal of theirs (see _keys_changed_on_delete).
_referencing: dict[type[models.Model], set[type[models.Model]]] = {}
# A model -> the watched models whose cached answers read its rows too (see _models_read).
_readers: dict[type[models.Model], set[type[models.Model]]] = {}
#: the same by table (:func:`_table`), which every write looks up (:func:`_resources_over`)
_readers_by_table: dict[str, set[type[models.Model]]] = {}
_by_table: dict[str, list[Any]] = {}
_registry_state: tuple[int, int] | None = None


def adopt(resource: Any) -> None:
    """A resource routed by hand (``Resource.as_viewset()`` of one on no site): its model's
    signals are connected and it counts among the resources serving its model, as a
    registered one does, so the writes that retire a registered resource's answers retire
    its too."""
    from ..sites import routed_by_hand

    routed_by_hand(resource)  # a change of registry_state(): the resources are listed anew
    watch(resource)


def _table(model: type[models.Model]) -> str:
    """The table ``model``'s rows are in: its concrete model's, which an unmanaged model
    (or any other model naming the same ``db_table``) shares with the model it mirrors."""
    return model._meta.concrete_model._meta.db_table


def _resources_of(model: type[models.Model]) -> list[Any]:
    """Resources serving ``model``'s table (any site, or routed by hand): ``model``, its
    proxies, and other models over the same table (an unmanaged mirror), recomputed when the
    registered resources change (:func:`~django_arc.sites.registry_state`: which ones, not
    how many — a resource unregistered and another registered leave every count as it was)."""
    from ..sites import registry_state, served_resources

    global _registry_state, _by_table
    state = registry_state()
    if state != _registry_state:
        by_table: dict[str, list[Any]] = {}
        for resource in served_resources():
            by_table.setdefault(_table(resource.model), []).append(resource)
        _by_table, _registry_state = by_table, state
    return _by_table.get(_table(model), [])


def _resources_over(model: type[models.Model]) -> list[Any]:
    """Resources whose answers a write to ``model``'s rows changes: those serving its table
    (``model`` or a proxy of it) and those serving any of its ancestors' — a row of a
    multi-table child is also a row of each parent's table — and those whose answers read
    the rows of one of these tables (:func:`_models_read`)."""
    tables = [model, *model._meta.get_parent_list()]
    found = []
    for table in tables:
        found += _resources_of(table)
        for reader in tuple(_readers_by_table.get(_table(table), ())):
            found += _resources_of(reader)
    return found


@arc_receiver
def _rows_linked(sender: Any, **kwargs: Any) -> None:
    """``m2m_changed`` of a many-to-many table an answer reads: once the rows are written."""
    if kwargs.get("action", "").startswith("post_"):
        _model_changed(sender, **kwargs)


@arc_receiver
def _model_changed(sender: Any, **kwargs: Any) -> None:
    # raw saves (loaddata) too: a fixture loaded into a live database changes the rows the
    # answers show. loaddata writes in one transaction, where bump_on_commit sends one bump
    # per resource at its commit, not one per row; these saves used to be skipped, and the
    # entries computed before the load were served until stale_seconds.
    keys: set[str] = set()
    for resource in _resources_over(sender):
        keys |= resource_keys(resource)
    bump_on_commit(keys, using=kwargs.get("using"))


@arc_receiver
def _referenced_deleted(sender: Any, **kwargs: Any) -> None:
    """A row some watched model, or a model cached answers read, may point at was deleted:
    Django's collector has set those keys (an ``UPDATE`` of their rows, with no signal of
    theirs), so bump the resources serving or reading them, on the delete's commit like
    every bump."""
    referencing: set[type[models.Model]] = set()
    for model in (sender, *sender._meta.get_parent_list()):
        referencing |= _referencing.get(model._meta.concrete_model, set())
    keys: set[str] = set()
    for model in referencing:
        for resource in _resources_over(model):
            keys |= resource_keys(resource)
    bump_on_commit(keys, using=kwargs.get("using"))


# on_delete handlers after which the rows holding the key sent a signal each, or are as they
# were: CASCADE collects them (never fast-deleted: they have a receiver), PROTECT and
# RESTRICT refuse the delete.
_SIGNALLED_ON_DELETE = (models.CASCADE, models.PROTECT, models.RESTRICT)


def _keys_changed_on_delete(model: type[models.Model]) -> list[models.Field]:
    """``model``'s foreign keys that a delete of the row they point at changes without a
    signal of ``model``'s: ``SET_NULL``, ``SET_DEFAULT`` and ``SET(...)``, which Django's
    collector runs as one ``UPDATE``, and any other handler but those above (``DO_NOTHING``
    with the database's own ``ON DELETE``, a project's function)."""
    return [
        field
        for field in model._meta.concrete_fields
        if field.is_relation and field.remote_field.on_delete not in _SIGNALLED_ON_DELETE
    ]


def _family(model: type[models.Model]) -> list[type[models.Model]]:
    """``model`` and every model class defined so far that derives from it: its proxies,
    its multi-table children, theirs. Django sends a model's signals with the class of the
    instance as sender, and saves a child's parent rows with no signal of the parent's."""
    family, pending = [], [model]
    while pending:
        cls = pending.pop()
        family.append(cls)
        pending.extend(cls.__subclasses__())
    return family


def _connect(cls: type[models.Model]) -> None:
    """Connect ``cls``'s ``post_save``/``post_delete`` when it is, proxies or descends from
    a watched model, and its ``post_delete`` when watched rows point at its rows. Per
    sender, not for every model: a ``post_delete`` receiver turns off Django's fast deletes
    of its sender."""
    if cls._meta.abstract:
        return
    uid = f"django_arc.querycache:{cls._meta.label}"
    over_watched_table = any(
        _table(table) in _watched_tables for table in (cls, *cls._meta.get_parent_list())
    )
    if over_watched_table or any(issubclass(cls, model) for model in (*_watched, *_readers)):
        _connect_receiver(post_save, _model_changed, cls, uid)
        _connect_receiver(post_delete, _model_changed, cls, uid)
    if over_watched_table:
        # another model over a many-to-many table an answer reads (an unmanaged mirror's
        # link table, its explicit or auto-created ``through``): its ``add()``/``remove()``
        # send ``m2m_changed`` with it as sender, and no ``post_save``
        _connect_receiver(m2m_changed, _rows_linked, cls, f"{uid}:linked")
    if any(issubclass(cls, model) for model in _referencing):
        _connect_receiver(post_delete, _referenced_deleted, cls, f"{uid}:referenced")


@arc_receiver
class _HeldReceiver:
    """``receive`` for one class outside the app registry (a historical model a migration
    renders, a model of an isolated test registry), held by that class
    (:data:`_held_receivers`) while the signal holds it weakly: it goes when the class
    does, where a strong receiver kept an entry per rendered class for the process's life."""

    __slots__ = ("receive", "__weakref__")

    def __init__(self, receive: Any) -> None:
        self.receive = receive

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.receive(sender, **kwargs)


#: the receivers of classes outside the app registry, by class (weakly: a collected class
#: takes its receivers with it), then by signal and ``dispatch_uid``
_held_receivers: weakref.WeakKeyDictionary[type, dict[tuple[Any, str], _HeldReceiver]] = (
    weakref.WeakKeyDictionary()
)


def _connect_receiver(signal: Any, receive: Any, cls: type[models.Model], uid: str) -> None:
    """Connect ``receive`` to ``signal`` for ``cls``: for the process's life for the app
    registry's models, which live as long; for the life of ``cls`` for a class outside it
    (a migration renders new historical classes for each state it passes through, forwards
    and back, and its data migration's saves through them still invalidate while it runs)."""
    if cls._meta.apps is apps:
        signal.connect(receive, sender=cls, weak=False, dispatch_uid=uid)
        return
    held = _held_receivers.setdefault(cls, {})
    receiver = held.get((signal, uid))
    if receiver is None:
        receiver = held[(signal, uid)] = _HeldReceiver(receive)
    signal.connect(receiver, sender=cls, weak=True, dispatch_uid=uid)


def _model_prepared(sender: type[models.Model], **kwargs: Any) -> None:
    """A model class defined after its ancestor was watched (a proxy in an admin module
    imported later, a test's model) is connected too."""
    _connect(sender)


class_prepared.connect(
    _model_prepared, weak=False, dispatch_uid="django_arc.querycache:class_prepared"
)


def _models_read(resource: Any) -> set[type[models.Model]]:
    """The models besides its own whose rows ``resource``'s answers read: its multi-table
    parents (whose rows hold the fields it inherits), the forward relations a project
    serializer renders as more than an id, nested or through a dotted ``source``, each model
    along the path (``related_loading``), the other side of
    the reverse and many-to-many relations it renders (a book's ``reviews`` are Review's
    rows; ``fields``, or a project serializer's field names when it is unset) and their
    tables, and every model a path of its query language joins
    (``filter_fields``, ``sort_fields``, ``search_fields``, ``default_sort``:
    ``author__name`` reads Author's rows). A name that is no such field is skipped (an
    unknown one is ``manage.py check``'s to report)."""
    model = resource.model
    # a multi-table child's inherited fields are its parents' rows, which their own saves,
    # resources and invalidate() write with no signal of the child's
    read: set[type[models.Model]] = set(model._meta.get_parent_list())

    def relation(field: Any, joined: bool) -> None:
        if not field.is_relation or field.related_model is None:
            return
        if joined or not field.concrete or field.many_to_many:
            read.add(field.related_model)
        through = getattr(field.remote_field if field.concrete else field, "through", None)
        if field.many_to_many and through is not None:
            read.add(through)

    # a serializer renders a reverse relation under its accessor (``review_set`` when it has
    # no related_name), which is not the name _meta.get_field knows it by (``review``)
    # (reverse relations are known once every model is: a resource registered earlier than
    # autodiscovery sees only its forward fields until watch_all() runs again)
    ready = model._meta.apps.models_ready
    accessors = (
        {rel.get_accessor_name(): rel for rel in model._meta.related_objects} if ready else {}
    )
    # fields, or a project serializer's own
    try:
        names = list(resource.all_fields if ready else resource.fields or ())
    except Exception:  # noqa: BLE001 - a serializer that does not build is check's (arc.E001)
        # raised here, from register() or the start-up autodiscovery, it stopped every
        # command, ``check`` too, with a traceback instead of the error naming the resource
        names = []
    for name in names:
        try:
            relation(accessors.get(name) or model._meta.get_field(name), joined=False)
        except (FieldDoesNotExist, AttributeError, TypeError):
            continue
    # relations a project serializer renders as more than an id (a nested serializer,
    # their str()), and the relations its nested serializers render in turn: the resource
    # joins or prefetches them (related_loading), and renders their rows' fields (the
    # generated serializer renders ids only)
    if ready and resource.serializer_class is not None:
        try:
            joined, prefetched = resource.related_loading
        except Exception:  # noqa: BLE001 - a serializer that does not build is check's to report
            joined, prefetched = [], []
        # ``author``, ``book__author`` for ``source="book.author.name"``, ``books__reviews``
        # for an author's nested books rendering their reviews
        for path in (*joined, *prefetched):
            current = model
            for name in path.split("__"):
                field = relation_named(current, name)
                if field is None:
                    break
                relation(field, joined=True)
                current = field.related_model
    filters = resource.filter_fields or {}
    sorts = (part.strip().lstrip("-+") for part in (resource.default_sort or "").split(","))
    for path in (*filters, *(resource.sort_fields or ()), *(resource.search_fields or ()), *sorts):
        read |= _path_reads(model, str(path)) or frozenset()
    if ready:
        read |= declared_queryset_reads(resource) or set()
    return _with_parents(m for m in read if m is not None) - {model._meta.concrete_model}


#: resource -> ``(its declared queryset, the models that queryset reads, or None, its
#: ``cache`` option as read)``
_declared_reads: dict[Any, tuple[Any, frozenset[type[models.Model]] | None, Any]] = {}


def declared_queryset_reads(resource: Any) -> frozenset[type[models.Model]] | None:
    """The models whose rows ``resource``'s declared base queryset reads — its ``queryset``,
    else its model's default manager — besides its own: the tables it joins
    (``Book.objects.filter(author__name__startswith="A")`` reads Author's rows), those of its
    subqueries and annotations (``annotate(n=Count("reviews"))`` reads Review's); ``None``
    when it holds SQL of its own (``RawSQL``, ``extra()``) or reads a table no model is over,
    whose writes nothing can report. Declared once, it is the same in every process: watched
    at start-up like a filter path, where a project's ``get_queryset()``, built per request,
    is the project's to tag. An author renamed out of such a queryset used to leave their
    books served as a HIT.

    ``None`` too when its answers read the rows a ``GenericForeignKey`` points at (the
    queryset or the serializer prefetching through one, ``GenericPrefetch`` included: any
    model's rows, known only once read) and its ``cache`` names no ``tags``: the target
    renamed left the cached answer showing the old name until ``stale_seconds``. Watching
    the content types found in the rows would connect receivers in the process that read
    them only (another process writing the target would bump nothing), and watching every
    model would turn off Django's fast deletes project-wide; the ``tags`` are the project's
    word that its own receivers retire the answers (docs/query-cache.md)."""
    base = resource.queryset if resource.queryset is not None else resource.model._default_manager
    known = _declared_reads.get(resource)
    if known is not None and known[0] is base and known[2] is resource.cache:
        return known[1]
    found: frozenset[type[models.Model]] | None
    tables: set[str] = set()
    try:
        queryset = base.all()
    except Exception:  # noqa: BLE001 - a manager that cannot build outside a request: not judged
        queryset = None
    if queryset is None:
        found = frozenset()
    elif not _tables_read(queryset.query, tables) or not _prefetches_read(queryset, tables):
        found = None
    else:
        by_table = _models_by_table()
        own = {_table(m) for m in (resource.model, *resource.model._meta.get_parent_list())}
        others = [by_table.get(table) for table in tables - own]
        found = None if None in others else frozenset(m for m in others if m is not None)
    if found is not None and _reads_generic_targets(resource, queryset):
        policy = policy_for(resource)
        if policy is not None and not policy.tags:
            found = None
    if resource.model._meta.apps.models_ready:
        _declared_reads[resource] = (base, found, resource.cache)
    return found


def _reads_generic_targets(resource: Any, queryset: Any) -> bool:
    """Whether ``resource``'s answers read the rows a ``GenericForeignKey`` points at: a
    ``prefetch_related()`` path of its declared ``queryset`` (or of a ``Prefetch``
    queryset in it) through one, or one its serializer renders (``related_loading``)."""
    paths: list[tuple[Any, str]] = []
    pending = [queryset] if queryset is not None else []
    while pending:
        current = pending.pop()
        for lookup in getattr(current, "_prefetch_related_lookups", ()):
            paths.append((current.model, str(getattr(lookup, "prefetch_through", lookup))))
            inner = getattr(lookup, "queryset", None)
            if inner is not None:
                pending.append(inner)
    if resource.serializer_class is not None and resource.model._meta.apps.models_ready:
        try:
            joined, prefetched = resource.related_loading
        except Exception:  # noqa: BLE001 - a serializer that does not build is check's to report
            joined, prefetched = [], []
        paths += [(resource.model, path) for path in (*joined, *prefetched)]
    for model, path in paths:
        for name in path.split("__"):
            field = relation_named(model, name) if model is not None else None
            if field is None:
                break
            if generic_relation_kind(field) == "GenericForeignKey":
                return True
            model = field.related_model
    return False


def _prefetches_read(queryset: Any, tables: set[str]) -> bool:
    """Add to ``tables`` those ``queryset``'s ``prefetch_related()`` reads: the tables along
    each lookup's path, and those a ``Prefetch(queryset=...)`` joins and prefetches in turn —
    the rendered relation shows only the rows that queryset selects
    (``Prefetch("books", queryset=Book.objects.filter(reviews__body="great"))`` reads
    Review's rows, and a review reworded used to leave the author's ``books`` a HIT). False
    when one holds SQL of its own (``RawSQL``, ``extra()``)."""
    for lookup in getattr(queryset, "_prefetch_related_lookups", ()):
        path = getattr(lookup, "prefetch_through", lookup)
        current = queryset.model
        for name in str(path).split("__"):
            field = relation_named(current, name) if current is not None else None
            if field is None or field.related_model is None:
                break
            current = field.related_model
            tables.add(_table(current))
            through = getattr(field.remote_field if field.concrete else field, "through", None)
            if field.many_to_many and through is not None and not isinstance(through, str):
                tables.add(_table(through))
        inner = getattr(lookup, "queryset", None)
        if inner is not None and not (
            _tables_read(inner.query, tables)
            and _ordering_read(inner, tables)
            and _prefetches_read(inner, tables)
        ):
            return False
    return True


def _ordering_read(queryset: Any, tables: set[str]) -> bool:
    """Add to ``tables`` those ``queryset``'s ``ORDER BY`` reads: a ``Prefetch`` queryset's
    order is the rendered relation's (and, sliced, which rows it holds), and
    ``order_by("reviews__body")`` or a ``Subquery`` over Review there made a review reworded
    reorder an author's ``books`` while the cached answer kept the old order (rev-fixes67).
    A path joins only when the query is compiled, so the order is compiled on a copy (no
    query is run) and its joins and expressions read as :func:`_tables_read` reads the
    ``WHERE``. False when it holds SQL of its own (``RawSQL``, ``extra(order_by=...)``).
    Not for the declared queryset's own order: the list's sort replaces it."""
    if queryset.query.extra_order_by:
        return False
    query = queryset.query.clone()
    try:
        using = queryset.db
    except Exception:  # noqa: BLE001 - a project's router, which may answer only in a request
        # raised here, the order was taken to read nothing (a HIT kept the old order): the
        # tables an order joins are the same on every database of the project
        using = queryset._db or DEFAULT_DB_ALIAS
    try:
        order_by = query.get_compiler(using).get_order_by()
    except Exception:  # noqa: BLE001 - an order that cannot compile fails the request itself
        return True
    return _tables_read(query, tables, [expr for expr, _ in order_by])


def _models_by_table() -> dict[str, type[models.Model]]:
    """The concrete model over each table of the project, auto-created many-to-many tables
    included; the managed one where an unmanaged model mirrors a table (either is watched
    over the table: :func:`_connect_table`)."""
    global _tables_map
    registered = apps.get_models(include_auto_created=True)
    known = _tables_map
    # the registry's own cached list, replaced whenever a model is registered (a model a
    # test or a factory defines after start-up): the map is rebuilt with it
    if known is not None and known[0] is registered:
        return known[1]
    found: dict[str, type[models.Model]] = {}
    for m in registered:
        if not m._meta.proxy and (m._meta.managed or m._meta.db_table not in found):
            found[m._meta.db_table] = m._meta.concrete_model
    _tables_map = (registered, found)
    return found


#: :func:`_models_by_table`'s map and the registry's list of models it was built from
_tables_map: tuple[list[type[models.Model]], dict[str, type[models.Model]]] | None = None


def _with_parents(read: Any) -> set[type[models.Model]]:
    """The concrete models of ``read`` and their multi-table parents: a row read of a child
    (``dog__name``) is also a row of each parent's table, which holds the fields it inherits
    and which a save through the parent class writes with no signal of the child's."""
    found: set[type[models.Model]] = set()
    for m in read:
        found.add(m._meta.concrete_model)
        found.update(p._meta.concrete_model for p in m._meta.get_parent_list())
    return found


#: ``(model, condition path)`` -> the other models the condition reads (see :func:`_path_reads`)
_path_models: dict[tuple[type[models.Model], str], frozenset[type[models.Model]] | None] = {}
_UNKNOWN = object()


def _path_reads(model: type[models.Model], path: str) -> frozenset[type[models.Model]] | None:
    """The models besides ``model`` whose rows a condition, filter or ordering on ``path``
    reads (the tables it joins: ``organization__memberships__user`` reads Organization's
    and Membership's; ``organization__id`` and ``organization__isnull`` join nothing);
    ``None`` for a path of no known field."""
    key = (model, path)
    # one read: a thread finding the memo full empties it, between a check and a read too
    known = _path_models.get(key, _UNKNOWN)
    if known is not _UNKNOWN:
        return known
    read: set[type[models.Model]] = set()
    current = model
    parts = path.split("__")
    found: frozenset[type[models.Model]] | None = frozenset()
    for i, part in enumerate(parts):
        try:
            field = current._meta.pk if part == "pk" else current._meta.get_field(part)
        except (FieldDoesNotExist, AttributeError, TypeError):
            if i == 0:
                found = None  # not a field: an annotation, or nothing django-arc knows
            break
        if not field.is_relation or field.related_model is None:
            break
        following = parts[i + 1] if i < len(parts) - 1 else None
        joined = following is not None and _is_field(field.related_model, following)
        if joined and field.concrete and not field.many_to_many:
            # the key's own target (``organization__id``, ``organization__pk``): Django
            # compares the column and joins nothing
            target = getattr(field, "target_field", None)
            names = {"pk", getattr(target, "name", None), getattr(target, "attname", None)}
            joined = following not in names
        if joined or not field.concrete or field.many_to_many:
            read.add(field.related_model)
        through = getattr(field.remote_field if field.concrete else field, "through", None)
        if field.many_to_many and through is not None:
            read.add(through)
        current = field.related_model
    if found is not None:
        found = frozenset(_with_parents(read)) - {model._meta.concrete_model}
    if not model._meta.apps.models_ready:
        # reverse relations are not known yet (a resource registered before autodiscovery):
        # ``memberships`` read as no field now must not be remembered as joining nothing
        return found
    if len(_path_models) >= 4096:
        _path_models.clear()
    _path_models[key] = found
    return found


def _is_field(model: type[models.Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except (FieldDoesNotExist, AttributeError, TypeError):
        return name == "pk"
    return True


def _condition_reads(
    model: type[models.Model], condition: Any, read: set[type[models.Model]]
) -> bool:
    """Add the other models ``condition`` (a dict of lookups or a ``Q``) reads to ``read``;
    False when it holds something whose reads cannot be told (an expression, a subquery)."""
    if isinstance(condition, dict):
        children: Any = list(condition.items())
    elif isinstance(condition, models.Q):
        children = condition.children
    else:
        return False
    for child in children:
        if isinstance(child, models.Q):
            if not _condition_reads(model, child, read):
                return False
            continue
        if not isinstance(child, tuple) or len(child) != 2:
            return False  # an expression (Exists(...)): what it reads is not known here
        path, value = child
        if isinstance(value, models.F):
            value_reads = _path_reads(model, value.name)
            if value_reads is None:
                return False
            read |= value_reads
        elif hasattr(value, "resolve_expression") or isinstance(value, models.QuerySet):
            return False  # a subquery or another expression
        reads = _path_reads(model, str(path))
        if reads is None:
            return False
        read |= reads
    return True


def conditions_invalidate(view: Any) -> bool:
    """Whether every write that can change which rows the caller may see invalidates the
    answer: the conditions django-arc adds to the rows of the request — the permission's
    ``filters``, the presets' ``row_filter``, and what the presets' ``filter_queryset`` and
    ``search`` add to the queryset — must read only models whose writes bump the resource
    (its own, and those its answers read: :func:`_models_read`). A permission filtering
    through another model (``{"organization__memberships__user": user_id}``) makes the
    answer depend on that model's rows: a membership revoked changes which rows the caller
    may see, with no write that retires the entry, so such an answer is not stored
    (``watch()`` connects signals at start-up, in every process, and cannot know at that
    time what a permission will filter by). A preset's ``filter_queryset`` joining another
    model (``queryset.filter(author__name__startswith="pub")``) was not asked: an author
    renamed out of the condition left their books served as a HIT, list and get."""
    resource = view.resource
    model = resource.model
    if declared_queryset_reads(resource) is None:
        return False  # its declared queryset reads what no write reports (RawSQL, extra())
    conditions = [view.permission_filters]
    # the presets' answers to the queryset the key was just built from (the view's
    # ``get_queryset()``), or, when the project's own built it without them, asked here
    row_filters = getattr(view, "row_filters", None)
    if row_filters is None:
        row_filters = [preset.row_filter(view) for preset in resource.preset_list]
    conditions += row_filters
    read: set[type[models.Model]] = set()
    for condition in conditions:
        if condition and not _condition_reads(model, condition, read):
            return False
    if (resource.queryset_narrowers or resource.query_searchers) and not _presets_queryset_reads(
        view, read
    ):
        return False
    return all(any(r is resource for r in _resources_over(other)) for other in read)


def _presets_queryset_reads(view: Any, read: set[type[models.Model]]) -> bool:
    """Add to ``read`` the models the presets' ``filter_queryset`` (and, on a list that
    searches, the ``search`` that answers it) read beyond the resource's own queryset: the
    tables they join, and those of the subqueries they add; False when one adds SQL of its
    own (``RawSQL``, ``extra()``), whose reads cannot be told. Asked of the queryset these
    hooks return from ``Resource.get_queryset()``, before and after: what the project's
    ``get_queryset`` reads itself is the project's to tag (docs/query-cache.md). Not called
    for a resource whose presets override neither hook (the presets shipped): a cache HIT
    pays two attribute reads for it, the overriding presets being listed once per resource
    (``Resource.queryset_narrowers``, ``Resource.query_searchers``)."""
    resource = view.resource
    narrowing = resource.queryset_narrowers
    query = getattr(view, "list_query", None) if view.action == "list" else None
    term = getattr(query, "search", None)
    searching = bool(term) and bool(resource.query_searchers)
    if not narrowing and not searching:
        return True
    base = resource.get_queryset(view.request)
    queryset = base
    for preset in narrowing:
        queryset = preset.filter_queryset(view, queryset)
    if searching:
        for preset in resource.preset_list:
            searched = preset.search(view, queryset, term)
            if searched is not None:
                queryset = searched
                break
    before: set[str] = set()
    after: set[str] = set()
    if not _tables_read(base.query, before) or not _tables_read(queryset.query, after):
        return False
    added = after - before
    if not added:
        return True
    by_table = _models_by_table()
    for table in added:
        other = by_table.get(table)
        if other is None:
            return False  # a table no model of the project is over: nothing bumps it
        read.add(other)
    return True


def _tables_read(query: Any, found: set[str], also: list[Any] | None = None) -> bool:
    """Add to ``found`` the tables ``query`` (a ``Query``) reads: those it joins and those
    of every subquery in its conditions, annotations and combined queries (and in ``also``,
    expressions resolved against it); False when it holds SQL of its own (``RawSQL``,
    ``extra()``), whose reads cannot be told."""
    if query.extra or query.extra_tables:
        return False
    found.update(join.table_name for join in query.alias_map.values())
    nodes = [query.where, *query.annotations.values(), *(also or ())]
    # a FilteredRelation's condition is in its join's ON, not in the WHERE: a subquery there
    # (``Q(books__pk__in=Subquery(Review…))``) reads its tables too
    for join in query.alias_map.values():
        filtered = getattr(join, "filtered_relation", None)
        if filtered is not None:
            nodes.append(filtered.condition)
    while nodes:
        node = nodes.pop()
        if isinstance(node, Query):
            if not _tables_read(node, found):
                return False
        elif isinstance(node, (RawSQL, ExtraWhere)):
            return False
        elif isinstance(node, WhereNode):
            nodes.extend(node.children)
        elif isinstance(node, Q):
            # an unresolved condition: ("path__lookup", value) pairs, Q and expressions
            nodes.extend(c[1] if isinstance(c, tuple) else c for c in node.children)
        elif isinstance(node, Lookup):
            nodes.extend((node.lhs, node.rhs))
        elif hasattr(node, "get_source_expressions"):
            nodes.extend(node.get_source_expressions())
    return all(_tables_read(combined, found) for combined in query.combined_queries)


def watch(resource: Any) -> None:
    """Connect the model signals of ``resource``'s model — its proxies and multi-table
    descendants included, those defined later too — of its many-to-many tables, the
    ``post_delete`` of the models its foreign keys point at when deleting their rows sets
    those keys, and the signals of the other models its answers read (:func:`_models_read`),
    when the resource is cached. Before the app registry is ready (a ``register`` run from a
    models module) nothing is connected yet: a relation's ``related_model`` cannot be read
    then (``AppRegistryNotReady``, a start-up crash), nor reverse relations, mirrors or
    declared joins; ``autodiscover()``, which ``django_arc``'s ``ready()`` runs, watches
    every registered resource once it is."""
    if policy_for(resource) is None or not apps.models_ready:
        return
    model = resource.model._meta.concrete_model
    for other in _models_read(resource):
        _read_by(other, model)
    if model in _watched:
        return
    _watched.add(model)
    for cls in _family(model):
        _connect(cls)
    _connect_table(model)
    _referenced_by(model)
    for field in model._meta.many_to_many:
        _read_by(field.remote_field.through._meta.concrete_model, model)


def _connect_table(model: type[models.Model]) -> None:
    """Connect the other models over ``model``'s table (an unmanaged model mirroring it),
    their proxies and multi-table children: their saves write its rows. Those defined later
    are connected as they are prepared (:func:`_connect`)."""
    table = _table(model)
    _watched_tables.add(table)
    if apps.models_ready:
        # auto-created models too: a mirror's many-to-many table (its implicit ``through``)
        for cls in apps.get_models(include_auto_created=True):
            if cls._meta.concrete_model is not model._meta.concrete_model and any(
                _table(over) == table for over in (cls, *cls._meta.get_parent_list())
            ):
                _connect(cls)


def _referenced_by(model: type[models.Model]) -> None:
    """Connect the ``post_delete`` of the models ``model``'s foreign keys point at when
    deleting their rows changes those keys without a signal of ``model``'s."""
    for field in _keys_changed_on_delete(model):
        target = field.related_model._meta.concrete_model
        _referencing.setdefault(target, set()).add(model)
        for cls in _family(target):
            _connect(cls)


def _read_by(other: type[models.Model], model: type[models.Model]) -> None:
    """Record that cached answers of ``model`` read ``other``'s rows, and connect the
    signals of ``other``'s writes: ``m2m_changed`` when it is a many-to-many table (sent
    with the table as sender, whichever side wrote), ``post_save``/``post_delete`` of it and
    of its proxies and descendants (an implicit many-to-many table sends none), and the
    ``post_delete`` of the models ``other``'s foreign keys point at when deleting their rows
    sets those keys (``Shelf`` filtered by ``items__box`` reads ``Item.box``)."""
    readers = _readers.setdefault(other, set())
    if model in readers:
        return
    readers.add(model)
    _readers_by_table.setdefault(_table(other), set()).add(model)
    uid = f"django_arc.querycache:{other._meta.label}:linked"
    m2m_changed.connect(_rows_linked, sender=other, weak=False, dispatch_uid=uid)
    if not other._meta.auto_created:
        for cls in _family(other):
            _connect(cls)
    _connect_table(other)
    _referenced_by(other)


def watch_all() -> None:
    """:func:`watch` every registered or hand-routed resource (at start-up, and when ``ARC``
    changes)."""
    from ..sites import served_resources

    for resource in served_resources():
        watch(resource)


on_reload(watch_all)


# -- the helper ---------------------------------------------------------------------------------


def invalidate(*targets: Any, using: str | None = None) -> None:
    """Invalidate cached answers after writes no signal reports. Each target is a model
    class (every resource serving it or one of its multi-table ancestors, or reading their
    rows: :func:`_models_read`), a ``Resource``
    class or instance, or a tag name::

        Product.objects.filter(status="draft").update(status="archived")
        invalidate(Product)          # or invalidate(ProductResource), invalidate("catalog")

    Runs when the current transaction on ``using`` commits (at once outside one). Without
    ``using``, a model's or resource's keys wait for the database its rows are written to
    (its router's ``db_for_write``), as a signal's and a request's bumps do, and a tag's
    for ``default``: ``invalidate(Product)`` inside ``atomic(using="other")``, for a
    ``Product`` routed there, used to bump at once on ``default``, before the write
    committed (a read in between stored the old rows under the new tokens), and even when
    it rolled back."""
    from ..resources import Resource

    keys: dict[str | None, set[str]] = {}

    def add(found: set[str], model: Any = None) -> None:
        alias = using or (router.db_for_write(model) if model is not None else None)
        keys.setdefault(alias, set()).update(found)

    for target in targets:
        if isinstance(target, str):
            add({tag_version_key(target)})
        elif isinstance(target, type) and issubclass(target, models.Model):
            for resource in _resources_over(target):
                add(resource_keys(resource) or {resource_version_key(resource)}, target)
        elif isinstance(target, Resource):
            add(resource_keys(target) or {resource_version_key(target)}, target.model)
        elif isinstance(target, type) and issubclass(target, Resource):
            from ..sites import served_resources

            for resource in served_resources():
                if type(resource) is target:
                    add(resource_keys(resource) or {resource_version_key(resource)}, resource.model)
        else:
            raise TypeError(f"invalidate() takes models, resources and tag names, not {target!r}")
    for alias, found in keys.items():
        bump_on_commit(found, using=alias)
