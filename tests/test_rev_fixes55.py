"""rev-fixes55: a review of fix-seen10d (one collection per hard delete, the root locked
first) and fix-seen10a (a preset's after_write UPDATE read back, _narrows)."""

import pytest

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.outbox.models import OutboxEvent
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Folder

pytestmark = pytest.mark.django_db

RF55_MEMBERS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}

rf55_site = ResourceSite(name="rev-fixes55")


@rf55_site.register
class Rf55FolderResource(Resource):
    model = Folder
    name = "rf55-folders"
    fields = ["id", "organization", "owner", "name", "parent"]
    presets = [presets.MultiTenant(), presets.Bulk()]
    permissions = RF55_MEMBERS


@pytest.fixture
def rf55_mounted(settings):
    with site_mounted(settings, "rf55", rf55_site):
        yield


def _rf55_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


def test_rf55_a_tree_ordered_across_its_nullable_parent_deletes(rf55_mounted, monkeypatch):
    """A tree whose ``Meta.ordering`` follows its nullable parent (``parent__name``): the
    lock the single delete takes before collecting read the row in that order, a ``LEFT
    OUTER JOIN``, and PostgreSQL refuses ``FOR UPDATE`` on the nullable side of an outer
    join: every hard delete of such a tree was a 500."""
    monkeypatch.setattr(Folder._meta, "ordering", ["parent__name", "name"])
    org = OrganizationFactory()
    api, me = _rf55_member(org)
    top = Folder.objects.create(organization=org, owner=me, name="top")
    Folder.objects.create(organization=org, owner=me, name="under", parent=top)
    r = api.delete(f"/rf55/rf55-folders/{top.pk}/")
    assert r.status_code == 200, r.content
    assert not Folder.objects.exists()
    assert [e.type for e in OutboxEvent.objects.all()] == ["rf55-folders.deleted"]
