"""The Redis server behind a django-redis cache alias, and what happens when it is away.

The query cache and the idempotency ``cache`` store both name a Django ``CACHES`` alias
rather than a Redis URL, so one place configures the server (URL, key prefix, timeouts,
pool) and ``KEY_PREFIX``/``VERSION`` separate projects sharing it. They need commands the
cache API does not offer (``SET NX`` with a lock value, ``MGET`` of entries and versions in
one round trip, compare-and-set scripts), so they talk to django-redis's own client.

The commands a request sends on every cacheable read or keyed write go through
:func:`command` and :class:`Script`, over a connection the thread keeps (see
:class:`_ThreadConnections`), rather than through redis-py's pooled command path.

An outage must cost one log line per interval, not one per request: :func:`warn_outage`
rate-limits the warnings of each feature.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.signals import setting_changed

try:  # redis is an optional dependency (the ``redis`` extra)
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError, RedisError
except ImportError:  # pragma: no cover - without it no alias can be django-redis
    Redis = None  # type: ignore[assignment,misc]
    RedisError = OSError  # type: ignore[misc,assignment]

    class RedisConnectionError(RedisError):  # type: ignore[no-redef]  # noqa: N818
        pass

    class NoScriptError(Exception):  # type: ignore[no-redef]  # noqa: N818
        pass


try:  # the packer django-arc's own packing matches (:func:`_packs_as_redis_py`)
    from redis.connection import AbstractConnection, PythonRespSerializer
except ImportError:  # pragma: no cover - no redis, or a release that packs otherwise
    AbstractConnection = PythonRespSerializer = None  # type: ignore[assignment,misc]


logger = logging.getLogger("django_arc.redis")

#: What a Redis call may raise when the server is down, slow or refusing (OOM): every
#: feature treats these as an outage.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

#: At most one outage warning per feature in this many seconds.
WARNING_INTERVAL_SECONDS = 60.0

_warned_at: dict[str, float] = {}
_warn_lock = threading.Lock()


#: ``is_django_redis``'s answers, per alias, until ``CACHES`` changes
_backends: dict[str, bool] = {}


def is_django_redis(alias: str) -> bool:
    """Whether ``CACHES[alias]`` exists and is a django-redis backend.

    Asked on every cacheable read (and keyed write), so answered once per alias and
    process: reading ``settings.CACHES`` through Django's lazy settings cost a cache HIT
    about 3 k instructions each time. A change of ``CACHES`` (``override_settings``, any
    ``setting_changed``) asks again; like Django's own cache handler, which builds each
    alias's backend once per thread, it does not see ``CACHES`` edited in place."""
    # the memo is taken before the setting is read: an answer read from a ``CACHES`` that
    # another thread replaced meanwhile (``override_settings`` replaces the setting, then
    # sends ``setting_changed``, which swaps the memo) is written to the discarded memo,
    # not kept in the new one
    backends = _backends
    known = backends.get(alias)
    if known is None:
        config = getattr(settings, "CACHES", {}).get(alias)
        backend = (config or {}).get("BACKEND", "")
        known = backends[alias] = isinstance(backend, str) and backend.startswith("django_redis.")
    return known


def _forget_backends(*, setting: str, **kwargs: Any) -> None:
    """Forget :func:`is_django_redis`' answers and each thread's :func:`backend` when
    ``CACHES`` (or django-redis's ``DJANGO_REDIS_CLOSE_CONNECTION``) changes: by new memos,
    not by emptying the ones a question under way may still write to."""
    global _backends, _own_backends
    if setting == "CACHES":
        _backends = {}
    if setting in ("CACHES", "DJANGO_REDIS_CLOSE_CONNECTION"):
        _own_backends = _OwnBackends()


class _OwnBackends(threading.local):
    """This thread's cache backends of the aliases django-arc sends its commands to."""

    def __init__(self) -> None:
        self.by_alias: dict[str, Any] = {}


_own_backends = _OwnBackends()


def backend(alias: str) -> Any:
    """The cache backend of ``alias`` that django-arc's commands use: built for this thread
    as ``caches[alias]`` would be (the same class and ``OPTIONS``, so the same key function
    and django-redis's shared connection pool), but kept out of Django's ``caches``.

    Django closes every cache a thread has taken from ``caches`` at the end of each request
    (``request_finished``), and django-redis's ``close()`` reads its settings to learn it
    has nothing to do: on a cache HIT about as much client work as writing the ``MGET``.
    django-arc's own commands go over the connection the thread keeps
    (:func:`command`), which that ``close()`` never gave back anyway. An alias whose
    ``close()`` does disconnect (``CLOSE_CONNECTION``, or ``DJANGO_REDIS_CLOSE_CONNECTION``)
    is taken from ``caches`` as before, so its connections still close with each request; so
    is an alias ``CACHES`` does not name, which raises Django's own error."""
    # the memo is taken before the setting is read (see is_django_redis)
    own = _own_backends.by_alias
    cache = own.get(alias)
    if cache is not None:
        return cache
    config = caches.settings.get(alias)
    if config is None or _closes_connections(config):
        return caches[alias]
    cache = own[alias] = caches.create_connection(alias)
    return cache


def _closes_connections(config: dict[str, Any]) -> bool:
    """Whether django-redis's ``close()`` of this alias disconnects (its ``CLOSE_CONNECTION``)."""
    options = config.get("OPTIONS") or {}
    if "CLOSE_CONNECTION" in options:
        return bool(options["CLOSE_CONNECTION"])
    return bool(getattr(settings, "DJANGO_REDIS_CLOSE_CONNECTION", False))


setting_changed.connect(_forget_backends, dispatch_uid="django_arc.redis_alias.backends")


def client(alias: str) -> Any:
    """The redis-py client of ``alias`` (django-redis keeps one pool per alias)."""
    return Alias(alias).client()


def make_key(alias: str, key: str) -> str:
    """``key`` with the alias's ``KEY_PREFIX`` and ``VERSION``, as its cache API would."""
    return str(backend(alias).make_key(key))


class AliasUnusable(RedisError):  # noqa: N818 - named for what the operator must fix
    """``CACHES[alias]`` is a django-redis cache whose client cannot be built: a ``LOCATION``
    redis-py cannot parse, a ``CLIENT_CLASS`` that is not installed, django-redis's
    ``ShardClient`` (no single client to send a script to), a Sentinel alias without its
    connection factory. A :data:`REDIS_ERRORS`, so every feature answers as in an outage
    (uncached reads, 503 for keys) rather than with a 500 on every request;
    ``manage.py check`` names the cause (arc.W004, arc.W005)."""


class Alias:
    """One alias, looked up once: its redis-py client and its key function (a request
    that needs several keys and a client pays for :func:`backend` once)."""

    __slots__ = ("_alias", "_cache", "_error")

    def __init__(self, alias: str) -> None:
        self._alias = alias
        self._error: str | None = None
        try:
            self._cache = backend(alias)
        except Exception as exc:  # noqa: BLE001 - any of them is a configuration error
            self._cache = None
            self._error = f"{type(exc).__name__}: {exc}"

    def _unusable(self, cause: str) -> AliasUnusable:
        return AliasUnusable(f"CACHES[{self._alias!r}] cannot be used: {cause}")

    def client(self) -> Any:
        if self._error is not None:
            raise self._unusable(self._error)
        try:
            return self._cache.client.get_client(write=True)
        except REDIS_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - building the client is configuration
            raise self._unusable(f"{type(exc).__name__}: {exc}") from exc

    def key(self, key: str) -> str:
        if self._error is not None:
            raise self._unusable(self._error)
        return str(self._cache.make_key(key))


class _ThreadConnections(threading.local):
    """This thread's redis-py client on one connection of each pool it sends to
    (``single_connection_client``).

    A pooled command takes a connection from the pool and gives it back, polling the socket
    in between for data a broken exchange left behind: about as much client CPU as the round
    trip itself, on every cache read and every keyed write. A connection kept by the thread
    skips that. It counts against its pool's ``max_connections`` for as long as the thread
    lives (it goes back to the pool when the thread ends), is replaced after a fork or when
    an alias gets another pool, and redis-py drops its socket when an exchange fails, so it
    never holds half an answer.

    A connection the thread lets go (past :attr:`MAX_POOLS`, or after the server closed it)
    is given back by closing its client rather than by dropping the last reference to it:
    redis 5.0.0 keeps a single-connection client in a reference cycle (the traceback of its
    handshake), so there it stayed in use until the garbage collector ran. The same cycle
    delays the return of a thread's connections when the thread ends, on that release only."""

    #: pools a thread keeps a connection to before it gives them all back (aliases
    #: reconfigured over and over, as tests do, must not pile up connections)
    MAX_POOLS = 4

    def __init__(self) -> None:
        self.clients: dict[int, Any] = {}
        self.pid = os.getpid()

    def get(self, redis: Any) -> Any:
        if type(redis) is not Redis or redis.connection is not None:
            return redis  # a project's client class, or already one connection: as it is
        if self.pid != os.getpid():
            self.clients, self.pid = {}, os.getpid()
        pool = redis.connection_pool
        client = self.clients.get(id(pool))
        if client is not None and client.connection_pool is pool:
            return client
        if len(self.clients) >= self.MAX_POOLS:
            for kept in self.clients.values():  # their connections go back to their pools first
                kept.close()
            self.clients = {}
        client = Redis(connection_pool=pool, single_connection_client=True)
        self.clients[id(pool)] = client
        return client

    def drop(self, redis: Any) -> None:
        client = self.clients.pop(id(redis.connection_pool), None)
        if client is not None:
            client.close()


_connections = _ThreadConnections()


def command(redis: Any, *args: Any) -> Any:
    """``args`` as one command to ``redis``'s server, on this thread's connection.

    A connection the server closed since the thread's last command (a Redis restart) fails
    once without being an outage: the command is sent again through the pool, which
    reconnects, as a pooled command would have. A timeout is not sent again: a Redis that
    hangs costs a request one timeout."""
    client = _connections.get(redis)
    try:
        if client is redis:
            return redis.execute_command(*args)
        return _exchange(client, args)
    except RedisConnectionError:
        _connections.drop(redis)
    return redis.execute_command(*args)


def _exchange(client: Any, args: tuple[Any, ...]) -> Any:
    """One command and its reply over ``client``'s own connection.

    What ``execute_command`` does around the exchange — a lock for threads sharing the
    client, a retry closure, per-command metrics — is for clients a thread does not own;
    here the thread is the connection's only user, and :func:`command` sends a command
    whose connection was closed again through the pool. redis-py drops the socket of an
    exchange that fails part-way; an error reply (``NOSCRIPT``, ``OOM``) is read whole and
    leaves the connection in step."""
    connection = client.connection
    encoder = _packs_as_redis_py(connection)
    packed = None if encoder is None else _packed(args, encoder)
    if packed is None:
        connection.send_command(*args)
    else:  # the same bytes, sent by redis-py with its own error and disconnect handling
        connection.send_packed_command(packed)
    response = connection.read_response()
    callback = client.response_callbacks.get(args[0])
    return response if callback is None else callback(response)


def _packs_as_redis_py(connection: Any) -> Any:
    """The encoder of ``connection`` when its own ``send_command`` would write what
    :func:`_packed` writes (redis-py's, with redis-py's packer); ``None`` for a connection
    that sends its own way, whose ``send_command`` must see the command: redis-py's
    client-side caching proxy (it keeps its cache in step there, and has no encoder), a
    project's class that traces or rewrites commands, a ``command_packer`` of its own."""
    packer = getattr(connection, "_command_packer", None)
    if PythonRespSerializer is None or type(packer) is not PythonRespSerializer:
        return None  # hiredis's packer is C already; another is the project's own
    if type(connection).send_command is not AbstractConnection.send_command:
        return None
    return connection.encoder


#: an argument past this many bytes is left to redis-py's packer, which sends it as a
#: buffer of its own rather than copying it into the command (its ``_buffer_cutoff``)
_PACKED_ARGUMENT_LIMIT = 6000


def _packed(args: tuple[Any, ...], encoder: Any) -> list[bytes] | None:
    """``args`` as the one RESP command redis-py's Python packer would write, for the
    commands every cached read and keyed write sends (a name, keys and values that are
    text or bytes); ``None`` for any other (a number, a name of two words such as
    ``SCRIPT LOAD``, a large value), which redis-py packs itself.

    redis-py's packer calls its encoder once per argument and splits the command name on
    spaces: a sixth of a cache HIT's round trip in the client. The text is encoded with the
    connection's own encoding and error handler, as that encoder would."""
    name = args[0]
    if type(name) is not str or " " in name:
        return None
    encoding, errors = encoder.encoding, encoder.encoding_errors
    pieces = [b"*%d\r\n" % len(args)]
    for arg in args:
        if type(arg) is str:
            arg = arg.encode(encoding, errors)
        elif type(arg) is not bytes:
            return None
        if len(arg) > _PACKED_ARGUMENT_LIMIT:
            return None
        pieces.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return [b"".join(pieces)]


class Script:
    """A Lua script, sent by SHA (``EVALSHA``); loaded on the first ``NOSCRIPT``, when a
    server has not seen it yet (or lost it in a restart)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest()  # noqa: S324 - Redis's script id

    def __call__(self, redis: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return command(redis, "EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            command(redis, "SCRIPT LOAD", self.source)
        return command(redis, "EVALSHA", self.sha, len(keys), *keys, *args)


#: Deletes ``KEYS[1]`` only while it holds ``ARGV[1]``: a lock or claim released by its
#: holder, never by one whose hold ran out and was taken over since.
DELETE_IF_HELD = Script(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
)


def warn_outage(feature: str, exc: BaseException, store: str = "Redis") -> None:
    """Log that ``feature`` could not reach ``store`` (Redis, or the throttle's database
    cache), at most once per :data:`WARNING_INTERVAL_SECONDS`."""
    if not warning_due(feature):
        return
    logger.warning(
        "%s: %s unavailable (%s: %s); continuing without it (next warning in %d s at most)",
        feature,
        store,
        type(exc).__name__,
        exc,
        WARNING_INTERVAL_SECONDS,
    )


def warning_due(feature: str) -> bool:
    """Whether ``feature`` may log its outage warning now: at most once per
    :data:`WARNING_INTERVAL_SECONDS` (the call that says yes starts the next interval)."""
    now = time.monotonic()
    with _warn_lock:
        last = _warned_at.get(feature)
        if last is not None and now - last < WARNING_INTERVAL_SECONDS:
            return False
        _warned_at[feature] = now
    return True


def reset_outage_warnings() -> None:
    """Forget when each feature last warned (tests, and a deliberate reconfiguration)."""
    with _warn_lock:
        _warned_at.clear()
