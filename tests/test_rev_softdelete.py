"""rev-softdelete: SoftDelete and OwnedBy end to end, as a project combines them."""

import pytest
from django.db.models import Q

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.checks import check_resource
from django_arc.outbox.models import OutboxEvent
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Folder, RevSdLivePage, RevSdPage

pytestmark = pytest.mark.django_db

RSD_MEMBERS = {
    "list": P.require_org_membership(),
    "get": P.require_org_membership(),
    "create": P.require_org_membership(),
    "update": P.require_org_membership(),
    "delete": P.require_org_membership(),
}

rsd_site = ResourceSite(name="rev-softdelete")


@rsd_site.register
class RsdPageResource(Resource):
    model = RevSdPage
    name = "rsd-pages"
    fields = ["id", "organization", "owner", "slug", "title", "deleted_at"]
    filter_fields = {"slug": ["eq"]}
    presets = [
        presets.MultiTenant(),
        presets.OwnedBy(bypass_roles=("admin",)),
        presets.SoftDelete(),
        presets.SlugLookup(),
        presets.Audited(),
        presets.Bulk(),
    ]
    permissions = RSD_MEMBERS
    idempotent = True


@rsd_site.register
class RsdLivePageResource(Resource):
    """Over a model whose default manager serves live rows only: given every row."""

    model = RevSdLivePage
    name = "rsd-live-pages"
    queryset = RevSdLivePage.all_objects.all()
    fields = ["id", "organization", "owner", "slug", "title", "deleted_at"]
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.SoftDelete()]
    permissions = RSD_MEMBERS


@pytest.fixture
def rsd_mounted(settings):
    with site_mounted(settings, "rsd", rsd_site):
        yield


def _rsd_member(org, role="member"):
    user = MembershipFactory(organization=org, role=role).user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


URL = "/rsd/rsd-pages/"


def test_rsd_a_trashed_slug_is_free_and_restoring_into_its_reuse_is_a_409_writing_nothing(
    rsd_mounted,
):
    """Unique among live rows only (``condition=Q(deleted_at__isnull=True)``): a deleted
    row's slug may be reused (201, as the table allows), and restoring the deleted row then
    is the database's refusal, 409 ``CONFLICT``, with the row still in the trash, no
    ``restored`` event and no audit entry; once the clash is gone the restore succeeds."""
    org = OrganizationFactory()
    api, _ = _rsd_member(org)
    first = api.post(URL, {"slug": "about", "title": "one"}, format="json")
    assert first.status_code == 201, first.content
    pk = first.json()["data"]["id"]
    assert api.delete(f"{URL}{pk}/").status_code == 200
    reuse = api.post(URL, {"slug": "about", "title": "two"}, format="json")
    assert reuse.status_code == 201, reuse.content
    clash = api.post(f"{URL}{pk}/restore/")
    assert_error(clash, 409, "CONFLICT")
    assert RevSdPage.objects.get(pk=pk).deleted_at is not None
    assert [d["id"] for d in api.get(f"{URL}deleted/").json()["docs"]] == [pk]
    assert not OutboxEvent.objects.filter(type="rsd-pages.restored").exists()
    assert not AuditLog.objects.filter(action="restored").exists()
    # the reuse trashed in turn: the first restores, the second then clashes
    assert api.delete(f"{URL}{reuse.json()['data']['id']}/").status_code == 200
    assert api.post(f"{URL}{pk}/restore/").status_code == 200
    assert_error(api.post(f"{URL}{reuse.json()['data']['id']}/restore/"), 409, "CONFLICT")
    assert list(RevSdPage.objects.filter(deleted_at=None).values_list("pk", flat=True)) == [pk]
    assert OutboxEvent.objects.filter(type="rsd-pages.restored").count() == 1


def test_rsd_a_keyed_restore_clash_is_a_409_and_its_replay_the_same(rsd_mounted):
    """The same restore under an ``Idempotency-Key``: the keyed request's transaction is
    broken by the refused ``UPDATE`` (PostgreSQL), which must still be a 409, not a 500."""
    org = OrganizationFactory()
    api, _ = _rsd_member(org)
    pk = api.post(URL, {"slug": "faq", "title": "one"}, format="json").json()["data"]["id"]
    api.delete(f"{URL}{pk}/")
    assert api.post(URL, {"slug": "faq", "title": "two"}, format="json").status_code == 201
    key = {"HTTP_IDEMPOTENCY_KEY": "rsd-restore-1"}
    first = api.post(f"{URL}{pk}/restore/", {}, format="json", **key)
    assert_error(first, 409, "CONFLICT")
    again = api.post(f"{URL}{pk}/restore/", {}, format="json", **key)
    assert_error(again, 409, "CONFLICT")
    assert again["X-Idempotency-Replayed"] == "true" and again.content == first.content
    assert RevSdPage.objects.get(pk=pk).deleted_at is not None


def test_rsd_a_bulk_soft_delete_frees_the_slugs_for_a_bulk_create(rsd_mounted):
    org = OrganizationFactory()
    api, _ = _rsd_member(org)
    made = api.post(f"{URL}bulk/", {"items": [{"slug": "a"}, {"slug": "b"}]}, format="json").json()[
        "data"
    ]["ids"]
    assert api.delete(f"{URL}bulk/", {"ids": made}, format="json").status_code == 200
    again = api.post(f"{URL}bulk/", {"items": [{"slug": "a"}, {"slug": "b"}]}, format="json")
    assert again.status_code == 201, again.content
    assert RevSdPage.objects.filter(deleted_at=None).count() == 2
    assert RevSdPage.objects.exclude(deleted_at=None).count() == 2


def _rsd_check_messages(queryset, model=RevSdPage):
    class RsdTrashless(Resource):  # not registered: checked alone
        model = None
        name = "rsd-trashless"
        fields = ["id", "organization", "owner", "slug", "title", "deleted_at"]
        presets = [presets.MultiTenant(), presets.SoftDelete()]
        permissions = RSD_MEMBERS

    RsdTrashless.model, RsdTrashless.queryset = model, queryset
    return [(e.id, e.msg) for e in check_resource(RsdTrashless())]


@pytest.mark.parametrize(
    "queryset",
    [
        RevSdPage.objects.filter(deleted_at__isnull=True),
        RevSdPage.objects.filter(deleted_at=None),
        RevSdPage.objects.exclude(deleted_at__isnull=False),
        RevSdPage.objects.select_related("owner").filter(title__gt="", deleted_at=None),
    ],
    ids=["isnull", "none", "exclude", "among-others"],
)
def test_rsd_a_base_queryset_hiding_the_trash_is_reported(queryset):
    """A resource whose ``queryset`` (or model's default manager — the usual "live rows
    only" manager) already leaves deleted rows out starts every route from live rows: its
    trash is always empty and no row is ever restorable, though each DELETE answers
    ``"soft": true``. ``manage.py check`` says so (arc.E011) instead of serving it."""
    errors = _rsd_check_messages(queryset)
    assert [code for code, _ in errors] == ["arc.E011"], errors
    assert "leaves out the rows SoftDelete field 'deleted_at' marks deleted" in errors[0][1]


@pytest.mark.parametrize(
    "queryset",
    [
        None,
        RevSdPage.objects.all(),
        RevSdPage.objects.select_related("owner"),
        RevSdPage.objects.filter(deleted_at__isnull=False),
        RevSdPage.objects.filter(Q(deleted_at=None) | Q(title="kept")),
        RevSdPage.objects.exclude(deleted_at=None, title="x"),
        RevSdPage.objects.filter(title=None),
    ],
    ids=["default", "all", "joined", "deleted-only", "or", "exclude-pair", "other-column"],
)
def test_rsd_a_base_queryset_keeping_the_trash_is_not_reported(queryset):
    assert _rsd_check_messages(queryset) == []


def test_rsd_the_slug_route_finds_the_live_row_beside_a_trashed_namesake(rsd_mounted):
    """A live row and a trashed one share a slug (unique among live rows only): the slug
    route answers the live one, not the 404 of a lookup matching several rows; with the
    live one trashed too it is 404, and another tenant's namesake is never found."""
    org, other = OrganizationFactory(), OrganizationFactory()
    api, _ = _rsd_member(org)
    theirs, _ = _rsd_member(other)
    old = api.post(URL, {"slug": "team", "title": "old"}, format="json").json()["data"]["id"]
    api.delete(f"{URL}{old}/")
    new = api.post(URL, {"slug": "team", "title": "new"}, format="json").json()["data"]["id"]
    found = api.get(f"{URL}slug/team/")
    assert found.status_code == 200 and found.json()["data"]["id"] == new, found.content
    assert_error(theirs.get(f"{URL}slug/team/"), 404, "NOT_FOUND")
    api.delete(f"{URL}{new}/")
    assert_error(api.get(f"{URL}slug/team/"), 404, "NOT_FOUND")


def test_rsd_a_default_manager_serving_live_rows_only_is_reported_and_all_objects_is_not():
    errors = _rsd_check_messages(None, RevSdLivePage)
    assert [code for code, _ in errors] == ["arc.E011"], errors
    assert "RevSdLivePage's default manager" in errors[0][1]
    assert _rsd_check_messages(RevSdLivePage.all_objects.all(), RevSdLivePage) == []
    assert _rsd_check_messages(RevSdLivePage.all_objects, RevSdLivePage) == []


def test_rsd_given_every_row_a_live_only_model_has_its_trash_and_restore(rsd_mounted):
    org = OrganizationFactory()
    api, _ = _rsd_member(org)
    url = "/rsd/rsd-live-pages/"
    pk = api.post(url, {"slug": "x"}, format="json").json()["data"]["id"]
    assert api.delete(f"{url}{pk}/").json()["data"] == {"id": pk, "soft": True}
    assert [d["id"] for d in api.get(f"{url}deleted/").json()["docs"]] == [pk]
    assert api.get(url).json()["docs"] == []
    assert api.post(f"{url}{pk}/restore/").status_code == 200
    assert [d["id"] for d in api.get(url).json()["docs"]] == [pk]


def _rf53_folder_check_ids(queryset):
    class Rf53Folders(Resource):  # not registered: checked alone
        model = Folder
        name = "rf53-folders"
        fields = ["id", "organization", "name", "parent", "deleted_at"]
        presets = [presets.MultiTenant(), presets.SoftDelete()]
        permissions = RSD_MEMBERS

    Rf53Folders.queryset = queryset
    return [e.id for e in check_resource(Rf53Folders())]


@pytest.mark.parametrize(
    ("queryset", "expected"),
    [
        (Folder.objects.filter(parent__deleted_at=None), []),
        (Folder.objects.filter(parent__deleted_at__isnull=True), []),
        (Folder.objects.filter(children__deleted_at=None), []),
        (Folder.objects.filter(parent__deleted_at=None, deleted_at=None), ["arc.E011"]),
        (Folder.objects.filter(deleted_at=None), ["arc.E011"]),
    ],
    ids=["parent", "parent-isnull", "children", "parent-and-own", "own"],
)
def test_rf53_a_self_relation_s_deleted_at_is_another_row_s_not_the_trash_hidden(
    queryset, expected
):
    """A tree whose resource serves the rows under a live parent
    (``filter(parent__deleted_at=None)``) keeps its own deleted rows: the condition is on
    the parent's column, the same model field reached through a self join. The check took
    it for the row's own and refused to start (arc.E011) a resource whose trash works."""
    assert _rf53_folder_check_ids(queryset) == expected
