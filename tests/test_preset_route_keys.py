"""Which permission a preset's route is judged by (found by hand mutants of the presets'
``RouteSpec.permission_key`` that the suite let through: every resource the suite routed
them on had the same permission for each key). ``restore`` changes a row: it is judged by
``update``, not by ``list`` as its sibling ``deleted`` is; ``slug/<slug>`` reads one row: it
is judged by ``get``, not by ``list``."""

import pytest
from django.utils import timezone

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from tests.factories import UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

site = ResourceSite(name="preset-route-keys")
FIELDS = ["id", "slug", "title", "deleted_at"]


@site.register
class ListableSoftArticleResource(Resource):
    model = Article
    name = "listable-soft-articles"
    fields = FIELDS
    presets = [presets.SoftDelete()]
    permissions = {"list": P.allow_public(), "get": P.allow_public(), "update": P.require_auth()}


@site.register
class UnlistableSlugArticleResource(Resource):
    model = Article
    name = "unlistable-slug-articles"
    fields = FIELDS
    presets = [presets.SlugLookup()]
    permissions = {"list": P.require_auth(), "get": P.allow_public()}


def test_restore_is_judged_by_update_not_by_list(settings):
    gone = Article.objects.create(slug="gone", title="Gone", deleted_at=timezone.now())
    base = "/keys/listable-soft-articles"
    anonymous, user = client_for(None), client_for(UserFactory())
    with site_mounted(settings, "keys", site):
        assert anonymous.get(f"{base}/deleted/").status_code == 200  # list: public
        assert_error(anonymous.post(f"{base}/{gone.pk}/restore/"), 401, "UNAUTHORIZED")
        assert Article.objects.get(pk=gone.pk).deleted_at is not None
        restored = user.post(f"{base}/{gone.pk}/restore/")
    assert restored.status_code == 200, restored.content
    assert Article.objects.get(pk=gone.pk).deleted_at is None


def test_the_slug_route_is_judged_by_get_not_by_list(settings):
    Article.objects.create(slug="hello", title="Hello")
    base = "/keys/unlistable-slug-articles"
    anonymous = client_for(None)
    with site_mounted(settings, "keys", site):
        assert_error(anonymous.get(f"{base}/"), 401, "UNAUTHORIZED")  # list: members only
        r = anonymous.get(f"{base}/slug/hello/")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["title"] == "Hello"
