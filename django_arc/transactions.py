"""The transactions a write opens beyond one ``atomic()``: on more than one database (a
write whose rows and outbox a router sends to two databases, and a keyed request that holds
its writes until its answer is known, open one on each: the rows' commit first, then the
event's, not one commit, but nothing of a write that raises commits), and, for a keyed
request on SQLite, one that takes the write lock as it begins; and what a write's row
locks and deletes share inside their transaction (:func:`lockable`,
:func:`refuse_deleted_unjudged`), for the core and the presets alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from django.apps import apps as django_apps
from django.db import connections, models, transaction
from django.db.models.deletion import Collector
from django.db.models.sql.constants import LOUTER

from .exceptions import STILL_REFERRED_TO, ArcError, ServerFault


def atomic_on(aliases: tuple[str, ...], *, writing: bool = False) -> Any:
    """``transaction.atomic`` on each of ``aliases``, entered in order (the last innermost,
    the first to commit). ``writing``: the transaction is held for a whole request that
    reads before it writes (a keyed request's, :mod:`django_arc.idempotency.execution`), so
    on SQLite it takes the database's write lock as it begins (:func:`_begin_immediate`)."""
    if writing and any(connections[alias].vendor == "sqlite" for alias in aliases):
        return _atomics(aliases, writing=True)
    if len(aliases) == 1:
        return transaction.atomic(using=aliases[0])
    return _atomics(aliases)


@contextmanager
def _atomics(aliases: tuple[str, ...], *, writing: bool = False) -> Iterator[None]:
    with ExitStack() as stack:
        for alias in aliases:
            connection = connections[alias]
            if writing and connection.vendor == "sqlite" and not connection.in_atomic_block:
                with connection.execute_wrapper(_begin_immediate):
                    stack.enter_context(transaction.atomic(using=alias))
            else:
                stack.enter_context(transaction.atomic(using=alias))
        yield


def _begin_immediate(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    """Django's SQLite ``BEGIN`` is deferred: the transaction takes the database's write
    lock at its first write. One that has read by then is refused it at once, without the
    busy timeout, while another connection writes ("database is locked", SQLite's guard
    against two upgrading readers deadlocking): a keyed request reads its row, then writes,
    and answered 500 where the same request without a key, whose write's transaction began
    with the write, waited. ``BEGIN IMMEDIATE`` waits for the lock (the busy timeout) and
    then holds it; a project's own ``transaction_mode`` is left as it is."""
    if sql == "BEGIN":
        sql = "BEGIN IMMEDIATE"
    return execute(sql, params, many, context)


def lockable(rows: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """``rows`` as a queryset a database can lock (``select_for_update()``): itself, unless
    it reads ``DISTINCT`` (a manager's ``distinct()``, as a ``_base_manager`` filtering
    through a to-many relation has), groups its rows (an aggregate annotated) or joins a
    nullable relation ``LEFT OUTER`` (:func:`_joins_outer`), which PostgreSQL refuses to
    lock ("FOR UPDATE is not allowed with DISTINCT clause", "… with GROUP BY clause", "…
    cannot be applied to the nullable side of an outer join"): then the model's table rows
    whose primary keys it reads, a plain queryset with ``rows`` as the subquery, so the rows
    locked are those ``rows`` reads and nothing else. On the database ``rows`` names, else where the router sends the lock
    (``select_for_update()`` makes a queryset a write's): ``rows.db`` of a queryset naming
    none is the router's database for reads, a replica, where the lock held nothing for
    the write (and a hot standby refuses it, a 500)."""
    query = rows.query
    if not query.distinct and query.group_by is None and not _joins_outer(query):
        return rows
    plain = models.QuerySet(model=rows.model, using=rows._db, hints=rows._hints)
    return plain.filter(pk__in=rows.values("pk"))


def _joins_outer(query: Any) -> bool:
    """Whether ``query`` joins a table ``LEFT OUTER`` (a base manager's ``exclude()`` or
    ``Q(...) | Q(...)`` across a nullable relation): PostgreSQL refuses to lock its nullable
    side ("FOR UPDATE cannot be applied to the nullable side of an outer join"), a 500 on
    every delete of the model, as ``DISTINCT`` and ``GROUP BY`` were."""
    return any(getattr(join, "join_type", None) == LOUTER for join in query.alias_map.values())


def refuse_deleted_unjudged(collector: Collector, delete: Callable[[], Any]) -> Any:
    """What ``delete()`` (a model's own ``delete()``, run after the cascade check judged
    ``collector``'s rows) returns, unless it deleted more rows of a judged table than were
    judged: then 409 ``CONFLICT`` (the cascade check's answer), and the write's transaction
    rolls back. Such a ``delete()`` collects again (``Model.delete()`` builds its own
    collector), and a row filed meanwhile under one the check reached, which no lock
    holds, was deleted unjudged (another member's, under an owner-scoping preset); Django's
    own ``delete()`` deletes the judged collection and fails on such a row at its commit,
    409 too. Read from Django's ``(count, {label: count})``; a ``delete()`` returning something
    else is taken at its word. Rows the collection deletes by one statement without loading
    them (its fast deletes) are judged too: they are counted before ``delete()`` runs,
    by a query only for a table the collection also loaded rows of (a multi-table child
    reached through its parent link and through another relation), whose count would
    otherwise hold more rows than were judged."""
    judged = _judged_rows(collector)
    result = delete()
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
        return result
    deleted: dict[Any, int] = {}
    for label, count in result[1].items():
        try:
            table = django_apps.get_model(label)._meta.concrete_model
        except (LookupError, ValueError):
            continue
        if table in judged:
            deleted[table] = deleted.get(table, 0) + count
    if any(count > judged[table] for table, count in deleted.items()):
        raise ArcError("CONFLICT", STILL_REFERRED_TO, 409)
    return result


def _judged_rows(collector: Collector) -> dict[Any, int]:
    """How many rows of each table ``collector`` loaded, with the rows its fast deletes
    of those tables hold that it did not load (a row reached both ways is one row)."""
    loaded: dict[Any, set[Any]] = {}
    for each, rows in collector.data.items():
        loaded.setdefault(each._meta.concrete_model, set()).update(row.pk for row in rows)
    judged = {table: len(pks) for table, pks in loaded.items()}
    for batch in collector.fast_deletes:
        table = batch.model._meta.concrete_model
        if table in loaded:
            pks = batch.values_list("pk", flat=True)
            judged[table] += sum(1 for pk in pks if pk not in loaded[table])
    return judged


#: libpq's ``PQTRANS_INERROR``: in a transaction a failed statement aborted
_IN_ERROR = 3


def aborted_databases(using: Iterable[str] | None = None) -> list[str]:
    """The aliases of the open connections (of ``using``'s aliases, when given: a write's
    own databases) whose transaction can no longer be committed: a
    failed statement aborted it (PostgreSQL refuses every statement after one fails until
    the transaction, or the savepoint it ran in, is rolled back), or Django marked it for
    rollback (a save or ``bulk_create`` that failed inside an ``atomic`` block; Django then
    refuses every query with ``TransactionManagementError``, on any database). A project's
    code that catches a database error it caused (an ``IntegrityError`` of a
    ``get_or_create`` race) without a savepoint of its own (``transaction.atomic()`` around
    the statement) leaves it so: the next statement fails, or the ``COMMIT`` rolls back what
    was written. Read from Django's and the driver's own state (psycopg 2 and 3 both keep
    ``info.transaction_status``): no query.

    A write asks about its own databases only: a transaction a route left aborted on a
    database the write does not use (inside its own ``atomic(using="other")``) is the
    route's, which its ``atomic`` rolls back, and was a 500 for a write that could commit."""
    if using is None:
        opened = connections.all(initialized_only=True)
    else:
        # the write's own aliases only, each read once: ``connections.all()`` reads every
        # configured alias's thread-local twice (asgiref's ``Local``, the costly part of the
        # question), a write asks it up to three times
        held, opened = connections._connections, []
        for alias in dict.fromkeys(using):
            connection = getattr(held, alias, None)  # None: never opened in this thread
            if connection is not None:
                opened.append(connection)
    aborted = []
    for connection in opened:
        raw = connection.connection
        if raw is None:
            continue
        if connection.in_atomic_block and connection.needs_rollback:
            aborted.append(connection.alias)
        elif connection.vendor == "postgresql" and _transaction_status(raw) == _IN_ERROR:
            aborted.append(connection.alias)
    return aborted


def _transaction_status(raw: Any) -> int:
    """libpq's transaction status of a psycopg connection: psycopg 3's ``pgconn`` answers
    it as a number (its ``info.transaction_status`` builds a ``ConnectionInfo`` and an
    enum member each time), psycopg 2's ``info`` as a number too."""
    pgconn = getattr(raw, "pgconn", None)
    if pgconn is not None:
        return int(pgconn.transaction_status)
    return int(getattr(getattr(raw, "info", None), "transaction_status", 0))


def fault_if_aborted(
    using: Iterable[str],
    message: Callable[[str], str],
    details: dict[str, Any] | None = None,
) -> None:
    """Raise a :class:`~django_arc.exceptions.ServerFault` of ``message(databases)`` (and
    ``details``) when a transaction on one or more of the write's databases ``using`` is
    aborted (:func:`aborted_databases`: the driver's state, no query): a write's checks
    around the project's hooks, one row's or a bulk item's, blame the code that left it so."""
    aborted = aborted_databases(using)
    if aborted:
        raise ServerFault(message(", ".join(aborted)), details)
