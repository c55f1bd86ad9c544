"""Request scope resolution: every kind, ORG_REQUIRED, elevation, context headers, caching.

Driven through a tiny DRF view (and ScopeMiddleware in front of it) rather than resources,
so these tests pin the identity layer on its own.
"""

from __future__ import annotations

import dataclasses

import pytest
from django.contrib.auth.models import Group
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from django_arc import signals
from django_arc.auth import ServiceKeyAuthentication
from django_arc.exceptions import ArcError, exception_handler
from django_arc.middleware import ScopeMiddleware
from django_arc.scope import (
    RequestScope,
    UserRoles,
    get_org_id,
    get_scope,
    get_service_scopes,
    has_org_access,
    is_elevated,
    is_member,
    is_platform_admin,
    is_service,
    resolve_scope,
)
from shop.models import Membership, Organization

pytestmark = pytest.mark.django_db

DEMO_RESOLVER = "shop.membership.resolve_membership"


def scope_json(scope: RequestScope) -> dict:
    return {
        "kind": scope.kind,
        "user_id": scope.user_id,
        "organization_id": scope.organization_id,
        "org_roles": list(scope.org_roles),
        "client_id": scope.client_id,
        "scopes": list(scope.scopes),
        "elevated_by": scope.elevated_by,
        "context": dict(scope.context),
    }


class WhoAmI(APIView):
    authentication_classes = [ServiceKeyAuthentication, SessionAuthentication]
    permission_classes: list = []

    def get_exception_handler(self):
        return exception_handler

    def get(self, request):
        return Response(scope_json(get_scope(request)))


who_am_i = WhoAmI.as_view()


@pytest.fixture
def resolver_settings(settings):
    settings.ARC = {"MEMBERSHIP_RESOLVER": DEMO_RESOLVER}
    return settings


@pytest.fixture
def orgs(db):
    return Organization.objects.create(name="A", slug="a"), Organization.objects.create(
        name="B", slug="b"
    )


@pytest.fixture
def alice(django_user_model, orgs):
    user = django_user_model.objects.create_user("alice", password="pw")
    Membership.objects.create(user=user, organization=orgs[0], role="editor")
    Membership.objects.create(user=user, organization=orgs[0], role="admin")
    return user


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw")


def call(user=None, **headers):
    request = APIRequestFactory().get("/whoami/", **headers)
    if user is not None:
        force_authenticate(request, user=user)
    return who_am_i(request)


def through_middleware(user, view=who_am_i, **headers):
    """Full path, as Django's handler runs it: ScopeMiddleware sees the session user (its
    ``__call__``, then its ``process_view`` with the view), then the DRF view resolves
    again."""
    from django.contrib.auth.models import AnonymousUser

    request = RequestFactory().get("/whoami/", **headers)
    request.user = user if user is not None else AnonymousUser()
    request._dont_enforce_csrf_checks = True

    def get_response(request):
        return middleware.process_view(request, view, (), {}) or view(request)

    middleware = ScopeMiddleware(get_response)
    response = middleware(request)
    return request, response


# ---------------------------------------------------------------------------- kinds


def test_anonymous_is_public(resolver_settings):
    response = call()
    assert response.status_code == 200
    assert response.data["kind"] == "public"
    assert response.data["organization_id"] is None


def test_anonymous_org_header_grants_nothing(resolver_settings, orgs):
    response = call(HTTP_X_ORGANIZATION_ID=str(orgs[0].pk))
    assert response.status_code == 200
    assert response.data["kind"] == "public"
    assert response.data["organization_id"] is None


def test_authenticated_without_org(resolver_settings, alice):
    response = call(alice)
    assert response.status_code == 200
    assert response.data["kind"] == "authenticated"
    assert response.data["user_id"] == alice.pk
    assert response.data["organization_id"] is None
    assert response.data["org_roles"] == []


def test_member_with_org_roles(resolver_settings, alice, orgs):
    response = call(alice, HTTP_X_ORGANIZATION_ID=str(orgs[0].pk))
    assert response.status_code == 200
    assert response.data["kind"] == "member"
    assert response.data["organization_id"] == str(orgs[0].pk)
    assert response.data["org_roles"] == ["admin", "editor"]


def test_non_member_gets_org_required(resolver_settings, alice, orgs):
    response = call(alice, HTTP_X_ORGANIZATION_ID=str(orgs[1].pk))
    assert response.status_code == 403
    assert response.data["code"] == "ORG_REQUIRED"
    assert response.data["details"] == {"organization": str(orgs[1].pk)}
    assert response.data["success"] is False
    assert response.data["requestId"]


@pytest.mark.parametrize("value", ["abc", "007", "-1", "1.5", "9" * 40, "x" * 500, "١"])
def test_garbage_org_header_is_403_not_500(resolver_settings, alice, orgs, value):
    response = call(alice, HTTP_X_ORGANIZATION_ID=value)
    assert response.status_code == 403
    assert response.data["code"] == "ORG_REQUIRED"


def test_no_resolver_means_nobody_is_a_member(settings, alice, orgs):
    settings.ARC = {}
    response = call(alice, HTTP_X_ORGANIZATION_ID=str(orgs[0].pk))
    assert response.status_code == 403
    assert response.data["code"] == "ORG_REQUIRED"


def test_resolver_choking_on_input_is_403(settings, alice):
    def resolver(user, org_id):
        return int(org_id) and ["admin"]  # ValueError for non-numeric ids

    settings.ARC = {"MEMBERSHIP_RESOLVER": resolver}
    assert call(alice, HTTP_X_ORGANIZATION_ID="7").data["org_roles"] == ["admin"]
    response = call(alice, HTTP_X_ORGANIZATION_ID="seven")
    assert response.status_code == 403
    assert response.data["code"] == "ORG_REQUIRED"


def test_empty_role_list_is_a_member_without_roles(settings, alice):
    settings.ARC = {"MEMBERSHIP_RESOLVER": lambda user, org_id: []}
    response = call(alice, HTTP_X_ORGANIZATION_ID="7")
    assert response.data["kind"] == "member"
    assert response.data["org_roles"] == []


# ---------------------------------------------------------------------------- elevation


@pytest.fixture
def elevations():
    received = []

    def receiver(sender, request, scope, **kwargs):
        received.append((request, scope))

    signals.scope_elevated.connect(receiver)
    yield received
    signals.scope_elevated.disconnect(receiver)


def test_superuser_elevates_without_org(resolver_settings, root, elevations):
    response = call(root, HTTP_X_ARC_SCOPE="platform")
    assert response.status_code == 200
    assert response.data["kind"] == "elevated"
    assert response.data["elevated_by"] == root.pk
    assert response.data["organization_id"] is None
    assert len(elevations) == 1
    assert elevations[0][1].kind == "elevated"


def test_elevation_with_org_header_needs_no_membership(resolver_settings, root, orgs, elevations):
    response = call(root, HTTP_X_ARC_SCOPE="platform", HTTP_X_ORGANIZATION_ID=str(orgs[1].pk))
    assert response.status_code == 200
    assert response.data["kind"] == "elevated"
    assert response.data["organization_id"] == str(orgs[1].pk)
    assert len(elevations) == 1


def test_elevation_signal_sent_once_through_middleware_and_view(
    resolver_settings, root, elevations
):
    request, response = through_middleware(root, HTTP_X_ARC_SCOPE="platform")
    assert response.status_code == 200
    assert response.data["kind"] == "elevated"
    # resolve again, as a later permission check would: still one signal
    resolve_scope(request)
    assert len(elevations) == 1
    assert elevations[0][0].path == "/whoami/"


def test_superuser_without_header_is_not_elevated(resolver_settings, root, elevations):
    assert call(root).data["kind"] == "authenticated"
    assert elevations == []


def test_non_admin_elevation_is_forbidden(resolver_settings, alice, elevations):
    response = call(alice, HTTP_X_ARC_SCOPE="platform")
    assert response.status_code == 403
    assert response.data["code"] == "FORBIDDEN"
    assert response.data["error"] == "Elevation not permitted"
    assert elevations == []


def test_anonymous_elevation_is_forbidden(resolver_settings, elevations):
    response = call(HTTP_X_ARC_SCOPE="platform")
    assert response.status_code == 403
    assert response.data["code"] == "FORBIDDEN"
    assert elevations == []


def test_staff_is_not_platform_admin(resolver_settings, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    assert call(staff, HTTP_X_ARC_SCOPE="platform").status_code == 403


def test_inactive_superuser_cannot_elevate(root):
    root.is_active = False
    assert is_platform_admin(root) is False


@pytest.mark.parametrize("value", ["admin", "platform2", "PLATFORM;x", "*"])
def test_unknown_elevation_value_is_400(resolver_settings, root, value):
    response = call(root, HTTP_X_ARC_SCOPE=value)
    assert response.status_code == 400
    assert response.data["code"] == "VALIDATION_ERROR"
    assert "X-Arc-Scope" in response.data["details"]


def test_custom_elevation_check(settings, alice, elevations):
    settings.ARC = {"ELEVATION_CHECK": lambda user: user.username == "alice"}
    response = call(alice, HTTP_X_ARC_SCOPE="platform")
    assert response.data["kind"] == "elevated"


def test_custom_headers(settings, alice, orgs):
    settings.ARC = {
        "MEMBERSHIP_RESOLVER": DEMO_RESOLVER,
        "ORG_HEADER": "X-Tenant",
        "ELEVATION_HEADER": "X-Sudo",
    }
    assert call(alice, HTTP_X_TENANT=str(orgs[0].pk)).data["kind"] == "member"
    # the default header names mean nothing now
    assert call(alice, HTTP_X_ORGANIZATION_ID=str(orgs[1].pk)).data["kind"] == "authenticated"
    assert call(alice, HTTP_X_SUDO="platform").status_code == 403


# ---------------------------------------------------------------------------- middleware


def test_middleware_sets_arc_scope_for_plain_django_views(resolver_settings, alice, orgs):
    seen = {}

    def view(request):
        seen["scope"] = request.arc_scope
        return HttpResponse("ok")

    request, response = through_middleware(alice, view=view, HTTP_X_ORGANIZATION_ID=str(orgs[0].pk))
    assert response.status_code == 200
    assert seen["scope"].kind == "member"
    assert seen["scope"].org_roles == ("admin", "editor")


def test_middleware_rejects_non_member_with_error_envelope(resolver_settings, alice, orgs):
    called = []
    request, response = through_middleware(
        alice,
        view=lambda r: called.append(r) or HttpResponse("view ran"),
        HTTP_X_ORGANIZATION_ID=str(orgs[1].pk),
        HTTP_X_REQUEST_ID="req-123",
    )
    import json

    body = json.loads(response.content)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response["X-Request-Id"] == "req-123"
    assert body == {
        "success": False,
        "error": "Not a member of this organization",
        "code": "ORG_REQUIRED",
        "details": {"organization": str(orgs[1].pk)},
        "requestId": "req-123",
    }
    assert called == []


def test_middleware_defers_anonymous_to_drf_authentication(resolver_settings):
    """An anonymous Django user may be a service/token caller: the view judges headers."""
    seen = {}

    def view(request):
        seen["scope"] = request.arc_scope
        return HttpResponse("ok")

    _, response = through_middleware(None, view=view, HTTP_X_ARC_SCOPE="platform")
    assert response.status_code == 200
    assert seen["scope"].kind == "public"
    _, response = through_middleware(None, HTTP_X_ARC_SCOPE="platform")
    assert response.status_code == 403
    assert response.data["code"] == "FORBIDDEN"


def test_resolver_called_once_per_request(settings, alice, orgs):
    calls = []

    def resolver(user, org_id):
        calls.append((user.pk, org_id))
        return ["viewer"]

    settings.ARC = {"MEMBERSHIP_RESOLVER": resolver}
    request, response = through_middleware(alice, HTTP_X_ORGANIZATION_ID="42")
    assert response.status_code == 200
    assert response.data["kind"] == "member"
    get_scope(request)
    resolve_scope(request)
    assert calls == [(alice.pk, "42")]
    # a new request asks again
    through_middleware(alice, HTTP_X_ORGANIZATION_ID="42")
    assert len(calls) == 2


def test_non_member_resolver_called_once_even_when_resolved_twice(settings, alice):
    calls = []
    settings.ARC = {"MEMBERSHIP_RESOLVER": lambda u, o: calls.append(o)}
    request = RequestFactory().get("/", HTTP_X_ORGANIZATION_ID="9")
    request.user = alice
    for _ in range(3):
        with pytest.raises(ArcError) as err:
            resolve_scope(request)
        assert err.value.code == "ORG_REQUIRED"
    assert calls == ["9"]


def test_member_request_costs_one_query_end_to_end(
    resolver_settings, alice, orgs, django_assert_num_queries
):
    alice = type(alice).objects.get(pk=alice.pk)
    with django_assert_num_queries(1):
        _, response = through_middleware(alice, HTTP_X_ORGANIZATION_ID=str(orgs[0].pk))
    assert response.data["kind"] == "member"


# ---------------------------------------------------------------------------- context


def test_context_headers_become_read_only_context(resolver_settings, alice, orgs):
    request = RequestFactory().get(
        "/",
        HTTP_X_ORGANIZATION_ID=str(orgs[0].pk),
        HTTP_X_ARC_CONTEXT_BRANCH_ID=" 3 ",
        HTTP_X_ARC_CONTEXT_REGION="eu",
        HTTP_X_ARC_CONTEXT_EMPTY="",
    )
    request.user = alice
    scope = resolve_scope(request)
    assert dict(scope.context) == {"branch_id": "3", "region": "eu"}
    assert scope.context["branch_id"] == "3"
    with pytest.raises(TypeError):
        scope.context["branch_id"] = "4"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        scope.organization_id = "2"  # type: ignore[misc]


def test_only_x_arc_context_headers_become_context(resolver_settings, alice, orgs):
    """Other ``X-Arc-*`` headers (``X-Arc-Other``, ``X-Arc-Contexts-Branch-Id``, one whose
    name outgrows the prefix) are no context: the scan keys on the whole
    ``X-Arc-Context-`` prefix, not on ``X-Arc-``."""
    request = RequestFactory().get(
        "/",
        HTTP_X_ORGANIZATION_ID=str(orgs[0].pk),
        HTTP_X_ARC_OTHER="1",
        HTTP_X_ARC_OTHER_HEADER_BRANCH_ID="2",
        HTTP_X_ARC_CONTEXTS_BRANCH_ID="4",
        HTTP_X_ARC_CONTEXT_REGION="eu",
    )
    request.user = alice
    assert dict(resolve_scope(request).context) == {"region": "eu"}


def test_oversized_context_header_is_400(resolver_settings, alice):
    response = call(alice, HTTP_X_ARC_CONTEXT_BRANCH_ID="9" * 200)
    assert response.status_code == 400
    assert response.data["code"] == "VALIDATION_ERROR"


def test_too_many_context_headers_is_400(resolver_settings, alice):
    headers = {f"HTTP_X_ARC_CONTEXT_K{i}": "v" for i in range(20)}
    response = call(alice, **headers)
    assert response.status_code == 400


# ---------------------------------------------------------------------------- user roles


def test_user_roles_cost_no_query_until_read(
    resolver_settings, alice, orgs, django_assert_num_queries
):
    group = Group.objects.create(name="support")
    alice.groups.add(group)
    alice = type(alice).objects.get(pk=alice.pk)
    request = RequestFactory().get("/")
    request.user = alice
    with django_assert_num_queries(0):
        scope = resolve_scope(request)
    assert isinstance(scope.user_roles, UserRoles)
    assert scope.user_roles.loaded is False
    with django_assert_num_queries(1):
        assert "support" in scope.user_roles
        assert list(scope.user_roles) == ["support"]
        assert scope.user_roles == ("support",)


def test_user_roles_from_arc_roles_attribute(resolver_settings, alice, django_assert_num_queries):
    alice.arc_roles = ["auditor"]
    request = RequestFactory().get("/")
    request.user = alice
    with django_assert_num_queries(0):
        assert tuple(resolve_scope(request).user_roles) == ("auditor",)


def test_scope_is_hashable_and_comparable(resolver_settings, alice, orgs):
    request = RequestFactory().get("/", HTTP_X_ORGANIZATION_ID=str(orgs[0].pk))
    request.user = alice
    scope = resolve_scope(request)
    assert hash(scope) == hash(dataclasses.replace(scope))


# ---------------------------------------------------------------------------- helpers


def test_helpers():
    member = RequestScope(kind="member", user_id=1, organization_id="5", org_roles=("admin",))
    service = RequestScope(kind="service", organization_id="5", client_id="svc", scopes=("a",))
    elevated_all = RequestScope(kind="elevated", user_id=2, elevated_by=2)
    elevated_one = RequestScope(kind="elevated", user_id=2, elevated_by=2, organization_id="6")
    public = RequestScope.public()
    authed = RequestScope(kind="authenticated", user_id=1)

    assert is_member(member) and not is_member(service) and not is_member(elevated_all)
    assert is_service(service) and not is_service(member)
    assert is_elevated(elevated_all) and not is_elevated(member)
    assert get_org_id(member) == "5" and get_org_id(public) is None
    assert get_service_scopes(service) == ("a",) and get_service_scopes(member) == ()

    assert has_org_access(member) and has_org_access(member, 5) and not has_org_access(member, 6)
    assert has_org_access(service, "5") and not has_org_access(service, "6")
    assert has_org_access(elevated_all, 99)
    assert has_org_access(elevated_one, 6) and not has_org_access(elevated_one, 5)
    assert not has_org_access(public) and not has_org_access(authed)
    assert public.is_authenticated is False and authed.is_authenticated is True


def test_failing_elevation_receiver_fails_closed(resolver_settings, root):
    """An elevation that cannot be audited is not granted, not even on a second resolution."""

    def broken(sender, **kwargs):
        raise RuntimeError("outbox down")

    signals.scope_elevated.connect(broken)
    try:
        request = RequestFactory().get("/", HTTP_X_ARC_SCOPE="platform")
        request.user = root
        for _ in range(2):
            with pytest.raises(RuntimeError):
                resolve_scope(request)
        assert getattr(request, "arc_scope", None) is None
    finally:
        signals.scope_elevated.disconnect(broken)
