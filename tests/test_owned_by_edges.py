"""``OwnedBy`` at its edges (found by hand mutants of ``django_arc/presets/ownership.py``
that the suite let through):

- a row without an owner is changed only by a bypass role or an elevated caller: a caller
  who owns nothing (a service client, on rows owned by users) is refused, not matched as
  "no owner = no owner";
- an update never re-owns the row: a bypass role editing someone's row leaves its owner;
- a user and a service client are different owners even when their primary keys are the
  same number: a service client owns nothing on rows owned by users, a user owns nothing on
  rows owned by service clients.
"""

import pytest

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.clients import ServiceClient
from tests.factories import UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Article, ClientNote

pytestmark = pytest.mark.django_db

site = ResourceSite(name="owned-edges")


@site.register
class OwnedArticleResource(Resource):
    model = Article
    name = "owned-articles"
    fields = ["id", "slug", "title", "owner"]
    presets = [presets.OwnedBy(field="owner", bypass_roles=("moderator",))]
    permissions = {
        "get": P.allow_public(),
        "update": P.require_auth(),
        "create": P.require_auth(),
    }


@site.register
class ClientNoteResource(Resource):
    model = ClientNote
    name = "client-notes"
    fields = ["id", "title", "client"]
    presets = [presets.OwnedBy(field="client")]
    permissions = {"get": P.allow_public(), "update": P.require_auth(), "create": P.require_auth()}


def _service(organization_id=1):
    client, key = ServiceClient.objects.create_with_key(name="svc", organization_id=organization_id)
    return client, client_for(None, HTTP_AUTHORIZATION=f"Bearer {key}")


def test_a_service_client_does_not_own_a_users_row_with_its_own_pk(settings):
    """A service client whose pk is the number of the user owning a row is not its owner."""
    client, service = _service()
    user = UserFactory(pk=client.pk)
    row = Article.objects.create(slug="u", title="U", owner=user)
    with site_mounted(settings, "owned-edges", site):
        r = service.patch(f"/owned-edges/owned-articles/{row.pk}/", {"title": "X"})
    assert_error(r, 403, "OWNERSHIP_DENIED")
    assert Article.objects.get(pk=row.pk).title == "U"


def test_rows_owned_by_service_clients_are_theirs_and_no_users(settings):
    """On a resource whose owner is a ``ServiceClient``: a client's create owns the row;
    a user cannot create (owns nothing here) nor change the row of a client whose pk is
    the user's."""
    client, service = _service()
    user = UserFactory(pk=client.pk)
    with site_mounted(settings, "owned-edges", site):
        made = service.post("/owned-edges/client-notes/", {"title": "N"}, format="json")
        assert made.status_code == 201, made.content
        row = ClientNote.objects.get()
        assert (row.client_id, made.json()["data"]["client"]) == (client.pk, client.pk)
        assert (
            service.patch(f"/owned-edges/client-notes/{row.pk}/", {"title": "M"}).status_code == 200
        )
        caller = client_for(user)
        refused = caller.post("/owned-edges/client-notes/", {"title": "U"}, format="json")
        assert_error(refused, 403, "OWNERSHIP_DENIED")
        r = caller.patch(f"/owned-edges/client-notes/{row.pk}/", {"title": "X"})
    assert_error(r, 403, "OWNERSHIP_DENIED")
    assert list(ClientNote.objects.values_list("title", flat=True)) == ["M"]


def test_a_row_without_an_owner_is_not_a_service_clients(settings):
    ownerless = Article.objects.create(slug="o", title="O")
    _, key = ServiceClient.objects.create_with_key(name="svc", organization_id=1)
    service = client_for(None, HTTP_AUTHORIZATION=f"Bearer {key}")
    with site_mounted(settings, "owned-edges", site):
        r = service.patch(f"/owned-edges/owned-articles/{ownerless.pk}/", {"title": "X"})
    assert_error(r, 403, "OWNERSHIP_DENIED")
    assert Article.objects.get(pk=ownerless.pk).title == "O"


def test_an_update_by_a_bypass_role_keeps_the_owner(settings):
    from django.contrib.auth.models import Group

    author = UserFactory()
    row = Article.objects.create(slug="a", title="A", owner=author)
    moderator = UserFactory()
    moderator.groups.add(Group.objects.create(name="moderator"))
    with site_mounted(settings, "owned-edges", site):
        r = client_for(moderator).patch(
            f"/owned-edges/owned-articles/{row.pk}/", {"title": "B"}, format="json"
        )
    assert r.status_code == 200, r.content
    row.refresh_from_db()
    assert (row.title, row.owner_id) == ("B", author.pk)
    assert r.json()["data"]["owner"] == author.pk
