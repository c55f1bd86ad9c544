"""DRF authentication for service clients: ``Authorization: Bearer arc_…`` or ``X-Api-Key: arc_…``.

On success ``request.auth`` is the :class:`~django_arc.clients.ServiceClient` and
``request.user`` a :class:`ServiceUser`: authenticated (so DRF's ``IsAuthenticated`` and the
401-vs-403 rule treat the call as authenticated) but with no primary key, no staff/superuser
flag, no groups and no permissions, so nothing that trusts a real user row (admin, object
ownership, elevation) ever trusts a key. Use ``request.arc_scope`` / ``request.auth`` to learn
which client called.

A ``Bearer`` token that does not look like an arc key (no ``arc_`` prefix, e.g. a JWT) is not
this class's: an ``X-Api-Key`` beside it is read, and without one the token is left for the next
authentication class. A malformed, unknown or inactive arc key is a 401, and so are two
different arc keys in one request (a ``Bearer`` one and an ``X-Api-Key``): no key is chosen
for the caller. A blank ``X-Api-Key`` is a malformed key, 401 whatever ``Authorization`` holds.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.views.decorators.debug import sensitive_variables
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .clients import KEY_PREFIX, ServiceClient

API_KEY_META = "HTTP_X_API_KEY"
_INVALID = "Invalid or inactive API key."


class ServiceUser(AnonymousUser):
    """``request.user`` for a service call: authenticated, but never a person.

    Subclasses ``AnonymousUser`` to inherit its "no groups, no permissions, not staff" answers;
    only ``is_authenticated`` differs. ``pk``/``id`` stay ``None``.
    """

    def __init__(self, client: ServiceClient) -> None:
        self.client = client
        self.username = f"service:{client.client_id}"

    def __str__(self) -> str:
        return self.username

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServiceUser) and other.client.pk == self.client.pk

    def __hash__(self) -> int:
        return hash(("service", self.client.pk))

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True


class ServiceKeyAuthentication(BaseAuthentication):
    """Authenticates :class:`~django_arc.clients.ServiceClient` API keys (see module docs)."""

    keyword = "Bearer"

    @sensitive_variables()
    def get_raw_key(self, request: Any) -> str | None:
        """The presented key, ``None`` when this request carries no arc key at all.

        A ``Bearer`` token that is no arc key (a JWT, another scheme's token, ``Bearer``
        alone) hides nothing: the ``X-Api-Key`` beside it is read, as it is beside any other
        ``Authorization`` scheme (HTTP Basic). Two different arc keys are refused, not
        chosen between: which one the caller meant is not for arc to guess. A blank
        ``X-Api-Key`` is a key presented and malformed, refused alone and beside any
        ``Bearer`` (an arc key's too: it is not that key)."""
        bearer = self._bearer_key(request)
        header = request.META.get(API_KEY_META)
        header = None if header is None else str(header).strip()
        if header is not None and (not header or (bearer is not None and header != bearer)):
            raise exceptions.AuthenticationFailed(_INVALID)
        return bearer if bearer is not None else header

    @sensitive_variables()
    def _bearer_key(self, request: Any) -> str | None:
        """The arc key of an ``Authorization: Bearer arc_…`` header, else ``None``."""
        parts = get_authorization_header(request).split()
        if len(parts) < 2 or parts[0].lower() != self.keyword.lower().encode():
            return None  # another scheme, or "Bearer" alone: not ours to judge
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            return None
        if not token.startswith(KEY_PREFIX):
            return None  # someone else's bearer token (JWT, OAuth...)
        if len(parts) > 2:
            raise exceptions.AuthenticationFailed(_INVALID)
        return token

    @sensitive_variables()
    def authenticate(self, request: Any) -> tuple[ServiceUser, ServiceClient] | None:
        raw_key = self.get_raw_key(request)
        if raw_key is None:
            return None
        client = ServiceClient.objects.authenticate(raw_key)
        if client is None:
            raise exceptions.AuthenticationFailed(_INVALID)
        client.touch()
        return ServiceUser(client), client

    def authenticate_header(self, request: Any) -> str:
        # Returning a challenge makes DRF answer 401 (not 403) to unauthenticated callers.
        return f'{self.keyword} realm="api"'
