"""Where idempotency keys live: ``database`` (``IdempotencyRecord``) or ``cache`` (Redis).

Both answer the same four questions: may this request run (:meth:`claim`), which response
does a repeat get (the :class:`Claim` of a finished key), store the answer (:meth:`complete`)
and give the key up (:meth:`release`, after a 5xx). A claim holds a random ``token``, so a
request whose lock ran out and was taken over can neither store nor release the new owner's
claim.

``database`` is *transactional*: the request's writes and the stored response commit in one
transaction (see :mod:`django_arc.idempotency.execution`), so a crash anywhere leaves either
both or neither. ``cache`` sets a key only when absent, with an expiry (``SET NX`` done by a
script that also returns what holds the key); Redis and the database cannot commit together,
so a worker dying between its commit and storing the response lets a retry run again once
the lock expires: a second write (an update's or delete's event dedupes in the outbox, a
create's new row brings its own).

Times are the store's own: Redis expires the ``cache`` store's keys, and on PostgreSQL the
``database`` store stamps a claim's lock and a record's expiry with the database's clock and
compares them with that clock (``statement_timestamp()``), never an application server's, so
servers whose clocks differ neither take over each other's claims in flight nor see another
server's answer as expired early (or a dead request's lock as live for longer). SQLite,
which lives on one host, uses that host's clock.

Claiming and storing the answer are one statement or one Redis round trip each, and a repeat
costs its claim plus, on the ``database`` store, one look-up: they are all a keyed request
adds to the request itself (``tests/test_idempotency_cost.py`` counts them).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, OperationalError, connections, router, transaction
from django.db.models import Q
from django.db.models.constants import OnConflict
from django.utils import timezone

from .. import redis_alias
from ..clock import database_clock, now_on

try:  # redis is an optional dependency (the ``redis`` extra)
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # pragma: no cover - then no claim reaches Redis to time out
    RedisTimeoutError = TimeoutError  # type: ignore[misc,assignment]

logger = logging.getLogger("django_arc.idempotency")

CLAIMED = "claimed"
#: a finished key: replay its response
FINISHED = "finished"
#: another request holds the key right now
IN_FLIGHT = "in_flight"
#: the key was used for a request with another fingerprint
REUSED = "reused"


#: an answer's own headers, as :func:`django_arc.headers.own_headers` lists them
Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`claim`: ``token`` when ``CLAIMED``; the stored response when
    ``FINISHED``."""

    outcome: str
    token: str = ""
    status: int = 0
    content_type: str = ""
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    #: the answer's document as DRF's ``JSONRenderer`` reads it, kept beside ``body`` when a
    #: project renderer wrote ``body`` under other names or another charset (``None``: the
    #: body reads back as it is); see :func:`~django_arc.idempotency.execution.readable_now`
    data: Any = None


@dataclass(frozen=True)
class Request:
    """What a store records about the request claiming a key."""

    key: str
    fingerprint: str
    method: str
    path: str
    lock_seconds: float
    ttl_seconds: float


#: ``json.dumps(value, separators=(",", ":"))``: ``json.dumps`` builds an encoder on every
#: call that passes options, this one is built once (same options, same output: stored
#: values must keep matching). A keyed request on the ``cache`` store encodes three values.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode

#: Expired records one statement of :meth:`DatabaseStore.purge` deletes.
PURGE_BATCH_SIZE = 1000
#: The most a larger ``batch_size`` deletes per statement (as the outbox's relay batch and
#: purge are capped, ``outbox.relay.MAX_BATCH_SIZE``).
MAX_PURGE_BATCH_SIZE = 10_000


class StoreUnavailable(Exception):  # noqa: N818 - a state, reported as 503
    """The store cannot be reached (Redis down, alias misconfigured): the request must not
    run unprotected, so it is refused with 503 and may be retried."""


def _token() -> str:
    return secrets.token_hex(16)


def _claim_lifetime(request: Request) -> timedelta:
    """How long a claim's record lives: its TTL, and never less than its lock, so a request
    still running is in flight until its lock runs out (as on the ``cache`` store, whose claim
    lives ``LOCK_SECONDS``), not taken for an expired record by a repeat or the purge."""
    return timedelta(seconds=max(request.ttl_seconds, request.lock_seconds))


def _sqlite_locked(connection: Any, exc: OperationalError) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (another connection's write)."""
    return connection.vendor == "sqlite" and "locked" in str(exc)


def _stored_path(path: str) -> str:
    """The path as a record keeps it, for people reading records: what fits the column, and
    no NUL, which PostgreSQL's text cannot hold (``/products/%00/`` is a 404 to answer and
    store, not a 500)."""
    return path.replace("\x00", "\N{REPLACEMENT CHARACTER}")[:2048]


class DatabaseStore:
    """``IdempotencyRecord`` rows; the unique ``key`` is the lock."""

    transactional = True

    def __init__(self) -> None:
        from .models import IdempotencyRecord  # a model: importable once apps are ready

        self.model = IdempotencyRecord
        self.using = router.db_for_write(IdempotencyRecord)
        # this thread's connection (stores are built per request, never shared)
        self.connection = connections[self.using]
        self._sql = _record_sql(self.connection)

    def claim(self, request: Request) -> Claim:
        for _ in range(5):
            claim = self._insert(request) or self._inspect(request)
            if claim is not None:
                return claim
        # The row kept changing under us (released, purged and re-claimed by others): tell
        # the client to retry rather than guess.
        return Claim(IN_FLIGHT)

    def _insert(self, request: Request) -> Claim | None:
        """The first request's claim: one INSERT, committed at once (autocommit), so every
        concurrent repeat sees the row; ``None`` when the key exists. Inside an enclosing
        transaction (``ATOMIC_REQUESTS``) it joins that transaction, and repeats wait for it.

        The INSERT ignores a conflict on the key (``ON CONFLICT DO NOTHING`` and its
        equivalents) rather than failing: a taken key is then no error, so it needs no
        savepoint to survive inside a transaction. Backends that cannot ignore conflicts
        insert plainly, inside a savepoint when in a transaction."""
        now, token = timezone.now(), _token()
        connection = self.connection
        adapt = connection.ops.adapt_datetimefield_value
        sql = self._sql
        block = (
            transaction.atomic(using=self.using)
            if connection.in_atomic_block and not sql["ignores_conflicts"]
            else nullcontext()
        )
        params: list[Any] = [
            request.key,
            request.fingerprint,
            token,
            request.method,
            _stored_path(request.path),
        ]
        if sql["database_clock"]:  # locked_until, created_at and expires_at are the SQL's
            params += [request.lock_seconds, "", _claim_lifetime(request).total_seconds()]
        else:
            params += [
                adapt(now + timedelta(seconds=request.lock_seconds)),
                "",
                adapt(now),
                adapt(now + _claim_lifetime(request)),
            ]
        try:
            with block, connection.cursor() as cursor:
                cursor.execute(sql["insert"], params)
                inserted = cursor.rowcount == 1
        except IntegrityError:  # a backend that cannot ignore the conflict
            return None
        except OperationalError as exc:
            if not _sqlite_locked(connection, exc):
                raise
            return self._while_locked(request)
        return Claim(CLAIMED, token) if inserted else None

    def _while_locked(self, request: Request) -> Claim:
        """SQLite locks the whole database (or, in shared-cache mode, the table) while
        another request writes, and the claim's INSERT gave up waiting. Its readers are not
        locked out: a key whose record is there is judged as always (a repeat of a request
        still running, whose claim committed on its own, is 409; a finished one is
        replayed). A key with no record, or one to take over, needs a write: the key is
        free and the database busy with other requests' writes, a 503 to retry
        (``Retry-After``), not a 409 saying a key nobody holds is in progress."""
        try:
            claim = self._inspect(request)
        except OperationalError as exc:
            if not _sqlite_locked(self.connection, exc):
                raise
            claim = None
        if claim is None:
            raise StoreUnavailable("the SQLite database is locked by another request's write")
        return claim

    def _inspect(self, request: Request) -> Claim | None:
        """The key exists: replay it, refuse, or take it over when its claim or its record
        expired. ``None``: it changed meanwhile, try again. One SELECT that also compares
        the record's times with now, as the ORM's lookups would (repeats are what a client
        retrying sends, so their look-up skips the ORM as the claim does)."""
        connection = self.connection
        if self._sql["database_clock"]:
            params = [request.key]
        else:
            now = connection.ops.adapt_datetimefield_value(timezone.now())
            params = [now, now, request.key]
        with connection.cursor() as cursor:
            cursor.execute(self._sql["look_up"], params)
            row = cursor.fetchone()
        if row is None:
            return None  # released or purged since our insert failed
        pk, token, fingerprint, status, content_type, body, headers, expired, locked = row
        if expired:
            # An expired record is as good as none: take it over for this request.
            return self._take_over(pk, token, request, expired=True)
        if status is None and not locked:
            # A claim whose request died (its lock ran out, nothing of it committed) holds
            # no answer and used the key for nothing: taken over by this request whatever
            # its body, as the ``cache`` store's claim expires after ``LOCK_SECONDS``.
            return self._take_over(pk, token, request, expired=False)
        if status is not None and not _is_status(status):
            # a status no response can have (a record edited by hand): no answer to replay,
            # and a 500 on every retry of the key; taken over, as the ``cache`` store's
            # unreadable entry is (:meth:`CacheStore._existing`)
            _unreadable(f"status {status}")
            return self._take_over(pk, token, request, expired=False, held_status=status)
        if fingerprint != request.fingerprint:
            return Claim(REUSED)
        if status is not None:
            pairs, data = _headers(headers)
            return Claim(FINISHED, "", status, content_type, bytes(body or b""), pairs, data)
        return Claim(IN_FLIGHT)

    def _take_over(
        self, pk: int, held_by: str, request: Request, expired: bool, held_status: Any = None
    ) -> Claim | None:
        """Claim a key whose holder is gone, or whose record holds ``held_status``, which no
        response can have: a conditional UPDATE, so of two requests taking over at once
        exactly one wins (the other sees the row changed)."""
        now, token = now_on(self.connection), _token()
        if expired:
            condition = Q(expires_at__lte=now)
        elif held_status is not None:
            condition = Q(status=held_status)
        else:
            # a null lock: a finished record whose status was edited to null (an answered
            # one's lock is null), no answer and no live claim, taken over as a lapsed claim
            lapsed = Q(locked_until__lte=now) | Q(locked_until__isnull=True)
            condition = lapsed & Q(status__isnull=True)
        updated = (
            self.model.objects.using(self.using)
            .filter(condition, pk=pk, token=held_by)
            .update(
                fingerprint=request.fingerprint,
                token=token,
                method=request.method,
                path=_stored_path(request.path),
                locked_until=now + timedelta(seconds=request.lock_seconds),
                status=None,
                content_type="",
                body=None,
                headers=None,
                created_at=now,
                expires_at=now + _claim_lifetime(request),
            )
        )
        return Claim(CLAIMED, token) if updated else None

    def complete(
        self,
        request: Request,
        token: str,
        status: int,
        content_type: str,
        body: bytes,
        headers: Headers = (),
        data: Any = None,
    ) -> bool:
        """Store the response, if the claim is still ours. Joins the current transaction
        (the request's, for this transactional store). ``data`` (:attr:`Claim.data`) is kept
        in the ``headers`` column, which then holds ``{"h": headers, "d": data}``."""
        if self._sql["database_clock"]:
            expires: Any = request.ttl_seconds  # the SQL adds it to the database's time
        else:
            expires = self.connection.ops.adapt_datetimefield_value(
                timezone.now() + timedelta(seconds=request.ttl_seconds)
            )
        params = [
            status,
            content_type,
            body,
            _json(headers, data),
            expires,
            request.key,
            token,
        ]
        with self.connection.cursor() as cursor:
            cursor.execute(self._sql["complete"], params)
            return cursor.rowcount == 1

    def release(self, request: Request, token: str) -> None:
        """Give the key up (the request failed with a 5xx): the next repeat runs anew. One
        ``DELETE`` whose condition (our token, no answer) the database checks as it deletes,
        never the ORM's ``delete()``: with any delete receiver for every model (a project's
        audit log) that selects the row, then deletes it by id, and a request outliving its
        lock would delete the claim, or the stored answer, of the retry that took it over in
        between, and a repeat of that retry would run it again (:meth:`purge` likewise)."""
        with self.connection.cursor() as cursor:
            cursor.execute(self._sql["release"], [request.key, token])

    def purge(self, batch_size: int = PURGE_BATCH_SIZE) -> int:
        """Delete expired records, ``batch_size`` at a time (fewer where the backend takes
        fewer parameters per statement); returns how many.

        Each batch is one ``SELECT`` of expired ids (the ``expires_at`` index) and one
        ``DELETE`` of those ids, committed on its own outside a transaction: a purge of a
        large backlog holds the locks of one batch at a time, never those of every expired
        row for the whole purge, so claims, take-overs and the answers of keyed requests
        wait for one batch at most. Records that expire while it runs are the next purge's.

        The ``DELETE`` checks ``expires_at`` again as it deletes each row, never the ORM's
        ``delete()``: with any ``pre_delete``/``post_delete`` receiver for every model (a
        project's audit log) that selects the expired rows, then deletes them by id, and a
        record taken over in between (a retry of its expired key, its answer stored) would
        go too, so a repeat of that retry would run it once more. An in-flight claim is not
        expired: its record lives at least until its lock runs out."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        ops = self.connection.ops
        meta = self.model._meta
        # a batch's ids and the cut-off are the statement's parameters: SQLite takes 999;
        # at most MAX_PURGE_BATCH_SIZE where the backend takes more (one statement must
        # never hold every expired row's lock, whatever batch_size is asked for)
        batch_size = min(batch_size, MAX_PURGE_BATCH_SIZE)
        limit = self.connection.features.max_query_params
        if limit is not None:
            batch_size = max(1, min(batch_size, limit - 1))
        now = now_on(self.connection)
        expired = (
            self.model.objects.using(self.using)
            .filter(expires_at__lte=now)
            .order_by()
            .values_list("pk", flat=True)
        )
        if database_clock(self.connection):
            cutoff, params = "statement_timestamp()", []
        else:
            cutoff, params = "%s", [ops.adapt_datetimefield_value(now)]
        condition = f"{ops.quote_name(meta.get_field('expires_at').column)} <= {cutoff}"
        deleted = 0
        while True:
            ids = list(expired[:batch_size])
            if not ids:
                return deleted
            sql = (
                f"DELETE FROM {ops.quote_name(meta.db_table)} "
                f"WHERE {ops.quote_name(meta.pk.column)} IN ({', '.join(['%s'] * len(ids))}) "
                f"AND {condition}"
            )
            with self.connection.cursor() as cursor:
                cursor.execute(sql, [*ids, *params])
                deleted += cursor.rowcount
            if len(ids) < batch_size:
                return deleted


_statements: dict[str, dict[str, Any]] = {}


def _record_sql(connection: Any) -> dict[str, Any]:
    """The statements every keyed request runs, in SQL: the claim's INSERT, the answer's
    UPDATE and a repeat's SELECT. Written out because they are on every keyed write's (or
    retry's) path, where the ORM's model and queryset machinery cost two to three times the
    statement itself (measured for ``benchmarks/cache.py``). Giving a claim up (a 5xx) is one
    too, a conditional ``DELETE`` (see :meth:`DatabaseStore.release`); taking a key over
    uses the ORM. Built once per database."""
    statements = _statements.get(connection.alias)
    if statements is None:
        from .models import IdempotencyRecord

        statements = _statements[connection.alias] = _build_sql(IdempotencyRecord, connection)
    return statements


def _build_sql(model: Any, connection: Any) -> dict[str, Any]:
    ops = connection.ops
    table = ops.quote_name(model._meta.db_table)
    # PostgreSQL: INSERT … ON CONFLICT DO NOTHING; SQLite: INSERT OR IGNORE; MySQL: INSERT
    # IGNORE. A row that exists then inserts nothing (rowcount 0) instead of raising.
    ignores = connection.features.supports_ignore_conflicts
    on_conflict = OnConflict.IGNORE if ignores else None

    def col(name: str) -> str:
        return ops.quote_name(model._meta.get_field(name).column)

    inserted = [
        "key",
        "fingerprint",
        "token",
        "method",
        "path",
        "locked_until",
        "content_type",
        "created_at",
        "expires_at",
    ]
    suffix = ops.on_conflict_suffix_sql([], on_conflict, [], []) if ignores else ""
    stamped_by_database = database_clock(connection)
    values = ["%s"] * len(inserted)
    # now, and now plus a number of seconds: the database's, or parameters from this server
    now, later = "%s", "%s"
    if stamped_by_database:
        now, later = "statement_timestamp()", "statement_timestamp() + make_interval(secs => %s)"
        values[inserted.index("locked_until")] = later
        values[inserted.index("created_at")] = now
        values[inserted.index("expires_at")] = later
    return {
        "ignores_conflicts": ignores,
        "database_clock": stamped_by_database,
        "insert": (
            f"{ops.insert_statement(on_conflict=on_conflict)} {table} "
            f"({', '.join(col(n) for n in inserted)}) "
            f"VALUES ({', '.join(values)}) {suffix}"
        ).rstrip(),
        # what a repeat needs of the record, its times compared with now
        "look_up": (
            f"SELECT {col('id')}, {col('token')}, {col('fingerprint')}, {col('status')}, "
            f"{col('content_type')}, {col('body')}, {col('headers')}, "
            f"{col('expires_at')} <= {now}, {col('locked_until')} > {now} "
            f"FROM {table} WHERE {col('key')} = %s"
        ),
        # giving a claim up (a 5xx): only while it is ours and unanswered
        "release": (
            f"DELETE FROM {table} WHERE {col('key')} = %s AND {col('token')} = %s "
            f"AND {col('status')} IS NULL"
        ),
        "complete": (
            f"UPDATE {table} SET {col('status')} = %s, {col('content_type')} = %s, "
            f"{col('body')} = %s, {col('headers')} = %s, {col('locked_until')} = NULL, "
            f"{col('expires_at')} = {later} "
            f"WHERE {col('key')} = %s AND {col('token')} = %s AND {col('status')} IS NULL"
        ),
    }


# Redis values: b"F" + JSON (in flight) or b"D" + JSON + b"\n" + body (finished). The JSON
# never contains a newline, so the first one ends it. A finished one's JSON holds the
# answer's own headers under "h" when it had any (values stored without it have none), and
# its document under "d" when the body does not read back as it (:attr:`Claim.data`).
_IN_FLIGHT = b"F"
_FINISHED = b"D"
#: the key's value when it has one (a repeat); else claim it for ARGV[2] ms (nil reply)
_CLAIM = redis_alias.Script(
    """
local value = redis.call('GET', KEYS[1])
if value then
  return value
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
)
#: the answer, when the key still holds our claim or holds nothing (our claim expired, or
#: Redis lost it, and nobody took the key since: our writes stand, so a retry must replay
#: them, not write again); never over another request's claim or answer. A key already
#: holding ``ARGV[2]`` is done too: the script sent again by ``redis_alias.command`` after
#: the reply of its first run was lost with the connection (as :meth:`CacheStore._existing`
#: recognises its own claim); a take-over (:meth:`CacheStore._take_over`) was a 409 then,
#: its own claim locking the key with nothing running
_SET_IF_OURS = redis_alias.Script(
    """
local value = redis.call('GET', KEYS[1])
if value == ARGV[1] or not value then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if value == ARGV[2] then
  return 1
end
return 0
"""
)


#: Claims whose script was sent but whose reply did not come in time (the alias's socket
#: timeout): Redis may have run it all the same, or run it after the request gave up (a
#: Redis that stalled), and the key stays claimed by a request that answered 503 and runs
#: nothing — every retry a 409 until ``LOCK_SECONDS`` pass. ``(alias, Redis key) → (claim
#: value, until)``: the process gives them up (only while they still hold that claim)
#: before its next claim. (A claim whose connection dropped is sent again at once by
#: ``redis_alias.command``, and recognised by its token: :meth:`CacheStore._existing`.)
_unanswered: dict[tuple[str, str], tuple[bytes, float]] = {}
_unanswered_lock = threading.Lock()
#: past this many, the ones whose lock has run out are dropped (an outage of many requests)
UNANSWERED_LIMIT = 1000


def _remember_unanswered(alias: str, key: str, claim: bytes, lock_seconds: float) -> None:
    now = time.monotonic()
    with _unanswered_lock:
        if len(_unanswered) >= UNANSWERED_LIMIT:
            _forget_run_out(now)
        _unanswered[(alias, key)] = (claim, now + lock_seconds)


def _forget_run_out(now: float) -> None:
    """Drop the claims whose lock has run out by itself, whatever their alias: Redis has
    freed their keys. The caller holds ``_unanswered_lock``."""
    for entry, (_, until) in list(_unanswered.items()):
        if until <= now:
            del _unanswered[entry]


class CacheStore:
    """One Redis key per scoped key, on a django-redis alias: a claim sets it (only when
    absent) for ``LOCK_SECONDS``; the finished response replaces it for ``TTL_SECONDS``.
    Finishing and releasing compare the stored claim first, so only its owner can (an answer
    is also stored when the key holds nothing: the claim expired and nobody took the key).
    Each is one Lua script, sent by SHA: one round trip apiece."""

    transactional = False

    def __init__(self, alias: str) -> None:
        if not redis_alias.is_django_redis(alias):
            raise StoreUnavailable(f"CACHES[{alias!r}] is not a django-redis cache")
        self.alias = alias
        self._alias = redis_alias.Alias(alias)
        #: (scoped key, Redis key) of the last key used: claim and complete share it
        self._last_key = ("", "")

    def _redis(self) -> Any:
        return self._alias.client()

    def _key(self, request: Request) -> str:
        scoped, key = self._last_key
        if scoped != request.key:
            key = self._alias.key(f"arc:idem:{request.key}")
            self._last_key = (request.key, key)
        return key

    @staticmethod
    def _in_flight(request: Request, token: str) -> bytes:
        meta = {"fp": request.fingerprint, "token": token}
        return _IN_FLIGHT + _compact_json(meta).encode()

    def claim(self, request: Request) -> Claim:
        """One round trip (a Lua script): claim the key, or read what holds it. ``SET NX``
        then ``GET`` would take two for a repeat, and could find the key gone in between
        (``SET NX GET`` needs Redis 7; 6.2 is supported)."""
        token = _token()
        claim = self._in_flight(request, token)
        try:
            key, redis = self._key(request), self._redis()
            if _unanswered:
                self._give_up_unanswered(redis)
        except redis_alias.REDIS_ERRORS as exc:
            redis_alias.warn_outage("idempotency", exc)
            raise StoreUnavailable(str(exc)) from exc
        try:
            value = _CLAIM(redis, [key], [claim, _ms(request.lock_seconds)])
        except redis_alias.REDIS_ERRORS as exc:
            redis_alias.warn_outage("idempotency", exc)
            if isinstance(exc, RedisTimeoutError):  # sent, and Redis may run it yet
                _remember_unanswered(self.alias, key, claim, request.lock_seconds)
            raise StoreUnavailable(str(exc)) from exc
        if value is None:
            return Claim(CLAIMED, token)
        existing = self._existing(request, value, token)
        return (
            existing if existing is not None else self._take_over(request, key, value, claim, token)
        )

    def _take_over(
        self, request: Request, key: str, value: bytes, claim: bytes, token: str
    ) -> Claim:
        """Claim a key holding an entry no answer can be read from (:meth:`_existing`), only
        while it still holds that entry (or nothing), as the ``database`` store takes over a
        record holding no answer: one more round trip, on this rare path only. Another
        request that changed the key meanwhile is in flight with it (409, retry). A script
        whose reply did not come in time is remembered as a claim's is (:data:`_unanswered`):
        Redis may run it yet, and the key would stay claimed by a request that answered 503."""
        try:
            done = _SET_IF_OURS(self._redis(), [key], [value, claim, _ms(request.lock_seconds)])
        except redis_alias.REDIS_ERRORS as exc:
            redis_alias.warn_outage("idempotency", exc)
            if isinstance(exc, RedisTimeoutError):  # sent, and Redis may run it yet
                _remember_unanswered(self.alias, key, claim, request.lock_seconds)
            raise StoreUnavailable(str(exc)) from exc
        return Claim(CLAIMED, token) if done else Claim(IN_FLIGHT)

    def _give_up_unanswered(self, redis: Any) -> None:
        """Delete the claims of this alias that requests answered 503 for without knowing
        whether Redis ran them (see :data:`_unanswered`), each only while it still holds
        that claim, in one round trip; forgotten once deleted, or once their lock has run
        out by itself. A Redis error keeps them for the next claim (and fails this one, as
        its own command would have)."""
        now = time.monotonic()
        with _unanswered_lock:
            mine = [(k, v) for k, v in _unanswered.items() if k[0] == self.alias]
        live = [(key, claim) for (_, key), (claim, until) in mine if until > now]
        if live:
            pipe = redis.pipeline(transaction=False)
            for key, claim in live:
                pipe.eval(redis_alias.DELETE_IF_HELD.source, 1, key, claim)
            pipe.execute()
        with _unanswered_lock:
            for entry, value in mine:
                if _unanswered.get(entry) == value:
                    del _unanswered[entry]
            _forget_run_out(now)

    @staticmethod
    def _existing(request: Request, value: bytes, token: str) -> Claim | None:
        """What a key found holding ``value`` answers. Our own claim (``token``) is ours: the
        script ran, but its reply was lost with the connection (a ``CLIENT KILL``, a network
        cut), and :func:`~django_arc.redis_alias.command` (or redis-py's own retry) sent it
        again, which found the claim it had just set. Taken for another request's, it
        answered 409 and left the key locked for ``LOCK_SECONDS``, with nothing running.

        ``None``: an entry no answer or claim can be read from (edited by hand or written by
        another tool: a head that is not a JSON object, a status no response can have), the
        WARNING saying so. It was a 500 on every retry of the key until it expired; it holds
        no answer to replay, as a ``database`` record with no status whose lock ran out, and
        as that one is, it is taken over: the retry runs anew (as after an answer Redis
        lost). A ``"ct"`` that is not text is read as no ``Content-Type``, as stored headers
        of another shape are read as none (:func:`_pairs`)."""
        kind, rest = value[:1], value[1:]
        head, _, body = rest.partition(b"\n")
        try:
            meta = json.loads(head)
        except (ValueError, RecursionError):
            meta = None
        if not isinstance(meta, dict) or kind not in (_IN_FLIGHT, _FINISHED):
            return _unreadable(value)
        status = meta.get("status")
        if kind == _FINISHED and not _is_status(status):
            # whatever its fingerprint, as the database store takes over a record with none
            return _unreadable(value)
        if meta.get("fp") != request.fingerprint:
            return Claim(REUSED)
        if kind == _IN_FLIGHT and meta.get("token") == token:
            return Claim(CLAIMED, token)
        if kind == _FINISHED:
            content_type = meta.get("ct", "")
            if not isinstance(content_type, str):
                logger.warning(
                    "An idempotency cache entry's stored Content-Type is not text (%.80r): "
                    "replayed without it",
                    content_type,
                )
                content_type = ""
            headers = _pairs(meta.get("h", []))  # stored only when the answer had any
            return Claim(FINISHED, "", status, content_type, body, headers, meta.get("d"))
        return Claim(IN_FLIGHT)

    def complete(
        self,
        request: Request,
        token: str,
        status: int,
        content_type: str,
        body: bytes,
        headers: Headers = (),
        data: Any = None,
    ) -> bool:
        meta: dict[str, Any] = {"fp": request.fingerprint, "status": status, "ct": content_type}
        if headers:
            meta["h"] = headers
        if data is not None:
            meta["d"] = data
        value = _FINISHED + _compact_json(meta).encode() + b"\n" + body
        try:
            done = _SET_IF_OURS(
                self._redis(),
                [self._key(request)],
                [self._in_flight(request, token), value, _ms(request.ttl_seconds)],
            )
        except redis_alias.REDIS_ERRORS as exc:
            # The write is committed; the key stays locked until LOCK_SECONDS pass, then a
            # retry runs again: a second write (docs/idempotency.md, "cache" store).
            redis_alias.warn_outage("idempotency", exc)
            return False
        return bool(done)

    def release(self, request: Request, token: str) -> None:
        try:
            redis_alias.DELETE_IF_HELD(
                self._redis(), [self._key(request)], [self._in_flight(request, token)]
            )
        except redis_alias.REDIS_ERRORS as exc:
            redis_alias.warn_outage("idempotency", exc)  # the lock expires by itself

    def purge(self) -> int:
        """Redis expires keys by itself: nothing to purge."""
        return 0


def _is_status(status: Any) -> bool:
    """Whether ``status`` is one a response can have (Django refuses others with
    ``ValueError``; a ``bool`` is no status)."""
    return type(status) is int and 100 <= status <= 599


def _unreadable(value: Any) -> None:
    """Say that a stored key holds nothing that can be read (:meth:`CacheStore._existing`,
    :meth:`DatabaseStore._inspect`): the operator learns why a retry ran again."""
    logger.warning(
        "An idempotency key's stored entry holds no answer or claim that can be read "
        "(%.80r): the key is taken over and the request runs",
        value,
    )


def _json(headers: Headers, data: Any = None) -> str | None:
    """The ``headers`` column: the headers' ``[name, value]`` list (null without any), or
    ``{"h": headers, "d": data}`` when the answer keeps its document (:attr:`Claim.data`)."""
    if data is not None:
        return _compact_json({"h": headers, "d": data})
    return _compact_json(headers) if headers else None


def _headers(stored: str | None) -> tuple[tuple[tuple[str, str], ...], Any]:
    """A record's headers and kept document (:func:`_json`): none for a record stored
    without them."""
    if not stored:
        return (), None
    try:
        value = json.loads(stored)
    except ValueError:
        value = stored  # not JSON (edited by hand): no headers, no document, as _pairs says
    if isinstance(value, dict):
        return _pairs(value.get("h", [])), value.get("d")
    return _pairs(value), None


def _pairs(stored: Any) -> tuple[tuple[str, str], ...]:
    """Headers as both stores keep them (JSON ``[name, value]`` lists) as a claim holds them.
    A value of another shape (a record or cache entry edited by hand, ``{"h": 5}``) is no
    headers, with a WARNING, rather than a 500 on every retry of the key: the replay is
    the stored status and body without them. So is a pair no response can carry (a line
    break in it, a name that is not ASCII), which Django refuses to set on the replay."""
    if isinstance(stored, list) and all(
        isinstance(pair, list) and len(pair) == 2 for pair in stored
    ):
        pairs = tuple((str(name), str(value)) for name, value in stored)
        if all(_settable(name, value) for name, value in pairs):
            return pairs
    logger.warning(
        "An idempotency record's stored headers are not [name, value] pairs a response "
        "can carry (%.80r): replayed without them",
        stored,
    )
    return ()


def _settable(name: str, value: str) -> bool:
    """Whether Django sets ``name: value`` on a response (``BadHeaderError`` on a line
    break, ``UnicodeEncodeError`` on a name that is not ASCII; a value is MIME-encoded)."""
    return name.isascii() and not any(c in text for text in (name, value) for c in "\r\n")


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def get_store(settings: dict[str, Any]) -> DatabaseStore | CacheStore:
    """The store ``ARC["IDEMPOTENCY"]`` names."""
    if settings.get("STORE") == "cache":
        return CacheStore(settings.get("ALIAS", "default"))
    return DatabaseStore()
