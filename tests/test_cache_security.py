"""The query cache (SPEC §11) and idempotency keys (SPEC §10) against a caller trying to get
an answer the uncached, unkeyed route would not give it: another tenant's, owner's, role's,
context's or elevation's answer, a row it may no longer see, a membership it no longer has,
another caller's replay.

Every cached answer is compared with the uncached twin's (the same declaration with
``cache = False``) for the same caller, byte for byte: that is the contract, whatever the
cache holds.
"""

from __future__ import annotations

import json
import pickle
import uuid

import pytest
from django.db.models import IntegerField, Value
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.clients import ServiceClient
from django_arc.membership import cached_resolver
from django_arc.outbox import OutboxEvent
from django_arc.querycache.keys import queryset_fingerprint
from shop.membership import resolve_membership
from shop.models import Membership, Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory, UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import REDIS_URL, query_cache_on_redis
from tests.test_query_cache_routed import ShopRouted  # noqa: F401 - registers the alias routed
from tests.testapp.models import Article, Note

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    pytest.mark.django_db(transaction=True),
]

CACHED = "/api/cached-products/"
UNCACHED = "/api/uncached-products/"


def lenient_lookup(user, org_id):
    """A project ``MEMBERSHIP_RESOLVER`` that lets the ORM read the header, as most do:
    ``"01"`` and ``"1"`` are one organization to it (and to the tenant filter)."""
    roles = list(
        Membership.objects.filter(user_id=user.pk, organization_id=org_id).values_list(
            "role", flat=True
        )
    )
    return roles or None


lenient_resolver = cached_resolver(lenient_lookup, ttl=60, prefix="t-sec-lenient")


@pytest.fixture(autouse=True)
def redis_cache():
    with query_cache_on_redis() as config:
        yield config


def member(org, role, **headers):
    user = MembershipFactory(organization=org, role=role).user
    client = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk), **headers)
    client.user = user
    return client


def twins(client, cached, uncached, query="", **headers):
    """``client``'s cached answer, asserted equal to its uncached one; returns the cached."""
    first = client.get(f"{cached}{query}", **headers)
    plain = client.get(f"{uncached}{query}", **headers)
    assert first.status_code == plain.status_code, (first.content, plain.content)
    if first.status_code == 200:
        assert first.content == plain.content, (first.content, plain.content)
    else:  # an error envelope: the same but for its request id
        assert _error(first) == _error(plain), (first.content, plain.content)
    return first


def _error(response):
    body = response.json()
    assert body.pop("requestId")
    return body


def hit_twins(client, cached, uncached, query="", **headers):
    """As :func:`twins`, asked twice, the second answer a HIT (or the same error)."""
    twins(client, cached, uncached, query, **headers)
    second = twins(client, cached, uncached, query, **headers)
    if second.status_code == 200:
        assert second["X-Cache"] == "HIT", second.content
    return second


@pytest.fixture
def shop():
    a, b = OrganizationFactory(), OrganizationFactory()
    for i in range(3):
        ProductFactory(organization=a, name=f"A{i}", price=10 + i, cost=3)
        ProductFactory(organization=b, name=f"B{i}", price=20 + i, cost=4)
    return {"a": a, "b": b}


# -- memberships: revoked, changed, spelled otherwise ---------------------------------------------


def test_a_revoked_membership_is_refused_under_every_spelling_of_its_organization(shop, settings):
    """``cached_resolver`` cached per (user, organization *as sent*): with a project resolver
    that reads ``01`` as organization 1 (so does the tenant filter), ``invalidate(user, 1)``
    forgot only ``"1"``, and a revoked member sending ``X-Organization-Id: 01`` kept its
    cached roles — and the products — until the ttl, where the uncached resolver answers
    403. Invalidation retires every spelling of the user's memberships."""
    settings.ARC = {
        **settings.ARC,
        "MEMBERSHIP_RESOLVER": "tests.test_cache_security.lenient_resolver",
    }
    org = shop["a"]
    membership = MembershipFactory(organization=org, role="viewer")
    client = client_for(membership.user)
    spellings = (str(org.pk), f"0{org.pk}", f"00{org.pk}")
    for spelling in spellings:
        assert client.get(CACHED, HTTP_X_ORGANIZATION_ID=spelling).status_code == 200
    membership.delete()
    lenient_resolver.invalidate(membership.user_id, org.pk)
    for spelling in spellings:
        for path in (CACHED, UNCACHED):
            response = client.get(path, HTTP_X_ORGANIZATION_ID=spelling)
            assert_error(response, 403, "ORG_REQUIRED")


def test_a_revoked_member_gets_403_not_the_cached_list(shop):
    viewer = member(shop["a"], "viewer")
    hit_twins(viewer, CACHED, UNCACHED)
    Membership.objects.filter(user=viewer.user).delete()  # the example's receiver forgets it
    for path in (CACHED, UNCACHED):
        assert_error(viewer.get(path), 403, "ORG_REQUIRED")


def test_a_role_changed_between_miss_and_hit_gets_its_new_roles_answer(shop):
    """An admin's entry holds ``cost``; demoted to viewer, the same user gets the viewer's
    answer (no cost, sku masked), never the admin entry; promoted back, the admin's."""
    admin = member(shop["a"], "admin")
    rich = hit_twins(admin, CACHED, UNCACHED)
    assert all("cost" in doc for doc in rich.json()["docs"])
    Membership.objects.filter(user=admin.user).update(role="viewer")
    Membership.objects.get(user=admin.user).save()  # update() sends no signal: forget it
    poor = hit_twins(admin, CACHED, UNCACHED)
    assert all("cost" not in doc for doc in poor.json()["docs"])
    assert poor.content != rich.content
    get = hit_twins(admin, CACHED, UNCACHED, query=f"{Product.objects.first().pk}/")
    assert get.status_code == 200 and "cost" not in get.json()["data"]


# -- elevation -------------------------------------------------------------------------------------


def test_elevation_toggled_on_the_same_query_gets_each_answer_of_its_own(shop):
    """A superuser who is a viewer of org a: plain, it gets the viewer's page of org a;
    elevated with the header, org a's rows as a platform admin sees them; elevated without
    an org, every tenant's rows. Asked in every order, each equals its uncached answer."""
    boss = UserFactory(is_superuser=True, is_staff=True)
    MembershipFactory(user=boss, organization=shop["a"], role="viewer")
    plain = client_for(boss, HTTP_X_ORGANIZATION_ID=str(shop["a"].pk))
    elevated_a = client_for(
        boss, HTTP_X_ORGANIZATION_ID=str(shop["a"].pk), HTTP_X_ARC_SCOPE="platform"
    )
    elevated_all = client_for(boss, HTTP_X_ARC_SCOPE="platform")
    nobody = client_for(boss)
    answers = {}
    for _ in range(2):
        for name, client in (
            ("plain", plain),
            ("elevated_a", elevated_a),
            ("elevated_all", elevated_all),
            ("nobody", nobody),
        ):
            answer = twins(client, CACHED, UNCACHED)
            seen = answer.content if answer.status_code == 200 else answer.status_code
            answers.setdefault(name, set()).add(seen)
    assert all(len(seen) == 1 for seen in answers.values()), answers
    assert answers["nobody"] == {403}  # a superuser naming no org, not elevated
    names = {
        name: {d["name"][0] for d in json.loads(next(iter(c)))["docs"]}
        for name, c in answers.items()
        if name != "nobody"
    }
    assert names == {"plain": {"A"}, "elevated_a": {"A"}, "elevated_all": {"A", "B"}}


def test_a_non_admin_sending_the_elevation_header_gets_403_not_the_elevated_entry(shop):
    boss = UserFactory(is_superuser=True)
    twins(client_for(boss, HTTP_X_ARC_SCOPE="platform"), CACHED, UNCACHED)
    viewer = member(shop["a"], "viewer", HTTP_X_ARC_SCOPE="platform")
    for path in (CACHED, UNCACHED):
        assert_error(viewer.get(path), 403, "FORBIDDEN")


# -- rows the caller may no longer see ---------------------------------------------------------


def test_a_cached_get_of_a_row_moved_to_another_tenant_is_404(shop):
    viewer = member(shop["a"], "viewer")
    product = Product.objects.filter(organization=shop["a"]).first()
    hit_twins(viewer, CACHED, UNCACHED, query=f"{product.pk}/")
    product.organization = shop["b"]
    product.save()
    assert_error(viewer.get(f"{CACHED}{product.pk}/"), 404, "NOT_FOUND")
    hit_twins(member(shop["b"], "viewer"), CACHED, UNCACHED, query=f"{product.pk}/")


sec_site = ResourceSite(name="sec")
ADMIN_OR_OWNER = P.any_of(P.require_org_role("admin"), P.require_owner("owner"))


class _Articles(Resource):
    """Tenancy, soft deletion and ownership, rows narrowed by owner for all but admins, a
    field only admins read and one masked for viewers."""

    model = Article
    fields = ["id", "organization", "owner", "slug", "title", "views", "secret", "deleted_at"]
    filter_fields = {"title": ["eq"]}
    sort_fields = ["title", "views"]
    default_sort = "title"
    presets = [
        presets.MultiTenant(),
        presets.SoftDelete(),
        presets.OwnedBy(bypass_roles=("admin",)),
    ]
    permissions = {
        "list": ADMIN_OR_OWNER,
        "get": ADMIN_OR_OWNER,
        "create": P.require_org_membership(),
        "update": ADMIN_OR_OWNER,
        "delete": ADMIN_OR_OWNER,
    }
    field_permissions = {"secret": F.visible_to("admin"), "views": F.redact_for("viewer", mask=0)}
    idempotent = True


@sec_site.register
class CachedArticleResource(_Articles):
    name = "articles"
    cache = {"stale_seconds": 30}


@sec_site.register
class UncachedArticleResource(_Articles):
    name = "uncached-articles"
    cache = False


ARTICLES, UNCACHED_ARTICLES = "/sec/articles/", "/sec/uncached-articles/"


@pytest.fixture
def articles(shop, settings):
    a = shop["a"]
    admin, alice, bob = member(a, "admin"), member(a, "viewer"), member(a, "editor")
    for owner, n in ((alice, 3), (bob, 2)):
        for i in range(n):
            Article.objects.create(
                organization=a,
                owner=owner.user,
                slug=f"{owner.user.username}-{i}",
                title=f"{owner.user.username} {i}",
                views=i + 1,
                secret="s",
            )
    Article.objects.create(organization=shop["b"], slug="b", title="other tenant", secret="s")
    with site_mounted(settings, "sec", sec_site):
        yield {"admin": admin, "alice": alice, "bob": bob, "a": a, "b": shop["b"]}


def test_owners_admins_and_masked_roles_each_get_their_own_list(articles):
    """alice (viewer) sees her own rows with ``views`` masked, bob (editor) his own with
    it, the admin every row of the tenant with ``secret``; none gets another's entry."""
    seen = {}
    for name in ("alice", "bob", "admin", "alice", "bob", "admin"):
        seen.setdefault(name, set()).add(twins(articles[name], ARTICLES, UNCACHED_ARTICLES).content)
    assert all(len(s) == 1 for s in seen.values()) and len(set().union(*seen.values())) == 3
    for name in ("alice", "bob"):
        owner = articles[name].user.pk
        docs = json.loads(next(iter(seen[name])))["docs"]
        assert docs and {d["owner"] for d in docs} == {owner}
        assert all("secret" not in d for d in docs)
    alice_docs = json.loads(next(iter(seen["alice"])))["docs"]
    assert {d["views"] for d in alice_docs} == {0}


def test_a_cached_get_of_a_row_handed_to_another_owner_is_404_to_the_old_one(articles):
    alice, bob = articles["alice"], articles["bob"]
    row = Article.objects.filter(owner=alice.user).first()
    hit_twins(alice, ARTICLES, UNCACHED_ARTICLES, query=f"{row.pk}/")
    row.owner = bob.user
    row.save()
    for path in (ARTICLES, UNCACHED_ARTICLES):
        assert_error(alice.get(f"{path}{row.pk}/"), 404, "NOT_FOUND")
    hit_twins(bob, ARTICLES, UNCACHED_ARTICLES, query=f"{row.pk}/")


def test_a_soft_deleted_row_leaves_the_cached_list_and_get_and_only_the_trash_shows_it(
    articles,
):
    alice = articles["alice"]
    row = Article.objects.filter(owner=alice.user).first()
    hit_twins(alice, ARTICLES, UNCACHED_ARTICLES)
    hit_twins(alice, ARTICLES, UNCACHED_ARTICLES, query=f"{row.pk}/")
    assert alice.delete(f"{ARTICLES}{row.pk}/").json()["data"]["soft"] is True
    listed = hit_twins(alice, ARTICLES, UNCACHED_ARTICLES)
    assert row.pk not in {d["id"] for d in listed.json()["docs"]}
    assert_error(alice.get(f"{ARTICLES}{row.pk}/"), 404, "NOT_FOUND")
    trash = twins(alice, f"{ARTICLES}deleted/", f"{UNCACHED_ARTICLES}deleted/")
    assert [d["id"] for d in trash.json()["docs"]] == [row.pk]
    assert "X-Cache" not in trash  # the trash route is not one the cache answers
    # another owner's trash does not hold it
    assert (
        twins(articles["bob"], f"{ARTICLES}deleted/", f"{UNCACHED_ARTICLES}deleted/").json()["docs"]
        == []
    )
    # another owner cannot restore it (the trash is narrowed by owner too): still 404
    assert_error(articles["bob"].post(f"{ARTICLES}{row.pk}/restore/"), 404, "NOT_FOUND")
    assert_error(alice.get(f"{ARTICLES}{row.pk}/"), 404, "NOT_FOUND")
    assert alice.post(f"{ARTICLES}{row.pk}/restore/").status_code == 200
    hit_twins(alice, ARTICLES, UNCACHED_ARTICLES, query=f"{row.pk}/")


def test_a_keyset_cursor_minted_in_one_tenant_pages_only_the_callers_rows(articles):
    admin = articles["admin"]
    first = twins(admin, ARTICLES, UNCACHED_ARTICLES, query="?after=&limit=2")
    cursor = first.json()["next"]
    assert cursor
    outsider = member(articles["b"], "admin")
    for client in (admin, outsider):
        page = hit_twins(client, ARTICLES, UNCACHED_ARTICLES, query=f"?after={cursor}&limit=2")
        orgs = {d["organization"] for d in page.json()["docs"]}
        assert orgs <= {int(client._credentials["HTTP_X_ORGANIZATION_ID"])}


# -- context dimensions ----------------------------------------------------------------------------

context_site = ResourceSite(name="ctx")


class _BranchNotes(Resource):
    model = Note
    fields = ["id", "organization", "branch", "owner", "text"]
    presets = [
        presets.MultiTenant(
            tenant_fields=[
                {"field": "organization", "type": "org"},
                {"field": "branch", "context_key": "branch_id"},
            ]
        )
    ]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}


@context_site.register
class CachedBranchNoteResource(_BranchNotes):
    name = "notes"
    cache = {"stale_seconds": 30}


@context_site.register
class UncachedBranchNoteResource(_BranchNotes):
    name = "uncached-notes"
    cache = False


@pytest.mark.parametrize(
    "branch",
    ["north", "North", " north", "north ", "south", "", None],
)
def test_each_context_header_spelling_gets_the_answer_it_gets_uncached(shop, settings, branch):
    org = shop["a"]
    for name in ("north", "North", "south"):
        Note.objects.create(organization=org, branch=name, text=f"{name} note")
    Note.objects.create(organization=shop["b"], branch="north", text="other tenant")
    viewer = member(org, "viewer")
    headers = {} if branch is None else {"HTTP_X_ARC_CONTEXT_BRANCH_ID": branch}
    with site_mounted(settings, "ctx", context_site):
        # another branch's entry first: a spelling must never reach it
        twins(viewer, "/ctx/notes/", "/ctx/uncached-notes/", HTTP_X_ARC_CONTEXT_BRANCH_ID="north")
        answer = hit_twins(viewer, "/ctx/notes/", "/ctx/uncached-notes/", **headers)
    if answer.status_code == 200:
        texts = {d["text"] for d in answer.json()["docs"]}
        assert texts == {f"{branch.strip()} note"}


# -- service clients, anonymous callers, HEAD, response headers -------------------------------


def test_a_service_client_and_a_member_of_its_org_each_get_their_own_answer(shop):
    _, key = ServiceClient.objects.create_with_key(name="sync", organization_id=shop["a"].pk)
    service = client_for(HTTP_AUTHORIZATION=f"Bearer {key}")
    service_b = client_for(
        HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_X_ORGANIZATION_ID=str(shop["b"].pk)
    )
    viewer, admin = member(shop["a"], "viewer"), member(shop["a"], "admin")
    for client in (admin, service, viewer, service, admin):
        hit_twins(client, CACHED, UNCACHED)
    for path in (CACHED, UNCACHED):
        assert_error(service_b.get(path), 403, "ORG_REQUIRED")
    anonymous = client_for(HTTP_X_ORGANIZATION_ID=str(shop["a"].pk))
    for path in (CACHED, UNCACHED):
        assert_error(anonymous.get(path), 401, "UNAUTHORIZED")


def test_a_head_miss_stores_the_whole_answer_for_the_gets_that_follow(shop):
    viewer = member(shop["a"], "viewer")
    head = viewer.head(CACHED)
    assert head.status_code == 200 and head["X-Cache"] == "MISS"
    hit = viewer.get(CACHED)
    assert hit["X-Cache"] == "HIT"
    assert hit.content == viewer.get(UNCACHED).content


def test_a_hit_carries_its_own_request_id_and_none_of_the_misses_cookies(shop):
    viewer = member(shop["a"], "viewer")
    miss = viewer.get(CACHED, HTTP_X_REQUEST_ID="first-caller")
    assert miss["X-Request-Id"] == "first-caller"
    other = member(shop["a"], "editor")  # sees what a viewer sees but sku unmasked: its own
    other.get(CACHED)
    hit = viewer.get(CACHED, HTTP_X_REQUEST_ID="second-caller")
    assert hit["X-Cache"] == "HIT" and hit["X-Request-Id"] == "second-caller"
    assert not hit.cookies
    # OPTIONS is never a cached answer
    assert "X-Cache" not in viewer.options(CACHED)


# -- idempotency keys --------------------------------------------------------------------------


KEYED = "/api/idem-products/"


def test_a_service_client_and_a_user_of_its_org_sending_one_key_each_run(shop):
    """Two callers of one organization, one key, one body: each gets a run of its own
    (the second is refused by the sku's uniqueness, as without a key), never the other's
    stored 201."""
    _, key = ServiceClient.objects.create_with_key(name="w", organization_id=shop["a"].pk)
    service = client_for(HTTP_AUTHORIZATION=f"Bearer {key}")
    editor = member(shop["a"], "editor")
    body = {"name": "keyed", "sku": "K-1", "price": "5.00"}
    idem = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}
    first = editor.post(KEYED, body, format="json", **idem)
    assert first.status_code == 201, first.content
    assert editor.post(KEYED, body, format="json", **idem)["X-Idempotency-Replayed"] == "true"
    second = service.post(KEYED, body, format="json", **idem)
    plain = service.post(KEYED, body, format="json")
    assert "X-Idempotency-Replayed" not in second
    assert second.status_code == plain.status_code != 201, second.content
    assert Product.objects.filter(sku="K-1").count() == 1


# -- a project serializer reading the scope ------------------------------------------------------


class ScopeAwareProductSerializer(serializers.ModelSerializer):
    """A project serializer rendering from the caller's scope — its org roles, service
    scopes and context — as a project may (``can_edit``, a branch's own price list): output
    django-arc cannot see into, keyed by the whole scope."""

    roles = serializers.SerializerMethodField()
    branch = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "name", "roles", "branch"]

    def get_roles(self, obj):
        return sorted(self.context["request"].arc_scope.org_roles)

    def get_branch(self, obj):
        return self.context["request"].arc_scope.context.get("branch_id")


scope_site = ResourceSite(name="scoped")


class _ScopeAwareProducts(Resource):
    model = Product
    serializer_class = ScopeAwareProductSerializer
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}


@scope_site.register
class CachedScopeAwareProductResource(_ScopeAwareProducts):
    name = "products"
    cache = {"stale_seconds": 30}


@scope_site.register
class UncachedScopeAwareProductResource(_ScopeAwareProducts):
    name = "uncached-products"
    cache = False


def test_a_project_serializer_reading_the_scope_gets_an_entry_per_role_and_context(shop, settings):
    """The key held the caller's kind and id for a project serializer, not its org roles
    or context: the same user demoted from admin to viewer got the admin's cached answer
    (``"roles": ["admin"]``), and the same user in branch south got branch north's."""
    admin = member(shop["a"], "admin")
    cached, uncached = "/scoped/products/", "/scoped/uncached-products/"
    with site_mounted(settings, "scoped", scope_site):
        for path in ("", f"{Product.objects.filter(organization=shop['a']).first().pk}/"):
            first = hit_twins(admin, cached + path, uncached + path)
            assert "admin" in first.content.decode()
            north = hit_twins(
                admin, cached + path, uncached + path, HTTP_X_ARC_CONTEXT_BRANCH_ID="north"
            )
            south = twins(
                admin, cached + path, uncached + path, HTTP_X_ARC_CONTEXT_BRANCH_ID="south"
            )
            assert north.content != south.content
        Membership.objects.filter(user=admin.user).update(role="viewer")
        resolve_membership.invalidate(admin.user.pk, shop["a"].pk)
        demoted = twins(admin, cached, uncached)
        assert "admin" not in demoted.content.decode()


class CallerAwareProductSerializer(serializers.ModelSerializer):
    """A project serializer rendering the rest of the scope: the user's own roles, the
    service client and its scopes."""

    caller = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "name", "caller"]

    def get_caller(self, obj):
        scope = self.context["request"].arc_scope
        return [scope.client_id, sorted(scope.scopes), sorted(scope.user_roles)]


caller_site = ResourceSite(name="callers")


class _CallerAwareProducts(Resource):
    model = Product
    serializer_class = CallerAwareProductSerializer
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership()}


@caller_site.register
class CachedCallerAwareProductResource(_CallerAwareProducts):
    name = "products"
    cache = {"stale_seconds": 30}


@caller_site.register
class UncachedCallerAwareProductResource(_CallerAwareProducts):
    name = "uncached-products"
    cache = False


def test_a_project_serializer_reading_clients_scopes_and_user_roles_gets_an_entry_for_each(
    shop, settings
):
    """Two service clients of one organization with the same scopes, one client whose
    scopes changed, and one user given a role (a Django group) are each another caller to a
    project serializer rendering them: none is served another's cached answer."""
    from django.contrib.auth.models import Group

    cached, uncached = "/callers/products/", "/callers/uncached-products/"
    first, key_1 = ServiceClient.objects.create_with_key(
        name="one", organization_id=shop["a"].pk, scopes=["read"]
    )
    _, key_2 = ServiceClient.objects.create_with_key(
        name="two", organization_id=shop["a"].pk, scopes=["read"]
    )
    with site_mounted(settings, "callers", caller_site):
        one = hit_twins(client_for(HTTP_AUTHORIZATION=f"Bearer {key_1}"), cached, uncached)
        two = twins(client_for(HTTP_AUTHORIZATION=f"Bearer {key_2}"), cached, uncached)
        assert two["X-Cache"] == "MISS" and one.content != two.content
        first.scopes = ["read", "write"]
        first.save()
        wider = twins(client_for(HTTP_AUTHORIZATION=f"Bearer {key_1}"), cached, uncached)
        assert wider["X-Cache"] == "MISS" and "write" in wider.content.decode()
        viewer = member(shop["a"], "viewer")
        plain = hit_twins(viewer, cached, uncached)
        viewer.user.groups.add(Group.objects.create(name="pricing"))
        viewer.force_authenticate(type(viewer.user).objects.get(pk=viewer.user.pk))
        promoted = twins(viewer, cached, uncached)
        assert promoted["X-Cache"] == "MISS" and promoted.content != plain.content
        assert "pricing" in promoted.content.decode()


# -- a project renderer reading the request ------------------------------------------------------


class SignedJSONRenderer(JSONRenderer):
    """A project JSON renderer that writes who asked into every answer (a signature, an
    audit stamp): output django-arc cannot see into, like a project serializer's."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        request = (renderer_context or {}).get("request")
        if isinstance(data, dict) and request is not None:
            data = {**data, "for": getattr(request.user, "username", None)}
        return super().render(data, accepted_media_type, renderer_context)


render_site = ResourceSite(name="rendered")


class _RenderedProducts(Resource):
    model = Product
    fields = ["id", "name"]
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}
    renderer_classes = [SignedJSONRenderer]


@render_site.register
class CachedRenderedProductResource(_RenderedProducts):
    name = "products"
    cache = {"stale_seconds": 30}


@render_site.register
class UncachedRenderedProductResource(_RenderedProducts):
    name = "uncached-products"
    cache = False


def test_a_project_renderer_gets_an_entry_per_caller(shop, settings):
    """Only the renderer's class was in the key: two viewers of one organization shared an
    entry, and the second got the answer signed for the first."""
    first, second = member(shop["a"], "viewer"), member(shop["a"], "viewer")
    cached, uncached = "/rendered/products/", "/rendered/uncached-products/"
    with site_mounted(settings, "rendered", render_site):
        for client in (first, second):
            answer = hit_twins(client, cached, uncached)
            assert answer.json()["for"] == client.user.username


def test_a_restore_key_replayed_by_another_owner_is_their_own_404(articles):
    """alice restores her row under a key; bob, sending the same key and body to the same
    path, gets the 404 his own request gets, never alice's stored 200 (nor its row)."""
    alice, bob = articles["alice"], articles["bob"]
    row = Article.objects.filter(owner=alice.user).first()
    assert alice.delete(f"{ARTICLES}{row.pk}/").status_code == 200
    key = {"HTTP_IDEMPOTENCY_KEY": "restore-1"}
    restored = alice.post(f"{ARTICLES}{row.pk}/restore/", {}, format="json", **key)
    assert restored.status_code == 200, restored.content
    replay = alice.post(f"{ARTICLES}{row.pk}/restore/", {}, format="json", **key)
    assert replay["X-Idempotency-Replayed"] == "true" and replay.content == restored.content
    Article.objects.filter(pk=row.pk).update(deleted_at=timezone.now())
    theirs = bob.post(f"{ARTICLES}{row.pk}/restore/", {}, format="json", **key)
    assert "X-Idempotency-Replayed" not in theirs
    assert_error(theirs, 404, "NOT_FOUND")
    assert Article.objects.get(pk=row.pk).deleted_at is not None


def test_a_bulk_key_replayed_in_another_tenant_runs_there(shop):
    """A bulk delete of org a's rows under a key, sent with the same key and body by an
    admin of org b: a run of b's own (a's ids are not b's rows), never a's stored answer."""
    admin_a, admin_b = member(shop["a"], "admin"), member(shop["b"], "admin")
    ids = list(Product.objects.filter(organization=shop["a"]).values_list("pk", flat=True))
    key = {"HTTP_IDEMPOTENCY_KEY": "bulk-1"}
    body = {"ids": ids[:2]}
    mine = admin_a.delete(f"{KEYED}bulk/", body, format="json", **key)
    assert mine.status_code == 200 and mine.json()["data"]["deleted"] == 2, mine.content
    theirs = admin_b.delete(f"{KEYED}bulk/", body, format="json", **key)
    plain = admin_b.delete(f"{KEYED}bulk/", body, format="json")
    assert "X-Idempotency-Replayed" not in theirs
    assert theirs.status_code == plain.status_code and theirs.status_code != 200
    assert Product.objects.filter(organization=shop["b"]).count() == 3


def test_an_elevated_hit_is_audited_like_its_miss(shop):
    """The elevation is recorded when the scope is resolved, before the cache is asked: a
    HIT answered to a platform admin leaves its own ``arc.scope.elevated`` event."""
    boss = UserFactory(is_superuser=True)
    elevated = client_for(boss, HTTP_X_ARC_SCOPE="platform")
    assert elevated.get(CACHED)["X-Cache"] == "MISS"
    assert elevated.get(CACHED)["X-Cache"] == "HIT"
    assert OutboxEvent.objects.filter(type="arc.scope.elevated").count() == 2


def test_an_admin_demoted_to_owner_rows_no_longer_gets_the_tenants_list(articles):
    """An admin sees every row of the tenant, the same user as a viewer only its own:
    the permission's row filter is in the key, so the demotion is a MISS of its own."""
    admin = articles["admin"]
    Article.objects.create(organization=articles["a"], owner=admin.user, slug="mine", title="m")
    everything = hit_twins(admin, ARTICLES, UNCACHED_ARTICLES)
    assert len(everything.json()["docs"]) == 6
    Membership.objects.filter(user=admin.user).update(role="viewer")
    resolve_membership.invalidate(admin.user.pk, articles["a"].pk)
    own = hit_twins(admin, ARTICLES, UNCACHED_ARTICLES)
    assert [d["slug"] for d in own.json()["docs"]] == ["mine"]


catalogue_site = ResourceSite(name="catalogue")


class _Catalogue(Resource):
    """A shared catalogue: anonymous and org-less callers read every tenant's rows, members
    their own tenant's; ``cost`` only for admins."""

    model = Product
    fields = ["id", "name", "cost", "organization"]
    presets = [presets.MultiTenant(allow_public_reads=True)]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    field_permissions = {"cost": F.visible_to("admin")}


@catalogue_site.register
class CachedCatalogueResource(_Catalogue):
    name = "products"
    cache = {"stale_seconds": 30}


@catalogue_site.register
class UncachedCatalogueResource(_Catalogue):
    name = "uncached-products"
    cache = False


def test_anonymous_org_less_and_member_callers_of_a_public_catalogue(shop, settings):
    anonymous = client_for()
    anonymous_naming_an_org = client_for(HTTP_X_ORGANIZATION_ID=str(shop["a"].pk))
    orgless = client_for(UserFactory())
    admin = member(shop["a"], "admin")
    superuser = client_for(UserFactory(is_superuser=True), HTTP_X_ARC_SCOPE="platform")
    cached, uncached = "/catalogue/products/", "/catalogue/uncached-products/"
    with site_mounted(settings, "catalogue", catalogue_site):
        for client in (admin, anonymous, anonymous_naming_an_org, orgless, superuser, admin):
            hit_twins(client, cached, uncached)
        assert len(anonymous.get(cached).json()["docs"]) == 6
        assert all("cost" not in d for d in anonymous.get(cached).json()["docs"])
        assert len(admin.get(cached).json()["docs"]) == 3


def test_a_queryset_that_does_not_pickle_is_keyed_by_its_database_too():
    """A queryset holding something that does not pickle (a lambda on an expression) is
    keyed by its compiled SQL: that SQL is the same on two databases (a router sending each
    tenant's rows to its own), so the database must be in the key too, as it is in the
    pickle, or one database's rows are served for the other's."""
    expression = Value(1, output_field=IntegerField())
    expression.unpicklable = lambda: None
    rows = Product.objects.annotate(one=expression).filter(name="x")
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(rows.query)
    assert queryset_fingerprint(rows) == queryset_fingerprint(rows.all())
    assert queryset_fingerprint(rows.using("routed")) != queryset_fingerprint(rows)
