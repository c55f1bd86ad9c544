"""fix-seen10d: what the last reviewers saw in cascades and uploads — the cascade check and
the delete share one collection of the rows (one run of Django's collector, the same set
judged and deleted, also against a child another caller adds meanwhile), and an upload no
alternative name fits is refused rather than stored over a name a row holds."""

import threading

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models.signals import post_delete, pre_delete
from django.test.utils import CaptureQueriesContext

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.generics import ResourceGenericViewSet
from django_arc.outbox.models import OutboxEvent
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, in_thread, site_mounted
from tests.testapp.models import Attachment, Folder

pytestmark = pytest.mark.django_db

FS10D_MEMBERS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}

fs10d_site = ResourceSite(name="fix-seen10d")


@fs10d_site.register
class Fs10dFolderResource(Resource):
    """Every member reads and files under the tenant's folders; only an owner deletes one."""

    model = Folder
    name = "fs10d-folders"
    fields = ["id", "organization", "owner", "name", "parent"]
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Audited(), presets.Bulk()]
    permissions = FS10D_MEMBERS


@fs10d_site.register
class Fs10dAttachmentResource(Resource):
    model = Attachment
    name = "fs10d-attachments"
    fields = ["id", "organization", "name", "file"]
    presets = [presets.MultiTenant()]
    permissions = FS10D_MEMBERS


def _fs10d_no_secret_rows(request, resource, action, obj=None):
    """A ``get`` permission deciding by the row alone (an object check, no row filter)."""
    return obj is None or not obj.name.startswith("secret")


@fs10d_site.register
class Fs10dCheckedFolderResource(Resource):
    """A member's GET of a "secret…" folder is refused by the object check only."""

    model = Folder
    name = "fs10d-checked-folders"
    fields = ["id", "organization", "name", "parent"]
    presets = [presets.MultiTenant()]
    permissions = {**FS10D_MEMBERS, "get": _fs10d_no_secret_rows, "list": _fs10d_no_secret_rows}


@pytest.fixture
def fs10d_mounted(settings):
    with site_mounted(settings, "fs10d", fs10d_site):
        yield


def _fs10d_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


# -- 1. the cascade check and the delete collect once ----------------------------------------


def test_fs10d_a_cascading_delete_collects_its_rows_once(fs10d_mounted):
    """The cascade check ran Django's collector, then ``instance.delete()`` ran it again:
    each level of the subtree was read twice. The delete now takes the check's collection;
    the signals (each row once, the same origin), the event, the audit row and the rows
    deleted are as before."""
    org = OrganizationFactory()
    api, me = _fs10d_member(org)
    top = Folder.objects.create(organization=org, owner=me, name="top")
    mine = Folder.objects.create(organization=org, owner=me, name="mine", parent=top)
    leaf = Folder.objects.create(organization=org, owner=me, name="leaf", parent=mine)
    seen = []

    def fs10d_saw(signal):
        def receiver(sender, instance, origin=None, **kwargs):
            seen.append((signal, instance.name, getattr(origin, "pk", origin)))

        return receiver

    before, after = fs10d_saw("pre"), fs10d_saw("post")
    pre_delete.connect(before, sender=Folder, weak=False, dispatch_uid="fs10d-pre")
    post_delete.connect(after, sender=Folder, weak=False, dispatch_uid="fs10d-post")
    try:
        with CaptureQueriesContext(connection) as captured:
            r = api.delete(f"/fs10d/fs10d-folders/{top.pk}/")
    finally:
        pre_delete.disconnect(sender=Folder, dispatch_uid="fs10d-pre")
        post_delete.disconnect(sender=Folder, dispatch_uid="fs10d-post")
    assert r.status_code == 200, r.content
    reads = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith("SELECT") and '"testapp_folder"."parent_id" IN' in q["sql"]
    ]
    # one read of each level's children: top's, mine's, leaf's (none)
    assert len(reads) == 3, reads
    assert not Folder.objects.filter(pk__in=[top.pk, mine.pk, leaf.pk]).exists()
    assert sorted(seen) == sorted(
        (signal, name, top.pk) for signal in ("pre", "post") for name in ("top", "mine", "leaf")
    )
    events = [(e.type, e.meta["resource_id"]) for e in OutboxEvent.objects.all()]
    assert events == [("fs10d-folders.deleted", str(top.pk))]
    assert list(AuditLog.objects.values_list("action", "object_id")) == [("deleted", str(top.pk))]


def test_fs10d_a_cascading_bulk_delete_collects_its_rows_once(fs10d_mounted):
    """The bulk delete's check collected the rows, then ``QuerySet.delete()`` collected them
    again (the named rows read once more too). It deletes the check's collection now, its
    signals still naming the queryset as their origin, one event and audit row per row
    named, none for the rows the cascade took."""
    org = OrganizationFactory()
    api, me = _fs10d_member(org)
    one = Folder.objects.create(organization=org, owner=me, name="one")
    two = Folder.objects.create(organization=org, owner=me, name="two")
    Folder.objects.create(organization=org, owner=me, name="under", parent=one)
    origins = []

    def fs10d_origin(sender, instance, origin=None, **kwargs):
        origins.append((instance.name, type(origin).__name__))

    pre_delete.connect(fs10d_origin, sender=Folder, weak=False, dispatch_uid="fs10d-origin")
    try:
        with CaptureQueriesContext(connection) as captured:
            r = api.delete("/fs10d/fs10d-folders/bulk/", {"ids": [one.pk, two.pk]}, format="json")
    finally:
        pre_delete.disconnect(sender=Folder, dispatch_uid="fs10d-origin")
    assert r.status_code == 200, r.content
    assert r.json()["data"] == {"deleted": 2, "ids": [one.pk, two.pk]}
    reads = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith("SELECT") and '"testapp_folder"."parent_id" IN' in q["sql"]
    ]
    assert len(reads) == 2, reads  # the named rows' children, then under's (none)
    assert sorted(origins) == [("one", "QuerySet"), ("two", "QuerySet"), ("under", "QuerySet")]
    assert not Folder.objects.exists()
    events = sorted((e.type, e.meta["resource_id"]) for e in OutboxEvent.objects.all())
    assert events == sorted(("fs10d-folders.deleted", str(pk)) for pk in (one.pk, two.pk))
    audited = sorted(AuditLog.objects.values_list("action", "object_id"))
    assert audited == sorted(("deleted", str(pk)) for pk in (one.pk, two.pk))


def test_fs10d_a_model_with_its_own_delete_still_runs_it(fs10d_mounted, monkeypatch):
    """A model's own ``delete()`` (files removed, a row archived) is what a hard delete
    runs: the check's collection is reused only for Django's own ``Model.delete``."""
    org = OrganizationFactory()
    api, me = _fs10d_member(org)
    top = Folder.objects.create(organization=org, owner=me, name="top")
    Folder.objects.create(organization=org, owner=me, name="mine", parent=top)
    ran = []
    original = Folder.delete

    def fs10d_own_delete(self, *args, **kwargs):
        ran.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Folder, "delete", fs10d_own_delete)
    r = api.delete(f"/fs10d/fs10d-folders/{top.pk}/")
    assert r.status_code == 200, r.content
    assert ran == ["top"]
    assert not Folder.objects.exists()


# -- 3. a parent the GET's object check refuses --------------------------------------------


def test_fs10d_a_parent_refused_by_the_gets_object_check_only_is_listed_and_nameable(
    fs10d_mounted,
):
    """Decided (docs/decisions.md, fix-seen10d): a self relation names the rows a list of
    the resource reads (its filters, no object check). A row the ``get`` permission refuses
    by its object check only is in the list, name and id, so naming it as a parent tells
    nothing the list does not; its GET is 403 (no 404: the row is known), and a form's
    options, the same rows, are not asked one check each."""
    org = OrganizationFactory()
    api, _ = _fs10d_member(org)
    secret = Folder.objects.create(organization=org, name="secret plans")
    listed = api.get("/fs10d/fs10d-checked-folders/").json()["docs"]
    assert [(row["id"], row["name"]) for row in listed] == [(secret.pk, "secret plans")]
    assert_error(api.get(f"/fs10d/fs10d-checked-folders/{secret.pk}/"), 403, "FORBIDDEN")
    r = api.post(
        "/fs10d/fs10d-checked-folders/",
        {"organization": org.pk, "name": "under it", "parent": secret.pk},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["data"]["parent"] == secret.pk


# -- 2. the check and the delete see the same rows ------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a race between two connections")
def test_fs10d_a_child_filed_while_a_delete_is_judged_is_not_cascaded_unjudged(
    fs10d_mounted, monkeypatch
):
    """Another member files a folder under the caller's after the cascade check judged the
    subtree and before the delete: the delete collected again, found it and removed it
    (200), a row of another owner's it never judged. The root is locked before the rows
    are collected, so the other member's insert waits and then finds its parent gone; the
    delete removes exactly what it judged."""
    org = OrganizationFactory()
    api, me = _fs10d_member(org)
    other, them = _fs10d_member(org)
    top = Folder.objects.create(organization=org, owner=me, name="top")
    entered, released = threading.Event(), threading.Event()
    judge = ResourceGenericViewSet.refuse_cascade_beyond_reach

    def fs10d_held_after_the_check(self, rows):
        judged = judge(self, rows)
        entered.set()
        assert released.wait(30)
        return judged

    monkeypatch.setattr(
        ResourceGenericViewSet, "refuse_cascade_beyond_reach", fs10d_held_after_the_check
    )
    deleting, deleted = in_thread(lambda: api.delete(f"/fs10d/fs10d-folders/{top.pk}/"))
    filing = filed = None
    try:
        assert entered.wait(30)
        body = {"name": "theirs", "parent": top.pk}
        filing, filed = in_thread(lambda: other.post("/fs10d/fs10d-folders/", body, format="json"))
        filing.join(2)  # it waits for the delete's lock now; it committed at once before
    finally:
        released.set()
        deleting.join(30)
        if filing is not None:
            filing.join(30)
    (delete_answer,) = deleted
    (file_answer,) = filed
    assert not isinstance(delete_answer, BaseException), delete_answer
    assert not isinstance(file_answer, BaseException), file_answer
    # the delete locked the row before judging: it removes what it judged, and the other
    # member's folder finds its parent gone, at its commit (409) or when validated (400)
    assert delete_answer.status_code == 200, delete_answer.content
    assert file_answer.status_code in (400, 409), file_answer.content
    assert not Folder.objects.filter(owner=them).exists()
    assert not Folder.objects.exists()


# -- 4. an upload no alternative name fits -------------------------------------------------


class Fs10dOverwritingStorage(FileSystemStorage):
    """A storage writing over a name taken, saying so as django-storages' S3 does."""

    file_overwrite = True

    def get_available_name(self, name, max_length=None):
        if self.exists(name):
            self.delete(name)
        return name


@pytest.fixture
def fs10d_overwriting(settings, tmp_path, fs10d_mounted):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": f"{__name__}.Fs10dOverwritingStorage"},
    }
    return tmp_path


def _fs10d_stored(media) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def test_fs10d_an_upload_no_alternative_name_fits_is_refused(fs10d_overwriting, monkeypatch):
    """On a storage that overwrites, an upload whose name a row holds gets an alternative
    name within the field's ``max_length``; when none fits (``attachments/same_XXXXXXX.txt``
    is 28 characters, the field takes 20, the name's root is 4), the upload was stored
    under the name held, replacing that row's file (201). Now a 400 naming the file field:
    no row written, no file stored, the other row's file unchanged."""
    monkeypatch.setattr(Attachment._meta.get_field("file"), "max_length", 20)
    org = OrganizationFactory()
    api, _ = _fs10d_member(org)
    first = Attachment.objects.create(organization=org, name="first")
    first.file.save("same.txt", ContentFile(b"first's bytes"))
    assert first.file.name == "attachments/same.txt"
    upload = SimpleUploadedFile("same.txt", b"refused bytes", content_type="text/plain")
    r = api.post(
        "/fs10d/fs10d-attachments/",
        {"organization": org.pk, "name": "second", "file": upload},
        format="multipart",
    )
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert list(body["details"]) == ["file"]
    assert list(Attachment.objects.values_list("name", flat=True)) == ["first"]
    assert (fs10d_overwriting / "attachments" / "same.txt").read_bytes() == b"first's bytes"
    assert _fs10d_stored(fs10d_overwriting) == ["attachments/same.txt"]
    # a name no row holds is stored as named
    other = SimpleUploadedFile("new.txt", b"new bytes", content_type="text/plain")
    r = api.post(
        "/fs10d/fs10d-attachments/",
        {"organization": org.pk, "name": "third", "file": other},
        format="multipart",
    )
    assert r.status_code == 201, r.content
    assert r.json()["data"]["file"].endswith("attachments/new.txt")
