"""Service clients: machine callers that authenticate with an API key bound to one organization.

Keys are ``"arc_"`` + 43 characters from ``secrets.token_urlsafe(32)`` (256 random bits). Only
a SHA-256 digest is stored. A slow password hash (PBKDF2, argon2) exists to make guessing a
*low-entropy* secret expensive; a 256-bit random key cannot be guessed either way, and a slow
hash would cost tens of milliseconds on every API call (and hand attackers a cheap CPU-DoS).
No pepper from ``SECRET_KEY`` either: rotating ``SECRET_KEY`` must not revoke every key.

The first 12 characters (``arc_`` + 8 random ones) are kept in clear as ``key_prefix`` so an
operator can tell keys apart, and so authentication can find the candidate row with an index
lookup before comparing digests in constant time.

``organization_id`` is a string, not a foreign key: the organization model belongs to the
project (django-arc does not know it), and scopes compare org ids as strings anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import models
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

KEY_PREFIX = "arc_"
#: How many leading characters of a key are stored in clear for identification and lookup.
PREFIX_LENGTH = len(KEY_PREFIX) + 8
#: ``last_used_at`` is written at most this often per client (no write per request).
LAST_USED_RESOLUTION_SECONDS = 60


def generate_key() -> str:
    """A new raw API key (shown to the operator once, never stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(raw_key: str) -> str:
    """Hex SHA-256 of a key; see the module docstring for why a fast hash is right here."""
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def key_prefix(raw_key: str) -> str:
    return raw_key[:PREFIX_LENGTH]


#: the characters a key is made of: the prefix, then ``secrets.token_urlsafe``'s alphabet
_KEY_SHAPE = re.compile(rf"{re.escape(KEY_PREFIX)}[A-Za-z0-9_-]+")


def looks_like_key(value: str) -> bool:
    """Cheap shape check, so a foreign Bearer token (a JWT...) is left to other authenticators,
    and a value no key can be (a NUL byte, which PostgreSQL refuses in a query's text with a
    ``DataError``, a non-ASCII character) is refused without a query."""
    return PREFIX_LENGTH <= len(value) <= 256 and _KEY_SHAPE.fullmatch(value) is not None


def generate_client_id() -> str:
    return "svc_" + secrets.token_hex(8)


class ServiceClientManager(models.Manager["ServiceClient"]):
    @sensitive_variables()
    def create_with_key(
        self,
        *,
        name: str,
        organization_id: Any,
        scopes: Iterable[str] = (),
        active: bool = True,
        **extra: Any,
    ) -> tuple[ServiceClient, str]:
        """Create a client and return ``(client, raw_key)``; the raw key exists nowhere else.

        ``ValueError`` when ``name`` or ``organization_id`` (as text) is longer than its
        column, on every database and before anything is written: SQLite would store it,
        PostgreSQL refuse it and abort the caller's transaction."""
        client = self.model(
            name=name,
            organization_id=str(organization_id),
            scopes=[str(s) for s in scopes],
            active=active,
            **extra,
        )
        for field in ("name", "organization_id"):
            value, limit = getattr(client, field), self.model._meta.get_field(field).max_length
            if len(value) > limit:
                raise ValueError(f"{field} is {len(value)} characters; at most {limit}")
        raw_key = client.set_new_key()
        client.save(force_insert=True)
        return client, raw_key

    @sensitive_variables()
    def authenticate(self, raw_key: str) -> ServiceClient | None:
        """The active client owning ``raw_key``, else ``None``.

        Looks up candidates by the clear prefix, then compares SHA-256 digests with
        ``hmac.compare_digest`` so response time does not reveal how much of a digest matched.
        Unknown and inactive keys are indistinguishable to the caller.
        """
        if not looks_like_key(raw_key):
            return None
        digest = hash_key(raw_key)
        match = None
        for candidate in self.filter(key_prefix=key_prefix(raw_key)):
            if hmac.compare_digest(candidate.key_hash, digest):
                match = candidate
        if match is None or not match.active:
            return None
        return match


class ServiceClient(models.Model):
    """A machine caller: ``request.auth`` is this row, ``request.arc_scope.kind == "service"``."""

    name = models.CharField(max_length=100)
    client_id = models.CharField(
        max_length=40, unique=True, default=generate_client_id, editable=False
    )
    organization_id = models.CharField(
        max_length=128,
        db_index=True,
        help_text="Primary key (as text) of the organization this client acts for.",
    )
    scopes = models.JSONField(
        default=list, blank=True, help_text='List of scope names, e.g. ["orders:read", "sync"].'
    )
    key_prefix = models.CharField(max_length=PREFIX_LENGTH, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ServiceClientManager()

    class Meta:
        app_label = "django_arc"
        db_table = "django_arc_service_client"
        verbose_name = "service client"
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    def set_new_key(self) -> str:
        """Give the client a fresh key (rotation); returns the raw key, which is not kept."""
        raw_key = generate_key()
        self.key_prefix = key_prefix(raw_key)
        self.key_hash = hash_key(raw_key)
        return raw_key

    def touch(self, now: Any = None) -> bool:
        """Record use, at most once per ``LAST_USED_RESOLUTION_SECONDS``; True if written.

        A conditional ``UPDATE`` (not ``save()``) so concurrent requests and admin edits never
        overwrite each other's columns, and only one of many parallel requests writes.
        """
        now = now or timezone.now()
        cutoff = now - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS)
        if self.last_used_at is not None and self.last_used_at > cutoff:
            return False
        stale = models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lte=cutoff)
        written = type(self)._default_manager.filter(stale, pk=self.pk).update(last_used_at=now)
        if written:
            self.last_used_at = now
        return bool(written)
