"""Service clients: key generation and storage, ServiceKeyAuthentication, the command, the admin."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import path
from django.utils import timezone
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from django_arc.auth import ServiceKeyAuthentication, ServiceUser
from django_arc.clients import KEY_PREFIX, PREFIX_LENGTH, ServiceClient
from django_arc.exceptions import exception_handler
from django_arc.scope import get_scope

pytestmark = pytest.mark.django_db

# The admin tests route through this module (``pytest.mark.urls``).
urlpatterns = [path("admin/", admin.site.urls)]


class ServiceView(APIView):
    authentication_classes = [ServiceKeyAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]

    def get_exception_handler(self):
        return exception_handler

    def get(self, request):
        scope = get_scope(request)
        return Response(
            {
                "kind": scope.kind,
                "organization_id": scope.organization_id,
                "client_id": scope.client_id,
                "scopes": list(scope.scopes),
                "user": str(request.user),
                "user_pk": request.user.pk,
                "auth_pk": getattr(request.auth, "pk", None),
            }
        )


view = ServiceView.as_view()


def call(**headers):
    return view(APIRequestFactory().get("/svc/", **headers))


@pytest.fixture
def client_and_key():
    return ServiceClient.objects.create_with_key(
        name="sync", organization_id=7, scopes=["orders:read", "sync"]
    )


# ---------------------------------------------------------------------------- storage


def test_create_with_key_returns_raw_key_and_stores_only_its_hash(client_and_key):
    client, raw_key = client_and_key
    assert raw_key.startswith(KEY_PREFIX) and len(raw_key) >= 40
    assert client.key_prefix == raw_key[:PREFIX_LENGTH]
    assert client.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert client.organization_id == "7"
    assert client.scopes == ["orders:read", "sync"]
    assert re.fullmatch(r"svc_[0-9a-f]{16}", client.client_id)


def test_database_never_contains_the_raw_key(client_and_key):
    _, raw_key = client_and_key
    secret_part = raw_key[PREFIX_LENGTH:]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ServiceClient._meta.db_table}")
        rows = cursor.fetchall()
    assert len(rows) == 1
    for value in rows[0]:
        text = str(value)
        assert raw_key not in text
        assert secret_part not in text


def test_keys_and_client_ids_are_unique():
    made = [
        ServiceClient.objects.create_with_key(name=f"c{i}", organization_id=1) for i in range(5)
    ]
    assert len({key for _, key in made}) == 5
    assert len({c.client_id for c, _ in made}) == 5


# ---------------------------------------------------------------------------- authentication


def test_bearer_key_authenticates_as_service(client_and_key):
    client, raw_key = client_and_key
    response = call(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 200
    assert response.data == {
        "kind": "service",
        "organization_id": "7",
        "client_id": client.client_id,
        "scopes": ["orders:read", "sync"],
        "user": f"service:{client.client_id}",
        "user_pk": None,
        "auth_pk": client.pk,
    }


def test_x_api_key_header_authenticates(client_and_key):
    client, raw_key = client_and_key
    response = call(HTTP_X_API_KEY=raw_key)
    assert response.status_code == 200
    assert response.data["client_id"] == client.client_id


def test_lowercase_bearer_keyword_is_accepted(client_and_key):
    _, raw_key = client_and_key
    assert call(HTTP_AUTHORIZATION=f"bearer {raw_key}").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_AUTHORIZATION": "Bearer arc_" + "x" * 43},
        {"HTTP_X_API_KEY": "arc_" + "x" * 43},
        {"HTTP_X_API_KEY": "not-a-key"},
        {"HTTP_X_API_KEY": "   "},
        {"HTTP_AUTHORIZATION": "Bearer arc_abc extra"},
    ],
)
def test_unknown_or_malformed_key_is_401(client_and_key, headers):
    response = call(**headers)
    assert response.status_code == 401
    assert response.data["code"] == "UNAUTHORIZED"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_tampered_key_is_401(client_and_key):
    _, raw_key = client_and_key
    tampered = raw_key[:-1] + ("A" if raw_key[-1] != "A" else "B")
    assert call(HTTP_X_API_KEY=tampered).status_code == 401


def test_inactive_key_is_401_with_the_same_body_as_unknown(client_and_key):
    client, raw_key = client_and_key
    client.active = False
    client.save()
    inactive = call(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    unknown = call(HTTP_AUTHORIZATION="Bearer arc_" + "y" * 43)
    assert inactive.status_code == 401
    assert inactive.data["code"] == "UNAUTHORIZED"
    assert inactive.data["error"] == unknown.data["error"]


def test_foreign_bearer_token_is_left_to_other_authenticators(client_and_key):
    response = call(HTTP_AUTHORIZATION="Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")
    # Nobody authenticated it: IsAuthenticated denies with 401 (we provide the challenge).
    assert response.status_code == 401
    assert response.data["code"] == "UNAUTHORIZED"
    assert (
        ServiceKeyAuthentication().authenticate(
            APIRequestFactory().get("/", HTTP_AUTHORIZATION="Bearer eyJ.e30.sig")
        )
        is None
    )


def test_prefix_collision_still_finds_the_right_client():
    first, first_key = ServiceClient.objects.create_with_key(name="a", organization_id=1)
    second, second_key = ServiceClient.objects.create_with_key(name="b", organization_id=2)
    ServiceClient.objects.filter(pk=second.pk).update(key_prefix=first.key_prefix)
    assert ServiceClient.objects.authenticate(first_key).pk == first.pk
    # second's key now looks under the wrong prefix: not found (never someone else's row)
    assert ServiceClient.objects.authenticate(second_key) is None


def test_service_cannot_name_another_org(client_and_key):
    _, raw_key = client_and_key
    response = call(HTTP_X_API_KEY=raw_key, HTTP_X_ORGANIZATION_ID="8")
    assert response.status_code == 403
    assert response.data["code"] == "ORG_REQUIRED"
    assert response.data["details"] == {"organization": "8"}
    same = call(HTTP_X_API_KEY=raw_key, HTTP_X_ORGANIZATION_ID="7")
    assert same.status_code == 200 and same.data["organization_id"] == "7"


def test_service_cannot_elevate(client_and_key):
    _, raw_key = client_and_key
    response = call(HTTP_X_API_KEY=raw_key, HTTP_X_ARC_SCOPE="platform")
    assert response.status_code == 403
    assert response.data["code"] == "FORBIDDEN"


def test_service_user_is_authenticated_but_nobody(client_and_key):
    client, _ = client_and_key
    user = ServiceUser(client)
    assert user.is_authenticated is True and user.is_anonymous is False
    assert user.pk is None and user.is_staff is False and user.is_superuser is False
    assert user.has_perm("auth.add_user") is False
    assert user != AnonymousUser()
    assert user == ServiceUser(client)


def test_last_used_at_written_at_most_once_a_minute(client_and_key, django_assert_num_queries):
    client, raw_key = client_and_key
    assert client.last_used_at is None
    assert call(HTTP_X_API_KEY=raw_key).status_code == 200
    client.refresh_from_db()
    first = client.last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=5)

    # Within the minute: lookup only, no UPDATE.
    with django_assert_num_queries(1):
        assert call(HTTP_X_API_KEY=raw_key).status_code == 200
    client.refresh_from_db()
    assert client.last_used_at == first

    # Two minutes later: written again.
    old = timezone.now() - timedelta(minutes=2)
    ServiceClient.objects.filter(pk=client.pk).update(last_used_at=old)
    assert call(HTTP_X_API_KEY=raw_key).status_code == 200
    client.refresh_from_db()
    assert client.last_used_at > old + timedelta(minutes=1)


def test_touch_is_conditional(client_and_key):
    client, _ = client_and_key
    now = timezone.now()
    stale_copy = ServiceClient.objects.get(pk=client.pk)
    assert client.touch(now) is True
    # another worker holding a stale copy does not write again within the minute
    assert stale_copy.touch(now + timedelta(seconds=10)) is False


# ---------------------------------------------------------------------------- command


@pytest.fixture
def org():
    from tests.factories import OrganizationFactory

    return OrganizationFactory()


def test_arc_create_client_prints_key_once_and_it_works(org):
    out = io.StringIO()
    call_command(
        "arc_create_client",
        "--name",
        "erp",
        "--org",
        str(org.pk),
        "--scopes",
        "a, b,,c",
        stdout=out,
    )
    text = out.getvalue()
    key = re.search(r"key:\s+(\S+)", text).group(1)
    client = ServiceClient.objects.get(name="erp")
    assert client.organization_id == str(org.pk)
    assert client.scopes == ["a", "b", "c"]
    assert client.active is True
    assert client.client_id in text
    assert "shown only once" in text
    assert ServiceClient.objects.authenticate(key).pk == client.pk
    assert text.count(key) == 1


def test_arc_create_client_key_only_and_inactive(org):
    out = io.StringIO()
    call_command(
        "arc_create_client",
        "--name",
        "x",
        "--org",
        str(org.pk),
        "--key-only",
        "--inactive",
        stdout=out,
    )
    key = out.getvalue().strip()
    assert key.startswith(KEY_PREFIX) and "\n" not in key
    assert ServiceClient.objects.get(name="x").active is False
    assert ServiceClient.objects.authenticate(key) is None  # inactive


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "", "--org", "1"],
        ["--name", "n", "--org", " "],
        ["--name", "n" * 101, "--org", "1"],
    ],
)
def test_arc_create_client_rejects_bad_input(args):
    with pytest.raises(CommandError):
        call_command("arc_create_client", *args, stdout=io.StringIO())
    assert ServiceClient.objects.count() == 0


def test_arc_create_client_requires_org():
    with pytest.raises(CommandError):
        call_command("arc_create_client", "--name", "n", stdout=io.StringIO())


@pytest.mark.parametrize("value", ["999", "abc", "-1", "99999999999999999999999", "1.0"])
def test_arc_create_client_refuses_an_organization_that_does_not_exist(org, value):
    """The organization model is the one MultiTenant resources point at (shop.Organization)."""
    if value == "999":
        assert not type(org).objects.filter(pk=999).exists()
    with pytest.raises(CommandError) as excinfo:
        call_command("arc_create_client", "--name", "n", "--org", value, stdout=io.StringIO())
    assert str(excinfo.value) == (
        f"Organization {value!r} does not exist (shop.Organization); create it first."
    )
    assert ServiceClient.objects.count() == 0


def test_arc_create_client_through_manage_py_names_the_organization(org, capsys):
    """What a user sees: ``CommandError: …`` on stderr and exit status 1."""
    from django.core.management import ManagementUtility

    with pytest.raises(SystemExit) as excinfo:
        ManagementUtility(
            ["manage.py", "arc_create_client", "--name", "n", "--org", "999"]
        ).execute()
    assert excinfo.value.code == 1
    assert capsys.readouterr().err == (
        "CommandError: Organization '999' does not exist (shop.Organization); create it first.\n"
    )


def test_arc_create_client_without_an_organization_model_warns_and_creates(monkeypatch):
    from django_arc.management.commands import arc_create_client

    monkeypatch.setattr(arc_create_client, "organization_models", lambda: [])
    err = io.StringIO()
    call_command(
        "arc_create_client",
        "--name",
        "n",
        "--org",
        "ext-42",
        "--key-only",
        stdout=io.StringIO(),
        stderr=err,
    )
    assert "Cannot check that organization 'ext-42' exists" in err.getvalue()
    assert ServiceClient.objects.get().organization_id == "ext-42"


# ---------------------------------------------------------------------------- admin


@pytest.mark.urls(__name__)
def test_admin_add_shows_key_once(admin_client, org):
    response = admin_client.post(
        "/admin/django_arc/serviceclient/add/",
        {
            "name": "warehouse",
            "organization_id": str(org.pk),
            "scopes": "stock:write, sync",
            "active": "on",
        },
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    key = re.search(r'id="arc-service-key"[^>]*>([^<]+)<', html).group(1)
    client = ServiceClient.objects.get(name="warehouse")
    assert client.scopes == ["stock:write", "sync"]
    assert client.organization_id == str(org.pk)
    assert ServiceClient.objects.authenticate(key).pk == client.pk

    change = admin_client.get(f"/admin/django_arc/serviceclient/{client.pk}/change/")
    listing = admin_client.get("/admin/django_arc/serviceclient/")
    for page in (change, listing):
        assert page.status_code == 200
        body = page.content.decode()
        assert key not in body and key[PREFIX_LENGTH:] not in body
        assert client.key_prefix in body
    assert client.key_hash not in change.content.decode()


@pytest.mark.urls(__name__)
def test_admin_change_keeps_the_key(admin_client, client_and_key):
    client, raw_key = client_and_key
    response = admin_client.post(
        f"/admin/django_arc/serviceclient/{client.pk}/change/",
        {"name": "renamed", "organization_id": "7", "scopes": "sync", "active": "on"},
    )
    assert response.status_code == 302
    client.refresh_from_db()
    assert client.name == "renamed" and client.scopes == ["sync"]
    assert ServiceClient.objects.authenticate(raw_key).pk == client.pk


@pytest.mark.urls(__name__)
def test_admin_deactivate_action(admin_client, client_and_key):
    client, raw_key = client_and_key
    response = admin_client.post(
        "/admin/django_arc/serviceclient/",
        {"action": "deactivate", "_selected_action": [client.pk]},
    )
    assert response.status_code == 302
    client.refresh_from_db()
    assert client.active is False
    assert call(HTTP_X_API_KEY=raw_key).status_code == 401
