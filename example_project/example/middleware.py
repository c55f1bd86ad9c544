"""Demo-only convenience: a default organization for browser sessions.

django-arc reads the organization from the ``X-Organization-Id`` header, which API clients
send on every request; a browser cannot add headers to the pages it opens, so without help
the browsable API would answer every logged-in demo user with ``ORG_REQUIRED``. This
middleware fills the header in for session-authenticated requests that lack it, with the
organization the user belongs to (the lowest id when several). It grants nothing: the
value goes through the same ``MEMBERSHIP_RESOLVER`` check as a header a client would send,
and an explicit header always wins. It is part of the example, not of django-arc.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from django_arc.settings import arc_settings

SESSION_KEY = "demo_default_org"


class DefaultOrgForSessionMiddleware:
    """Place between ``AuthenticationMiddleware`` and ``ScopeMiddleware``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta_key = "HTTP_" + arc_settings.ORG_HEADER.upper().replace("-", "_")
        user = getattr(request, "user", None)
        # Only requests identified by the session cookie: API clients (basic auth, service
        # keys) are not logged in at this point and must name their organization.
        if meta_key not in request.META and user is not None and user.is_authenticated:
            org_id = request.session.get(SESSION_KEY)
            if org_id is None:
                org_id = self.default_org(user)
                if org_id is not None:
                    request.session[SESSION_KEY] = org_id
            if org_id is not None:
                request.META[meta_key] = str(org_id)
        return self.get_response(request)

    @staticmethod
    def default_org(user: object) -> int | None:
        from shop.models import Membership

        return (
            Membership.objects.filter(user_id=user.pk)
            .order_by("organization_id")
            .values_list("organization_id", flat=True)
            .first()
        )
