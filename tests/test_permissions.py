"""Permission builders through HTTP: require_owner filters, combinators, custom callables,
DRF permission classes, deny_all, when(), and MultiTenant with a context dimension."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.permissions import BasePermission
from rest_framework.test import APIClient

from django_arc import PermissionResult, Resource, ResourceSite
from django_arc import permissions as P
from django_arc.outbox import OutboxEvent
from django_arc.sites import _all_sites
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.helpers import site_mounted
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db


def as_user(user, **headers):
    client = APIClient()
    client.force_authenticate(user)
    client.credentials(**headers)
    return client


@pytest.fixture
def notes():
    org = OrganizationFactory()
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    return {
        "org": org,
        "alice": alice,
        "bob": bob,
        "a1": Note.objects.create(organization=org, branch="1", owner=alice, text="a1"),
        "a2": Note.objects.create(organization=org, branch="2", owner=alice, text="a2"),
        "b1": Note.objects.create(organization=org, branch="1", owner=bob, text="b1"),
    }


def test_require_owner_filters_lists_and_lookups(notes):
    alice = as_user(notes["alice"])
    assert {d["text"] for d in alice.get("/api/owned-notes/").json()["docs"]} == {"a1", "a2"}
    assert alice.get(f"/api/owned-notes/{notes['a1'].pk}/").status_code == 200
    r = alice.get(f"/api/owned-notes/{notes['b1'].pk}/")
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    r = alice.patch(f"/api/owned-notes/{notes['b1'].pk}/", {"text": "x"}, format="json")
    assert r.status_code == 404
    assert Note.objects.get(pk=notes["b1"].pk).text == "b1"


def test_all_of_with_custom_callable_reason(notes):
    alice = as_user(notes["alice"], HTTP_X_DAY="friday")
    r = alice.patch(f"/api/owned-notes/{notes['a1'].pk}/", {"text": "x"}, format="json")
    assert r.status_code == 403
    assert r.json()["error"] == "Closed on Fridays"
    r = as_user(notes["alice"]).patch(
        f"/api/owned-notes/{notes['a1'].pk}/", {"text": "x"}, format="json"
    )
    assert r.status_code == 200
    assert Note.objects.get(pk=notes["a1"].pk).text == "x"


def test_any_of_unfiltered_grant_wins(notes):
    auditor = UserFactory(username="carol")
    auditor.groups.add(Group.objects.create(name="auditor"))
    client = as_user(auditor)
    # get: any_of(require_roles("auditor"), require_owner) → the auditor sees any row
    assert client.get(f"/api/owned-notes/{notes['b1'].pk}/").status_code == 200
    # bob (no role) only his own
    bob = as_user(notes["bob"])
    assert bob.get(f"/api/owned-notes/{notes['a1'].pk}/").status_code == 404
    assert bob.get(f"/api/owned-notes/{notes['b1'].pk}/").status_code == 200


def test_require_roles_uses_user_roles(notes):
    assert as_user(notes["bob"]).delete(f"/api/owned-notes/{notes['b1'].pk}/").status_code == 403
    auditor = UserFactory(username="dave")
    auditor.groups.add(Group.objects.create(name="auditor"))
    r = as_user(auditor).delete(f"/api/owned-notes/{notes['b1'].pk}/")
    assert r.status_code == 200
    assert not Note.objects.filter(pk=notes["b1"].pk).exists()


def test_drf_permission_class_inside_when(notes):
    alice = as_user(notes["alice"])
    r = alice.post("/api/owned-notes/", {"text": "new", "branch": "1"}, format="json")
    assert r.status_code == 403
    assert r.json()["error"] == "Header X-Yes required"
    alice = as_user(notes["alice"], HTTP_X_YES="1")
    r = alice.post("/api/owned-notes/", {"text": "new", "branch": "1"}, format="json")
    assert r.status_code == 201


def test_deny_all_and_unauthenticated_is_401(notes):
    r = APIClient().get("/api/owned-notes/")
    assert r.status_code == 401
    org = notes["org"]
    user = MembershipFactory(organization=org, role="admin").user
    client = as_user(user, HTTP_X_ORGANIZATION_ID=str(org.pk), HTTP_X_ARC_CONTEXT_BRANCH_ID="1")
    r = client.delete(f"/api/branch-notes/{notes['a1'].pk}/")
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
    assert Note.objects.filter(pk=notes["a1"].pk).exists()


def test_context_dimension_missing_is_org_required_naming_it(notes):
    org = notes["org"]
    user = MembershipFactory(organization=org, role="viewer").user
    r = as_user(user, HTTP_X_ORGANIZATION_ID=str(org.pk)).get("/api/branch-notes/")
    assert r.status_code == 403
    assert r.json()["code"] == "ORG_REQUIRED"
    assert r.json()["details"] == {"missing": "branch_id"}


def test_context_dimension_filters_and_is_set_on_create(notes):
    org = notes["org"]
    user = MembershipFactory(organization=org, role="viewer").user
    client = as_user(user, HTTP_X_ORGANIZATION_ID=str(org.pk), HTTP_X_ARC_CONTEXT_BRANCH_ID="2")
    assert [d["text"] for d in client.get("/api/branch-notes/").json()["docs"]] == ["a2"]
    assert client.get(f"/api/branch-notes/{notes['a1'].pk}/").status_code == 404
    r = client.post("/api/branch-notes/", {"text": "n"}, format="json")
    assert r.status_code == 201
    note = Note.objects.get(text="n")
    assert (note.organization_id, note.branch) == (org.pk, "2")
    r = client.post("/api/branch-notes/", {"text": "m", "branch": "1"}, format="json")
    assert r.status_code == 403 and r.json()["details"] == {"fields": ["branch"]}
    r = client.patch(f"/api/branch-notes/{note.pk}/", {"internal": "x"}, format="json")
    assert r.status_code == 403 and r.json()["details"] == {"fields": ["internal"]}


def test_combinator_filters_are_and_or_combined():
    from unittest import mock

    from django.db.models import Q

    from django_arc.scope import RequestScope

    scope = RequestScope(kind="authenticated", user_id=7)
    owner = P.require_owner("owner")
    branch = P.as_permission(lambda *a: PermissionResult(True, filters={"branch": "1"}))
    with mock.patch("django_arc.permissions._scope", return_value=scope):
        both = P.all_of(owner, branch)(None, None, "list")
        either = P.any_of(owner, branch)(None, None, "list")
        free = P.any_of(owner, P.allow_public())(None, None, "list")
        denied = P.all_of(owner, P.deny_all())(None, None, "list")
    assert both.granted and both.filters == Q(owner=7) & Q(branch="1")
    assert either.granted and either.filters == Q(owner=7) | Q(branch="1")
    assert free.granted and free.filters is None
    assert denied.granted is False and denied.reason == "Not permitted"


@pytest.mark.parametrize("method", ["get", "post"])
def test_context_value_the_tenant_column_cannot_hold_is_org_required(notes, method):
    """``branch`` is a 20-character column: 20 characters are a context, 21 are not (403
    ORG_REQUIRED naming the dimension, before any query and with nothing written), on
    SQLite (which would store 21) and PostgreSQL (which would raise DataError) alike."""
    org = notes["org"]
    user = MembershipFactory(organization=org, role="admin").user
    before = Note.objects.count()
    for branch, ok in (("b" * 20, True), ("b" * 21, False), ("b" * 60, False)):
        client = as_user(
            user, HTTP_X_ORGANIZATION_ID=str(org.pk), HTTP_X_ARC_CONTEXT_BRANCH_ID=branch
        )
        if method == "get":
            r = client.get("/api/branch-notes/")
        else:
            r = client.post("/api/branch-notes/", {"text": f"t-{len(branch)}"}, format="json")
        if ok:
            assert r.status_code in (200, 201), r.content
        else:
            assert r.status_code == 403, r.content
            assert r.json()["code"] == "ORG_REQUIRED"
            assert r.json()["details"] == {"missing": "branch_id"}
    assert Note.objects.count() == before + (1 if method == "post" else 0)
    assert not Note.objects.filter(text__in=["t-21", "t-60"]).exists()


@pytest.mark.parametrize("value", ["abc", "1.5", "99999999999999999999", "-1x"])
def test_context_value_not_of_the_columns_type_is_org_required(notes, value):
    """Every context dimension is judged by its own column: here an integer (the owner)."""
    org = notes["org"]
    user = MembershipFactory(organization=org, role="admin").user
    client = as_user(user, HTTP_X_ORGANIZATION_ID=str(org.pk), HTTP_X_ARC_CONTEXT_OWNER_ID=value)
    for r in (
        client.get("/api/owner-context-notes/"),
        client.post("/api/owner-context-notes/", {"text": "x", "branch": "1"}, format="json"),
    ):
        assert r.status_code == 403, (value, r.content)
        assert r.json()["details"] == {"missing": "owner_id"}
    assert not Note.objects.filter(text="x").exists()
    ok = as_user(
        user,
        HTTP_X_ORGANIZATION_ID=str(org.pk),
        HTTP_X_ARC_CONTEXT_OWNER_ID=str(notes["alice"].pk),
    ).get("/api/owner-context-notes/")
    assert sorted(d["text"] for d in ok.json()["docs"]) == ["a1", "a2"]


@pytest.mark.parametrize("method", ["get", "post", "patch"])
def test_context_value_with_a_nul_is_org_required(notes, method):
    """A text column cannot hold a NUL on PostgreSQL (``DataError``, a 500 on every list,
    get, create and update of the dimension), while SQLite filters and stores it: a context
    value carrying one is a context the caller cannot have, 403 ORG_REQUIRED naming the
    dimension on every database, with nothing written."""
    org = notes["org"]
    user = MembershipFactory(organization=org, role="admin").user
    client = as_user(user, HTTP_X_ORGANIZATION_ID=str(org.pk), HTTP_X_ARC_CONTEXT_BRANCH_ID="1\x00")
    before = list(Note.objects.order_by("pk").values())
    events = OutboxEvent.objects.count()
    if method == "get":
        r = client.get("/api/branch-notes/")
    elif method == "post":
        r = client.post("/api/branch-notes/", {"text": "nul"}, format="json")
    else:
        r = client.patch(f"/api/branch-notes/{notes['a1'].pk}/", {"text": "nul"}, format="json")
    assert r.status_code == 403, r.content
    assert r.json()["code"] == "ORG_REQUIRED"
    assert r.json()["details"] == {"missing": "branch_id"}
    assert list(Note.objects.order_by("pk").values()) == before
    assert OutboxEvent.objects.count() == events


def test_require_owner_compares_the_owner_column_without_loading_the_owner(notes):
    """The object check reads ``owner_id``: loading the owner's row to compare its pk would
    be one more query on every get and update of an owner-scoped resource."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    alice = as_user(notes["alice"])
    with CaptureQueriesContext(connection) as queries:
        response = alice.get(f"/api/owned-notes/{notes['a1'].pk}/")
    assert response.status_code == 200
    user_table = notes["alice"]._meta.db_table
    assert not [q["sql"] for q in queries if f'FROM "{user_table}"' in q["sql"]]


def test_user_roles_are_read_again_on_each_request_of_one_user_object(notes):
    """A user object that outlives a request (``force_authenticate``, an authentication
    class keeping users in memory) is judged by its groups as they are on each request: a
    revoked role is gone on the next one, and one granted counts at once."""
    carol = UserFactory(username="carol")
    auditors = Group.objects.create(name="auditor")
    carol.groups.add(auditors)
    client = as_user(carol)  # the same user object on every request
    row = f"/api/owned-notes/{notes['b1'].pk}/"
    assert client.get(row).status_code == 200
    carol.groups.remove(auditors)
    r = client.get(row)
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    carol.groups.add(auditors)
    assert client.get(row).status_code == 200


def test_user_roles_cost_one_query_per_request(notes, django_assert_num_queries):
    """Read on every request again, still once a request: the permission and the field
    rules of one request share the answer."""
    carol = UserFactory(username="carol")
    carol.groups.add(Group.objects.create(name="auditor"))
    client = as_user(carol)
    row = f"/api/owned-notes/{notes['b1'].pk}/"
    assert client.get(row).status_code == 200
    with django_assert_num_queries(2):  # the groups, the row
        assert client.get(row).status_code == 200


class PlanAllowsExports(BasePermission):
    """A DRF permission saying why it refused, as DRF permissions may: ``self.message`` set
    in one branch, the class's message in the other. DRF makes one instance per request."""

    message = "Exports are not allowed"

    def has_permission(self, request, view):
        plan = request.headers.get("X-Plan")
        if plan and plan != "gold":
            self.message = f"Organization {request.headers.get('X-Org-Name')} is on {plan}"
            return False
        return request.headers.get("X-Yes") == "1"


class PlannedNoteResource(Resource):
    model = Note
    name = "planned-notes"
    fields = ["id", "text"]
    permissions = {"list": PlanAllowsExports}


def test_a_drf_permission_is_one_instance_per_check_as_drf_makes_it(settings):
    """The DRF permission was one instance for every request of the process: what one
    request left on it (its refusal's message, naming its organization) was another
    caller's answer, refused by the other branch."""
    site = ResourceSite(name="plan-site")
    site.register(PlannedNoteResource)
    try:
        with site_mounted(settings, "plan", site):
            acme = as_user(UserFactory(username="acme-user"), HTTP_X_PLAN="silver")
            r = acme.get("/plan/planned-notes/", HTTP_X_ORG_NAME="Acme")
            assert r.status_code == 403 and r.json()["error"] == "Organization Acme is on silver"
            other = as_user(UserFactory(username="other"))
            r = other.get("/plan/planned-notes/")
            assert r.status_code == 403
            assert r.json()["error"] == "Exports are not allowed"
            assert other.get("/plan/planned-notes/", HTTP_X_YES="1").status_code == 200
    finally:
        _all_sites.remove(site)
