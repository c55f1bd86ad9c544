"""``ScopeRateThrottle``: one DRF throttle whose bucket follows the caller's arc scope.

Buckets and the ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` names they read::

    service client            -> "arc_service"  keyed by client_id
    member / elevated / user  -> "arc_member"   keyed by user id + organization ("-" if none)
    anonymous                 -> "arc_anon"     keyed by client IP (DRF's get_ident, which
                                                honours NUM_PROXIES; IPv6 by its /64)

A bucket whose rate is not configured is not throttled, so a project can limit anonymous
traffic only. Keying members by user *and* org means one busy tenant does not exhaust the
same person's allowance in another tenant; keying services by client_id means rotating IPs
does not help a client escape its limit.

The counters live in DRF's throttle cache (Django's ``default`` alias). When that is a Redis
that is down, a request is let through uncounted, with one warning per interval in the log,
as the query cache answers uncached: a throttle guards the service's availability, and
answering everyone 500 (DRF's behaviour) or 429 while the counters are out of reach would
make a Redis outage an API outage. A database cache whose database refuses (down, its table
missing) is the same outage; its statements run in a savepoint when the request is in a
transaction, so its failure leaves that transaction usable. So is any other backend's
(memcached's client errors, a project's backend): whatever the cache's ``get``/``set``
raises is taken as its server being out of reach, since no backend's errors say more of
the request than that the counters cannot be read or written.
"""

from __future__ import annotations

import ipaddress
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache import cache as default_cache
from django.core.cache.backends.db import BaseDatabaseCache
from django.db import router, transaction
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .cache_keys import key_part
from .clients import ServiceClient
from .exceptions import ArcError
from .redis_alias import warn_outage
from .scope import RequestScope, get_scope

SERVICE_RATE = "arc_service"
MEMBER_RATE = "arc_member"
ANON_RATE = "arc_anon"


def _outage_store(store: Any) -> str:
    """What the warning says was unavailable: Redis, the database cache, or the backend by
    its class (memcached, a project's own)."""
    if isinstance(store, BaseDatabaseCache):
        return "the database cache"
    if "redis" in type(store).__module__.lower():  # Django's RedisCache, django-redis's
        return "Redis"
    return f"the throttle cache ({type(store).__qualname__})"


def _store_call(store: Any, write: bool) -> AbstractContextManager[Any]:
    """Where a call of the throttle's cache ``store`` runs: a database cache's, in a
    savepoint when its database is in a transaction (``ATOMIC_REQUESTS``, a caller's
    ``atomic``), so a refused statement (its table missing) is rolled back alone and not the
    request's transaction, which PostgreSQL would refuse every later query of; any other
    store's, as it is."""
    if not isinstance(store, BaseDatabaseCache):
        return nullcontext()
    route = router.db_for_write if write else router.db_for_read
    alias = route(store.cache_model_class)
    if not transaction.get_connection(alias).in_atomic_block:
        return nullcontext()
    return transaction.atomic(using=alias)


def _ident_part(ident: Any, ipv6_prefix: int) -> str:
    """DRF's ``get_ident`` as a part of a cache key: an IP address in its usual spelling, else
    through :func:`key_part`. Without ``NUM_PROXIES`` the ident is the client's whole
    ``X-Forwarded-For`` header (with it, one entry of it): any text, any length, which
    memcached refuses in a key past 250 bytes or with a control character. An IPv6 scope
    (``fe80::1%<any text>``) is such text too.

    An IPv6 address counts as its ``/ipv6_prefix`` network (``/64``: one host's, which picks
    any address of it at will, privacy addresses rotate through it), as django-ratelimit
    buckets it: per address, one host had 2**64 anonymous buckets. An IPv4 address mapped
    into IPv6 (``::ffff:10.0.0.1``, a dual-stack socket's spelling) is that IPv4 address,
    not the one ``::/64`` every such client would share.

    A proxy that appends the client's port (``[2001:db8::1]:443``, ``203.0.113.5:1234``)
    names the address DRF's ``get_ident`` hands on with it: the port is dropped, or every
    connection of one host would be its own bucket (and an IPv6 host escape its ``/64``)."""
    try:
        address = ipaddress.ip_address(bare := _without_port(ident))
    except ValueError:
        return key_part(ident)
    if getattr(address, "scope_id", None):
        return key_part(bare)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{ipv6_prefix}", strict=False))
    return str(address)


def _without_port(ident: Any) -> Any:
    """``ident`` without a port a proxy appended: ``[<IPv6>]:<port>`` or ``[<IPv6>]`` is the
    address in the brackets, ``<IPv4>:<digits>`` the IPv4 address; anything else (a bare
    IPv6 address is all colons) as given."""
    if not isinstance(ident, str):
        return ident
    if ident.startswith("["):
        inside, closed, port = ident[1:].partition("]")
        if closed and (not port or (port[:1] == ":" and port[1:].isdigit())):
            return inside
        return ident
    host, colon, port = ident.partition(":")
    if colon and port.isdigit() and "." in host:
        return host
    return ident


class ScopeRateThrottle(SimpleRateThrottle):
    """Rate-limit per service client, per user + org, or per IP (see module docs)."""

    service_scope = SERVICE_RATE
    member_scope = MEMBER_RATE
    anon_scope = ANON_RATE
    cache_format = "arc_throttle_%(scope)s_%(ident)s"
    #: an anonymous IPv6 caller's bucket is its address's network of this prefix length
    ipv6_prefix = 64

    def __init__(self) -> None:
        # The rate depends on the request's scope, so it is chosen in allow_request().
        self.scope: str | None = None
        self.rate: str | None = None
        self.num_requests: int | None = None
        self.duration: int | None = None

    def get_rate(self) -> str | None:
        # Read DRF's settings at call time (not the import-time class attribute) so
        # override_settings and settings reloads apply.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def _bucket(self, request: Any) -> tuple[str, str]:
        """``(rate name, identity)`` for this request."""
        try:
            arc_scope: RequestScope | None = get_scope(request)
        except ArcError:
            # The view will reject the request with that error; still count it, against the
            # user if there is one, else the IP.
            arc_scope = None
        if arc_scope is not None and arc_scope.kind == "service":
            return self.service_scope, f"client:{arc_scope.client_id}"
        if arc_scope is not None and arc_scope.user_id is not None:
            return (
                self.member_scope,
                f"user:{key_part(arc_scope.user_id)}:org:"
                f"{key_part(arc_scope.organization_id or '-')}",
            )
        if arc_scope is None:
            auth = getattr(request, "auth", None)
            if isinstance(auth, ServiceClient):
                return self.service_scope, f"client:{auth.client_id}"
            user = getattr(request, "user", None)
            if getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None:
                return self.member_scope, f"user:{key_part(user.pk)}:org:-"
        return self.anon_scope, f"ip:{_ident_part(self.get_ident(request), self.ipv6_prefix)}"

    def get_cache_key(self, request: Any, view: Any) -> str:
        scope, ident = self._bucket(request)
        self.scope = scope
        return self.cache_format % {"scope": scope, "ident": ident}

    def allow_request(self, request: Any, view: Any) -> bool:
        self.key = self.get_cache_key(request, view)
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        store = self._store()
        try:
            with _store_call(store, write=False):
                self.history = self.cache.get(self.key, [])
        except Exception as exc:  # noqa: BLE001 - any backend's outage (see module docs)
            warn_outage("throttling", exc, _outage_store(store))
            return True
        self.now = self.timer()
        # Newest first, the window's only: servers sharing the cache each put their own
        # clock's time at the head, so with clocks apart an entry past the window may lie
        # before a recent one (DRF drops them from the tail only, and wait() read it).
        # A history that is no list of times (written under this key by an older release
        # or another library sharing the cache) counts no request: comparing it raised
        # TypeError, a 500 on every request of the bucket until the key expired.
        history = self.history if isinstance(self.history, (list, tuple)) else ()
        self.history = sorted(
            (
                when
                for when in history
                if isinstance(when, (int, float))
                and not isinstance(when, bool)
                and when > self.now - self.duration
            ),
            reverse=True,
        )
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return self.throttle_success()

    def throttle_success(self) -> bool:
        self.history.insert(0, self.now)
        store = self._store()
        try:
            with _store_call(store, write=True):
                self.cache.set(self.key, self.history, self.duration)
        except Exception as exc:  # noqa: BLE001 - read, then lost: this request goes uncounted
            warn_outage("throttling", exc, _outage_store(store))
        return True

    def _store(self) -> Any:
        """The cache backend behind ``self.cache``: DRF's is Django's ``cache``, a proxy of
        the ``default`` alias (a subclass may name a backend itself)."""
        return caches[DEFAULT_CACHE_ALIAS] if self.cache is default_cache else self.cache

    def wait(self) -> float:
        """Seconds until this bucket takes a request again, for ``Retry-After``.

        DRF's answer is ``None`` (a 429 without ``Retry-After``) once the history holds more
        requests than the rate: after the rate was lowered, or when concurrent requests
        took the last slot together. The bucket takes a request again when its
        ``num_requests``-th newest request leaves the window; a rate of ``0`` never does,
        and says the window."""
        duration = float(self.duration or 0)
        if not self.num_requests or self.num_requests < 0 or not self.history:
            return duration
        oldest_kept = self.history[min(self.num_requests, len(self.history)) - 1]
        return duration - (self.now - oldest_kept)
