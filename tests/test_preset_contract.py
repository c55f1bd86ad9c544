"""The preset contract: preset routes read rows through the view, so they cannot see more
than the list does (the ``archived/`` leak of the old route contract), and each hook runs
where ``django_arc/presets/base.py`` says it does."""

import re
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from django_arc import ArcError, Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.actions import RouteSpec
from django_arc.outbox.models import OutboxEvent
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory, UserFactory
from tests.helpers import client_for, site_mounted  # noqa: E402
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db


@pytest.fixture
def owners():
    org = OrganizationFactory()
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")

    def note(owner, text, internal=""):
        return Note.objects.create(
            organization=org, branch="1", owner=owner, text=text, internal=internal
        )

    return {
        "alice": alice,
        "bob": bob,
        "a_live": note(alice, "a-live"),
        "a_old": note(alice, "a-old", "archived"),
        "b_old": note(bob, "b-old", "archived"),
        "b_live": note(bob, "b-live"),
    }


def texts(response):
    assert response.status_code == 200, response.content
    return sorted(doc["text"] for doc in response.json()["docs"])


def test_archive_route_is_as_narrow_as_the_list_under_require_owner(owners):
    """The docs' own preset on a resource whose list is ``require_owner``: with the old
    contract Alice's ``archived/`` listed Bob's rows too; through the view it cannot."""
    alice, bob = client_for(owners["alice"]), client_for(owners["bob"])
    assert texts(alice.get("/api/archived-notes/")) == ["a-live"]
    assert texts(alice.get("/api/archived-notes/archived/")) == ["a-old"]
    assert texts(bob.get("/api/archived-notes/archived/")) == ["b-old"]
    # the full query language and pagination apply to the preset route
    assert texts(alice.get("/api/archived-notes/archived/?text=b-old")) == []
    body = alice.get("/api/archived-notes/archived/?limit=1&sort=-text").json()
    assert (body["total"], body["limit"], len(body["docs"])) == (1, 1, 1)
    r = alice.get("/api/archived-notes/archived/?nope[gt]=1")
    assert r.status_code == 400 and r.json()["code"] == "INVALID_QUERY"
    # anonymous: the same 401 as the list
    assert APIClient().get("/api/archived-notes/archived/").status_code == 401


def test_archiving_goes_through_the_same_filters(owners):
    alice = client_for(owners["alice"])
    # Bob's live note is not Alice's to archive: 404, not 403, and nothing changes
    r = alice.delete(f"/api/archived-notes/{owners['b_live'].pk}/")
    assert r.status_code == 404
    r = alice.delete(f"/api/archived-notes/{owners['a_live'].pk}/")
    assert r.status_code == 200
    assert r.json()["data"] == {"id": owners["a_live"].pk, "soft": True}
    assert texts(alice.get("/api/archived-notes/archived/")) == ["a-live", "a-old"]
    assert texts(alice.get("/api/archived-notes/")) == []
    # an archived row is gone from the normal routes
    assert alice.get(f"/api/archived-notes/{owners['a_live'].pk}/").status_code == 404
    event = OutboxEvent.objects.get(type="archived-notes.deleted")
    assert event.payload == {"id": owners["a_live"].pk, "soft": True}


def test_archive_route_is_tenant_scoped():
    a, b = OrganizationFactory(), OrganizationFactory()
    ProductFactory(organization=a, name="a-old", status="archived")
    ProductFactory(organization=a, name="a-live")
    ProductFactory(organization=b, name="b-old", status="archived")
    member = MembershipFactory(organization=a, role="viewer").user
    client = client_for(member, HTTP_X_ORGANIZATION_ID=str(a.pk))
    names = sorted(d["name"] for d in client.get("/api/archived-products/archived/").json()["docs"])
    assert names == ["a-old"]
    assert [d["name"] for d in client.get("/api/archived-products/").json()["docs"]] == ["a-live"]
    # no org context: the route refuses like the list (ORG_REQUIRED), before any query
    r = client_for(member).get("/api/archived-products/archived/")
    assert r.status_code == 403 and r.json()["code"] == "ORG_REQUIRED"
    # elevated without an org sees every tenant's archive, like the list
    root = UserFactory(username="root", is_superuser=True)
    r = client_for(root, HTTP_X_ARC_SCOPE="platform").get("/api/archived-products/archived/")
    assert sorted(d["name"] for d in r.json()["docs"]) == ["a-old", "b-old"]


# -- each hook where the contract says it runs --------------------------------------------------


class Recorder(presets.Preset):
    """Records what the hooks see; refuses what the test tells it to."""

    name = "recorder"

    def __init__(self):
        self.writes = []

    def filter_queryset(self, view, queryset):
        # runs after MultiTenant's row_filter: both narrow every route
        return queryset.exclude(name="withdrawn")

    def check_object(self, view, obj):
        if obj.name == "locked" and view.action in ("partial_update", "destroy"):
            raise ArcError("OWNERSHIP_DENIED", "Not yours", 403)

    def search(self, view, queryset, term):
        if term.startswith("sku:"):
            return queryset.filter(sku=term[4:])
        return None

    def after_write(self, view, verb, instance, before, after):
        self.writes.append((verb, instance.pk, before, after))
        if after is not None and after.get("name") == "explode":
            raise ArcError("AUDIT_FAILED", "could not audit", 409)

    def routes(self, resource):
        return [
            RouteSpec(
                methods=["GET"],
                path="by-sku/{sku}",
                handler=self.by_sku,
                name="by_sku",
                permission_key="get",
                lookup_field="sku",
            )
        ]

    def by_sku(self, view, request, sku):
        return view.get_object()


site = ResourceSite(name="contract")
recorder = Recorder()


@site.register
class RecordedProductResource(Resource):
    model = Product
    name = "recorded"
    fields = ["id", "name", "sku", "price", "organization", "secret_notes"]
    search_fields = ["name"]
    presets = [presets.MultiTenant(), recorder]
    field_permissions = {"secret_notes": __import__("django_arc").fields.hidden()}
    permissions = {
        "list": P.require_org_membership(),
        "get": P.require_org_membership(),
        "create": P.require_org_membership(),
        "update": P.require_org_membership(),
        "delete": P.require_org_membership(),
    }


@pytest.fixture
def contract_urls(settings):
    recorder.writes.clear()
    org = OrganizationFactory()
    user = MembershipFactory(organization=org, role="admin").user
    with site_mounted(settings, "c", site):
        yield org, client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))


def test_check_object_refuses_after_the_lookup(contract_urls):
    org, client = contract_urls
    locked = ProductFactory(organization=org, name="locked")
    assert client.get(f"/c/recorded/{locked.pk}/").status_code == 200
    r = client.patch(f"/c/recorded/{locked.pk}/", {"price": "1.00"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "OWNERSHIP_DENIED"
    assert client.delete(f"/c/recorded/{locked.pk}/").status_code == 403
    assert Product.objects.filter(pk=locked.pk, price=10).exists()
    assert recorder.writes == []


def test_after_write_sees_verb_and_row_before_and_after_without_hidden_fields(contract_urls):
    org, client = contract_urls
    r = client.post(
        "/c/recorded/",
        {"name": "n1", "sku": "S1", "price": "2.00", "secret_notes": "x"},
        format="json",
    )
    assert r.status_code == 201, r.content
    pk = r.json()["data"]["id"]
    client.patch(f"/c/recorded/{pk}/", {"price": "3.00"}, format="json")
    client.delete(f"/c/recorded/{pk}/")
    verbs = [(verb, row_pk) for verb, row_pk, _, _ in recorder.writes]
    assert verbs == [("created", pk), ("updated", pk), ("deleted", pk)]
    (_, _, before_c, after_c), (_, _, before_u, after_u), (_, _, before_d, after_d) = (
        recorder.writes
    )
    assert before_c is None and after_c["price"] == "2.00"
    assert before_u["price"] == "2.00" and after_u["price"] == "3.00"
    assert before_d["price"] == "3.00" and after_d is None
    for row in (after_c, before_u, after_u, before_d):
        assert "secret_notes" not in row


def test_after_write_raising_rolls_the_write_and_its_event_back(contract_urls):
    org, client = contract_urls
    r = client.post("/c/recorded/", {"name": "explode", "sku": "S2", "price": "2"}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "AUDIT_FAILED"
    assert not Product.objects.filter(sku="S2").exists()
    assert not OutboxEvent.objects.filter(type="recorded.created").exists()


def test_search_hook_takes_over_and_declines(contract_urls):
    org, client = contract_urls
    ProductFactory(organization=org, name="alpha", sku="AAA")
    ProductFactory(organization=org, name="beta", sku="BBB")
    ProductFactory(sku="BBB")  # another tenant: the hook searches the view's queryset
    docs = client.get("/c/recorded/?search=sku:BBB").json()["docs"]
    assert [d["name"] for d in docs] == ["beta"]
    docs = client.get("/c/recorded/?search=alp").json()["docs"]  # declined: search_fields
    assert [d["name"] for d in docs] == ["alpha"]


def test_route_url_kwargs_and_lookup_field_go_through_the_filters(contract_urls):
    org, client = contract_urls
    ProductFactory(organization=org, name="mine", sku="MINE-1")
    ProductFactory(name="theirs", sku="THEIRS-1")
    r = client.get("/c/recorded/by-sku/MINE-1/")
    assert r.status_code == 200 and r.json()["data"]["name"] == "mine"
    assert client.get("/c/recorded/by-sku/THEIRS-1/").status_code == 404
    assert client.get("/c/recorded/by-sku/nope/").status_code == 404


def test_row_filter_and_filter_queryset_both_narrow_every_route(contract_urls):
    """MultiTenant narrows through ``row_filter`` (a condition), the recorder through
    ``filter_queryset`` (a queryset): lists, lookups and preset routes see neither the other
    tenant's rows nor the withdrawn one."""
    org, client = contract_urls
    mine = ProductFactory(organization=org, name="mine", sku="MINE-2")
    withdrawn = ProductFactory(organization=org, name="withdrawn", sku="GONE-1")
    theirs = ProductFactory(name="theirs", sku="THEIRS-2")
    docs = client.get("/c/recorded/").json()["docs"]
    assert [d["name"] for d in docs] == ["mine"]
    assert client.get(f"/c/recorded/{mine.pk}/").status_code == 200
    for row in (withdrawn, theirs):
        assert client.get(f"/c/recorded/{row.pk}/").status_code == 404
        assert client.get(f"/c/recorded/by-sku/{row.sku}/").status_code == 404
        assert client.delete(f"/c/recorded/{row.pk}/").status_code == 404
    assert Product.objects.filter(pk__in=[withdrawn.pk, theirs.pk]).count() == 2


def test_the_core_names_no_preset():
    """Presets are built only on the contract: nothing outside ``django_arc/presets/``
    imports a preset or names a preset's module (``presets.base``, the contract, may be
    named; so may a preset in prose: ``e.g. [presets.MultiTenant()]`` in a check's hint)."""
    root = Path(presets.__file__).resolve().parent.parent
    modules = [
        p.stem for p in (root / "presets").glob("*.py") if p.stem not in ("__init__", "base")
    ]
    classes = [name for name in presets.__all__ if name != "Preset"]
    named = re.compile(
        rf"presets\.({'|'.join(modules)})\b|from \.+presets import .*\b({'|'.join(classes)})\b"
    )
    offenders = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in root.rglob("*.py")
        if "presets" not in path.relative_to(root).parts[:1]
        and "migrations" not in path.relative_to(root).parts[:1]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if named.search(line)
    ]
    assert len(modules) >= 6 and "Bulk" in classes
    assert offenders == []
