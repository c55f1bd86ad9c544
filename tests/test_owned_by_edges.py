"""``OwnedBy`` at its edges (found by hand mutants of ``django_arc/presets/ownership.py``
that the suite let through):

- a row without an owner is changed only by a bypass role or an elevated caller: a caller
  who owns nothing (a service client, on rows owned by users) is refused, not matched as
  "no owner = no owner";
- an update never re-owns the row: a bypass role editing someone's row leaves its owner.
"""

import pytest

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.clients import ServiceClient
from tests.factories import UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Article

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
