"""The request scope at its edges (each case was found by a hand mutant of
``django_arc/scope.py`` or ``django_arc/clients.py`` that the suite let through):

- ``X-Arc-Scope`` is read without regard to case (``PLATFORM`` elevates);
- an organization header of 128 characters is judged by the resolver, a longer one is
  refused before it, named by its first 128 characters;
- a context header holds 128 characters, one more is 400 naming the header; 16 context
  headers are taken, a 17th is 400;
- an authenticated principal with no primary key (and no service client) is no person:
  its scope is ``public``;
- a service key keeps its first 12 characters in clear (``arc_`` and 8 more).
"""

import pytest
from django.core.exceptions import ObjectDoesNotExist
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from django_arc.clients import ServiceClient
from django_arc.exceptions import exception_handler
from django_arc.scope import get_scope
from tests.test_scope import DEMO_RESOLVER, call

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def resolver_settings(settings):
    settings.ARC = {"MEMBERSHIP_RESOLVER": DEMO_RESOLVER}


def test_the_elevation_header_is_read_without_regard_to_case(django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    for value in ("platform", "PLATFORM", "Platform"):
        response = call(root, HTTP_X_ARC_SCOPE=value)
        assert response.status_code == 200, (value, response.data)
        assert response.data["kind"] == "elevated"
    response = call(root, HTTP_X_ARC_SCOPE="platforms")
    assert response.status_code == 400 and response.data["code"] == "VALIDATION_ERROR"


def test_an_organization_header_holds_128_characters(django_user_model):
    user = django_user_model.objects.create_user("u", password="pw")
    for length in (128, 129):
        response = call(user, HTTP_X_ORGANIZATION_ID="9" * length)
        assert response.status_code == 403, response.data
        assert response.data["code"] == "ORG_REQUIRED"
        assert response.data["details"] == {"organization": "9" * 128}, length


def test_a_context_header_holds_128_characters(django_user_model):
    user = django_user_model.objects.create_user("u", password="pw")
    response = call(user, HTTP_X_ARC_CONTEXT_BRANCH_ID="b" * 128)
    assert response.status_code == 200 and response.data["context"] == {"branch_id": "b" * 128}
    response = call(user, HTTP_X_ARC_CONTEXT_BRANCH_ID="b" * 129)
    assert response.status_code == 400, response.data
    assert list(response.data["details"]) == ["X-Arc-Context-Branch-Id"]


def test_sixteen_context_headers_are_taken_and_a_seventeenth_is_refused(django_user_model):
    user = django_user_model.objects.create_user("u", password="pw")
    sixteen = {f"HTTP_X_ARC_CONTEXT_K{n}": str(n) for n in range(16)}
    response = call(user, **sixteen)
    assert response.status_code == 200 and len(response.data["context"]) == 16
    response = call(user, **sixteen, HTTP_X_ARC_CONTEXT_K16="16")
    assert response.status_code == 400, response.data
    assert list(response.data["details"]) == ["context"]


class _PkLessUser:
    """A principal an authentication class built from a token alone: authenticated, no
    row behind it."""

    pk = None
    is_authenticated = True
    is_anonymous = False


class _TokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        return (_PkLessUser(), None) if request.META.get("HTTP_X_TOKEN") else None


class _WhoAmI(APIView):
    authentication_classes = [_TokenAuthentication]
    permission_classes: list = []

    def get_exception_handler(self):
        return exception_handler

    def get(self, request):
        scope = get_scope(request)
        return Response({"kind": scope.kind, "user_id": scope.user_id})


def test_a_principal_without_a_primary_key_is_no_person():
    request = APIRequestFactory().get("/whoami/", HTTP_X_TOKEN="t")
    response = _WhoAmI.as_view()(request)
    assert response.status_code == 200
    assert response.data == {"kind": "public", "user_id": None}


def test_a_service_key_keeps_its_first_twelve_characters_in_clear():
    client, key = ServiceClient.objects.create_with_key(name="n", organization_id=1)
    assert client.key_prefix == key[:12] and len(client.key_prefix) == 12
    assert str(client) == f"n ({key[:12]}…)"


def _no_profile(user):
    """An ``ELEVATION_CHECK`` reading a profile the user does not have."""
    raise ObjectDoesNotExist("User has no profile.")


def test_an_elevation_check_with_no_answer_for_the_user_denies(settings, django_user_model):
    settings.ARC = {"MEMBERSHIP_RESOLVER": DEMO_RESOLVER, "ELEVATION_CHECK": _no_profile}
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    response = call(root, HTTP_X_ARC_SCOPE="platform")
    assert response.status_code == 403, response.data
    assert response.data["code"] == "FORBIDDEN"


class _BobAuthentication(BaseAuthentication):
    """DRF authenticates another user than the session's (a header naming bob), with no
    ``request.auth``: only the user tells the two identities apart."""

    def authenticate(self, request):
        from django.contrib.auth import get_user_model

        return get_user_model().objects.get(username="bob"), None


class _BobView(_WhoAmI):
    # the session's taken too (after bob): the middleware judges the session's user
    authentication_classes = [_BobAuthentication, SessionAuthentication]


def _through_django_handler(view, request):
    """``ScopeMiddleware`` run as Django's handler runs it: ``__call__``, then its
    ``process_view`` with the view the URL resolved to, then the view."""
    from django_arc.middleware import ScopeMiddleware

    def get_response(request):
        return middleware.process_view(request, view, (), {}) or view(request)

    middleware = ScopeMiddleware(get_response)
    return middleware(request)


def test_a_membership_found_for_one_user_is_never_another_users(django_user_model):
    """The middleware resolves the session's user (a member of the organization); DRF then
    authenticates another user naming the same organization: that user's own membership
    is asked for, and it has none (403), whatever the request already found."""
    from django.test import RequestFactory

    from shop.models import Membership, Organization

    org = Organization.objects.create(name="A", slug="a")
    alice = django_user_model.objects.create_user("alice", password="pw")
    django_user_model.objects.create_user("bob", password="pw")
    Membership.objects.create(user=alice, organization=org, role="admin")
    request = RequestFactory().get("/whoami/", HTTP_X_ORGANIZATION_ID=str(org.pk))
    request.user = alice
    response = _through_django_handler(_BobView.as_view(), request)
    assert request.arc_scope.kind == "member"  # the middleware's, for alice
    assert response.status_code == 403, response.data
    assert response.data["code"] == "ORG_REQUIRED"


class _SameUserByToken(BaseAuthentication):
    """DRF authenticates the session's own user again, by a token: another identity key
    (``request.auth``), the same person."""

    def authenticate(self, request):
        return request._request.user, "token"


class _TokenWhoAmI(_WhoAmI):
    authentication_classes = [_SameUserByToken, SessionAuthentication]


def test_one_request_records_one_elevation_whoever_resolves_it(django_user_model):
    """The middleware elevates the session's user; the view resolves the scope again under
    another identity key (its token) and elevates again: one ``arc.scope.elevated`` event
    for the request, not one per resolution."""
    from django.test import RequestFactory

    from django_arc.outbox.models import OutboxEvent

    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    request = RequestFactory().get("/whoami/", HTTP_X_ARC_SCOPE="platform")
    request.user = root
    response = _through_django_handler(_TokenWhoAmI.as_view(), request)
    assert response.status_code == 200 and response.data["kind"] == "elevated"
    assert OutboxEvent.objects.filter(type="arc.scope.elevated").count() == 1


def test_arc_roles_may_be_a_callable_and_must_be_a_list(django_user_model):
    """``user.arc_roles`` replaces the Django groups: an iterable, or a callable returning
    one; a bare string (``"viewer"``, which iterated is ``v``, ``i``, ``e``…) is refused."""
    from django_arc.scope import get_user_roles

    user = django_user_model.objects.create_user("u", password="pw")
    user.arc_roles = lambda: ["pricing", "audit"]
    assert get_user_roles(user) == ("pricing", "audit")
    user.arc_roles = ["pricing"]
    assert get_user_roles(user) == ("pricing",)
    for bare in ("viewer", b"viewer", lambda: "viewer"):
        user.arc_roles = bare
        with pytest.raises(TypeError):
            get_user_roles(user)


def test_an_anonymous_caller_keeps_its_context():
    """Context headers narrow what a caller sees, whoever it is: an anonymous caller's
    scope carries them too (a public catalogue filtered by branch)."""
    response = call(HTTP_X_ARC_CONTEXT_BRANCH_ID="north")
    assert response.status_code == 200
    assert response.data["kind"] == "public"
    assert response.data["context"] == {"branch_id": "north"}
