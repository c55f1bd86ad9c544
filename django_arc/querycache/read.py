"""One cached list/get request, on the view's DRF seams (SPEC §11).

The view calls :meth:`CachedRead.lookup` at the end of ``initial()`` — after authentication,
scope, permissions and throttles, so a caller who may not list gets no cached list — and
:meth:`CachedRead.finish` from ``finalize_response()``:

- fresh entry → its bytes, ``X-Cache: HIT``, without running the route (no SQL for the rows);
- stale entry → its bytes at once, ``X-Cache: STALE``; the one request that wins the
  refresh lock recomputes the entry after its response has been sent (``close()``, which the
  server calls after the last byte, or the request's own ``close()``, which Django's handlers
  add to whichever response is closed, when a middleware answered with another response),
  others just serve it; a recomputed answer that is no longer a 200 drops the entry;
- no valid entry → the route runs; a 200 is stored and marked ``X-Cache: MISS`` (an error
  carries no ``X-Cache``);
- Redis away → the route runs, ``X-Cache: MISS``, nothing stored, one warning per interval.

A cached get answer keeps the row it rendered, and every hit runs the object permission and
the presets' object checks on it, as ``get_object()`` would: the checks are never cached.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connections, router
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone, translation
from rest_framework.exceptions import APIException

from .. import redis_alias
from ..exceptions import ShortCircuit
from ..headers import own_headers
from ..logs import log_text
from .invalidation import conditions_invalidate
from .keys import entry_key, list_parts, retrieve_parts, version_keys
from .policy import CachePolicy, cached_policy_for
from .store import Entry, QueryCacheStore, Unavailable

logger = logging.getLogger("django_arc.querycache")

HEADER = "X-Cache"
#: what DRF's ``handle_exception`` answers with an HTTP status: a route's answer, not a crash
#: (Django's ``ValidationError`` too: arc's handler answers it 400, as DRF's)
HTTP_ERRORS = (APIException, Http404, PermissionDenied, ValidationError)
CACHED_ACTIONS = ("list", "retrieve")
#: the name a damaged entry's warning is rate-limited under (one per interval, as an outage's)
DAMAGED = "query cache (damaged entries)"


class _RefreshingResponse(HttpResponse):
    """A STALE answer that recomputes its entry once the server has sent it."""

    refresh: Callable[[], None] | None = None

    def close(self) -> None:
        refresh, self.refresh = self.refresh, None
        if refresh is not None:
            refresh()  # once: a second call (the request's close()) does nothing
        super().close()

    def __getstate__(self) -> dict[str, Any]:
        # Kept by a cache of the project's (Django's cache middleware pickles responses),
        # the answer goes without its refresh: a closure, which runs here, once.
        state = self.__dict__.copy()
        state.pop("refresh", None)
        return state


def _refresh_when_closed(request: HttpRequest, refresh: Callable[[], None]) -> None:
    """Run ``refresh`` when ``request`` is closed, whatever response the server closes.

    A middleware may answer with another response (``ConditionalGetMiddleware``'s 304), and the
    server closes that one, never the STALE answer. Django's handlers (WSGI and ASGI) add the
    request's ``close()`` to the closers of the response they hand the server, so the refresh
    goes there: it runs before ``request_finished`` gives the request's database connections
    back. It used to wait in a ContextVar for ``request_finished``; under ASGI that signal is
    sent from the handler's own task, which never sees what the request's task set, so the
    refresh never ran and the lock kept the entry STALE until it expired."""
    close = request.close

    def closed() -> None:
        try:
            refresh()
        finally:
            close()

    request.close = closed  # type: ignore[method-assign]


def rendered(view: Any, response: Any) -> bytes:
    """A route's DRF ``Response`` rendered as ``finalize_response`` would render it."""
    request = view.request
    if getattr(response, "accepted_renderer", None) is None:
        response.accepted_renderer = request.accepted_renderer
        response.accepted_media_type = request.accepted_media_type
        response.renderer_context = view.get_renderer_context()
    response.render()
    return bytes(response.content)


def _bare(row: Any) -> Any:
    """A copy of ``row`` as its own columns only, without the related rows loaded on it
    (``select_related``, a relation its checks or serializer followed, prefetches): a hit's
    object checks must read those as they are now, as on the row ``get_object()`` loads, not
    as they were when the entry was stored — a related row's write does not retire it."""
    reduced = row.__reduce__()  # a copy of its state (its own _state, fields cache), as pickled
    state = reduced[2] if len(reduced) > 2 else None
    if not isinstance(state, dict) or "_state" not in state:
        return row  # a model pickling its own way: kept as it pickles
    state["_state"].fields_cache = {}
    state.pop("_prefetched_objects_cache", None)
    bare = type(row).__new__(type(row))
    bare.__setstate__(state)
    return bare


def has_own_headers(view: Any, response: Any) -> bool:
    """Whether the route's answer carries headers or cookies a HIT would not have: a HIT is
    the stored bytes and content type under the headers DRF gives every answer of the view
    (``Allow``, ``Vary: Accept``), so an answer a project's pagination class gave a count,
    a ``Link`` or a ``Vary`` of its own is not stored (it would be served without them)."""
    return bool(response.cookies) or bool(own_headers(view, response))


#: isolation levels (as Django's PostgreSQL and MySQL backends name them) whose transactions
#: read one snapshot, taken at their first query
SNAPSHOT_LEVELS = frozenset({"REPEATABLE_READ", "SERIALIZABLE", "repeatable read", "serializable"})


def reads_a_snapshot(view: Any) -> bool:
    """Whether the route read its rows in a transaction that may have taken its snapshot
    before the version tokens were read (``ATOMIC_REQUESTS`` at ``REPEATABLE READ`` or
    ``SERIALIZABLE``: authentication or the scope queried first). A write committed and bumped
    in between is then in the tokens but not in the rows, and the answer must not be stored
    under them. At ``READ COMMITTED`` (the default) every query sees what was committed
    before it ran, after the tokens."""
    connection = connections[router.db_for_read(view.resource.model)]
    if not connection.in_atomic_block:
        return False
    level = getattr(connection, "isolation_level", None)
    if connection.vendor == "postgresql" and "isolation_level" not in connection.settings_dict.get(
        "OPTIONS", {}
    ):
        # Django sets no level then, and takes it for READ COMMITTED: the server's default
        # (default_transaction_isolation of postgresql.conf, ALTER ROLE/DATABASE, "options")
        # is what the transaction runs at
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW transaction_isolation")
                level = cursor.fetchone()[0]
        except DatabaseError:
            return True
    return getattr(level, "name", level) in SNAPSHOT_LEVELS


class CachedRead:
    """The cache's part in one cacheable request; see the module docstring."""

    def __init__(
        self,
        view: Any,
        store: QueryCacheStore | None,
        policy: CachePolicy,
        key: str = "",
        version_keys: list[str] | None = None,
        versions: tuple[str, ...] = (),
    ) -> None:
        self.view = view
        self.store = store
        self.policy = policy
        self.key = key
        self.version_keys = version_keys or []
        self.versions = versions
        self.started = time.time()
        #: the token of the refresh lock this request holds (a STALE answer's refresher)
        self.lock: str | None = None

    @classmethod
    def lookup(cls, view: Any) -> CachedRead | None:
        """Answer from the cache (raises :class:`ShortCircuit`), or return the object that
        stores the route's answer; ``None`` when the request is not cacheable."""
        if view.action not in CACHED_ACTIONS:
            return None
        policy = cached_policy_for(view.resource)
        if policy is None or not redis_alias.is_django_redis(policy.alias):
            return None
        # Only JSON: the browsable API's HTML carries the user's name and a CSRF token.
        if getattr(view.request.accepted_renderer, "format", None) != "json":
            return None
        view.row_filters = None  # what the presets answer for the queryset keyed next
        parts = list_parts(view) if view.action == "list" else retrieve_parts(view)
        if parts is None:
            return None
        if not conditions_invalidate(view):
            # the rows this caller may see depend on rows no write retires the entry for
            # (a permission filtering through a membership table): answered, never stored
            return cls(view, None, policy)
        key = entry_key(view, parts)
        keys = version_keys(view.resource, policy.tags)
        store = QueryCacheStore(policy.alias)
        try:
            entry, versions = store.read(key, keys)
        except Unavailable:
            return cls(view, None, policy)
        read = cls(view, store, policy, key, keys, versions)
        if entry is not None and entry.versions == versions:
            try:  # a damaged entry (a row that does not unpickle, a bad content type): a miss
                row = pickle.loads(entry.obj) if entry.obj else None  # noqa: S301
                response = _RefreshingResponse(entry.body, content_type=entry.content_type)
            except Exception as exc:  # noqa: BLE001 - whatever unpickling bytes raises
                read.damaged(exc)
                return read
            fresh = time.time() - entry.created < policy.stale_seconds
            raise ShortCircuit(read.serve(response, row, "HIT" if fresh else "STALE"))
        return read

    def damaged(self, exc: Exception) -> None:
        """An entry this request cannot serve (a row that no longer unpickles after a deploy
        changed its class, corrupted bytes, a content type no header may carry): dropped, so
        the requests after this one do not fail on it again whatever the route answers now
        (a 200 stores its own entry; a 404, a refusal or an answer kept uncached would have
        left it), and said once per interval, as the store's outage is
        (:func:`~django_arc.redis_alias.warning_due`): a deploy that damages every entry
        would otherwise log on every read."""
        if self.store is not None:
            self.store.discard(self.key)
        if redis_alias.warning_due(DAMAGED):
            logger.warning(
                "%s: a cached answer could not be read (%s: %s); dropped, answered uncached "
                "(next warning in %d s at most)",
                log_text(self.view.request.path),
                type(exc).__name__,
                log_text(str(exc)),
                redis_alias.WARNING_INTERVAL_SECONDS,
            )

    def serve(self, response: _RefreshingResponse, row: Any, state: str) -> HttpResponse:
        """An entry's ``response`` (and, for a get, its ``row``), after the object checks of
        a get. A STALE answer asks for the refresh lock only once the checks have let the
        caller have it: a caller refused the row (403) would otherwise hold the lock, and no
        refresh would happen until it expired."""
        view = self.view
        if row is not None:
            view.check_object_permissions(view.request, row)
        response[HEADER] = state
        self.lock = self.store.try_lock(self.key) if state == "STALE" else None
        if self.lock is not None:
            response.refresh = self.refresh_later()
            _refresh_when_closed(view.request._request, response.refresh)
        return response

    def finish(self, response: Any) -> None:
        """Mark the route's answer a miss and store it when it is a 200 a HIT can repeat,
        read after the version tokens. Only a 200 is marked: an error (a 404, an object
        rule's 403, a 500) is no answer the cache could keep or serve, and carries no
        ``X-Cache``, as it carries none when refused before the cache is asked."""
        if response.status_code != 200:
            return
        keep = (
            self.store is not None
            and hasattr(response, "render")
            and not has_own_headers(self.view, response)  # before X-Cache is one of them
            and not reads_a_snapshot(self.view)
        )
        response[HEADER] = "MISS"
        entry = self.entry(response) if keep else None
        if entry is not None:
            self.store.write(self.key, entry, self.policy.gc_seconds)

    def entry(self, response: Any) -> Entry | None:
        """The entry of ``response``; ``None`` for a get whose row does not pickle (an
        attribute a project's permission or preset set on it holds a lock, a lambda): a HIT
        could not run the object checks on it, so the answer is served, never stored."""
        obj = getattr(self.view, "arc_object", None) if self.view.action == "retrieve" else None
        try:
            row = b"" if obj is None else pickle.dumps(_bare(obj), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):
            return None
        body = rendered(self.view, response)  # rendering sets the content type
        return Entry(
            created=self.started,
            versions=self.versions,
            content_type=response.get("Content-Type", ""),
            body=body,
            obj=row,
        )

    def refresh_later(self) -> Callable[[], None]:
        """:meth:`refresh`, to run once from the response's or the request's ``close()`` in the
        time zone and language active now.

        ``close()`` runs after the middleware that activated them for the request (``with
        timezone.override(...)``) has returned, while the entry is keyed under them: refreshed
        outside them, the entry of a caller in Tokyo would hold datetimes written in UTC."""
        zone, language = timezone.get_current_timezone(), translation.get_language()
        pending = [True]

        def refresh() -> None:
            if pending:  # once, whichever of the response's and request's close() comes first
                pending.clear()
                with timezone.override(zone), translation.override(language):
                    self.refresh()

        return refresh

    def refresh(self) -> None:
        """Recompute a stale entry: the same route, for the same request and caller.

        A route that no longer answers 200 — a get whose row a write the cache was not told
        of deleted (raw SQL) is a 404 — drops the entry, so the next read runs the route and
        gets that answer itself, instead of the stale 200 until ``gc_seconds``. That is the
        route's answer, not a failure; an exception that is not an HTTP answer is logged and
        the entry kept (a database hiccup should not empty the cache)."""
        view, store = self.view, self.store
        try:
            # the entry and the tokens, as a read would find them now: another request that
            # read the same stale entry may have refreshed it (and released its lock) since
            # this one read it, or a miss stored a new answer; a fresh, valid entry is left
            # as it is, so a stale entry is recomputed once, not once per request that saw it
            entry, self.versions = store.read(self.key, self.version_keys)
            if (
                entry is not None
                and entry.versions == self.versions
                and time.time() - entry.created < self.policy.stale_seconds
            ):
                return
            self.started = time.time()
            response = self.rerun()
            entry = (
                self.entry(response)
                if response is not None
                and response.status_code == 200
                and not has_own_headers(view, response)
                else None
            )
            if entry is not None:
                store.write(self.key, entry, self.policy.gc_seconds)
            else:
                store.discard(self.key)
        except Unavailable:
            pass
        except Exception:  # noqa: BLE001 - the client has its answer; a failed refresh is logged
            logger.warning(
                "Refreshing cached %s failed", log_text(view.request.path), exc_info=True
            )
        finally:
            if self.lock is not None:
                store.unlock(self.key, self.lock)

    def rerun(self) -> Any | None:
        """The route's answer now; ``None`` when it raises one of the errors DRF answers with
        an HTTP status (``get_object()``'s 404, a permission's 403, a query's 400)."""
        view = self.view
        view.__dict__.pop("paginator", None)  # a paginator holds one run's page
        handler = getattr(view, view.action)
        try:
            return handler(view.request, *view.args, **view.kwargs)
        except HTTP_ERRORS:
            return None
