"""rev-fixes48: review of the merges of rev-fixes46, rev-fixes47 and the lead's
``d2f0a7a`` (one ``ServerFault.item_details``) and ``db021ed`` (the upload receivers
marked django-arc's own)."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile

from django_arc import ArcError, Resource, ResourceSite, presets
from django_arc import permissions as P
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Attachment, Rf48Scan

pytestmark = pytest.mark.django_db

rf48_site = ResourceSite(name="rf48")

RF48_MEMBERS = {key: P.require_org_membership() for key in ("list", "get", "create", "update")}


@rf48_site.register
class Rf48GeneratedFileResource(Resource):
    """A bulk resource whose hooks give each row a file the project generates (a rendered
    PDF, a thumbnail); refuses, after the write, a row named ``refuse``."""

    model = Attachment
    name = "rf48-generated"
    fields = ["id", "organization", "name", "file"]
    presets = [presets.MultiTenant(), presets.Bulk(operations=("create", "update"))]
    permissions = RF48_MEMBERS

    def before_create(self, request, data):
        return {**data, "file": ContentFile(b"generated", name=f"{data['name']}.txt")}

    def before_update(self, request, instance, data):
        return {**data, "file": ContentFile(b"regenerated", name=f"{data['name']}.txt")}

    def after_create(self, request, instance):
        if instance.name == "refuse":
            raise ArcError("CONFLICT", "refused after the save", 409)


@pytest.fixture
def rf48_media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.MEDIA_URL = "/media/"
    with site_mounted(settings, "rf48", rf48_site):
        yield tmp_path


def _rf48_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False
    return api


def _rf48_stored(media) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def test_rf48_a_bulk_update_stores_the_file_its_hook_gives_each_row(rf48_media):
    """``bulk_update`` writes each attribute as it is: a file not yet stored was written
    as its bare name, never saved to storage (``FileField.pre_save`` is ``save()``'s), so
    the rows named files no storage held. A batch writing a file field goes row by row."""
    org = OrganizationFactory()
    api = _rf48_member(org)
    rows = [Attachment.objects.create(organization=org, name=f"r{i}") for i in range(2)]
    body = {"items": [{"id": row.pk, "name": f"new{i}"} for i, row in enumerate(rows)]}
    r = api.patch("/rf48/rf48-generated/bulk/", body, format="json")
    assert r.status_code == 200, r.content
    names = sorted(Attachment.objects.values_list("file", flat=True))
    assert names == ["attachments/new0.txt", "attachments/new1.txt"]
    assert _rf48_stored(rf48_media) == names


def test_rf48_a_refused_bulk_create_leaves_none_of_its_files(rf48_media):
    """``bulk_create`` stores each file (``FileField.pre_save``) but sends no ``pre_save``
    signal: the files of a batch refused after its write were noted by nobody and stayed
    in storage, named by no row. A batch writing a file field goes row by row, each save
    seen."""
    org = OrganizationFactory()
    api = _rf48_member(org)
    body = {"items": [{"name": "fine"}, {"name": "refuse"}]}
    r = api.post("/rf48/rf48-generated/bulk/", body, format="json")
    assert_error(r, 409, "CONFLICT")
    assert not Attachment.objects.exists()
    assert _rf48_stored(rf48_media) == []
    r = api.post("/rf48/rf48-generated/bulk/", {"items": [{"name": "a"}]}, format="json")
    assert r.status_code == 201, r.content
    assert _rf48_stored(rf48_media) == ["attachments/a.txt"]


@rf48_site.register
class Rf48RefusingAttachmentResource(Resource):
    """Refuses, after its save, a row named ``refuse``."""

    model = Attachment
    name = "rf48-attachments"
    fields = ["id", "organization", "name", "file"]
    presets = [presets.MultiTenant()]
    permissions = RF48_MEMBERS

    def after_create(self, request, instance):
        if instance.name == "refuse":
            raise ArcError("CONFLICT", "refused after the save", 409)


class Rf48OverwritingStorage(FileSystemStorage):
    """A storage that stores an upload under the name asked, over any file holding it
    (django-storages' S3 default, ``file_overwrite``), on every Django version."""

    def get_available_name(self, name, max_length=None):
        if self.exists(name):
            self.delete(name)
        return name


def test_rf48_a_refused_upload_overwriting_a_name_another_model_holds_removes_no_file(
    rf48_media, settings
):
    """Before removing a refused write's file, only the model whose save stored it was
    asked whether a row names it: under a storage that overwrites, an upload stored under
    the name a row of another model holds (both storing under one directory) was removed,
    and that committed row named a file no longer stored. Every file field of the same
    storage is asked."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.test_rev_fixes48.Rf48OverwritingStorage"},
    }
    scan = Rf48Scan.objects.create(file=ContentFile(b"scan", name="same.txt"))
    assert scan.file.name == "attachments/same.txt"
    org = OrganizationFactory()
    api = _rf48_member(org)
    upload = SimpleUploadedFile("same.txt", b"refused", content_type="text/plain")
    r = api.post("/rf48/rf48-attachments/", {"name": "refuse", "file": upload}, format="multipart")
    assert_error(r, 409, "CONFLICT")
    assert not Attachment.objects.exists()
    assert _rf48_stored(rf48_media) == ["attachments/same.txt"]
    # a refused upload no row of any model names still goes
    upload = SimpleUploadedFile("other.txt", b"refused", content_type="text/plain")
    r = api.post("/rf48/rf48-attachments/", {"name": "refuse", "file": upload}, format="multipart")
    assert_error(r, 409, "CONFLICT")
    assert _rf48_stored(rf48_media) == ["attachments/same.txt"]


@rf48_site.register
class Rf48NamesOnlyResource(Resource):
    """A bulk resource over the model with files that writes none of them: batched unless
    the project's code runs for each row."""

    model = Attachment
    name = "rf48-names"
    fields = ["id", "organization", "name"]
    presets = [presets.MultiTenant(), presets.Bulk(operations=("create",))]
    permissions = RF48_MEMBERS


def _rf48_shout(sender, instance, **kwargs):
    if isinstance(instance, Attachment):
        instance.name = instance.name.upper()


@pytest.mark.parametrize("sender", [None, Attachment], ids=["any-sender", "the-model"])
def test_rf48_a_project_receiver_beside_arcs_upload_receivers_is_still_run(rf48_media, sender):
    """django-arc's upload receivers are its own (``db021ed``); a project's ``pre_save`` on
    the same model, connected for it or for every sender, still makes a bulk write save
    each row, so the receiver runs for each."""
    from django.db.models.signals import pre_save

    org = OrganizationFactory()
    api = _rf48_member(org)
    pre_save.connect(_rf48_shout, sender=sender, weak=False, dispatch_uid="rf48-shout")
    try:
        r = api.post("/rf48/rf48-names/bulk/", {"items": [{"name": "a"}, {"name": "b"}]})
    finally:
        pre_save.disconnect(sender=sender, dispatch_uid="rf48-shout")
    assert r.status_code == 201, r.content
    assert sorted(Attachment.objects.values_list("name", flat=True)) == ["A", "B"]
    r = api.post("/rf48/rf48-names/bulk/", {"items": [{"name": "c"}]})
    assert r.status_code == 201, r.content
    assert Attachment.objects.filter(name="c").exists()


class Lead51FlaggedOverwritingStorage(Rf48OverwritingStorage):
    """The overwriting storage saying so as django-storages' S3 does."""

    file_overwrite = True


def test_lead51_an_accepted_upload_leaves_another_models_file_as_it_was(rf48_media, settings):
    """On a storage that says it overwrites, an upload whose name only a row of *another*
    model held (both storing under one directory) was stored over that row's file: only
    the uploading model's table was asked. A file stored under the name counts too."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.test_rev_fixes48.Lead51FlaggedOverwritingStorage"},
    }
    scan = Rf48Scan.objects.create(file=ContentFile(b"scan", name="same.txt"))
    assert scan.file.name == "attachments/same.txt"
    org = OrganizationFactory()
    api = _rf48_member(org)
    upload = SimpleUploadedFile("same.txt", b"accepted", content_type="text/plain")
    r = api.post("/rf48/rf48-attachments/", {"name": "kept", "file": upload}, format="multipart")
    assert r.status_code == 201, r.content
    stored = Attachment.objects.get().file.name
    assert stored != "attachments/same.txt" and stored.startswith("attachments/same_")
    assert (rf48_media / "attachments" / "same.txt").read_bytes() == b"scan"
    assert (rf48_media / stored).read_bytes() == b"accepted"
