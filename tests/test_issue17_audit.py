"""An acceptance audit of issue #17's bullets (rev-i17): the write paths and key spellings
the other files leave out — a preset's own routes (SoftDelete's restore) under a key and
under the query cache, a percent-encoded path, ``?select=`` in another order, a ``HEAD``
before a ``GET`` — on a real Redis and the suite's database.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from django_arc import Resource, ResourceSite, presets, redis_alias
from django_arc import permissions as P
from django_arc.outbox import OutboxEvent
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.testapp.models import Article

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
]


def _idempotency(store: str) -> dict:
    return {"ENABLED": True, "STORE": store, "ALIAS": "redis", "TTL_SECONDS": 3600}


@pytest.fixture(params=["database", "cache"])
def keyed(request):
    """Keys on for every resource (the global setting), on either store."""
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(IDEMPOTENCY=_idempotency(request.param))),
    ):
        yield request.param


@pytest.fixture
def writer(db):
    user = get_user_model().objects.create_user("audit-writer", password="x")
    return client_for(user)


# -- idempotency: a preset's own route ----------------------------------------------------------


@pytest.mark.django_db
def test_a_keyed_restore_is_replayed_and_emits_one_restored_event(keyed, writer):
    """SoftDelete's ``restore`` route is a write path like any other: its retry is the
    replay (not a 404 for a row no longer deleted), and its one event carries
    ``<scoped key>:<type>:<id>``."""
    article = Article.objects.create(slug="a", title="A", deleted_at=timezone.now())
    url = f"/api/soft-articles/{article.pk}/restore/"
    first = writer.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="restore-1")
    assert first.status_code == 200, first.content
    again = writer.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="restore-1")
    assert again.status_code == 200 and again.content == first.content
    assert again["X-Idempotency-Replayed"] == "true"
    events = list(OutboxEvent.objects.filter(type="soft-articles.restored"))
    assert len(events) == 1
    prefix = events[0].dedupe_key.split(":")[0]
    assert events[0].dedupe_key == f"{prefix}:soft-articles.restored:{article.pk}"
    assert events[0].meta["idempotency_key"] == events[0].dedupe_key


@pytest.mark.django_db
def test_a_keyed_request_to_a_percent_encoded_path_is_the_same_key(keyed):
    """``/idem-products/%31%32/`` is ``/idem-products/12/`` (Django decodes the path): one
    operation, one key — the retry spelled the other way is the replay."""
    org = OrganizationFactory()
    editor = member_client(org, "editor")
    row = ProductFactory(organization=org, name="before")
    plain = f"/api/idem-products/{row.pk}/"
    encoded = "/api/idem-products/" + "".join(f"%3{digit}" for digit in str(row.pk)) + "/"
    first = editor.patch(plain, {"name": "after"}, format="json", HTTP_IDEMPOTENCY_KEY="p")
    assert first.status_code == 200, first.content
    again = editor.patch(encoded, {"name": "after"}, format="json", HTTP_IDEMPOTENCY_KEY="p")
    assert again["X-Idempotency-Replayed"] == "true" and again.content == first.content
    assert OutboxEvent.objects.filter(type="idem-products.updated").count() == 1


# -- the query cache ------------------------------------------------------------------------------

audit_site = ResourceSite(name="audit17")


@audit_site.register
class CachedSoftArticleResource(Resource):
    model = Article
    name = "cached-soft-articles"
    fields = ["id", "slug", "title", "views", "deleted_at"]
    sort_fields = ["title"]
    default_sort = "title"
    presets = [presets.SoftDelete()]
    permissions = {
        "list": P.allow_public(),
        "get": P.allow_public(),
        "create": P.require_auth(),
        "update": P.require_auth(),
        "delete": P.require_auth(),
    }
    cache = {"stale_seconds": 30}


@pytest.fixture
def cached(settings):
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
        site_mounted(settings, "audit", audit_site),
    ):
        redis_alias.reset_outage_warnings()
        yield


@pytest.mark.django_db(transaction=True)
def test_soft_delete_and_restore_make_the_next_cached_list_miss(cached, writer):
    """The preset's delete and its restore route both retire the cached list and get."""
    kept = Article.objects.create(slug="k", title="Kept")
    gone = Article.objects.create(slug="g", title="Gone")
    url = "/audit/cached-soft-articles/"
    anonymous = client_for(None)

    def titles(response):
        return [row["title"] for row in response.json()["docs"]]

    assert anonymous.get(url)["X-Cache"] == "MISS"
    assert anonymous.get(url)["X-Cache"] == "HIT"
    assert anonymous.get(f"{url}{gone.pk}/")["X-Cache"] == "MISS"
    assert writer.delete(f"{url}{gone.pk}/").status_code == 200
    after_delete = anonymous.get(url)
    assert after_delete["X-Cache"] == "MISS" and titles(after_delete) == ["Kept"]
    assert anonymous.get(f"{url}{gone.pk}/").status_code == 404
    assert anonymous.get(url)["X-Cache"] == "HIT"
    restored = writer.post(f"{url}{gone.pk}/restore/", {}, format="json")
    assert restored.status_code == 200, restored.content
    after_restore = anonymous.get(url)
    assert after_restore["X-Cache"] == "MISS" and titles(after_restore) == ["Gone", "Kept"]
    detail = anonymous.get(f"{url}{gone.pk}/")
    assert detail.status_code == 200 and detail.json()["data"]["deleted_at"] is None
    # the preset's own list of deleted rows is not one the cache keeps
    assert "X-Cache" not in writer.get(f"{url}deleted/")
    assert anonymous.get(f"{url}{kept.pk}/").json()["data"]["title"] == "Kept"


@pytest.mark.django_db(transaction=True)
def test_select_in_another_order_and_params_in_another_order_share_the_right_bytes(cached):
    """``?select=`` is keyed sorted: both spellings must render the same bytes (they do,
    or the second would be served the first's); reordered parameters are one entry."""
    for i in range(3):
        Article.objects.create(slug=f"s{i}", title=f"T{i}", views=i)
    url = "/audit/cached-soft-articles/"
    anonymous = client_for(None)
    first = anonymous.get(f"{url}?select=title,views")
    assert first["X-Cache"] == "MISS"
    second = anonymous.get(f"{url}?select=views,title")
    assert second["X-Cache"] == "HIT" and second.content == first.content
    a = anonymous.get(f"{url}?select=title&limit=2&page=2")
    b = anonymous.get(f"{url}?page=2&limit=2&select=title")
    assert a["X-Cache"] == "MISS" and b["X-Cache"] == "HIT" and a.content == b.content
    other = anonymous.get(f"{url}?select=title&limit=2&page=1")
    assert other["X-Cache"] == "MISS" and other.content != a.content


@pytest.mark.django_db(transaction=True)
def test_a_head_before_a_get_stores_the_whole_answer(cached):
    """A ``HEAD`` runs the list (DRF maps it to ``get``): whatever it stores must be the
    GET's answer, body included, or the next GET is served an empty page."""
    Article.objects.create(slug="h", title="Head")
    url = "/audit/cached-soft-articles/"
    anonymous = client_for(None)
    head = anonymous.head(url)
    assert head.status_code == 200
    get = anonymous.get(url)
    assert get.json()["docs"][0]["title"] == "Head"
    with override_settings(ARC=arc_with(CACHE=False)):
        assert anonymous.get(url).content == get.content


@pytest.mark.django_db(transaction=True)
def test_a_query_set_update_through_invalidate_retires_a_cached_list(cached):
    """``QuerySet.update`` sends no signal: the documented ``invalidate(Model)`` retires
    the cached list, and without it the list is stale (the documented contract)."""
    from django_arc.querycache import invalidate

    row = Article.objects.create(slug="u", title="Old")
    url = "/audit/cached-soft-articles/"
    anonymous = client_for(None)
    anonymous.get(url)
    Article.objects.filter(pk=row.pk).update(title="New")
    assert anonymous.get(url).json()["docs"][0]["title"] == "Old"
    invalidate(Article)
    fresh = anonymous.get(url)
    assert fresh["X-Cache"] == "MISS" and fresh.json()["docs"][0]["title"] == "New"


@pytest.mark.django_db(transaction=True)
def test_reordered_filters_share_an_entry_and_different_filters_never_do(cached):
    """``?a&b`` and ``?b&a`` are one normalised query (the second a HIT with the first's
    bytes); ``price[gte]`` and ``price[lte]`` of one value, or an unknown parameter
    dropped, never serve each other's rows (each equals the uncached twin's answer)."""
    org = OrganizationFactory()
    for i in range(4):
        ProductFactory(organization=org, name=f"P{i}", price=8 + i, status="active")
    viewer = member_client(org, "viewer")
    both = "?status=active&price[gte]=10"
    first = viewer.get(f"/api/cached-products/{both}")
    assert first["X-Cache"] == "MISS" and len(first.json()["docs"]) == 2
    swapped = viewer.get("/api/cached-products/?price[gte]=10&status=active")
    assert swapped["X-Cache"] == "HIT" and swapped.content == first.content
    spelled = viewer.get("/api/cached-products/?price[gte]=10&status[eq]=active")
    assert spelled["X-Cache"] == "HIT" and spelled.content == first.content
    tracked = viewer.get("/api/cached-products/?utm_source=x&price[gte]=10&status=active")
    assert tracked["X-Cache"] == "HIT" and tracked.content == first.content
    # search and sort beside filters, in either order
    mixed = "?search=P&sort=-price&status=active&price[gte]=9"
    once = viewer.get(f"/api/cached-products/{mixed}")
    assert once["X-Cache"] == "MISS" and len(once.json()["docs"]) == 3
    again = viewer.get("/api/cached-products/?price[gte]=9&sort=-price&status=active&search=P")
    assert again["X-Cache"] == "HIT" and again.content == once.content
    assert once.content == viewer.get(f"/api/uncached-products/{mixed}").content
    for query in ("?price[lte]=10&status=active", "?status=active&utm=x", "?price[gte]=10"):
        cached_answer = viewer.get(f"/api/cached-products/{query}")
        assert cached_answer.content == viewer.get(f"/api/uncached-products/{query}").content
    lower = viewer.get("/api/cached-products/?price[lte]=10&status=active")
    assert lower.json()["docs"] != first.json()["docs"]


@pytest.mark.django_db(transaction=True)
def test_a_field_sent_bare_and_with_eq_in_either_order_shares_an_entry(cached):
    """``status`` and ``status[eq]`` are one (field, operator): the conditions were sorted
    by that alone, a stable sort kept the two in sending order, and the swapped query was a
    second entry (a MISS) for the same rows. Ties are broken by the value now."""
    org = OrganizationFactory()
    ProductFactory(organization=org, name="P", price=9, status="active")
    viewer = member_client(org, "viewer")
    first = viewer.get("/api/cached-products/?status=active&status[eq]=draft")
    assert first["X-Cache"] == "MISS" and first.json()["docs"] == []
    swapped = viewer.get("/api/cached-products/?status[eq]=draft&status=active")
    assert swapped["X-Cache"] == "HIT" and swapped.content == first.content


@pytest.mark.django_db(transaction=True)
def test_an_id_written_with_a_leading_zero_is_the_same_get_entry(cached):
    """docs/query-cache.md: ``07`` for ``7`` is another spelling of one get, not another
    entry; and the get of another id never shares it."""
    org = OrganizationFactory()
    rows = [ProductFactory(organization=org, name=f"G{i}", price=5) for i in range(2)]
    viewer = member_client(org, "viewer")
    first = viewer.get(f"/api/cached-products/{rows[0].pk}/")
    assert first["X-Cache"] == "MISS"
    padded = viewer.get(f"/api/cached-products/0{rows[0].pk}/")
    assert padded["X-Cache"] == "HIT" and padded.content == first.content
    other = viewer.get(f"/api/cached-products/{rows[1].pk}/")
    assert other["X-Cache"] == "MISS" and other.json()["data"]["name"] == "G1"
