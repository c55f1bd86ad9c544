"""The access benchmark's ``MEMBERSHIP_RESOLVER``: roles from the ``Membership`` table.

One indexed query per call; django-arc calls it at most once per request and (user, org)
and caches the answer on the request, so a member's request pays exactly one lookup.
Malformed ids are "not a member" without a query, as in the demo shop's resolver.
"""

from __future__ import annotations

from typing import Any

from django_arc.membership import cached_resolver

from .models import Membership

_MAX_PK = 2**63 - 1


def resolve_membership(user: Any, org_id: str) -> list[str] | None:
    """Roles of ``user`` in organization ``org_id``, or ``None`` when not a member."""
    if user is None or getattr(user, "pk", None) is None:
        return None
    text = str(org_id).strip()
    if not text.isascii() or not text.isdigit():
        return None
    pk = int(text)
    if pk < 1 or pk > _MAX_PK or str(pk) != text:
        return None
    roles = list(
        Membership.objects.filter(user_id=user.pk, organization_id=pk).values_list(
            "role", flat=True
        )
    )
    return roles or None


#: How long ``resolve_membership_cached`` trusts a cached answer.
CACHE_SECONDS = 60

#: ``resolve_membership`` behind Django's cache (LocMem here, per process) with
#: ``django_arc.membership.cached_resolver``: what a project does when one membership query
#: per request is too much. The access benchmark measures it next to the uncached resolver.
resolve_membership_cached = cached_resolver(
    resolve_membership, ttl=CACHE_SECONDS, prefix="bench:membership"
)
