"""Each ``P.*`` builder judged against each kind of caller, so that every branch of
``django_arc.permissions`` is asserted by some test: a flipped kind check (an elevated
caller no longer passing, an authenticated caller passing ``require_org_membership``, a
service scope no longer counting as a role) fails here. Plus the two HTTP paths where a
dropped check would let an anonymous caller in: ``require_auth`` (401, not 200) and
``require_owner`` on a nullable owner column (401, not the ownerless rows)."""

from types import SimpleNamespace
from unittest import mock

import pytest
from django.db.models import Q
from rest_framework.permissions import BasePermission
from rest_framework.test import APIClient

from django_arc import PermissionResult
from django_arc import permissions as P
from django_arc.scope import RequestScope
from tests.factories import AuthorFactory, OrganizationFactory
from tests.testapp.models import Note

SCOPES = {
    "public": RequestScope(kind="public"),
    "authenticated": RequestScope(kind="authenticated", user_id=7),
    "member_editor": RequestScope(
        kind="member", user_id=7, organization_id="1", org_roles=("editor",)
    ),
    "service": RequestScope(
        kind="service", organization_id="1", client_id="c", scopes=("products:write",)
    ),
    "elevated": RequestScope(kind="elevated", user_id=7, elevated_by=7),
}


def judge(permission, kind, obj=None):
    with mock.patch("django_arc.permissions._scope", return_value=SCOPES[kind]):
        return P.as_permission(permission)(None, None, "list", obj)


@pytest.mark.parametrize(
    "builder, granted",
    [
        (P.require_auth(), {"authenticated", "member_editor", "service", "elevated"}),
        (P.require_roles("editor"), {"member_editor", "elevated"}),
        # a service client's scopes count as roles (has_any_role)
        (P.require_roles("products:write"), {"service", "elevated"}),
        (P.require_org_membership(), {"member_editor", "service", "elevated"}),
        (P.require_org_role("editor"), {"member_editor", "elevated"}),
        (P.require_service_scope("products:write"), {"service", "elevated"}),
        (P.require_service_scope("other"), {"elevated"}),
        (P.deny_all(), set()),
        (P.allow_public(), set(SCOPES)),
    ],
    ids=[
        "require_auth",
        "require_roles_org_role",
        "require_roles_service_scope",
        "require_org_membership",
        "require_org_role",
        "require_service_scope",
        "require_service_scope_other",
        "deny_all",
        "allow_public",
    ],
)
def test_each_builder_grants_exactly_these_callers(builder, granted):
    answers = {kind: judge(builder, kind) for kind in SCOPES}
    assert {kind for kind, result in answers.items() if result.granted} == granted
    for kind in set(SCOPES) - granted:
        assert answers[kind].reason  # a refusal says why (the 403's message)


def test_require_owner_per_caller():
    owner = P.require_owner("owner")
    public = judge(owner, "public")
    assert not public.granted and public.reason == "Authentication required"
    elevated = judge(owner, "elevated")
    assert elevated.granted and elevated.filters is None  # every row
    assert judge(owner, "authenticated").filters == {"owner": 7}
    # with an object: its foreign key column, or a plain attribute compared as text
    assert judge(owner, "authenticated", SimpleNamespace(owner_id=7)).granted
    assert not judge(owner, "authenticated", SimpleNamespace(owner_id=8)).granted
    by_text = P.require_owner("created_by")
    assert judge(by_text, "authenticated", SimpleNamespace(created_by="7")).granted
    holder = SimpleNamespace(created_by=SimpleNamespace(pk=7))
    assert judge(by_text, "authenticated", holder).granted
    assert not judge(by_text, "authenticated", SimpleNamespace(created_by="8")).granted


def test_callables_base_class_and_when():
    assert not judge(lambda *a: False, "elevated").granted
    assert judge(lambda *a: 1, "public").granted
    assert not judge(P.Permission(), "elevated").granted  # the base class fails closed
    inner = P.deny_all()
    assert judge(P.when(lambda *a: False, inner), "authenticated").granted  # not applied
    assert not judge(P.when(lambda *a: True, inner), "authenticated").granted
    assert judge(P.when(lambda *a: True, P.allow_public()), "authenticated").granted


class ListOnly(BasePermission):
    """Grants the route, refuses every object: ``has_object_permission`` must be the one asked
    when an object is judged."""

    def has_permission(self, request, view):
        return True

    def has_object_permission(self, request, view, obj):
        return False


def test_a_drf_class_is_asked_has_object_permission_for_an_object():
    request = SimpleNamespace(parser_context={"view": None})
    permission = P.as_permission(ListOnly)
    assert permission(request, None, "list").granted
    assert not permission(request, None, "get", object()).granted


def test_combinators_keep_filters_and_reasons():
    owner = P.require_owner("owner")
    both = judge(P.all_of(P.require_auth(), owner), "authenticated")
    assert both.granted and both.filters == Q(owner=7)
    refused = judge(P.any_of(P.require_org_role("admin"), P.deny_all()), "authenticated")
    assert not refused.granted
    assert refused.reason == "Requires organization role: admin; Not permitted"
    assert isinstance(refused, PermissionResult)


@pytest.mark.django_db
def test_anonymous_callers_are_401_on_require_auth_and_require_owner_routes():
    """``GET /api/authors/<id>/`` is ``require_auth``; ``/api/archived-notes/`` is
    ``require_owner("owner")`` on a nullable owner: an anonymous caller (no user id) must be
    refused, not filtered by ``owner IS NULL`` into the ownerless rows."""
    author = AuthorFactory()
    Note.objects.create(organization=OrganizationFactory(), branch="1", owner=None, text="x")
    anonymous = APIClient()
    r = anonymous.get(f"/api/authors/{author.pk}/")
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
    r = anonymous.get("/api/archived-notes/")
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
