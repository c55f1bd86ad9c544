"""Domain actions end to end (rev-actions): what a project's handler answers, rows a caller
cannot see, and fields a caller may not read."""

import re

import pytest
from django.urls import include, path
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.test import APIClient

from django_arc import Resource, ResourceSite, action, presets
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import site_mounted
from tests.redis_support import idempotency_store
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

rev_actions_site = ResourceSite(name="rev-actions")


@rev_actions_site.register
class RevActionsProductResource(Resource):
    """An audited tenant resource whose ``approve`` refuses by answering a 409 itself."""

    model = Product
    name = "ra-products"
    fields = ["id", "name", "sku", "price", "status", "cost", "organization"]
    presets = [presets.MultiTenant(), presets.Audited()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}
    field_permissions = {"cost": F.hidden()}
    action_permissions = P.require_org_role("admin", "editor")
    idempotent = True

    @action
    def approve(self, request, instance, data):
        """Only a draft is approved; anything else is refused with the handler's own 409."""
        if instance.status != "draft":
            return Response(
                {"success": False, "error": "Not a draft", "code": "CONFLICT"}, status=409
            )
        instance.status = "active"
        instance.save(update_fields=["status"])
        return instance


@pytest.fixture
def ra_editor():
    org = OrganizationFactory()
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=org, role="editor").user)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    return client, org


def ra_act(client, pk, body):
    return client.post(f"/ra/ra-products/{pk}/action/", body, format="json")


def test_an_action_answering_a_refusal_itself_emits_no_event_and_no_audit_entry(
    settings, ra_editor
):
    """A handler refusing with its own 4xx ``Response`` did not do the action: the
    ``<name>.<action>`` event and the audit entry had told subscribers and auditors it did."""
    client, org = ra_editor
    row = ProductFactory(organization=org, status="archived")
    with site_mounted(settings, "ra", rev_actions_site):
        refused = ra_act(client, row.pk, {"action": "approve"})
        assert refused.status_code == 409, refused.content
        assert not OutboxEvent.objects.filter(type="ra-products.approve").exists()
        assert not AuditLog.objects.filter(action="approve").exists()
        draft = ProductFactory(organization=org, status="draft")
        done = ra_act(client, draft.pk, {"action": "approve"})
        assert done.status_code == 200, done.content
    assert OutboxEvent.objects.filter(type="ra-products.approve").count() == 1
    assert AuditLog.objects.filter(action="approve").count() == 1


def test_an_actions_answer_leaves_out_a_hidden_field_and_another_tenants_row_is_404(
    settings, ra_editor
):
    client, org = ra_editor
    draft = ProductFactory(organization=org, status="draft", cost=3)
    theirs = ProductFactory(organization=OrganizationFactory(), status="draft")
    with site_mounted(settings, "ra", rev_actions_site):
        done = ra_act(client, draft.pk, {"action": "approve"})
        assert done.status_code == 200, done.content
        assert done.json()["data"]["status"] == "active"
        assert "cost" not in done.json()["data"]
        # another tenant's row: the 404 of a missing one, for a known and an unknown action
        missing = ra_act(client, 10**9, {"action": "approve"})
        other = ra_act(client, theirs.pk, {"action": "approve"})
        assert other.status_code == missing.status_code == 404
        assert other.json()["code"] == missing.json()["code"] == "NOT_FOUND"
    theirs.refresh_from_db()
    assert theirs.status == "draft"
    assert OutboxEvent.objects.filter(type="ra-products.approve").count() == 1


class RevActionsRetitleInput(serializers.Serializer):
    title = serializers.CharField(max_length=200)


@rev_actions_site.register
class RevActionsArticleResource(Resource):
    """Soft-deleted, owned rows with a hidden field, and an action renaming one."""

    model = Article
    name = "ra-articles"
    fields = ["id", "organization", "owner", "slug", "title", "secret", "deleted_at"]
    presets = [presets.MultiTenant(), presets.SoftDelete(), presets.OwnedBy()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}
    field_permissions = {"secret": F.hidden()}
    action_permissions = P.require_org_role("admin", "editor")

    @action(input=RevActionsRetitleInput)
    def retitle(self, request, instance, data):
        instance.title = data["title"]
        instance.save(update_fields=["title"])
        return instance


def test_an_action_on_a_soft_deleted_or_anothers_row_writes_nothing(settings):
    """A soft-deleted row is 404 as for a get; a row the caller reads but does not own is
    OwnedBy's 403; neither is written or emits an event. The owner's answer hides
    ``secret``, and its event names the actor."""
    org = OrganizationFactory()
    owner, other = (MembershipFactory(organization=org, role="editor").user for _ in range(2))
    clients = {}
    for user in (owner, other):
        clients[user] = APIClient()
        clients[user].force_authenticate(user)
        clients[user].credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    live = Article.objects.create(organization=org, owner=owner, slug="a", title="A", secret="s")
    gone = Article.objects.create(
        organization=org, owner=owner, slug="b", title="B", deleted_at=timezone.now()
    )
    body = {"action": "retitle", "title": "Z"}
    with site_mounted(settings, "ra", rev_actions_site):
        deleted = clients[owner].post(f"/ra/ra-articles/{gone.pk}/action/", body, format="json")
        assert deleted.status_code == 404 and deleted.json()["code"] == "NOT_FOUND"
        stranger = clients[other].post(f"/ra/ra-articles/{live.pk}/action/", body, format="json")
        assert stranger.status_code == 403 and stranger.json()["code"] == "OWNERSHIP_DENIED"
        assert not OutboxEvent.objects.filter(type="ra-articles.retitle").exists()
        done = clients[owner].post(f"/ra/ra-articles/{live.pk}/action/", body, format="json")
        assert done.status_code == 200, done.content
        assert done.json()["data"]["title"] == "Z" and "secret" not in done.json()["data"]
    assert list(Article.objects.order_by("slug").values_list("title", flat=True)) == ["Z", "B"]
    event = OutboxEvent.objects.get(type="ra-articles.retitle")
    assert event.meta["user_id"] == str(owner.pk)
    assert event.payload == {"id": live.pk, "action": "retitle", "input": {"title": "Z"}}


def test_a_keyed_refused_action_is_replayed_and_its_key_names_one_action(settings, ra_editor):
    """Under an ``Idempotency-Key``: the handler's 409 is stored and replayed (no event
    either time); the key sent again with another body (the action done after all) is 422,
    not a run of it."""
    client, org = ra_editor
    row = ProductFactory(organization=org, status="archived")
    keyed = {"HTTP_IDEMPOTENCY_KEY": "ra-1"}
    url = f"/ra/ra-products/{row.pk}/action/"
    with idempotency_store("database"), site_mounted(settings, "ra", rev_actions_site):
        first = client.post(url, {"action": "approve"}, format="json", **keyed)
        again = client.post(url, {"action": "approve"}, format="json", **keyed)
        assert first.status_code == again.status_code == 409, first.content
        assert again["X-Idempotency-Replayed"] == "true" and again.content == first.content
        other = client.post(url, {"action": "approve", "why": "x"}, format="json", **keyed)
        assert other.status_code == 422, other.content
    assert not OutboxEvent.objects.filter(type="ra-products.approve").exists()
    assert not AuditLog.objects.filter(action="approve").exists()


@pytest.mark.parametrize(
    "name",
    [
        "__class__",
        "delete",
        "get_queryset",
        "_private",
        "run_action",
        "APPROVE",
        "approve ",
        "аpprove",
        "",
        None,
        ["approve"],
        {"approve": 1},
    ],
)
def test_an_action_name_that_is_not_declared_exactly_is_400_and_runs_nothing(
    settings, ra_editor, name
):
    """Only declared actions, spelt exactly: a method of the resource or the view, another
    case, a trailing space or a Cyrillic ``а`` is the 400 naming the allowed actions."""
    client, org = ra_editor
    draft = ProductFactory(organization=org, status="draft")
    with site_mounted(settings, "ra", rev_actions_site):
        r = ra_act(client, draft.pk, {"action": name})
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR", r.content
    assert "Allowed actions: approve." in r.json()["details"]["action"][0]
    draft.refresh_from_db()
    assert draft.status == "draft" and not OutboxEvent.objects.exists()


rev_actions_schema_site = ResourceSite(name="rev-actions-schema")


@rev_actions_schema_site.register
class RevActionsNamesResource(Resource):
    """Action names whose schema components used to coincide, or be no valid name."""

    model = Product
    name = "ra-names"
    fields = ["id", "name"]
    permissions = {"get": P.allow_public()}
    action_permissions = P.require_auth()

    @action(name="re_price")
    def snake(self, request, instance, data):
        return None

    @action(name="rePrice")
    def camel(self, request, instance, data):
        return None

    @action(name="mark as paid")
    def spaced(self, request, instance, data):
        return None


def test_each_action_has_its_own_valid_schema_component():
    """``re_price`` and ``rePrice`` were one component (``…RePriceAction``, the first
    registered), so the schema documented ``re_price`` as ``{"action": "rePrice"}``; ``mark
    as paid`` gave a component name with spaces, which OpenAPI does not allow."""
    schema = SchemaGenerator(
        patterns=[path("ras/", include(rev_actions_schema_site.urls))]
    ).get_schema(request=None, public=True)
    body = schema["paths"]["/ras/ra-names/{id}/action/"]["post"]["requestBody"]
    components = schema["components"]["schemas"]
    request = components[body["content"]["application/json"]["schema"]["$ref"].split("/")[-1]]
    mapping = request["discriminator"]["mapping"]
    assert sorted(mapping) == ["mark as paid", "rePrice", "re_price"]
    assert len(set(mapping.values())) == 3
    for name, ref in mapping.items():
        component = ref.split("/")[-1]
        assert re.fullmatch(r"[A-Za-z0-9._-]+", component), component
        assert components[component]["properties"]["action"]["allOf"][0]["enum"] == [name]
    assert sorted(r["$ref"] for r in request["oneOf"]) == sorted(mapping.values())
