"""Service key authentication at its edges (each case was found by a hand mutant of
``django_arc/auth.py`` or ``django_arc/clients.py`` that the suite let through; the 401
tests of ``test_service_clients`` send keys that fail anyway, so they could not tell):

- a valid key followed by anything else in ``Authorization`` is refused (401), not read
  as the key;
- an ``X-Api-Key`` header sent empty is a malformed key (401), even where anonymous
  callers are welcome;
- ``Authorization: Bearer`` with no token is not django-arc's to judge: the request goes
  on anonymous (or to the next authenticator);
- a value that cannot be a key (no ``arc_`` prefix, too short, longer than 256
  characters) is refused without a query;
- two service users are equal only when they are the same client.
"""

import pytest
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from django_arc.auth import ServiceKeyAuthentication, ServiceUser
from django_arc.clients import ServiceClient
from django_arc.exceptions import exception_handler

pytestmark = pytest.mark.django_db


class OpenView(APIView):
    """Anonymous callers welcome: a 401 here comes from the authenticator alone."""

    authentication_classes = [ServiceKeyAuthentication]
    permission_classes = [AllowAny]

    def get_exception_handler(self):
        return exception_handler

    def get(self, request):
        return Response({"client": getattr(request.auth, "client_id", None)})


def call(**headers):
    return OpenView.as_view()(APIRequestFactory().get("/open/", **headers))


@pytest.fixture
def client_and_key():
    return ServiceClient.objects.create_with_key(name="sync", organization_id=7)


def test_a_valid_key_followed_by_more_is_refused(client_and_key):
    client, key = client_and_key
    assert call(HTTP_AUTHORIZATION=f"Bearer {key}").data == {"client": client.client_id}
    response = call(HTTP_AUTHORIZATION=f"Bearer {key} {key}")
    assert response.status_code == 401
    assert response.data["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_api_key_header_is_refused_even_where_anonymous_is_welcome(value):
    response = call(HTTP_X_API_KEY=value)
    assert response.status_code == 401
    assert response.data["code"] == "UNAUTHORIZED"
    assert call().data == {"client": None}


def test_a_bearer_keyword_alone_is_left_to_the_next_authenticator():
    response = call(HTTP_AUTHORIZATION="Bearer")
    assert response.status_code == 200
    assert response.data == {"client": None}


@pytest.mark.parametrize(
    "value",
    [
        "xyz_" + "a" * 43,  # not an arc key
        "arc_" + "a" * 3,  # shorter than the clear prefix
        "arc_" + "a" * 300,  # longer than any key
    ],
)
def test_a_value_that_cannot_be_a_key_is_refused_without_a_query(
    client_and_key, value, django_assert_num_queries
):
    client, _ = client_and_key
    ServiceClient.objects.filter(pk=client.pk).update(key_prefix=value[:12])
    with django_assert_num_queries(0):
        assert ServiceClient.objects.authenticate(value) is None


def test_service_users_are_equal_only_for_the_same_client():
    first, _ = ServiceClient.objects.create_with_key(name="a", organization_id=1)
    second, _ = ServiceClient.objects.create_with_key(name="b", organization_id=1)
    assert ServiceUser(first) == ServiceUser(ServiceClient.objects.get(pk=first.pk))
    assert ServiceUser(first) != ServiceUser(second)
    assert len({ServiceUser(first), ServiceUser(second)}) == 2


def test_create_with_key_takes_its_columns_exact_lengths():
    """``name`` holds 100 characters and ``organization_id`` 128: one more is refused before
    anything is written, on every database (SQLite would store it)."""
    client, _ = ServiceClient.objects.create_with_key(name="n" * 100, organization_id="o" * 128)
    assert (len(client.name), len(client.organization_id)) == (100, 128)
    for name, org in (("n" * 101, "1"), ("n", "o" * 129)):
        with pytest.raises(ValueError):
            ServiceClient.objects.create_with_key(name=name, organization_id=org)
    assert ServiceClient.objects.count() == 1
