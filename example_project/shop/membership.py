"""The demo shop's ``MEMBERSHIP_RESOLVER``: org roles of a user from the ``Membership`` table.

``ARC = {"MEMBERSHIP_RESOLVER": "shop.membership.resolve_membership"}``. One query per
(user, org), kept in Django's cache for a minute by ``django_arc.membership.cached_resolver``;
saving or deleting a ``Membership`` forgets the cached answer when that change commits.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_init, post_save
from django.dispatch import receiver

from django_arc.membership import cached_resolver

from .models import Membership

# Organization uses a BigAutoField primary key.
_MAX_PK = 2**63 - 1


def lookup_roles(user: Any, org_id: str) -> list[str] | None:
    """Roles of ``user`` in organization ``org_id``; ``None`` when not a member.

    A header that is not a valid primary key ("abc", "-1", 30 digits) names no organization,
    so it is answered "not a member" without touching the database; so is a non-canonical
    spelling such as "007".
    """
    if user is None or not getattr(user, "is_authenticated", False) or user.pk is None:
        return None
    text = str(org_id).strip()
    if not text.isascii() or not text.isdigit():
        return None
    pk = int(text)
    if pk < 1 or pk > _MAX_PK or str(pk) != text:
        # "007" would be org 7 to the database but a different string to every scope
        # comparison; only the canonical spelling counts.
        return None
    roles = list(
        Membership.objects.filter(user_id=user.pk, organization_id=pk)
        .order_by("role")
        .values_list("role", flat=True)
    )
    return roles or None


resolve_membership = cached_resolver(lookup_roles, ttl=60)


@receiver(post_init, sender=Membership, dispatch_uid="shop-membership-loaded")
def remember_loaded_membership(sender: Any, instance: Membership, **kwargs: Any) -> None:
    """The (user, organization) a membership was loaded with: a save that moves it to
    another user or organization must forget the old pair's answer too. Read from the
    instance's ``__dict__``: a deferred field must not cost a query per instance."""
    instance._cached_pair = (
        instance.__dict__.get("user_id"),
        instance.__dict__.get("organization_id"),
    )


@receiver([post_save, post_delete], sender=Membership, dispatch_uid="shop-membership-cache")
def forget_cached_membership(sender: Any, instance: Membership, using: str, **kwargs: Any) -> None:
    """Forget the cached answers once the change commits (at once outside a transaction):
    the membership's (user, organization), and the pair it was loaded with when a save
    moved it (an admin editing its user or organization; that pair's member lost the role).

    Not before the commit: a request resolving between the save and the commit still reads
    the old membership from the database and caches it again, and a revoked member would
    keep access for the whole ``ttl``. A change rolled back forgets nothing, and the pair
    remembered is replaced only when the change commits: until then the database still
    holds the old one (a move that rolled back, then another that committed, must forget
    the member the database had, not the one the failed move named)."""
    current = (instance.user_id, instance.organization_id)
    pairs = {current}
    loaded = getattr(instance, "_cached_pair", (None, None))
    if None not in loaded:
        pairs.add(loaded)

    def forget() -> None:
        instance._cached_pair = current
        for user_id, org_id in pairs:
            resolve_membership.invalidate(user_id, org_id)

    transaction.on_commit(forget, using=using)
