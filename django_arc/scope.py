"""Who is calling, for which organization, with which roles: the request scope.

Every permission, tenancy filter and field guard reads one frozen :class:`RequestScope`
instead of poking at ``request.user`` and headers itself, so the rules for "who is a member",
"who may elevate" and "which org does a service key belong to" live in exactly one place.

Resolution rules (SPEC §4):

* a :class:`~django_arc.clients.ServiceClient` in ``request.auth`` → ``service``; its
  organization is fixed by the client row (an org header naming another org → 403
  ``ORG_REQUIRED``) and it can never elevate;
* ``X-Arc-Scope: platform`` from a user passing ``ELEVATION_CHECK`` → ``elevated`` (org from
  the header if any, no membership needed); anyone else sending it → 403 ``FORBIDDEN``; any
  other value → 400;
* an authenticated user naming an org in ``ORG_HEADER`` → ``member`` when
  ``MEMBERSHIP_RESOLVER(user, org_id)`` returns a list of roles, else 403 ``ORG_REQUIRED``;
* an authenticated user without org header → ``authenticated``; nobody → ``public``.

The resolver is called at most once per request and (user, org): results are cached on the
Django request, so the middleware and the viewset (which resolves again after DRF
authentication) share one lookup.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import methodcaller
from types import MappingProxyType
from typing import Any

from django.core.exceptions import BadRequest, ObjectDoesNotExist, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http.multipartparser import MultiPartParserError
from rest_framework.authentication import CSRFCheck, SessionAuthentication
from rest_framework.request import Request, is_form_media_type
from rest_framework.views import APIView

from .exceptions import ArcError
from .logs import log_text
from .membership import ResolverAnswerError, as_roles
from .settings import arc_settings

logger = logging.getLogger("django_arc.scope")

__all__ = [
    "RequestScope",
    "KINDS",
    "CONTEXT_HEADER_PREFIX",
    "ELEVATION_VALUE",
    "resolve_scope",
    "get_scope",
    "is_member",
    "is_service",
    "is_elevated",
    "has_org_access",
    "get_org_id",
    "get_service_scopes",
    "is_platform_admin",
    "get_user_roles",
]

KINDS = ("public", "authenticated", "member", "service", "elevated")

#: The only accepted value of the elevation header.
ELEVATION_VALUE = "platform"

#: One header per context key: ``X-Arc-Context-Branch-Id: 3`` → ``scope.context["branch_id"]``.
CONTEXT_HEADER_PREFIX = "X-Arc-Context-"
_CONTEXT_META_PREFIX = "HTTP_X_ARC_CONTEXT_"
#: whether a ``META`` key is a context header's, as ``filter`` calls it in
#: :func:`_parse_context`: ``str.startswith`` called from C, about a third of what a compiled
#: prefix pattern's ``match`` costs on each of the 20-odd keys every request's ``META`` has
_is_context_meta_key = methodcaller("startswith", _CONTEXT_META_PREFIX)
_MAX_CONTEXT_KEYS = 16
_MAX_HEADER_VALUE = 128

# Attributes stored on the Django request (DRF's Request proxies attribute reads to it).
_SCOPE_CACHE_ATTR = "_arc_scope_cache"
_MEMBERSHIP_CACHE_ATTR = "_arc_membership_cache"
_ELEVATION_SENT_ATTR = "_arc_elevation_signalled"
#: set by :func:`provisional_scope` on a session request whose judging needs the view
_LEFT_FOR_THE_VIEW_ATTR = "_arc_scope_left_for_the_view"
_USER_ROLES_ATTR = "_arc_user_roles_cache"


class UserRoles(Sequence[str]):
    """The user's own (not org) roles, loaded only when a check actually looks at them.

    Source, in order: ``user.arc_roles`` (an iterable, or a callable returning one) when the
    user model defines it — no query; otherwise the names of the user's Django groups (one
    query, on first use). Most requests are decided on org roles alone, so they never pay
    for the group lookup.

    The answer is kept for the request (``known``, a dict on the request by user pk, which
    the scopes one request resolves share), never on the user object, which may outlive the
    request: ``force_authenticate``'s user, or one an authentication class keeps in memory,
    is the same object on every request, and a group taken away must not count on the next
    one.
    """

    __slots__ = ("_user", "_roles", "_known")

    def __init__(
        self,
        user: Any = None,
        roles: Sequence[str] | None = None,
        known: dict[Any, tuple[str, ...]] | None = None,
    ) -> None:
        self._user = user
        self._roles: tuple[str, ...] | None = tuple(roles) if roles is not None else None
        self._known = known
        if user is None and roles is None:
            self._roles = ()

    def _load(self) -> tuple[str, ...]:
        if self._roles is None:
            user, known = self._user, self._known
            key = getattr(user, "pk", None)
            if known is not None and key is not None and key in known:
                self._roles = known[key]
            else:
                self._roles = get_user_roles(user)
                if known is not None and key is not None:
                    known[key] = self._roles
            self._user = self._known = None
        return self._roles

    @property
    def loaded(self) -> bool:
        """Whether the roles were already fetched (tests use it to prove laziness)."""
        return self._roles is not None

    def __getitem__(self, index: Any) -> Any:
        return self._load()[index]

    def __len__(self) -> int:
        return len(self._load())

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __contains__(self, role: object) -> bool:
        return role in self._load()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, UserRoles):
            return self._load() == other._load()
        if isinstance(other, (tuple, list)):
            return self._load() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._load())

    def __repr__(self) -> str:
        return f"UserRoles({self._roles!r})" if self.loaded else "UserRoles(<not loaded>)"


def get_user_roles(user: Any) -> tuple[str, ...]:
    """A user's own roles: ``user.arc_roles`` if defined, else their group names (1 query,
    on each call: :class:`UserRoles` keeps the answer for a request)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ()
    custom = getattr(user, "arc_roles", None)
    if custom is not None:
        if callable(custom):
            custom = custom()
        if isinstance(custom, (str, bytes)) or not isinstance(custom, Iterable):
            # a bare "viewer" iterated is the roles v, i, e, w…: a redact_for("viewer") would
            # then show that user the value it masks
            raise TypeError(
                f"user.arc_roles of {user!r} is {custom!r}; it must be (or return) a list of "
                "role names"
            )
        return tuple(str(role) for role in custom)
    groups = getattr(user, "groups", None)
    return tuple(groups.values_list("name", flat=True)) if groups is not None else ()


_EMPTY_CONTEXT: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class RequestScope:
    """The caller's identity for one request; immutable so no code can widen it mid-request.

    ``organization_id`` is always a string (header values are strings; compare with
    ``str(pk)``), in the one spelling the tenant columns read it as (``"1"`` for a header
    ``01`` a resolver admitted:
    :func:`~django_arc.organizations.canonical_organization_id`). ``context`` holds extra
    tenant dimensions from ``X-Arc-Context-*`` headers (read-only). ``user_roles`` is lazy
    (see :class:`UserRoles`).
    """

    kind: str
    user_id: Any = None
    user_roles: Sequence[str] = field(default=(), hash=False)
    organization_id: str | None = None
    org_roles: tuple[str, ...] = ()
    client_id: str | None = None
    scopes: tuple[str, ...] = ()
    elevated_by: Any = None
    context: Mapping[str, str] = field(default_factory=lambda: _EMPTY_CONTEXT, hash=False)
    #: the middleware's stand-in (:data:`PROVISIONAL`) until :func:`get_scope` resolves the
    #: caller: it says nothing of who calls (a session's user may be behind it,
    #: :func:`provisional_scope`); equal to the public scope otherwise
    provisional: bool = field(default=False, compare=False, repr=False)

    @property
    def is_authenticated(self) -> bool:
        return self.kind != "public"

    @classmethod
    def public(cls, context: Mapping[str, str] | None = None) -> RequestScope:
        if not context and cls is RequestScope:
            return _PUBLIC  # immutable, so one serves every anonymous request
        return cls(kind="public", context=MappingProxyType(dict(context or {})))


_PUBLIC = RequestScope(kind="public")

#: ``request.arc_scope`` from the middleware when it leaves the caller to the view
#: (:func:`provisional_scope` answered ``None``), until :func:`get_scope` replaces it
PROVISIONAL = RequestScope(kind="public", provisional=True)

# --------------------------------------------------------------------------- helpers


def is_member(scope: RequestScope) -> bool:
    """A human member of the scope's organization (not a service, not elevated)."""
    return scope.kind == "member"


def is_service(scope: RequestScope) -> bool:
    return scope.kind == "service"


def is_elevated(scope: RequestScope) -> bool:
    return scope.kind == "elevated"


def has_org_access(scope: RequestScope, org_id: Any = None) -> bool:
    """May the caller act inside an organization (``org_id``, or the scope's own org)?

    Members and service clients only for their own org; elevated callers for any org when
    they named none, else only the one they named (so elevation with a header narrows).
    """
    if scope.kind == "elevated":
        return (
            scope.organization_id is None
            or org_id is None
            or (str(org_id) == scope.organization_id)
        )
    if scope.kind not in ("member", "service") or scope.organization_id is None:
        return False
    return org_id is None or str(org_id) == scope.organization_id


def get_org_id(scope: RequestScope) -> str | None:
    return scope.organization_id


def get_service_scopes(scope: RequestScope) -> tuple[str, ...]:
    return tuple(scope.scopes) if scope.kind == "service" else ()


def is_platform_admin(user: Any) -> bool:
    """Default ``ELEVATION_CHECK``: an active superuser."""
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", True)
        and getattr(user, "is_superuser", False)
    )


# --------------------------------------------------------------------------- resolution


def _django_request(request: Any) -> Any:
    return getattr(request, "_request", request)


def _is_drf_request(request: Any) -> bool:
    return isinstance(request, Request)


def _identity(request: Any) -> tuple[Any, Any]:
    """``(user, auth)``: DRF's authenticated pair for a DRF request (running authentication if
    needed); for a Django request whatever is on it (DRF copies its result onto the Django
    request, so a Django request seen after DRF authentication agrees)."""
    if _is_drf_request(request):
        return request.user, request.auth
    return getattr(request, "user", None), getattr(request, "auth", None)


def _header(django_request: Any, name: str) -> str | None:
    key = "HTTP_" + name.upper().replace("-", "_")
    value = django_request.META.get(key)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _parse_context(django_request: Any) -> Mapping[str, str]:
    """``X-Arc-Context-Branch-Id: 3`` → ``{"branch_id": "3"}``; malformed entries → 400.

    Values are what the caller asserts: they narrow queries (a tenant filter ANDs them with
    the org), never widen them, so a caller can only hide rows from itself with them.
    """
    meta = django_request.META
    names = list(filter(_is_context_meta_key, meta))  # the scan in C: every request pays it
    if not names:
        return _EMPTY_CONTEXT
    context: dict[str, str] = {}
    for meta_key in names:
        key = meta_key[len(_CONTEXT_META_PREFIX) :].lower()
        value = str(meta[meta_key]).strip()
        header = CONTEXT_HEADER_PREFIX + key.replace("_", "-").title()
        if not key or not value:
            continue
        if len(value) > _MAX_HEADER_VALUE:
            raise ArcError(
                "VALIDATION_ERROR",
                "Invalid context header",
                400,
                {header: [f"At most {_MAX_HEADER_VALUE} characters."]},
            )
        context[key] = value
        if len(context) > _MAX_CONTEXT_KEYS:
            raise ArcError(
                "VALIDATION_ERROR",
                "Too many context headers",
                400,
                {"context": [f"At most {_MAX_CONTEXT_KEYS} X-Arc-Context-* headers."]},
            )
    return MappingProxyType(context)


def _org_required(org_id: str, message: str) -> ArcError:
    return ArcError("ORG_REQUIRED", message, 403, {"organization": org_id})


#: what a ``MEMBERSHIP_RESOLVER`` or ``ELEVATION_CHECK`` raises for input it has no answer for:
#: a malformed id, an integer out of range, no such row (``.get()``, a missing one-to-one
#: profile). Read as "no" (403), never a 500.
_NOT_A_MEMBER = (ValueError, TypeError, DjangoValidationError, OverflowError, ObjectDoesNotExist)


def _membership(django_request: Any, user: Any, org_id: str) -> list[str] | None:
    """Org roles of ``user`` in ``org_id`` via ``MEMBERSHIP_RESOLVER``, cached per request.

    No resolver configured → nobody is a member of anything (fail closed). A resolver that
    chokes on a malformed id (``ValueError``/``TypeError``/``ValidationError``, e.g. an int
    primary key given ``"abc"``) or finds no row (``Membership.objects.get(...)`` raising
    ``DoesNotExist`` for an org the caller is not in) is read as "not a member", so a client
    naming another org is a 403, never a 500. An answer that is neither ``None`` nor a list
    of role names (a bare ``"admin"`` would otherwise be the roles ``a``, ``d``, ``m``…) is
    the project's bug, raised with the resolver's name rather than guessed at.
    """
    cache: dict[tuple[Any, str], list[str] | None] = _request_dict(
        django_request, _MEMBERSHIP_CACHE_ATTR
    )
    key = (user.pk, org_id)
    if key in cache:
        return cache[key]
    resolver: Callable[[Any, str], Any] | None = arc_settings.import_setting("MEMBERSHIP_RESOLVER")
    roles: list[str] | None
    if resolver is None:
        roles = None
    else:
        try:
            result = resolver(user, org_id)
        except ResolverAnswerError:
            raise  # cached_resolver judged the answer: the project's bug, not "not a member"
        except _NOT_A_MEMBER as exc:
            logger.info("MEMBERSHIP_RESOLVER rejected organization %r: %s", org_id, log_text(exc))
            result = None
        roles = as_roles(result, resolver)
    cache[key] = roles
    return roles


def _request_dict(django_request: Any, attr: str) -> dict:
    value = getattr(django_request, attr, None)
    if value is None:
        value = {}
        try:
            setattr(django_request, attr, value)
        except AttributeError:
            pass
    return value


_service_client: type | None = None


def _service_client_class() -> type | None:
    """:class:`~django_arc.clients.ServiceClient`, imported on first use (it is a model,
    which cannot be imported before the app registry is ready) and then kept."""
    global _service_client
    if _service_client is None:
        try:
            from .clients import ServiceClient
        except Exception:  # pragma: no cover - app registry not ready
            return None
        _service_client = ServiceClient
    return _service_client


def _may_elevate(user: Any) -> bool:
    """``ELEVATION_CHECK(user)``; a check that has no answer for this user (``user.profile``
    of a user without a profile raises ``DoesNotExist``) denies, like the resolver's."""
    check = arc_settings.import_setting("ELEVATION_CHECK")
    try:
        return bool(check(user))
    except _NOT_A_MEMBER as exc:
        logger.info("ELEVATION_CHECK refused user %r: %s", getattr(user, "pk", None), log_text(exc))
        return False


def _build_scope(django_request: Any, user: Any, auth: Any) -> RequestScope:
    org_header = arc_settings.ORG_HEADER
    elevation_header = arc_settings.ELEVATION_HEADER
    org_id = _header(django_request, org_header)
    if org_id is not None and len(org_id) > _MAX_HEADER_VALUE:
        raise _org_required(org_id[:_MAX_HEADER_VALUE], "Not a member of this organization")
    if org_id is not None and "\x00" in org_id:
        # no organization's id: a member's is refused by the resolver, but an elevated
        # caller's is taken as sent, into events and audit rows that cannot store a NUL
        raise _org_required(org_id, "Invalid organization id")
    elevation = _header(django_request, elevation_header)
    if elevation is not None and elevation.lower() != ELEVATION_VALUE:
        raise ArcError(
            "VALIDATION_ERROR",
            f"Invalid {elevation_header} header",
            400,
            {elevation_header: [f"The only accepted value is '{ELEVATION_VALUE}'."]},
        )
    context = _parse_context(django_request)

    service_class = _service_client_class()
    if service_class is not None and isinstance(auth, service_class):
        if elevation is not None:
            raise ArcError("FORBIDDEN", "Elevation not permitted", 403)
        client_org = str(auth.organization_id)
        # the row's text, typed by whoever created the client (capitals, ``01``): the one
        # spelling its members' scopes carry, or its events name another org
        canonical = _canonical(client_org)
        if org_id is not None and org_id not in (client_org, canonical):
            # the header names the client's organization as the row spells it, or as its
            # own events and scope do (the canonical spelling: where the tenant columns read
            # the organization alike, else the row as sent); any other spelling (``007``, a
            # UUID without dashes) is refused as a strict resolver refuses it
            raise _org_required(org_id, "This API key is bound to another organization")
        return RequestScope(
            kind="service",
            organization_id=canonical,
            client_id=auth.client_id,
            scopes=tuple(str(s) for s in (auth.scopes or ())),
            context=context,
        )

    authenticated = bool(user is not None and getattr(user, "is_authenticated", False))
    # A service "user" (see django_arc.auth.ServiceUser) without its client is not a person.
    human = authenticated and getattr(user, "pk", None) is not None

    if elevation is not None:
        if not human or not _may_elevate(user):
            raise ArcError("FORBIDDEN", "Elevation not permitted", 403)
        return RequestScope(
            kind="elevated",
            user_id=user.pk,
            user_roles=UserRoles(user, known=_request_dict(django_request, _USER_ROLES_ATTR)),
            organization_id=_canonical(org_id),
            elevated_by=user.pk,
            context=context,
        )

    if not human:
        # Anonymous callers have no org: an org header alone grants nothing, and the
        # permission layer answers 401 (not 403) when something requires authentication.
        return RequestScope.public(context)

    if org_id is None:
        return RequestScope(
            kind="authenticated",
            user_id=user.pk,
            user_roles=UserRoles(user, known=_request_dict(django_request, _USER_ROLES_ATTR)),
            context=context,
        )

    roles = _membership(django_request, user, org_id)
    if roles is None:
        raise _org_required(org_id, "Not a member of this organization")
    return RequestScope(
        kind="member",
        user_id=user.pk,
        user_roles=UserRoles(user, known=_request_dict(django_request, _USER_ROLES_ATTR)),
        organization_id=_canonical(org_id),
        org_roles=tuple(roles),
        context=context,
    )


def _canonical(org_id: str | None) -> str | None:
    """The scope's organization id: the header's one spelling as the tenant columns read it
    (``"01"`` → ``"1"``), once the caller is admitted under the spelling it sent (the
    resolver judges the header as sent: a spelling it refuses stays refused)."""
    if org_id is None:
        return None
    from .organizations import canonical_organization_id

    return canonical_organization_id(org_id)


def _cache_key(user: Any, auth: Any) -> tuple[Any, ...]:
    auth_key = (type(auth).__name__, getattr(auth, "pk", id(auth))) if auth is not None else None
    user_key = getattr(user, "pk", None) if user is not None else None
    authenticated = bool(user is not None and getattr(user, "is_authenticated", False))
    return (user_key, authenticated, auth_key)


def _signal_elevation(request: Any, django_request: Any, scope: RequestScope) -> None:
    """Send ``scope_elevated`` once per request; a failing receiver fails the resolution.

    The audit receiver is fail-closed (an elevation that cannot be recorded must not
    proceed), so on error the flag is reset and nothing is cached: every later resolution of
    this request tries (and fails) again instead of silently reusing an unrecorded elevation.
    """
    if getattr(django_request, _ELEVATION_SENT_ATTR, False):
        return
    from .signals import scope_elevated

    setattr(django_request, _ELEVATION_SENT_ATTR, True)
    try:
        scope_elevated.send(sender=RequestScope, request=request, scope=scope)
    except BaseException:
        setattr(django_request, _ELEVATION_SENT_ATTR, False)
        raise


def resolve_scope(request: Any) -> RequestScope:
    """The scope of ``request`` (a Django ``HttpRequest`` or a DRF ``Request``).

    Raises :class:`~django_arc.exceptions.ArcError` (403 ``ORG_REQUIRED``, 403 ``FORBIDDEN``,
    400 ``VALIDATION_ERROR``) when the headers ask for something the caller cannot have.
    Results are cached per request and identity, so calling it again is free; the scope is
    also stored as ``request.arc_scope``. Elevated requests send ``signals.scope_elevated``
    exactly once per request, before the scope is cached or exposed.
    """
    django_request = _django_request(request)
    user, auth = _identity(request)
    cache: dict[tuple[Any, ...], RequestScope | ArcError] = _request_dict(
        django_request, _SCOPE_CACHE_ATTR
    )
    key = _cache_key(user, auth)
    cached = cache.get(key)
    if cached is None:
        try:
            cached = _build_scope(django_request, user, auth)
        except ArcError as exc:
            cache[key] = exc
            raise
        if cached.kind == "elevated":
            _signal_elevation(request, django_request, cached)
        cache[key] = cached
    if isinstance(cached, ArcError):
        raise ArcError(cached.code, cached.message, cached.status, cached.details)
    django_request.arc_scope = cached
    return cached


def get_scope(request: Any) -> RequestScope:
    """The scope for the request's current identity: cached if already resolved, else resolved.

    Use this (not ``request.arc_scope``) in code that runs after DRF authentication, because a
    DRF authenticator (service key, token) may have replaced the identity the middleware saw.
    """
    return resolve_scope(request)


def provisional_scope(request: Any) -> RequestScope | None:
    """What the middleware can know before the view is known (its ``__call__``).

    An anonymous Django user may still become a service client or a token user inside DRF,
    so the middleware does not judge org/elevation headers for them (it returns ``None``);
    the viewset's :func:`get_scope` does, with DRF's identity. A session's user is resolved
    here, errors surfacing right away, unless the request carries credentials of its own
    (an ``Authorization`` or ``X-Api-Key`` header): DRF may authenticate someone else; or
    unless judging it needs the view (:func:`view_scope`): an organization or elevation
    header (a membership asked, a refusal, an audited elevation) a view that does not take
    the session would never see judged, or an unsafe request the CSRF check refuses, which
    a ``csrf_exempt`` Django view still serves. Without those a session's scope costs no
    query and sends nothing, and every later middleware reads it.
    """
    django_request = _django_request(request)
    if not _session_judged(django_request):
        return None
    if _needs_the_view(django_request):
        setattr(django_request, _LEFT_FOR_THE_VIEW_ATTR, True)
        return None
    return resolve_scope(django_request)


def view_scope(request: Any, view: Any) -> RequestScope | None:
    """What the middleware can know once the URL resolved to ``view`` (its
    ``process_view``, before any view runs): a session request :func:`provisional_scope`
    left for the view is resolved, errors surfacing, when ``view`` takes the session and
    its CSRF check passes; else the view's own authentication decides (``None``).

    A DRF view takes the session when one of its ``authentication_classes`` (its
    ``as_view()``/``@action`` arguments first) is ``SessionAuthentication`` or a subclass
    of it, whose CSRF check is asked as DRF asks it (the first such class's
    ``enforce_csrf``: a project's override skipping it is honoured, a stricter one too,
    :func:`_session_csrf_refused`); a project's own Django view takes it
    always, and its CSRF check is ``CsrfViewMiddleware``'s for that view (``csrf_exempt``
    honoured). A view that does not take the session never sees the session's user, so
    nothing is judged (and no elevation audited) for that user: the view answers, 401 for a
    resource that requires a caller."""
    django_request = _django_request(request)
    if not getattr(django_request, _LEFT_FOR_THE_VIEW_ATTR, False):
        return None  # resolved already (provisional_scope), or the view's to decide
    setattr(django_request, _LEFT_FOR_THE_VIEW_ATTR, False)
    view_class = getattr(view, "cls", None)
    drf = isinstance(view_class, type) and issubclass(view_class, APIView)
    session_class = _session_class(view, view_class) if drf else None
    if drf and session_class is None:
        return None
    if django_request.method not in _SAFE_METHODS and (
        _session_csrf_refused(django_request, session_class, view, view_class)
        if drf
        else _csrf_refused(django_request, view)
    ):
        # an unsafe request riding on the session cookie without a valid CSRF token: it is
        # refused where the session is taken (DRF's ``SessionAuthentication``, Django's
        # ``CsrfViewMiddleware``), and nothing is judged for it here, so nothing is sent
        # for it either (``scope_elevated``: the audit's ``arc.scope.elevated`` event)
        return None
    return resolve_scope(django_request)


def _session_judged(django_request: Any) -> bool:
    """Whether the middleware judges this request's session user at all: an authenticated
    one, the request carrying no credentials of its own."""
    user = getattr(django_request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    meta = django_request.META
    # credentials of their own beside the session cookie (a service key, a token): DRF's
    # first authenticator to take one decides who calls, and may not be the session's
    # user, whose membership or elevation would be judged (and audited) for nothing
    return "HTTP_AUTHORIZATION" not in meta and _API_KEY_META not in meta


def _needs_the_view(django_request: Any) -> bool:
    """Whether judging the session's user depends on the view (see
    :func:`provisional_scope`)."""
    if (
        _header(django_request, arc_settings.ORG_HEADER) is not None
        or _header(django_request, arc_settings.ELEVATION_HEADER) is not None
    ):
        return True
    return django_request.method not in _SAFE_METHODS and _csrf_refused(django_request, None)


def _session_class(view: Any, view_class: type) -> type[SessionAuthentication] | None:
    """The class by which the DRF view ``view`` (of ``view_class``) authenticates the
    session: the first of its ``authentication_classes`` that is ``SessionAuthentication``
    or a subclass, ``None`` when it takes no session.

    A view whose own ``get_authenticators()`` chooses its authentication (per request, per
    action) may not take it whatever its ``authentication_classes`` say, and what it takes
    is known only once it runs: it is left to judge its caller (its :func:`get_scope`)."""
    if view_class.get_authenticators is not APIView.get_authenticators:
        return None
    initkwargs = getattr(view, "initkwargs", None) or {}
    classes = initkwargs.get("authentication_classes", view_class.authentication_classes)
    for cls in classes or ():
        if isinstance(cls, type) and issubclass(cls, SessionAuthentication):
            return cls
    return None


def _session_csrf_refused(
    django_request: Any,
    session_class: type[SessionAuthentication],
    view: Any = None,
    view_class: type | None = None,
) -> bool:
    """Whether ``session_class`` refuses ``django_request`` for CSRF, as DRF asks it: its
    ``enforce_csrf``. DRF's own is Django's check without a view (:func:`_csrf_refused`); a
    project's override (one that skips the check for an API its clients call without a
    token, or a stricter one) is asked itself, so the session's scope is judged for the
    requests that view accepts and for no other. It is handed what DRF hands it, a DRF
    ``Request`` (``request._request``, ``request.data`` with the view's parsers), one that
    reads the body through Django's request's own caches (:class:`_CsrfCheckRequest`), so
    the view's request still finds it. An override that raises anything but DRF's refusal
    is not known to pass: the request is left to the view, whose :func:`get_scope` judges
    it."""
    if session_class.enforce_csrf is SessionAuthentication.enforce_csrf:
        return _csrf_refused(django_request, None)
    try:
        initkwargs = getattr(view, "initkwargs", None) or {}
        parsers = initkwargs.get("parser_classes", getattr(view_class, "parser_classes", ()))
        drf_request = _CsrfCheckRequest(
            django_request, parsers=[parser() for parser in parsers or ()], authenticators=[]
        )
        session_class().enforce_csrf(drf_request)
    except Exception:  # noqa: BLE001 - DRF's PermissionDenied, or an override's own failure
        return True
    return False


class _CsrfCheckRequest(Request):
    """The DRF ``Request`` a session class's ``enforce_csrf`` is asked with in the
    middleware. DRF's would read the body from Django's request's stream, which the view's
    own ``Request`` then finds consumed; this one reads a form through Django's
    ``request.POST`` (what Django's CSRF check reads, kept on Django's request, where the
    view's request takes it from) and any other body through Django's ``request.body``
    (kept there too), and only when the override asks (``request.data``)."""

    @property
    def POST(self) -> Any:  # noqa: N802 - DRF's and Django's name
        return self._request.POST

    def _parse(self) -> tuple[Any, Any]:
        if is_form_media_type(self.content_type):
            return self._request.POST, self._request.FILES
        self._stream = io.BytesIO(self._request.body) if self._request.body else None
        return super()._parse()


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _csrf_refused(django_request: Any, view: Any) -> bool:
    """Whether Django's CSRF check refuses ``django_request`` for ``view`` (``None``: asked
    as DRF's ``SessionAuthentication`` asks it, its ``CSRFCheck``: the reason, no log, no
    answer)."""
    check = CSRFCheck(lambda request: None)
    check.process_request(django_request)
    try:
        return bool(check.process_view(django_request, view, (), {}))
    except (SuspiciousOperation, BadRequest, MultiPartParserError):
        # the form token read from a body Django refuses to read (past
        # DATA_UPLOAD_MAX_NUMBER_FIELDS/_MEMORY_SIZE, malformed): not known to pass, so
        # left to the view, which reads the body itself and answers it (the envelope's 413)
        return True


#: the header :class:`~django_arc.auth.ServiceKeyAuthentication` reads a key from
_API_KEY_META = "HTTP_X_API_KEY"
